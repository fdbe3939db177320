"""The hosts the user registered (``preflight hosts add``), kept in the shared state database.

Why in SQLite and not in ``~/.ssh/config``: the user's ssh config stays theirs (we read it through the
``ssh`` client, never write it), and a host added by the CLI must be seen by the MCP server, another
process, at once. A host is only what ``ssh`` needs beyond the user's own config: a destination
(``[user@]host`` or an alias of their ssh config), a port, an identity file and extra ``-o KEY=VALUE``.

Validation refuses what would change how ``ssh`` parses its argv or what the runner guarantees: a
destination starting with ``-`` would be read as an option, and the options the runner manages itself
(batch mode, the master connection) or that would accept a changed host key silently
(``StrictHostKeyChecking=no``) are refused with the field named.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from pydantic import BaseModel, Field

from gpu_preflight.tools.common.db import connect, migrate, transaction
from gpu_preflight.tools.common.errors import PreflightError, has_control_chars, is_existing_file

COMPONENT = "hosts"
SCRIPTS: list[str] = [
    """
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        destination TEXT NOT NULL,
        port INTEGER,
        identity TEXT,
        options_json TEXT NOT NULL DEFAULT '{}',
        added_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
    );
    """,
]

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DESTINATION_RE = re.compile(r"(?:[A-Za-z0-9._][A-Za-z0-9._-]{0,63}@)?[A-Za-z0-9._:\[\]%-]{1,253}")
OPTION_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{1,40}")
MAX_OPTIONS = 20
MANAGED_OPTIONS = frozenset({"batchmode", "controlmaster", "controlpath", "controlpersist"})
"""Set by the runner on every call: batch mode (never a password prompt hanging a tool call) and its
multiplexed master connection (socket in the state directory)."""
COMMAND_OPTION_NAMES = ("ProxyCommand", "LocalCommand", "PermitLocalCommand", "KnownHostsCommand", "PKCS11Provider",
                        "SecurityKeyProvider", "Match", "Include")
COMMAND_OPTIONS = frozenset(name.lower() for name in COMMAND_OPTION_NAMES)
"""Options that make ``ssh`` run a local command or load a library. Taken from the account's owner (the CLI,
the Python API, their ``~/.ssh/config``), never from an MCP caller: through ``hosts_add`` then ``hosts_check``
a model or an HTTP client holding the token would otherwise run any command here, even under
``serve --read-only``."""
HOST_KEY_CHECKING = frozenset({"yes", "accept-new", "ask"})
"""``no``/``off`` would connect through a changed host key; ``ask`` behaves as ``yes`` in batch mode."""


class Host(BaseModel):
    """One registered host: what ``ssh`` needs beyond the user's own config."""

    name: str
    destination: str = Field(description="[user@]host, or a Host alias of the user's ssh config.")
    port: int | None = None
    identity: str | None = None
    options: dict[str, str] = Field(default_factory=dict, description="Extra ssh -o KEY=VALUE.")


