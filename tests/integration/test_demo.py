"""The demo lab served to the real engine: copies, tools, SFTP, strict host keys, clean close.

The demo serves on its own loop in a thread while the engine runs on the test's loop, as the
CLI does; the console runs the engine on a worker thread's loop instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import signal
import socket
import stat
import threading
import time
import tomllib
from pathlib import Path

import asyncssh
import psutil
import pytest

from difpipe_tui.core.config import load_config
from difpipe_tui.core.errors import ExitCode, HostKeyError
from difpipe_tui.core.events import EventBus
from difpipe_tui.core.hostcheck import check_hosts
from difpipe_tui.core.ssh import SSHPool
from difpipe_tui.core.store import Store
from difpipe_tui.core.transfer.engine import TransferEngine
from difpipe_tui.core.transfer.job import CopyJob
from difpipe_tui.demo import DemoLab

MiB = 1024 * 1024
BIG = 12 * MiB


def sha(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


def lab_children() -> list[psutil.Process]:
    """Subprocesses of this test process (the lab runs commands as children of it)."""
    return psutil.Process().children(recursive=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with DemoLab.start(
        tmp_path_factory.mktemp("demo"), big_size=BIG, log_size=4 * MiB, small_files=300
    ) as demo:
        yield demo


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    """DifPipe's own state and the user's home point at the test's directory."""
    monkeypatch.setenv("DIFPIPE_HOME", str(tmp_path / "difpipe-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("DIFPIPE_CONFIG", raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
def incoming(demo):
    """Empties the incoming/ directories of cloud-vm and backup after a test."""
    yield {name: demo.path_on(name, "incoming") for name in ("cloud-vm", "backup")}
    for name in ("cloud-vm", "backup"):
        d = demo.path_on(name, "incoming")
        for p in sorted(d.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()


async def copy(demo, **kw):
    config = load_config(demo.config_path)
    bus = EventBus()
    with Store.open(demo.home / "test-state.db") as store:
        async with SSHPool(config, bus=bus) as pool:
            engine = TransferEngine(config, pool=pool, store=store, bus=bus)
            return await engine.copy(CopyJob(**kw))


# -- the config -------------------------------------------------------------------------------


def test_config_names_three_hosts_by_role_with_strict_keys_and_no_secret(demo):
    config = load_config(demo.config_path)
    assert {n: h.role for n, h in config.hosts.items()} == {
        "edge-pi": "edge",
        "cloud-vm": "cloud",
        "backup": "storage",
    }
    for name, host in demo.hosts.items():
        rh = config.resolve(name)
        assert (rh.address, rh.port) == ("127.0.0.1", host.port)
        assert rh.host_key_policy == "strict"
        assert str(demo.known_hosts_path) in rh.known_hosts
        assert not any(".ssh" in p for p in rh.known_hosts)  # the user's own file is not read
        assert rh.auth.key_files == (str(demo.client_key_path),)
        assert rh.auth.agent is False
        assert "demo" in rh.tags
    text = demo.config_path.read_text()
    assert "PRIVATE KEY" not in text and "password" not in text
    tomllib.loads(text)
    assert stat.S_IMODE(demo.client_key_path.stat().st_mode) == 0o600
    assert demo.client_key_path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_sample_data_is_there(demo):
    assert demo.path_on("edge-pi", "data/big.bin").stat().st_size == BIG
    log = demo.path_on("edge-pi", "data/app.log")
    assert log.stat().st_size >= 4 * MiB
    assert b"edge-pi INFO" in log.read_bytes()[:4096]
    readings = [p for p in demo.path_on("edge-pi", "data/readings").rglob("*") if p.is_file()]
    assert len(readings) == 300
    for name in ("cloud-vm", "backup"):
        assert demo.path_on(name, "incoming").is_dir()


# -- copies with the real engine --------------------------------------------------------------


async def test_fan_out_of_the_big_file_lands_verified_on_both(demo, incoming):
    src = demo.path_on("edge-pi", "data/big.bin")
    result = await copy(
        demo,
        source="edge-pi:data/big.bin",
        destinations=("cloud-vm:incoming/", "backup:incoming/"),
    )
    assert result.status == "done", result
    assert result.strategy == "exec" and result.codec == "none"  # random bytes stay raw
    assert result.verify == "sha256" and result.digest == sha(src)
    for d in incoming.values():
        assert sha(d / "big.bin") == result.digest
        assert not list(d.glob("*.difpipe-part"))


async def test_recursive_copy_of_many_small_files(demo, incoming):
    result = await copy(
        demo, source="edge-pi:data/readings", destinations=("cloud-vm:incoming/",), recursive=True
    )
    assert result.status == "done", result
    assert result.strategy == "tar"
    copied = tree(incoming["cloud-vm"] / "readings")
    assert len(copied) == 300
    assert copied == tree(demo.path_on("edge-pi", "data/readings"))


async def test_the_log_is_compressed_with_auto(demo, incoming):
    result = await copy(
        demo,
        source="edge-pi:data/app.log",
        destinations=("backup:incoming/app.log",),
        compress="auto",
    )
    assert result.status == "done", result
    assert result.codec == "zstd", result.codec_reason
    assert sha(incoming["backup"] / "app.log") == sha(demo.path_on("edge-pi", "data/app.log"))


async def test_sftp_strategy_is_chrooted_to_the_host(demo, incoming):
    result = await copy(
        demo,
        source="edge-pi:data/big.bin",
        destinations=("backup:incoming/over-sftp.bin",),
        strategy="sftp",
    )
    assert result.status == "done", result
    assert result.strategy == "sftp"
    assert sha(incoming["backup"] / "over-sftp.bin") == sha(demo.path_on("edge-pi", "data/big.bin"))
    async with SSHPool(load_config(demo.config_path)) as pool:
        sftp = await pool.sftp("backup")
        try:
            assert sorted(await sftp.listdir("/")) == [".", "..", "archive", "incoming"]
            assert await sftp.realpath("..") == "/"
        finally:
            sftp.exit()


async def test_hosts_check_finds_all_three_with_tools(demo):
    async with SSHPool(load_config(demo.config_path)) as pool:
        results = await check_hosts(pool, list(demo.hosts))
        info = await pool.info("edge-pi")
    assert [r.name for r in results] == ["edge-pi", "cloud-vm", "backup"]
    for r in results:
        assert r.reachable, r.error
        assert r.auth_method == "publickey"
        assert {"sh", "cat", "dd", "tail", "tee", "tar", "sha256sum"} <= set(r.tools)
    assert info.home == str(demo.hosts["edge-pi"].root)


# -- what a command sees and how it ends ------------------------------------------------------


async def test_commands_run_in_the_host_root_with_status_and_streams(demo):
    async with SSHPool(load_config(demo.config_path)) as pool:
        res = await pool.run("cloud-vm", "pwd; echo $HOME; ls", check=False)
        assert res.text.splitlines() == [str(demo.hosts["cloud-vm"].root)] * 2 + ["incoming", "srv"]
        res = await pool.run("edge-pi", "echo out; echo err >&2; exit 3", check=False)
        assert (res.exit_status, res.stdout, res.stderr) == (3, b"out\n", b"err\n")
        payload = os.urandom(3 * MiB)
        res = await pool.run("backup", "sha256sum", input=payload)
        assert res.text.split()[0] == hashlib.sha256(payload).hexdigest()
        hc = await pool.connect("edge-pi")
        proc = await hc.conn.run("kill -TERM $$", check=False)
        assert proc.exit_signal[0] == "TERM" and proc.returncode == -15


async def test_a_signal_from_the_client_reaches_the_command(demo):
    await interrupt_a_sleep(demo, "307")


async def test_a_signal_reaches_the_command_when_the_lab_ignores_it(demo):
    """A job that a script starts with ``&`` ignores SIGINT and SIGQUIT, and a child inherits an
    ignored signal: as under sshd, the lab's commands get the default action all the same."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)}
    try:
        await interrupt_a_sleep(demo, "310")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


async def interrupt_a_sleep(demo: DemoLab, seconds: str) -> None:
    """``sleep SECONDS`` on edge-pi, ended by the client's SIGINT. Each test gives its own
    duration: a lab session of another test may run a sleep of its own."""
    async with SSHPool(load_config(demo.config_path)) as pool:
        hc = await pool.connect("edge-pi")
        proc = await hc.conn.create_process(f"sleep {seconds}", encoding=None)
        await wait_for_child("sleep", arg=seconds)
        proc.send_signal("INT")
        done = await asyncio.wait_for(proc.wait(), 10)
        assert done.exit_signal[0] == "INT"
    await wait_for_child("sleep", arg=seconds, gone=True)


async def test_closing_the_channel_ends_the_command(demo):
    async with SSHPool(load_config(demo.config_path)) as pool:
        hc = await pool.connect("edge-pi")
        proc = await hc.conn.create_process("sleep 308 | cat", encoding=None)
        await wait_for_child("sleep", arg="308")
        proc.close()
        await wait_for_child("sleep", arg="308", gone=True)


async def test_input_after_the_command_closes_stdin_is_dropped(demo):
    """As with sshd, input that a command will never read does not block the client."""
    async with SSHPool(load_config(demo.config_path)) as pool:
        hc = await pool.connect("backup")
        proc = await hc.conn.create_process("exec 0<&-; sleep 2; echo done", encoding=None)
        for _ in range(32):
            proc.stdin.write(b"x" * MiB)
            await asyncio.wait_for(proc.stdin.drain(), 10)
        proc.stdin.write_eof()
        done = await asyncio.wait_for(proc.wait(), 10)
        assert (done.exit_status, done.stdout) == (0, b"done\n")


async def test_a_reader_that_stops_stops_the_source_command(demo):
    """Output is relayed chunk by chunk: while the client reads nothing, ``cat`` is held back
    after a few MiB (the SSH window and pipe buffers) instead of the server buffering the file.
    """
    async with SSHPool(load_config(demo.config_path)) as pool:
        hc = await pool.connect("edge-pi")
        proc = await hc.conn.create_process("cat data/big.bin", encoding=None)
        cat = await wait_for_child("cat", arg="data/big.bin")
        await asyncio.sleep(1.0)
        offsets = [f.position for f in cat.open_files() if f.path.endswith("big.bin")]
        assert offsets and offsets[0] < BIG // 2, offsets
        hasher = hashlib.sha256()
        while chunk := await proc.stdout.read(MiB):
            hasher.update(chunk)
        await proc.wait()
    assert hasher.hexdigest() == sha(demo.path_on("edge-pi", "data/big.bin"))


async def test_a_command_that_stops_reading_stops_the_client(demo):
    """Input waits in bounded buffers: a command that reads nothing takes only a few MiB."""
    async with SSHPool(load_config(demo.config_path)) as pool:
        hc = await pool.connect("backup")
        proc = await hc.conn.create_process("sleep 3; cat > /dev/null", encoding=None)
        sent = 0
        try:
            while sent < 64 * MiB:
                proc.stdin.write(b"\0" * (256 * 1024))
                await asyncio.wait_for(proc.stdin.drain(), 1.0)
                sent += 256 * 1024
        except TimeoutError:
            pass
        assert sent < 16 * MiB
        proc.stdin.write_eof()
        done = await asyncio.wait_for(proc.wait(), 30)
        assert done.exit_status == 0


async def wait_for_child(
    name: str, *, arg: str | None = None, gone: bool = False, timeout: float = 10.0
):
    """A child process called ``name`` (with ``arg`` on its command line, when given): the
    real-sshd lab's sessions are children of this process too, and may run the same tools."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in lab_children() if _name(p) == name and _has_arg(p, arg)]
        if gone and not found:
            return None
        if found and not gone:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} {'still running' if gone else 'never started'}")


def _name(proc: psutil.Process) -> str | None:
    try:
        return proc.name()
    except psutil.Error:
        return None


def _has_arg(proc: psutil.Process, arg: str | None) -> bool:
    try:
        return arg is None or arg in proc.cmdline()
    except psutil.Error:
        return False


# -- strict host keys -------------------------------------------------------------------------


def _config_with_known_hosts(demo, path: Path):
    config = load_config(demo.config_path)
    return dataclasses.replace(
        config, defaults=dataclasses.replace(config.defaults, known_hosts=(str(path),))
    )


async def test_a_changed_host_key_is_refused(demo, tmp_path):
    port = demo.hosts["edge-pi"].port
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    lines = demo.known_hosts_path.read_text().splitlines()
    changed = [
        f"[127.0.0.1]:{port} {impostor}" if line.startswith(f"[127.0.0.1]:{port} ") else line
        for line in lines
    ]
    assert changed != lines
    (tmp_path / "changed").write_text("\n".join(changed) + "\n")
    (tmp_path / "missing").write_text(
        "\n".join(line for line in lines if not line.startswith(f"[127.0.0.1]:{port} ")) + "\n"
    )
    for variant, words in (("changed", "HOST KEY MISMATCH"), ("missing", "unknown host key")):
        config = _config_with_known_hosts(demo, tmp_path / variant)
        async with SSHPool(config) as pool:
            with pytest.raises(HostKeyError) as err:
                await pool.connect("edge-pi")
            assert words in str(err.value)
            assert err.value.exit_code == ExitCode.HOST_KEY
            await pool.connect("cloud-vm")  # the other hosts are still trusted


# -- start and close --------------------------------------------------------------------------


def test_close_leaves_no_process_thread_port_or_file(tmp_path):
    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in lab_children()}
    demo = DemoLab.start(tmp_path, big_size=MiB, log_size=MiB, small_files=10)
    ports = [h.port for h in demo.hosts.values()]

    async def close_while_a_command_runs() -> None:
        async with SSHPool(load_config(demo.config_path)) as pool:
            hc = await pool.connect("edge-pi")
            await hc.conn.create_process("sleep 309", encoding=None)  # left running on purpose
            await wait_for_child("sleep", arg="309")
            demo.close()

    asyncio.run(close_while_a_command_runs())  # its own loop: no thread of it outlives it
    assert not demo.base.exists()
    assert not demo.running
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        extra = {p.pid for p in lab_children()} - children_before
        threads = set(threading.enumerate()) - threads_before
        if not extra and not threads:
            break
        time.sleep(0.05)
    assert not extra, extra
    assert not threads, threads
    for port in ports:
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
            pass


def test_keep_leaves_the_files(tmp_path):
    demo = DemoLab.start(tmp_path, big_size=MiB, log_size=MiB, small_files=5, keep=True)
    demo.close()
    assert demo.config_path.is_file()
    assert demo.path_on("edge-pi", "data/big.bin").stat().st_size == MiB


def test_the_lab_serves_a_loop_in_another_thread(demo):
    """The console runs the engine on a worker thread's own loop."""

    def in_thread() -> list[bool]:
        async def check() -> list[bool]:
            async with SSHPool(load_config(demo.config_path)) as pool:
                return [r.reachable for r in await check_hosts(pool, list(demo.hosts))]

        return asyncio.run(check())

    results: list[list[bool]] = []
    worker = threading.Thread(target=lambda: results.append(in_thread()))
    worker.start()
    worker.join(30)
    assert results == [[True, True, True]]
