"""The SSH layer against real OpenSSH sshd hosts: auth, host keys, jump chains, faults."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from difpipe_tui.core import remote
from difpipe_tui.core.config import load_config
from difpipe_tui.core.errors import (
    AuthError,
    ExitCode,
    HostKeyError,
    NetworkError,
)
from difpipe_tui.core.events import (
    ConnectionLost,
    ConnectionOpened,
    ConnectionRestored,
    EventBus,
    HostKeyAccepted,
)
from difpipe_tui.core.ssh import NO_RETRY, RetryPolicy, SSHPool

pytestmark = pytest.mark.lab


def _config(lab, tmp_path, **kw):
    return load_config(lab.write_config(tmp_path / "difpipe.toml", **kw), missing_ok=False)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture
def pool_for(tmp_path):
    """Pools whose accepted host keys go to a per-test file; each test closes its own."""

    def make(config, **kw):
        kw.setdefault("known_hosts_file", tmp_path / "state-known_hosts")
        return SSHPool(config, **kw)

    return make


async def test_key_auth_runs_a_command_and_reuses_the_connection(lab, tmp_path, pool_for):
    bus = EventBus()
    opened = []
    bus.subscribe(lambda e: opened.append(e) if isinstance(e, ConnectionOpened) else None)
    async with pool_for(_config(lab, tmp_path), bus=bus) as pool:
        res = await pool.run("edge", remote.command("echo", "hello world"))
        assert res.stdout == b"hello world\n"
        await pool.run("edge", remote.command("true"))
        hc = await pool.connect("edge")
        assert hc.auth_method == "publickey"
    assert [e.host for e in opened] == ["edge"]  # one connection for both commands


async def test_more_sessions_than_sshd_allows_per_connection_open_another(lab, tmp_path, pool_for):
    """sshd's default MaxSessions is 10: the 11th channel at once goes on a new connection."""
    bus = EventBus()
    opened = []
    bus.subscribe(lambda e: opened.append(e) if isinstance(e, ConnectionOpened) else None)
    with lab.max_sessions("cloud", None) as cloud:
        assert "MaxSessions" not in cloud.sshd_config.read_text()
        await _many_sessions(_config(lab, tmp_path), bus, pool_for)
    assert [e.host for e in opened] == ["cloud", "cloud"]


async def test_a_host_that_refuses_every_session_says_so_without_blaming_forwarding(
    lab, tmp_path, pool_for
):
    bus = EventBus()
    opened = []
    bus.subscribe(lambda e: opened.append(e) if isinstance(e, ConnectionOpened) else None)
    with lab.max_sessions("cloud", 0):
        async with pool_for(_config(lab, tmp_path), bus=bus) as pool:
            with pytest.raises(NetworkError) as caught:
                await pool.run("cloud", "true")
    err = caught.value
    assert "cannot open a channel on cloud" in str(err) and not err.retryable
    assert "MaxSessions" in str(err) and "forwarding" not in str(err).lower()
    assert len(opened) == 2  # the first connection, then one more that refused too


async def _many_sessions(config, bus, pool_for) -> None:
    async with pool_for(config, bus=bus) as pool:
        runs = [pool.run("cloud", f"sleep 1; echo {i}") for i in range(14)]
        results = await asyncio.gather(*runs)
        assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(14)]
        # and once they are done, the connections take new commands again
        assert (await pool.run("cloud", "echo again")).stdout == b"again\n"


async def test_agent_auth(lab, tmp_path, pool_for, ssh_agent):
    cfg_path = lab.write_config(tmp_path / "difpipe.toml")
    text = cfg_path.read_text()
    # the agent holds the lab key; the config names no key file
    text = text.replace(f'key_files = ["{lab.client_key}"]\n', "")
    text = text.replace("agent = false", f'agent = true\nagent_path = "{ssh_agent}"')
    cfg_path.write_text(text)
    config = load_config(cfg_path, missing_ok=False)
    assert not config.resolve("cloud").auth.key_files
    async with pool_for(config) as pool:
        hc = await pool.connect("cloud")
        assert hc.auth_method == "agent"