def check_name(name: str, field: str = "name") -> str:
    """A host name: letters, digits, ``.``, ``_``, ``-`` (a Vast instance id is one), at most 64.

    >>> check_name("vast-12345")
    'vast-12345'
    """
    if not NAME_RE.fullmatch(name):
        raise PreflightError(field, name, "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def parse_option(text: str, *, allow_commands: bool = True) -> tuple[str, str]:
    """``KEY=VALUE`` as ssh's ``-o`` takes it; the runner's own options and a lax host-key policy are refused.

    >>> parse_option("StrictHostKeyChecking=accept-new")
    ('StrictHostKeyChecking', 'accept-new')
    >>> parse_option("ProxyJump=me@bastion:2222")
    ('ProxyJump', 'me@bastion:2222')
    """
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not OPTION_KEY_RE.fullmatch(key) or not value or has_control_chars(value) or len(value) > 1000:
        raise PreflightError("option", text, "KEY=VALUE, an ssh_config keyword and a value on one line")
    if key.lower() in MANAGED_OPTIONS:
        raise PreflightError("option", text, "any ssh option but BatchMode and Control* (the runner sets those)")
    if not allow_commands and key.lower() in COMMAND_OPTIONS:
        raise PreflightError("option", text, "ssh options that run no local command (not "
                             + ", ".join(COMMAND_OPTION_NAMES) + ")",
                             "use ProxyJump, or put the command in your ~/.ssh/config, or register the host "
                             "yourself from the command line")
    if key.lower() == "stricthostkeychecking" and value.lower() not in HOST_KEY_CHECKING:
        raise PreflightError("option", text, "StrictHostKeyChecking=yes, accept-new or ask",
                             "a changed host key is never accepted silently")
    return key, value


def make_host(name: str, destination: str, *, port: int | None = None, identity: str | None = None,
              options: list[str] | dict[str, str] | None = None, allow_commands: bool = True) -> Host:
    """Validate every field (each refusal names it) and build the :class:`Host`.

    ``allow_commands=False`` (MCP's ``hosts_add``) refuses the :data:`COMMAND_OPTIONS`.
    """
    check_name(name)
    if not DESTINATION_RE.fullmatch(destination) or destination.startswith("-"):
        raise PreflightError("destination", destination, "[user@]host or an ssh config alias, not starting with '-'")
    if port is not None and not 1 <= port <= 65535:
        raise PreflightError("port", port, "1-65535")
    if identity is not None:
        path = Path(identity).expanduser()
        if not is_existing_file(path):
            raise PreflightError("identity", identity, "an existing private key file")
        identity = str(path.resolve())
    if options is not None and len(options) > MAX_OPTIONS:
        raise PreflightError("options", f"{len(options)} options", f"at most {MAX_OPTIONS}")
    pairs = (options.items() if isinstance(options, dict)
             else [parse_option(o, allow_commands=allow_commands) for o in options or []])
    parsed: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(options, dict):
            key, value = parse_option(f"{key}={value}", allow_commands=allow_commands)
        parsed[key] = value
    return Host(name=name, destination=destination, port=port, identity=identity, options=parsed)


def _conn() -> sqlite3.Connection:
    conn = connect()
    migrate(conn, COMPONENT, SCRIPTS)
    return conn


def add_host(host: Host) -> Host:
    """Register (or replace: adding the same name again updates it, so ``hosts_add`` is idempotent)."""
    conn = _conn()
    try:
        with transaction(conn):
            conn.execute(
                "INSERT INTO hosts(name, destination, port, identity, options_json) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET destination = excluded.destination, port = excluded.port,"
                " identity = excluded.identity, options_json = excluded.options_json",
                (host.name, host.destination, host.port, host.identity, json.dumps(host.options, sort_keys=True)))
    finally:
        conn.close()
    return host


def list_hosts() -> list[Host]:
    conn = _conn()
    try:
        rows = conn.execute("SELECT * FROM hosts ORDER BY name").fetchall()
    finally:
        conn.close()
    return [Host(name=r["name"], destination=r["destination"], port=r["port"], identity=r["identity"],
                 options=json.loads(r["options_json"])) for r in rows]


def get_host(name: str, field: str = "name") -> Host:
    """The registered host ``name``; refused with the names that exist (``field``: what the caller calls it)."""
    check_name(name, field)
    hosts = {h.name: h for h in list_hosts()}
    if name not in hosts:
        known = ", ".join(sorted(hosts)[:10]) or "none yet"
        raise PreflightError(field, name, f"a registered host ({known})", "not registered: add it first")
    return hosts[name]


def remove_host(name: str) -> bool:
    """Forget ``name``; False when it was not registered."""
    check_name(name)
    conn = _conn()
    try:
        with transaction(conn):
            gone = conn.execute("DELETE FROM hosts WHERE name = ?", (name,)).rowcount
    finally:
        conn.close()
    return bool(gone)
