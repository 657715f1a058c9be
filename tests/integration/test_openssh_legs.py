"""OpenSSH transfer legs against real sshd hosts: auth, jumps, host keys, relay, failures, abort."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from difpipe_tui.core.config import load_config
from difpipe_tui.core.errors import AuthError, HostKeyError, NetworkError, RemoteCommandError
from difpipe_tui.core.ssh import SSHPool
from difpipe_tui.core.transfer.ends import PART_SUFFIX
from difpipe_tui.core.transfer.openssh import (
    PIPE_SIZE,
    OpenSSHContext,
    OpenSSHSink,
    OpenSSHSource,
    _running,
    ssh_available,
)
from difpipe_tui.core.transfer.stream import Relay

MiB = 1024 * 1024
TOOLS = {"sha256sum"}

pytestmark = pytest.mark.skipif(ssh_available() is None, reason="needs the OpenSSH client")


@pytest.fixture
def workdirs(lab):
    with lab.scratch_dirs("legs", ("edge", "cloud", "storage", "inner")) as made:
        yield made


class Env:
    """A config, a pool and an OpenSSH context over them; everything closed at the end."""

    def __init__(self, lab, tmp_path: Path):
        self.lab = lab
        self.tmp = tmp_path
        self.known = tmp_path / "own_known_hosts"
        self.made: list[tuple[SSHPool, OpenSSHContext]] = []

    def open(self, config_path: Path | None = None, **write_kw) -> tuple[SSHPool, OpenSSHContext]:
        if config_path is None:
            config_path = self.lab.write_config(self.tmp / f"{uuid.uuid4().hex}.toml", **write_kw)
        config = load_config(config_path)
        pool = SSHPool(config, known_hosts_file=self.known)
        ctx = OpenSSHContext.for_pool(pool)
        self.made.append((pool, ctx))
        return pool, ctx

    async def close(self) -> None:
        for pool, ctx in self.made:
            await ctx.close()
            await pool.close()


@pytest.fixture
async def env(lab, tmp_path):
    e = Env(lab, tmp_path)
    yield e
    await e.close()


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def read_all(source: OpenSSHSource) -> bytes:
    await source.open()
    parts = []
    while chunk := await source.read(MiB):
        parts.append(chunk)
    await source.finish()
    return b"".join(parts)


async def relay(ctx, src_host, src_path, dst_host, target, *, algo="sha256"):
    source = OpenSSHSource(ctx, src_host, str(src_path))
    sink = OpenSSHSink(ctx, dst_host, str(target), algo=algo, tools=TOOLS)
    await sink.prepare(0)
    await source.open()
    await sink.open()
    outcome = await Relay(source, [sink], start=0, algo=algo).run()
    await source.finish()
    dest_digest = await sink.finish()
    await sink.land(True)
    return outcome, dest_digest


_before_test: set[int] = set()


def _live_ssh_children() -> list[psutil.Process]:
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.name() == "ssh" and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture(autouse=True)
def _ssh_baseline():
    """Remember the ssh children an earlier test left, so each test answers for its own."""
    _before_test.clear()
    _before_test.update(p.pid for p in _live_ssh_children())
    yield


def ssh_children() -> list[psutil.Process]:
    """ssh processes this test started that still run (masters are daemons: not ours)."""
    return [p for p in _live_ssh_children() if p.pid not in _before_test]


def processes_using(config_file: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if str(config_file) in (p.info["cmdline"] or []):
            found.append(p)
    return found


def remote_processes(argv_start: list[str]) -> list[psutil.Process]:
    """Processes (the lab's hosts share our pid namespace) whose argv starts with ``argv_start``."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if (p.info["cmdline"] or [])[: len(argv_start)] == argv_start:
            found.append(p)
    return found


# -- relays ------------------------------------------------------------------------------------


async def test_relay_remote_to_remote_lands_identical_bytes(env, workdirs):
    _, ctx = env.open()
    src = random_file(workdirs["edge"] / "data.bin", 32 * MiB + 321)
    target = workdirs["cloud"] / "data.bin"
    outcome, dest_digest = await relay(ctx, "edge", src, "cloud", target)
    assert outcome.eof and outcome.offset == src.stat().st_size
    assert outcome.digest == dest_digest == sha(src)
    assert target.read_bytes() == src.read_bytes()
    assert not list(workdirs["cloud"].glob(f"*{PART_SUFFIX}"))
    assert ssh_children() == []  # the legs are gone; only the detached masters remain


async def test_relay_without_verification_and_zero_bytes(env, workdirs):
    _, ctx = env.open()
    src = random_file(workdirs["edge"] / "small.bin", 3 * MiB + 7)
    target = workdirs["storage"] / "small.bin"
    outcome, dest_digest = await relay(ctx, "edge", src, "storage", target, algo="none")
    assert dest_digest is None and outcome.digest is None
    assert target.read_bytes() == src.read_bytes()
    empty = workdirs["edge"] / "it's empty"
    empty.write_bytes(b"")
    target = workdirs["storage"] / "$(touch pwned) empty"
    outcome, dest_digest = await relay(ctx, "edge", empty, "storage", target)
    assert dest_digest == hashlib.sha256(b"").hexdigest() and target.read_bytes() == b""
    assert not (workdirs["storage"] / "pwned").exists()


async def test_jump_chain_to_inner_both_ways(env, workdirs):
    _, ctx = env.open()
    assert "ProxyJump difpipe+bastion" in ctx.config_file.read_text()
    src = random_file(workdirs["edge"] / "in.bin", 5 * MiB)
    into_inner = workdirs["inner"] / "in.bin"
    await relay(ctx, "edge", src, "inner", into_inner)
    assert into_inner.read_bytes() == src.read_bytes()
    back = workdirs["cloud"] / "back.bin"
    _, digest = await relay(ctx, "inner", into_inner, "cloud", back)
    assert digest == sha(src) and back.read_bytes() == src.read_bytes()


async def test_resume_appends_after_the_offset(env, workdirs):
    _, ctx = env.open()
    src = random_file(workdirs["edge"] / "r.bin", 4 * MiB + 5)
    target = workdirs["cloud"] / "r.bin"
    part = Path(str(target) + PART_SUFFIX)
    part.write_bytes(src.read_bytes()[: 3 * MiB] + b"garbage beyond the checkpoint")
    source = OpenSSHSource(ctx, "edge", str(src), offset=3 * MiB)
    sink = OpenSSHSink(ctx, "cloud", str(target), algo="sha256", tools=TOOLS)
    await sink.prepare(3 * MiB)
    await source.open()
    await sink.open()
    outcome = await Relay(source, [sink], start=3 * MiB, algo="sha256").run()
    await source.finish()
    await sink.finish()  # the digest of this run's bytes only
    assert await sink.full_digest("sha256") == sha(src)
    await sink.land(True)
    assert outcome.offset == src.stat().st_size and target.read_bytes() == src.read_bytes()


# -- authentication ----------------------------------------------------------------------------


async def test_key_auth_uses_only_the_configured_key(env, workdirs):
    _, ctx = env.open()
    text = ctx.config_file.read_text()
    assert f'IdentityFile "{env.lab.client_key}"' in text and "IdentityAgent none" in text
    (workdirs["edge"] / "f").write_bytes(b"hello")
    assert await read_all(OpenSSHSource(ctx, "edge", str(workdirs["edge"] / "f"))) == b"hello"


async def test_agent_auth(env, workdirs, ssh_agent, tmp_path):
    cfg = env.lab.write_config(tmp_path / "agent.toml", host_auth={"agent_path": ssh_agent})
    _, ctx = env.open(cfg)
    text = ctx.config_file.read_text()
    assert f'IdentityAgent "{ssh_agent}"' in text and str(env.lab.client_key) not in text
    (workdirs["cloud"] / "f").write_bytes(b"via agent")
    assert await read_all(OpenSSHSource(ctx, "cloud", str(workdirs["cloud"] / "f"))) == b"via agent"


async def test_agent_off_and_no_key_is_refused_as_auth_error(env, tmp_path):
    cfg = env.lab.write_config(tmp_path / "none.toml", host_auth={"agent": False})
    _, ctx = env.open(cfg)
    with pytest.raises(AuthError, match="authentication failed") as info:
        await ctx.connect("edge")
    assert not info.value.retryable


@pytest.fixture
def password_config(lab, tmp_path, monkeypatch):
    if lab.password_user is None:
        pytest.skip("the lab has no password user (needs root)")
    cfg = lab.write_config(tmp_path / "pw.toml")
    storage = lab.hosts["storage"]
    with cfg.open("a") as fh:
        fh.write(
            f'\n[hosts.pw]\naddress = "{storage.address}"\nport = {storage.port}\n'
            f'user = "{lab.password_user}"\n[hosts.pw.auth]\nagent = false\n'
            'password_env = "DIFPIPE_LAB_PW"\n'
        )
    monkeypatch.setenv("DIFPIPE_LAB_PW", lab.password)
    return cfg


async def test_password_env_through_askpass_never_in_argv_or_files(env, password_config, lab):
    _, ctx = env.open(password_config)
    assert ctx.supports("pw")
    source = OpenSSHSource(ctx, "pw", "/etc/hostname")
    await source.open()
    leg = source._leg
    argv = psutil.Process(leg.proc.pid).cmdline()
    assert not any(lab.password in a for a in argv)
    for f in ctx.dir.iterdir():
        if f.is_file():
            assert lab.password.encode() not in f.read_bytes()
    data = b""
    while chunk := await source.read(MiB):
        data += chunk
    await source.finish()
    assert data == Path("/etc/hostname").read_bytes()
    log = lab.hosts["storage"].log_path.read_text()
    assert f"Accepted password for {lab.password_user}" in log


async def test_password_command_is_resolved_once_by_the_pool(env, lab, tmp_path):
    if lab.password_user is None:
        pytest.skip("the lab has no password user (needs root)")
    secret = tmp_path / "secret"
    secret.write_text(lab.password + "\n")
    counter = tmp_path / "count"
    script = tmp_path / "pw.sh"
    script.write_text(f"#!/bin/sh\necho x >> {counter}\ncat {secret}\n")
    script.chmod(0o700)
    cfg = lab.write_config(tmp_path / "pwc.toml")
    storage = lab.hosts["storage"]
    with cfg.open("a") as fh:
        fh.write(
            f'\n[hosts.pw]\naddress = "{storage.address}"\nport = {storage.port}\n'
            f'user = "{lab.password_user}"\n[hosts.pw.auth]\nagent = false\n'
            f'password_command = "{script}"\n'
        )
    pool, ctx = env.open(cfg)
    await pool.run("pw", "true")  # asyncssh asks the command once...
    assert await read_all(OpenSSHSource(ctx, "pw", "/etc/hostname"))  # ...and OpenSSH reuses it
    assert counter.read_text().count("x") == 1


async def test_wrong_password_is_an_auth_error(env, password_config, monkeypatch):
    monkeypatch.setenv("DIFPIPE_LAB_PW", "not-the-password")
    _, ctx = env.open(password_config)
    with pytest.raises(AuthError):
        await ctx.connect("pw")


# -- host keys ---------------------------------------------------------------------------------


def write_known_hosts(path: Path, lab, *, wrong: set[str] = frozenset(), skip=()) -> Path:
    """known_hosts for the lab, with another host's key for the hosts in ``wrong``."""
    lines = []
    other = lab.hosts["storage"].host_key_pub.split()[:2]
    for name, host in lab.hosts.items():
        if name in skip:
            continue
        key = host.host_key_pub.split()[:2] if name not in wrong else other
        pattern = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
        lines.append(f"{pattern} {' '.join(key)}")
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_host_key_mismatch_is_refused(env, tmp_path):
    kh = write_known_hosts(tmp_path / "kh_bad", env.lab, wrong={"edge"})
    _, ctx = env.open(known_hosts=[str(kh)])
    with pytest.raises(HostKeyError, match="HOST KEY MISMATCH") as info:
        await OpenSSHSource(ctx, "edge", "/etc/hostname").open()
    assert not info.value.retryable and info.value.host == "edge"
    assert "SHA256:" in str(info.value)
    assert ssh_children() == []


async def test_jump_host_key_mismatch_names_the_jump_host(env, tmp_path):
    kh = write_known_hosts(tmp_path / "kh_bad", env.lab, wrong={"bastion"})
    _, ctx = env.open(known_hosts=[str(kh)])
    with pytest.raises(HostKeyError, match="via jump host bastion") as info:
        await ctx.connect("inner")
    assert info.value.host == "inner"


async def test_unknown_host_strict_refused_accept_new_recorded(env, tmp_path):
    kh = write_known_hosts(tmp_path / "kh_partial", env.lab, skip={"cloud"})
    _, ctx = env.open(known_hosts=[str(kh)])
    with pytest.raises(HostKeyError, match="unknown host key"):
        await ctx.connect("cloud")
    assert not env.known.exists() or "ssh-ed25519" not in env.known.read_text()
    _, ctx2 = env.open(known_hosts=[str(kh)], host_key_policy="accept-new")
    await ctx2.connect("cloud")
    cloud = env.lab.hosts["cloud"]
    recorded = env.known.read_text()  # DifPipe's own file, as the pool records them
    assert cloud.host_key_pub.split()[1] in recorded
    assert cloud.host_key_pub.split()[1] not in kh.read_text()


# -- failures at the destination and of the link ----------------------------------------------


async def test_missing_source_is_a_remote_error(env, workdirs):
    _, ctx = env.open()
    source = OpenSSHSource(ctx, "edge", str(workdirs["edge"] / "nope"))
    await source.open()
    assert await source.read(MiB) == b""
    with pytest.raises(RemoteCommandError, match="no such file"):
        await source.finish()


@pytest.fixture
def small_tmpfs(lab, workdirs):
    """A 1 MiB tmpfs on cloud, mounted where cloud's sshd sees it."""
    mnt = workdirs["cloud"] / "tiny"
    mnt.mkdir()
    host = lab.hosts["cloud"]
    enter = ["nsenter", "-t", str(host.pid), "-m"] if host.namespace else []
    subprocess.run([*enter, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run([*enter, "umount", "-l", str(mnt)], check=False)


async def test_no_space_left_is_reported_like_remote_sink(env, workdirs, small_tmpfs):
    _, ctx = env.open()
    src = random_file(workdirs["edge"] / "big.bin", 6 * MiB)
    with pytest.raises(RemoteCommandError, match="no space left") as info:
        await relay_raising(ctx, "edge", src, "cloud", small_tmpfs / "big.bin")
    assert info.value.host == "cloud" and not info.value.retryable
    assert ssh_children() == []


async def relay_raising(ctx, src_host, src, dst_host, target, algo="sha256"):
    """A relay that raises the destination's error (from write or from finish)."""
    source = OpenSSHSource(ctx, src_host, str(src))
    sink = OpenSSHSink(ctx, dst_host, str(target), algo=algo, tools=TOOLS)
    await sink.prepare(0)
    await source.open()
    await sink.open()
    outcome = await Relay(source, [sink], start=0, algo=algo).run()
    await source.finish()
    if outcome.states[0].error is not None:
        raise outcome.states[0].error
    await sink.finish()


async def test_permission_denied_at_the_destination(env, password_config, workdirs, lab):
    _, ctx = env.open(password_config)
    d = workdirs["storage"]
    os.chmod(d, 0o777)
    target = d / "f.bin"
    sink = OpenSSHSink(ctx, "pw", str(target), algo="none", tools=TOOLS)
    await sink.prepare(0)  # the stream's own command creates the part file...
    part = Path(str(target) + PART_SUFFIX)
    part.write_bytes(b"")  # ...but root's is already there: the password user is refused
    os.chown(part, 0, 0)
    os.chmod(part, 0o644)
    src = random_file(workdirs["edge"] / "f.bin", 2 * MiB)
    source = OpenSSHSource(ctx, "edge", str(src))
    await source.open()
    await sink.open()
    outcome = await Relay(source, [sink], start=0, algo="none").run()
    await source.finish()
    error = outcome.states[0].error
    if error is None:
        with pytest.raises(RemoteCommandError) as info:
            await sink.finish()
        error = info.value
    assert isinstance(error, RemoteCommandError) and "permission denied" in str(error).lower()
    assert part.stat().st_size == 0


async def test_master_killed_mid_stream_is_a_retryable_network_error(env, workdirs):
    _, ctx = env.open()
    src = random_file(workdirs["edge"] / "z.bin", 64 * MiB)
    source = OpenSSHSource(ctx, "edge", str(src))
    await source.open()
    assert len(await source.read(MiB)) == MiB
    old_pid = ctx._masters["edge"].pid
    os.kill(old_pid, signal.SIGKILL)
    while await source.read(MiB):
        pass
    with pytest.raises(NetworkError) as info:
        await source.finish()
    assert info.value.retryable
    await ctx.connect("edge")  # a new master
    assert ctx._masters["edge"].pid not in (None, old_pid)


# -- flow control and abort --------------------------------------------------------------------


async def test_a_reader_that_stops_stops_the_remote_sender(env, workdirs):
    _, ctx = env.open()
    src = random_file(workdirs["edge"] / "slow.bin", 96 * MiB)
    source = OpenSSHSource(ctx, "edge", str(src))
    await source.open()
    await source.read(MiB)
    await asyncio.sleep(1.0)
    (cat,) = remote_processes(["cat", "--", str(src)])

    def position() -> int:
        return next(f.position for f in cat.open_files() if f.path == str(src))

    sent = position()
    await asyncio.sleep(0.5)
    assert position() == sent  # stopped, not just slow
    assert sent < 32 * MiB  # pipes (1 MiB here), SSH window and socket buffers only
    await source.abort()


async def test_abort_while_reading_kills_ssh_and_wakes_the_reader(env, workdirs):
    _, ctx = env.open()
    fifo = workdirs["edge"] / "never.fifo"
    os.mkfifo(fifo)  # nobody ever writes: the remote cat blocks, so does our read
    source = OpenSSHSource(ctx, "edge", str(fifo))
    await source.open()
    pid = source._leg.proc.pid
    reading = asyncio.create_task(source.read(MiB))
    await asyncio.sleep(0.5)
    assert not reading.done()
    await asyncio.wait_for(source.abort(), 10)
    with pytest.raises(NetworkError, match="aborted"):
        await asyncio.wait_for(reading, 5)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert ssh_children() == []
    for p in remote_processes(["cat", "--", str(fifo)]):
        p.kill()


async def test_abort_while_writing_kills_ssh_and_wakes_the_writer(env, workdirs):
    _, ctx = env.open()
    target = workdirs["cloud"] / "stalled.bin"
    sink = OpenSSHSink(ctx, "cloud", str(target), algo="none", tools=TOOLS)
    await sink.prepare(0)
    await sink.open()
    await sink.write(b"x" * MiB)
    await asyncio.sleep(0.5)
    stopped = []
    for p in psutil.process_iter(["name"]):
        if p.info["name"] == "cat" and any(
            f.path == str(target) + PART_SUFFIX for f in p.open_files()
        ):
            p.suspend()  # the remote cat stops reading: everything upstream fills
            stopped.append(p)
    assert stopped
    chunk = os.urandom(MiB)
    writing = asyncio.create_task(_write_forever(sink, chunk))
    await asyncio.sleep(2.0)
    assert not writing.done()
    await asyncio.wait_for(sink.abort(), 10)
    with pytest.raises(NetworkError):
        await asyncio.wait_for(writing, 5)
    assert ssh_children() == []
    for p in stopped:
        p.kill()


async def _write_forever(sink: OpenSSHSink, chunk: bytes) -> None:
    while True:
        await sink.write(chunk)


async def test_warm_opens_the_masters_the_legs_then_use(env, workdirs):
    _, ctx = env.open()
    ctx.warm(["edge", "cloud", "no-such-host"])
    assert set(ctx._warming) == {"edge", "cloud"}
    src = random_file(workdirs["edge"] / "w.bin", 2 * MiB)
    await asyncio.gather(*ctx._warming.values())
    assert all(ctx._masters[name].socket.exists() for name in ("edge", "cloud"))

    def masters() -> int:
        return sum("ControlMaster=yes" in p.cmdline() for p in processes_using(ctx.config_file))

    assert masters() == 2
    source = OpenSSHSource(ctx, "edge", str(src))
    await source.open()  # through the warm master
    data = b""
    while chunk := await source.read(MiB):
        data += chunk
    await source.finish()
    assert data == src.read_bytes()
    assert "edge" not in ctx._warming and "cloud" in ctx._warming
    assert masters() == 2


async def test_a_master_checked_moments_ago_is_not_checked_again(env, workdirs):
    """Each ``ssh -O check`` is an ssh process on the way to the first byte: a master that
    opened (and answered) moments ago and still runs is trusted; one that died is noticed."""
    _, ctx = env.open()
    checks: list[str] = []
    run_ssh = ctx._run_ssh

    async def counting(args: list[str], **kw):
        if args[:2] == ["-O", "check"]:
            checks.append(args[2])
        return await run_ssh(args, **kw)

    ctx._run_ssh = counting
    await ctx.connect("edge")
    assert len(checks) == 1  # the one right after it opened
    src = random_file(workdirs["edge"] / "c.bin", MiB)
    source = OpenSSHSource(ctx, "edge", str(src))
    await source.open()  # connects again: no second check
    while await source.read(MiB):
        pass
    await source.finish()
    assert len(checks) == 1
    old = ctx._masters["edge"].pid
    os.kill(old, signal.SIGKILL)
    while _running(old):  # SIGKILL takes a moment to end a process
        await asyncio.sleep(0.01)
    await ctx.connect("edge")  # the dead master is checked, and a new one opens
    assert len(checks) == 3
    assert ctx._masters["edge"].pid not in (None, old)


async def test_a_failed_warm_is_the_first_connects_error_not_a_second_try(env, tmp_path):
    kh = write_known_hosts(tmp_path / "kh_bad", env.lab, wrong={"edge"})
    _, ctx = env.open(known_hosts=[str(kh)])
    attempts = []
    real = ctx._open_master

    async def counted(name):
        attempts.append(name)
        await real(name)

    ctx._open_master = counted
    ctx.warm(["edge"])
    with pytest.raises(HostKeyError, match="HOST KEY MISMATCH"):
        await OpenSSHSource(ctx, "edge", "/etc/hostname").open()
    assert attempts == ["edge"]
    with pytest.raises(HostKeyError):  # a later attempt (a retry) tries again
        await ctx.connect("edge")
    assert attempts == ["edge", "edge"]
    assert ssh_children() == []


@pytest.mark.netns
async def test_close_while_warming_stops_the_handshake(env, lab):
    _, ctx = env.open()
    lab.cut("cloud")  # its master hangs in connect() until closed
    ctx.warm(["cloud"])
    config_file = ctx.config_file
    for _ in range(50):
        if processes_using(config_file):
            break
        await asyncio.sleep(0.05)
    assert processes_using(config_file), "the warm master never started"
    t0 = asyncio.get_running_loop().time()
    await ctx.close()
    assert asyncio.get_running_loop().time() - t0 < 5
    assert ctx._warming == {}
    assert processes_using(config_file) == []
    assert ssh_children() == []


async def test_close_stops_masters_and_removes_the_directory(env, workdirs):
    _, ctx = env.open()
    await ctx.connect("edge")
    await ctx.connect("inner")
    source = OpenSSHSource(ctx, "cloud", "/dev/zero")  # a leg still running at close
    await source.open()
    assert await source.read(PIPE_SIZE)
    config_file = ctx.config_file
    assert processes_using(config_file)
    assert oct(ctx.dir.stat().st_mode & 0o777) == "0o700"
    await ctx.close()
    for _ in range(50):
        if not processes_using(config_file):
            break
        await asyncio.sleep(0.1)
    assert processes_using(config_file) == []
    assert not config_file.parent.exists()
    assert ssh_children() == []


CRASHING_RUN = """
import asyncio, os, signal, sys
from difpipe_tui.core.config import load_config
from difpipe_tui.core.ssh import SSHPool
from difpipe_tui.core.transfer.openssh import OpenSSHContext

async def main():
    pool = SSHPool(load_config(sys.argv[1]), known_hosts_file=sys.argv[2])
    ctx = OpenSSHContext.for_pool(pool)
    await ctx.connect("edge")
    print(ctx.dir, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_a_run_killed_with_9_is_cleaned_up_by_the_next(env, lab, tmp_path):
    config = lab.write_config(tmp_path / "crash.toml")
    known = tmp_path / "own_known_hosts"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_RUN,
        str(config),
        str(known),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    left = Path(out.decode().strip())
    config_file = left / "ssh_config"
    assert left.is_dir() and processes_using(config_file)  # the master outlives its run
    _, ctx = env.open()  # the next run's context sweeps what the dead one left
    assert ctx.dir != left and ctx.dir.is_dir()
    for _ in range(50):
        if not processes_using(config_file):
            break
        await asyncio.sleep(0.1)
    assert processes_using(config_file) == []
    assert not left.exists()
