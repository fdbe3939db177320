"""Remote hosts over SSH (issue 17, part 1) against a real ``sshd`` on 127.0.0.1 (tests/sshd.py).

Every fault status is produced by the real ssh client against the real server (refused port, wrong key,
rebuilt box with a new host key, stopped server, dropped session), never from strings we wrote. The box is
this machine, so ``tmux_version`` must equal the local ``tmux -V`` and ``gpus`` what the local nvidia-smi
lists (none here).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from sshd import Sshd, close_ssh_masters, free_port, keygen

from gpu_preflight.server.cli import main
from gpu_preflight.tools.common.errors import PreflightError
from gpu_preflight.tools.hosts import (
    Host,
    add_host,
    call,
    check,
    classify,
    list_hosts,
    make_host,
    run_remote,
)

CONTRACT_KEYS = {"name", "reachable", "latency_ms", "tmux_version", "gpus", "error", "status"}


@pytest.fixture(autouse=True)
def _no_socket_dirs_left() -> Iterator[None]:
    """The test's state dir is too deep for ssh sockets, so they go to /tmp/pf-ssh-*; leave none behind
    (also for tests that register a host without a server)."""
    yield
    close_ssh_masters()


def _host(srv: Sshd, name: str = "box", *, key: Path | None = None, known_hosts: Path | None = None,
          extra: tuple[str, ...] = ()) -> Host:
    return srv.register(name, key=key, known_hosts=known_hosts, extra=extra)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _local_tmux() -> str:
    return subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=True).stdout.strip()


def _local_gpu_count() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(1 for line in done.stdout.splitlines() if line.startswith("GPU ")) if done.returncode == 0 else 0


# ---------------------------------------------------------------- the registry through the CLI


def test_cli_add_list_remove(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ident = tmp_path / "id"
    ident.write_text("not read, only named\n")
    code, out, _ = _cli(capsys, "hosts", "add", "gpu1", "root@ssh5.vast.ai", "--port", "12345", "--identity",
                        str(ident), "--option", "StrictHostKeyChecking=accept-new", "--json")
    assert code == 0
    assert json.loads(out) == {"name": "gpu1", "destination": "root@ssh5.vast.ai", "port": 12345,
                               "identity": str(ident.resolve()), "options": {"StrictHostKeyChecking": "accept-new"}}
    assert _cli(capsys, "hosts", "add", "gpu2", "alias-in-ssh-config")[0] == 0
    code, out, _ = _cli(capsys, "hosts", "list", "--json")
    assert [h["name"] for h in json.loads(out)] == ["gpu1", "gpu2"]
    assert json.loads(out)[1]["port"] is None
    assert _cli(capsys, "hosts", "remove", "gpu1")[0] == 0
    code, out, _ = _cli(capsys, "hosts", "list", "--json")
    assert [h["name"] for h in json.loads(out)] == ["gpu2"]
    code, _, err = _cli(capsys, "hosts", "remove", "gpu1")
    assert code == 2 and err.startswith("preflight: error: name: got 'gpu1'") and "gpu2" in err


@pytest.mark.parametrize(("argv", "field"), [
    (["bad name", "h"], "name"),
    (["--", "box", "-oProxyCommand=sh"], "destination"),
    (["box", "root@h;reboot"], "destination"),
    (["box", "h", "--port", "70000"], "port"),
    (["box", "h", "--identity", "/no/such/key"], "identity"),
    (["box", "h", "--option", "StrictHostKeyChecking=no"], "option"),
    (["box", "h", "--option", "ControlPath=/tmp/x"], "option"),
    (["box", "h", "--option", "novalue"], "option"),
])
def test_cli_add_refuses_bad_input_naming_the_field(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                    field: str) -> None:
    code, out, err = _cli(capsys, "hosts", "add", *argv)
    assert code == 2 and out == ""
    assert err.startswith(f"preflight: error: {field}: got ") and err.count("\n") == 1, err
    assert _cli(capsys, "hosts", "list", "--json")[1].strip() == "[]"


def test_import_vast_registers_running_instances(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Rows we wrote with the fields `vastai show instances --raw` prints (see tools/hosts/vast.py for the source).
    rows = [{"id": 883, "actual_status": "running", "ssh_host": "ssh2281.vast.ai", "ssh_port": 10882},
            {"id": 901, "actual_status": "loading", "ssh_host": "ssh3.vast.ai", "ssh_port": 20001},
            {"id": 902, "actual_status": "running", "ssh_host": None, "ssh_port": None}]
    raw = tmp_path / "instances.json"
    raw.write_text(json.dumps(rows, indent=1))
    code, out, _ = _cli(capsys, "hosts", "import-vast", str(raw), "--json")
    assert code == 0
    found = json.loads(out)
    assert [(h["name"], h["destination"], h["port"]) for h in found["added"]] == [("883", "root@ssh2281.vast.ai",
                                                                                   10882)]
    assert [s.split(":")[0] for s in found["skipped"]] == ["901", "902"]
    assert [h["name"] for h in json.loads(_cli(capsys, "hosts", "list", "--json")[1])] == ["883"]
    raw.write_text("{not json")
    code, _, err = _cli(capsys, "hosts", "import-vast", str(raw))
    assert code == 2 and err.startswith("preflight: error: file: got ") and "{not json" not in err


# ---------------------------------------------------------------- check against the real sshd


def test_cli_check_against_real_sshd(capsys: pytest.CaptureFixture[str], sshd: Sshd) -> None:
    assert _cli(capsys, "hosts", "add", "box", "127.0.0.1", "--port", str(sshd.port), "--identity",
                str(sshd.client_key), "--option", f"UserKnownHostsFile={sshd.known_hosts}",
                "--option", "IdentitiesOnly=yes")[0] == 0
    code, out, _ = _cli(capsys, "hosts", "check", "box", "--json")
    data = json.loads(out)
    assert code == 0 and set(data) == CONTRACT_KEYS
    assert data["reachable"] is True and data["latency_ms"] > 0
    assert f"tmux {data['tmux_version']}" == _local_tmux()
    assert len(data["gpus"]) == _local_gpu_count()
    if not data["gpus"]:
        assert data["gpus"] == [] and data["status"] == "no_gpu" and "nvidia-smi" in data["error"]


def test_warm_master_is_faster_than_the_first_call(sshd: Sshd, capsys: pytest.CaptureFixture[str]) -> None:
    host = _host(sshd)
    cold = check(host)
    warm = [check(host) for _ in range(3)]
    assert cold.reachable and all(w.reachable for w in warm)
    assert cold.latency_ms is not None and all(w.latency_ms is not None for w in warm)
    with capsys.disabled():
        print(f"\nhosts check latency: cold {cold.latency_ms:.0f} ms, warm {[w.latency_ms for w in warm]} ms")
    assert min(w.latency_ms or 0 for w in warm) < cold.latency_ms


def test_run_remote_passes_arguments_verbatim(sshd: Sshd, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    nasty = f"$(touch {marker}); ;|& `touch {marker}` > {marker} 'quote\" \\ *"
    rc, out, err = run_remote(_host(sshd), ["printf", "%s\\n", nasty, "two words", ""])
    assert (rc, err) == (0, "")
    assert out == f"{nasty}\ntwo words\n\n"
    assert not marker.exists()


def test_local_deadline_kills_a_slow_call(sshd: Sshd) -> None:
    host = _host(sshd)
    started = time.monotonic()
    done = call(host, ["sleep", "30"], timeout_s=1.5)
    assert done.timed_out and time.monotonic() - started < 5
    fault = classify(done, host.name)
    assert fault is not None and "within 1.5 s" in fault.reason


# ---------------------------------------------------------------- faults, from the real ssh's stderr


def test_nothing_listening_is_host_unreachable_within_the_timeout(ssh_client_key: Path, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    host = add_host(make_host("gone", "127.0.0.1", port=free_port(), identity=str(ssh_client_key),
                              options=[f"UserKnownHostsFile={known}"]))
    started = time.monotonic()
    result = check(host, timeout_s=5)
    assert time.monotonic() - started < 5
    assert (result.reachable, result.status) == (False, "host_unreachable")
    assert "Connection refused" in (result.error or "") and result.latency_ms is None


def test_wrong_key_is_auth_refused(sshd: Sshd, tmp_path: Path) -> None:
    result = check(_host(sshd, key=keygen(tmp_path / "stranger")))
    assert (result.reachable, result.status) == (False, "auth_refused")
    assert "Permission denied (publickey)" in (result.error or "")


def test_changed_host_key_is_refused_with_sshs_message(sshd: Sshd) -> None:
    host = _host(sshd)
    lenient = _host(sshd, "lenient", extra=("StrictHostKeyChecking=accept-new",))
    assert check(host).reachable
    sshd.stop()
    sshd.new_host_key()  # the box was rebuilt at the same address; known_hosts holds the old key
    sshd.start()
    for h in (host, lenient):  # accept-new accepts a first contact, never a changed key
        result = check(h)
        assert (result.reachable, result.status) == (False, "host_key_changed")
        assert "has changed" in (result.error or "") and result.error.startswith("refused")  # type: ignore[union-attr]
    assert "[127.0.0.1]" in sshd.known_hosts.read_text()


def test_first_contact_follows_strict_host_key_checking(sshd: Sshd, tmp_path: Path) -> None:
    strict_known, new_known = tmp_path / "strict_known", tmp_path / "new_known"
    strict_known.write_text("")
    new_known.write_text("")
    strict = check(_host(sshd, "strict", known_hosts=strict_known, extra=("StrictHostKeyChecking=yes",)))
    assert (strict.reachable, strict.status) == (False, "host_key_unknown")
    assert "accept-new" in (strict.error or "")
    first = check(_host(sshd, "first", known_hosts=new_known, extra=("StrictHostKeyChecking=accept-new",)))
    host_key = (sshd.host_key.parent / "host_key.pub").read_text().split()[1]
    assert first.reachable and host_key in new_known.read_text()  # (hashed: Debian's HashKnownHosts yes)


def test_stopped_sshd_is_host_unreachable(sshd: Sshd) -> None:
    host = _host(sshd)
    assert check(host).reachable  # a warm master connection exists now
    sshd.stop()
    result = check(host, timeout_s=5)
    assert (result.reachable, result.status) == (False, "host_unreachable")


def test_sshd_stopped_mid_command_is_connection_dropped(sshd: Sshd) -> None:
    host = _host(sshd)
    assert check(host).reachable
    answers: list[Any] = []
    worker = threading.Thread(target=lambda: answers.append(call(host, ["sleep", "20"], timeout_s=15)))
    started = time.monotonic()
    worker.start()
    time.sleep(1.0)
    sshd.stop()
    worker.join(timeout=20)
    assert answers and time.monotonic() - started < 10
    fault = classify(answers[0], host.name)
    assert answers[0].rc == 255 and not answers[0].timed_out
    assert fault is not None and fault.status == "connection_dropped", fault


def test_box_without_tmux_and_a_broken_nvidia_smi(ssh_client_key: Path, tmp_path: Path,
                                                  sshd_factory: list[Sshd]) -> None:
    """The box's PATH (sshd SetEnv) holds sh and our own nvidia-smi stand-ins, and no tmux."""
    bin_dir = tmp_path / "boxbin"
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to(shutil.which("sh") or "/bin/sh")
    smi = bin_dir / "nvidia-smi"
    srv = Sshd(tmp_path / "bare", ssh_client_key, extra_config=[f"SetEnv PATH={bin_dir}"])
    sshd_factory.append(srv)
    srv.trust()
    srv.start()
    host = _host(srv, "bare")
    # A driver fault: the message is nvidia-smi's well-known one, written by us for this stand-in.
    smi.write_text("#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
                   "driver.\"\nexit 9\n")
    smi.chmod(0o755)
    broken = check(host)
    assert broken.reachable and broken.tmux_version is None and broken.gpus == []
    assert broken.status == "tmux_missing" and "tmux is not installed" in (broken.error or "")
    assert "nvidia-smi failed (status 9)" in (broken.error or "")
    # Two GPUs in the documented --format=csv,noheader,nounits layout (lines we wrote).
    smi.write_text("#!/bin/sh\necho '0, NVIDIA H100 80GB HBM3, 81559'\necho '1, NVIDIA H100 80GB HBM3, 81559'\n")
    listed = check(host)
    assert [(g.index, g.name, g.memory_total_mib) for g in listed.gpus] == [
        (0, "NVIDIA H100 80GB HBM3", 81559), (1, "NVIDIA H100 80GB HBM3", 81559)]
    assert listed.status == "tmux_missing" and "nvidia-smi" not in (listed.error or "")


