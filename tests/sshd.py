"""A real OpenSSH server on 127.0.0.1 for the remote-host tests (issue 17): Debian's ``/usr/sbin/sshd``.

Why a real one: every fault the runner classifies (refused, wrong key, changed host key, dropped
connection) is classified from the stderr the real ``ssh`` client prints against a real server, never
from strings we made up. Each server gets its own port, host key and config; the client key is made once
per test session. The config allows the current user in with that key only (CI runs as root:
``PermitRootLogin prohibit-password``); ``UsePAM no`` and ``StrictModes no`` because the keys live in a
pytest temp directory, not in ``~/.ssh``.

Stopping a server ends its listener and every per-connection process it forked (they call ``setsid``, so a
process-group kill would miss them), so a stopped box really drops its live sessions, as a dead box does.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gpu_preflight.tools.hosts import Host, add_host, close_master, list_hosts, make_host
from gpu_preflight.tools.hosts.ssh import control_dir

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = shutil.which("ssh-keygen")
PRIVSEP_DIR = Path("/run/sshd")  # sshd running as root refuses to start without it (Debian's unit makes it)


def missing_reason() -> str | None:
    """Why sshd tests cannot run here, or None."""
    if not SSHD.exists():
        return "no /usr/sbin/sshd (apt-get install openssh-server)"
    if SSH_KEYGEN is None or shutil.which("ssh") is None:
        return "no ssh / ssh-keygen (apt-get install openssh-client)"
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        try:
            PRIVSEP_DIR.mkdir(mode=0o755)
        except OSError as exc:
            return f"sshd needs {PRIVSEP_DIR}: {exc.strerror}"
    return None


def keygen(path: Path) -> Path:
    """A fresh ed25519 key pair at ``path`` (+ ``.pub``), no passphrase."""
    assert SSH_KEYGEN is not None
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "preflight-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc), deepest first."""
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [*_descendants(child), child]
    return found


@dataclass
class Sshd:
    """One sshd: ``start()``, ``stop()``, ``new_host_key()`` (the box was rebuilt: same address, new key)."""

    root: Path
    client_key: Path
    port: int = field(default_factory=free_port)
    extra_config: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(self.root / "host_key")

    @property
    def known_hosts(self) -> Path:
        """A known_hosts file holding this server's current host key (written by :meth:`trust`)."""
        return self.root / "known_hosts"

    def trust(self) -> Path:
        kind, key = (self.root / "host_key.pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {kind} {key}\n")
        return self.known_hosts

    def new_host_key(self) -> None:
        for name in ("host_key", "host_key.pub"):
            (self.root / name).unlink()
        self.host_key = keygen(self.root / "host_key")

    def _config(self) -> Path:
        lines = [
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.client_key}.pub", f"PidFile {self.root / 'sshd.pid'}",
            f"AllowUsers {getpass.getuser()}", "PermitRootLogin prohibit-password", "PubkeyAuthentication yes",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "LogLevel ERROR", *(line for line in self.extra_config if not line.startswith("SetEnv ")),
            # One SetEnv line (sshd keeps the first): a login shell that runs `pyenv init` waits up to 60 s on
            # a rehash lock left by a login killed mid-rehash when a test stops sshd; 1 s caps that wait.
            "SetEnv PYENV_REHASH_TIMEOUT=1 " + " ".join(
                line.removeprefix("SetEnv ") for line in self.extra_config if line.startswith("SetEnv ")),
        ]
        path = self.root / "sshd_config"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> None:
        config = self._config()
        with open(self.root / "sshd.log", "ab") as log:
            self.proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}: {(self.root / 'sshd.log').read_text()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("sshd did not listen within 10 s")

    def stop(self) -> None:
        """End the listener and every session it forked (by pid, this server's processes only)."""
        if self.proc is None:
            return
        for pid in [*_descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def register(self, name: str = "box", *, key: Path | None = None, known_hosts: Path | None = None,
                 extra: tuple[str, ...] = ()) -> Host:
        """Register this server as a user would: the test's own known_hosts, only the given key."""
        options = [f"UserKnownHostsFile={known_hosts or self.known_hosts}", "IdentitiesOnly=yes", *extra]
        return add_host(make_host(name, "127.0.0.1", port=self.port, identity=str(key or self.client_key),
                                  options=options))


def close_ssh_masters() -> None:
    """Close every registered host's master (and its sessions) and the socket dir: a test leaves none behind."""
    for host in list_hosts():
        close_master(host)
    with contextlib.suppress(OSError):
        control_dir().rmdir()


@pytest.fixture(scope="session")
def ssh_client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client key the test servers accept (one per test session)."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    return keygen(tmp_path_factory.mktemp("sshkey") / "id_ed25519")


@pytest.fixture
def sshd_factory(ssh_client_key: Path, tmp_path: Path) -> Iterator[list[Sshd]]:
    """Make servers with ``Sshd(root, key)`` appended here; all are stopped at teardown."""
    servers: list[Sshd] = []
    yield servers
    close_ssh_masters()
    for srv in servers:
        srv.stop()


@pytest.fixture
def sshd(ssh_client_key: Path, tmp_path: Path, sshd_factory: list[Sshd]) -> Sshd:
    """One running server whose host key the test's known_hosts already trusts."""
    srv = Sshd(tmp_path / "sshd", ssh_client_key)
    sshd_factory.append(srv)
    srv.trust()
    srv.start()
    return srv