def _password_config(lab, tmp_path, env_name="DIFPIPE_LAB_PW"):
    cfg_path = lab.write_config(tmp_path / "difpipe.toml")
    with cfg_path.open("a") as fh:
        fh.write(
            "\n[hosts.pw]\n"
            f'address = "{lab.hosts["storage"].address}"\n'
            f"port = {lab.hosts['storage'].port}\n"
            f'user = "{lab.password_user}"\n'
            "[hosts.pw.auth]\n"
            "agent = false\n"
            f'password_env = "{env_name}"\n'
        )
    return load_config(cfg_path, missing_ok=False)


async def test_password_from_env(lab, tmp_path, pool_for, monkeypatch):
    monkeypatch.setenv("DIFPIPE_LAB_PW", lab.password)
    async with pool_for(_password_config(lab, tmp_path)) as pool:
        hc = await pool.connect("pw")
        assert hc.auth_method == "password"
        res = await pool.run("pw", remote.command("id", "-un"))
        assert res.text.strip() == lab.password_user


async def test_wrong_password_is_an_auth_error(lab, tmp_path, pool_for, monkeypatch):
    monkeypatch.setenv("DIFPIPE_LAB_PW", "not-the-password")
    async with pool_for(_password_config(lab, tmp_path), retry=NO_RETRY) as pool:
        with pytest.raises(AuthError) as info:
            await pool.connect("pw")
    err = info.value
    assert err.exit_code == ExitCode.AUTH and not err.retryable
    assert str(err).startswith("pw: authentication failed as difpipe")
    assert "password" in str(err)
    assert "not-the-password" not in str(err)


async def test_missing_password_env_names_the_variable(lab, tmp_path, pool_for, monkeypatch):
    monkeypatch.delenv("DIFPIPE_LAB_PW_UNSET", raising=False)
    config = _password_config(lab, tmp_path, env_name="DIFPIPE_LAB_PW_UNSET")
    async with pool_for(config, retry=NO_RETRY) as pool:
        with pytest.raises(AuthError, match="DIFPIPE_LAB_PW_UNSET"):
            await pool.connect("pw")


async def test_jump_chain_one_and_two_hops(lab, tmp_path, pool_for):
    if not lab.netns:
        pytest.skip("inner is only isolated behind the bastion in network namespaces")
    cfg_path = lab.write_config(tmp_path / "difpipe.toml")
    with cfg_path.open("a") as fh:
        fh.write(
            "\n[hosts.inner2]\n"
            f'address = "{lab.hosts["inner"].address}"\n'
            'jump = ["edge", "bastion"]\n'
            "[hosts.inner2.auth]\n"
            f'key_files = ["{lab.client_key}"]\n'
            "agent = false\n"
        )
    config = load_config(cfg_path, missing_ok=False)
    bus = EventBus()
    opened = []
    bus.subscribe(lambda e: opened.append(e) if isinstance(e, ConnectionOpened) else None)
    async with pool_for(config, bus=bus) as pool:
        res = await pool.run("inner", remote.command("cat", "/proc/net/dev"))
        assert res.ok
        res = await pool.run("inner2", remote.command("echo", "two hops"))
        assert res.text == "two hops\n"
    vias = {(e.host, e.via) for e in opened}
    assert ("inner", ("bastion",)) in vias
    assert ("bastion", ("edge",)) in vias
    assert ("inner2", ("edge", "bastion")) in vias


async def test_unreachable_inner_without_jump_is_network_error(lab, tmp_path, pool_for):
    if not lab.netns:
        pytest.skip("needs network namespaces")
    cfg_path = lab.write_config(tmp_path / "difpipe.toml")
    _edit(cfg_path, 'jump = ["bastion"]\n', "")
    _edit(cfg_path, "connect_timeout = 5.0", "connect_timeout = 1.0")
    async with pool_for(load_config(cfg_path), retry=NO_RETRY) as pool:
        with pytest.raises(NetworkError) as info:
            await pool.connect("inner")
    assert info.value.retryable and info.value.exit_code == ExitCode.NETWORK