# ---------------------------------------------------------------- MCP


@pytest.mark.anyio
async def test_mcp_hosts_tools(mcp_client: Client, sshd: Sshd) -> None:
    tools = {t.name: t.annotations for t in (await mcp_client.list_tools()).tools}
    add, check_hints, listing = tools["hosts_add"], tools["hosts_check"], tools["hosts_list"]
    assert add is not None and add.read_only_hint is False and add.idempotent_hint is True
    assert add.destructive_hint is False
    assert check_hints is not None and check_hints.read_only_hint is True and check_hints.open_world_hint is True
    assert listing is not None and listing.read_only_hint is True
    args = {"name": "box", "destination": "127.0.0.1", "port": sshd.port, "identity": str(sshd.client_key),
            "options": [f"UserKnownHostsFile={sshd.known_hosts}", "IdentitiesOnly=yes"]}
    for _ in range(2):  # idempotent: the same call twice leaves one host
        added = await mcp_client.call_tool("hosts_add", args)
        assert not added.is_error and [h["name"] for h in added.structured_content["hosts"]] == ["box"]
    listed = (await mcp_client.call_tool("hosts_list", {})).structured_content
    assert listed is not None and listed["hosts"][0]["port"] == sshd.port
    checked = await mcp_client.call_tool("hosts_check", {"name": "box"})
    data = checked.structured_content
    assert not checked.is_error and data is not None and set(data) == CONTRACT_KEYS
    assert data["reachable"] is True and f"tmux {data['tmux_version']}" == _local_tmux()
    refused = await mcp_client.call_tool("hosts_add", {**args, "options": ["StrictHostKeyChecking=no"]})
    assert refused.is_error and "option: got 'StrictHostKeyChecking=no'" in refused.content[0].text  # type: ignore[union-attr]
    unknown = await mcp_client.call_tool("hosts_check", {"name": "nope"})
    assert unknown.is_error and "name: got 'nope'" in unknown.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
