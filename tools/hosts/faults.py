"""One status and a one-line reason for each way a remote host can fail us.

The patterns are the messages OpenSSH 9 prints (tests/test_hosts.py produces each against a real
``sshd`` and checks the status it gets): ``connect to host H port P: Connection refused``,
``USER@H: Permission denied (publickey).``, ``WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!`` ...
``Host key verification failed.``, ``Connection to H closed by remote host.``. Without a known host key
ssh prints only ``Host key verification failed.`` (or, with ``StrictHostKeyChecking=yes``, ``No ED25519
host key is known for ...``): that is ``host_key_unknown``, a first contact, not a changed key.

ssh exits 255 when it fails itself; a remote command's own status passes through unchanged, so a status
other than 255 is the command's answer, never a fault of the connection.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from .ssh import RemoteCall

HostStatus = Literal["ok", "host_unreachable", "auth_refused", "host_key_changed", "host_key_unknown",
                     "connection_dropped", "ssh_error", "tmux_missing", "no_gpu"]
SSH_FAILED_RC = 255

_UNREACHABLE = ("connection refused", "connection timed out", "no route to host", "could not resolve hostname",
                "name or service not known", "temporary failure in name resolution", "network is unreachable",
                "kex_exchange_identification", "connection closed by", "connection reset by peer",
                "operation timed out")
_DROPPED = ("closed by remote host", "broken pipe", "not responding", "client_loop", "mux_client")
"""Said after the session began (checked before :data:`_UNREACHABLE`, whose ``connection reset`` can close
either)."""
_REASON_CHARS = 240


class Fault(BaseModel):
    status: HostStatus
    reason: str


def last_line(text: str, limit: int = _REASON_CHARS) -> str:
    """The last non-empty line, shortened: the line ssh ends its complaint with says the most.

    >>> last_line("@@@@\\nHost key verification failed.\\n")
    'Host key verification failed.'
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _find(stderr: str, needle: str) -> str:
    """The stderr line holding ``needle`` (case-insensitive), else the last line."""
    for line in stderr.splitlines():
        if needle in line.lower():
            return last_line(line)
    return last_line(stderr)


def classify(done: RemoteCall, name: str) -> Fault | None:
    """The fault of an ssh call to host ``name``, or None when ssh itself did its job.

    >>> classify(RemoteCall(255, "", "root@h: Permission denied (publickey).\\n", 80.0), "h").status
    'auth_refused'
    >>> classify(RemoteCall(3, "", "", 80.0), "h") is None
    True
    """
    if done.timed_out:
        return Fault(status="host_unreachable", reason=last_line(done.stderr))
    if done.rc != SSH_FAILED_RC:
        return None
    low = done.stderr.lower()
    if "remote host identification has changed" in low or "has changed and you have requested" in low:
        line = _find(done.stderr, "has changed and you have requested")
        return Fault(status="host_key_changed", reason=f"refused: {line} (if the box was rebuilt, check the new "
                     "key and remove the old one with ssh-keygen -R)")
    if "host key verification failed" in low:
        line = _find(done.stderr, "host key is known")
        return Fault(status="host_key_unknown", reason=f"{line} No known host key for {name}: ssh to it once, or "
                     "add the host with --option StrictHostKeyChecking=accept-new")
    if "permission denied" in low:
        return Fault(status="auth_refused", reason=_find(done.stderr, "permission denied"))
    for needle in _DROPPED:
        if needle in low:
            return Fault(status="connection_dropped", reason=_find(done.stderr, needle))
    for needle in _UNREACHABLE:
        if needle in low:
            return Fault(status="host_unreachable", reason=_find(done.stderr, needle))
    if not done.stderr.strip():
        return Fault(status="connection_dropped",
                     reason=f"the connection to {name} dropped during the command (ssh status 255, no message)")
    return Fault(status="ssh_error", reason=last_line(done.stderr))