def _log_size(host) -> int:
    return Path(host.log_path).stat().st_size if Path(host.log_path).exists() else 0


async def test_host_key_mismatch_refused_before_auth(lab, tmp_path, pool_for):
    edge, cloud = lab.hosts["edge"], lab.hosts["cloud"]
    wrong = tmp_path / "known_hosts_wrong"
    key_type_and_body = " ".join(cloud.host_key_pub.split()[:2])
    pattern = edge.address if edge.port == 22 else f"[{edge.address}]:{edge.port}"
    wrong.write_text(f"{pattern} {key_type_and_body}\n")
    config = _config(lab, tmp_path, known_hosts=[str(wrong)])
    before = _log_size(edge)
    async with pool_for(config, retry=NO_RETRY) as pool:
        with pytest.raises(HostKeyError) as info:
            await pool.connect("edge")
    err = info.value
    assert err.exit_code == ExitCode.HOST_KEY
    assert "HOST KEY MISMATCH" in str(err) and "nothing was sent" in str(err)
    await asyncio.sleep(0.3)
    log = Path(edge.log_path).read_bytes()[before:].decode(errors="replace")
    assert "publickey" not in log and "Accepted" not in log and "Failed" not in log


async def test_unknown_host_strict_refused_accept_new_recorded(lab, tmp_path, pool_for):
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    own = tmp_path / "own_known_hosts"
    strict = _config(lab, tmp_path, known_hosts=[str(empty)])
    async with pool_for(strict, retry=NO_RETRY, known_hosts_file=own) as pool:
        with pytest.raises(HostKeyError, match="unknown host key"):
            await pool.connect("storage")
    assert not own.exists()

    tofu = _config(lab, tmp_path, known_hosts=[str(empty)], host_key_policy="accept-new")
    bus = EventBus()
    accepted = []
    bus.subscribe(lambda e: accepted.append(e) if isinstance(e, HostKeyAccepted) else None)
    async with pool_for(tofu, bus=bus, known_hosts_file=own) as pool:
        await pool.run("storage", remote.command("true"))
    assert [e.host for e in accepted] == ["storage"]
    recorded = own.read_text()
    assert lab.hosts["storage"].host_key_pub.split()[1] in recorded
    assert oct(own.stat().st_mode & 0o777) == "0o600"

    # now known: strict accepts it from the recorded file, and accept-new does not re-record
    async with pool_for(strict, retry=NO_RETRY, known_hosts_file=own) as pool:
        await pool.run("storage", remote.command("true"))
    assert own.read_text() == recorded


async def test_cut_link_is_retryable_and_reconnects_after_heal(lab, tmp_path, pool_for):
    if not lab.netns:
        pytest.skip("needs network namespaces")
    cfg_path = lab.write_config(tmp_path / "difpipe.toml")
    _edit(cfg_path, "connect_timeout = 5.0", "connect_timeout = 1.5")
    config = load_config(cfg_path)
    bus = EventBus()
    events = []
    bus.subscribe(events.append)
    retry = RetryPolicy(attempts=2, base_delay=0.1, max_delay=0.2)
    async with pool_for(config, bus=bus, retry=retry) as pool:
        await pool.run("cloud", remote.command("true"))
        lab.cut("cloud")
        with pytest.raises(NetworkError) as info:
            await pool.run("cloud", remote.command("true"), timeout=2)
        assert info.value.retryable and info.value.exit_code == ExitCode.NETWORK
        # a fresh connection attempt while cut fails as retryable too
        await pool.disconnect("cloud")
        with pytest.raises(NetworkError):
            await pool.connect("cloud")
        lab.heal("cloud")
        res = await pool.run("cloud", remote.command("echo", "back"))
        assert res.text == "back\n"
    kinds = [type(e) for e in events]
    assert ConnectionLost in kinds or any(
        getattr(e, "kind", "") == "connection.failed" for e in events
    )