@pytest.mark.parametrize("option", ["ProxyCommand=touch {mark}", "proxycommand=touch {mark}",
                                    "LocalCommand=touch {mark}", "PermitLocalCommand=yes",
                                    "KnownHostsCommand=touch {mark}", "PKCS11Provider={mark}",
                                    "SecurityKeyProvider={mark}", "Match=exec touch {mark}", "Include={mark}"])
async def test_mcp_hosts_add_refuses_options_that_run_a_local_command(mcp_client: Client, tmp_path: Path,
                                                                       option: str) -> None:
    """Injection path: hosts_add then hosts_check would have ssh run a command here for any MCP caller (also
    under --read-only, where hosts_add stays). Refused naming the option; nothing registered, nothing run."""
    mark = tmp_path / "ran"
    text = option.format(mark=mark)
    got = await mcp_client.call_tool("hosts_add", {"name": "evil", "destination": "127.0.0.1", "options": [text]})
    key = text.split("=")[0]  # long values are elided in errors: the option's name is what must show
    assert got.is_error and f"option: got '{key}=" in got.content[0].text  # type: ignore[union-attr]
    assert "evil" not in [h.name for h in list_hosts()]
    checked = await mcp_client.call_tool("hosts_check", {"name": "evil"})
    assert checked.is_error and not mark.exists()


def test_the_account_owner_may_still_register_a_proxy_command(tmp_path: Path) -> None:
    """The CLI and the Python API are the account's owner: a ProxyCommand there is their choice (bench/remote.py
    uses one for its 50 ms relay)."""
    host = make_host("relay", "127.0.0.1", options=["ProxyCommand=nc %h %p"])
    assert host.options == {"ProxyCommand": "nc %h %p"}
    with pytest.raises(PreflightError) as info:
        make_host("relay", "127.0.0.1", options=["ProxyCommand=nc %h %p"], allow_commands=False)
    assert info.value.field == "option"