async def test_keepalive_notices_a_dead_link_and_reconnect_restores(lab, tmp_path, pool_for):
    if not lab.netns:
        pytest.skip("needs network namespaces")
    cfg_path = lab.write_config(
        tmp_path / "difpipe.toml", keepalive_interval=0.5, keepalive_count_max=2
    )
    _edit(cfg_path, "connect_timeout = 5.0", "connect_timeout = 2.0")
    bus = EventBus()
    events = []
    bus.subscribe(events.append)
    retry = RetryPolicy(attempts=20, base_delay=0.2, max_delay=0.5)
    async with pool_for(load_config(cfg_path), bus=bus, retry=retry) as pool:
        await pool.run("storage", remote.command("true"))
        lab.cut("storage")
        for _ in range(50):
            if any(isinstance(e, ConnectionLost) for e in events):
                break
            await asyncio.sleep(0.1)
        assert any(isinstance(e, ConnectionLost) and e.host == "storage" for e in events)
        asyncio.get_running_loop().call_later(1.0, lab.heal, "storage")
        res = await pool.run("storage", remote.command("echo", "again"))
        assert res.text == "again\n"
    assert any(isinstance(e, ConnectionRestored) and e.host == "storage" for e in events)


NASTY_NAMES = [
    "with space",
    "it's quoted",
    'double"quote',
    "$(touch {canary})",
    "`touch {canary}`",
    "semi;touch {canary}",
    "new\nline",
    "-leading-dash",
    "--",
    "star*",
    "back\\slash",
]


async def test_nasty_paths_are_quoted_against_real_sshd(lab, tmp_path, pool_for):
    root = Path(lab.hosts["edge"].root) / f"inject-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    canary_name = f"dp-pwned-{uuid.uuid4().hex[:8]}"
    canary = Path("/tmp") / canary_name
    names = [n.format(canary=canary_name) for n in NASTY_NAMES]
    async with pool_for(_config(lab, tmp_path)) as pool:
        for name in names:
            target = str(root / name)
            await pool.run("edge", remote.command("touch", "--", target))
            await pool.run(
                "edge",
                remote.pipeline(["printf", "%s", name], stdout_to=target),
            )
        # an argument starting with "-" as a plain operand is passed as data, not an option
        res = await pool.run("edge", remote.command("printf", "%s|", *names))
        # whole paths with a command substitution in them are data too
        for bad in (f"$(touch {canary})", f"`touch {canary}`", f"x; touch {canary}"):
            miss = await pool.run("edge", remote.command("ls", "-d", "--", bad), check=False)
            assert miss.exit_status != 0
        home = (await pool.run("edge", remote.Raw('printf %s "$HOME"'))).text
    assert sorted(os.listdir(root)) == sorted(names)
    for name in names:
        assert (root / name).read_text() == name
    assert res.text == "".join(f"{n}|" for n in names)
    for place in (canary, Path(home) / canary_name, root / canary_name):
        assert not place.exists(), place


async def test_remote_failure_is_a_remote_error_with_status(lab, tmp_path, pool_for):
    from difpipe_tui.core.errors import RemoteCommandError

    async with pool_for(_config(lab, tmp_path)) as pool:
        with pytest.raises(RemoteCommandError) as info:
            await pool.run("edge", remote.command("ls", "/nonexistent dir"))
        res = await pool.run("edge", remote.command("sh", "-c", "exit 3"), check=False)
    assert info.value.exit_status == 2 and info.value.exit_code == ExitCode.REMOTE
    assert "No such file" in str(info.value)
    assert res.exit_status == 3


async def test_tool_detection_is_cached_per_connection(lab, tmp_path, pool_for):
    bus = EventBus()
    commands = []
    bus.subscribe(lambda e: commands.append(e) if e.kind == "remote.command" else None)
    async with pool_for(_config(lab, tmp_path), bus=bus) as pool:
        info = await pool.info("edge")
        again = await pool.info("edge")
    assert info is again
    assert len(commands) == 1
    assert info.has("sh") and info.has("cat") and info.has("tar")
    assert info.first("sha256sum", "shasum") == "sha256sum"
    assert info.os == "Linux" and info.arch
    assert info.disk_free_bytes and info.disk_free_bytes > 0
