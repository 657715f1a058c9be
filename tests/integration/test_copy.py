"""The transfer engine against real sshd hosts: relay, fan-out, verify, resume, faults.

Every test of a plain file copy runs twice: with ``transport = "asyncssh"`` (streams inside
this process) and with ``transport = "openssh"`` (one ssh client process per remote end). After
each copy the harness checks that no ssh process and no control master of the engine is left.
A directory (tar), ``--strategy sftp`` and ``--parallel`` stream over asyncssh whatever the
setting (:func:`~difpipe_tui.core.transfer.plan.make_plan` says so, checked by
``test_what_openssh_cannot_stream_goes_over_asyncssh``): their tests run once, with asyncssh.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import Counter
from pathlib import Path

import psutil
import pytest

from difpipe_tui.core.config import load_config
from difpipe_tui.core.errors import ExitCode, LocalIOError, RemoteCommandError, UsageError
from difpipe_tui.core.events import EventBus
from difpipe_tui.core.remote import command
from difpipe_tui.core.ssh import DEFAULT_WINDOW, SSHPool, window_for
from difpipe_tui.core.store import Store
from difpipe_tui.core.transfer import plan as plan_module
from difpipe_tui.core.transfer.ends import PART_SUFFIX, RemoteSink, RemoteSource
from difpipe_tui.core.transfer.engine import TransferEngine
from difpipe_tui.core.transfer.job import CopyJob
from difpipe_tui.core.transfer.openssh import ssh_available
from difpipe_tui.core.transfer.parallel import digest_and_land

MiB = 1024 * 1024
TRANSPORTS = [
    "asyncssh",
    pytest.param(
        "openssh",
        marks=pytest.mark.skipif(ssh_available() is None, reason="needs the OpenSSH client"),
    ),
]


def sha(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@pytest.fixture
def workdirs(lab):
    """A fresh directory under each lab host's root, removed afterwards."""
    with lab.scratch_dirs("copy", ("edge", "cloud", "storage")) as made:
        yield made


def leftover_ssh(config_files: list[Path]) -> list[psutil.Process]:
    """ssh processes among our descendants, and any process (a detached control master)
    started with one of ``config_files``."""
    wanted = {str(f) for f in config_files}
    found = []
    for p in psutil.process_iter(["name", "cmdline", "ppid"]):
        try:
            cmdline = p.info["cmdline"] or []
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.NoSuchProcess:
            continue
        if wanted & set(cmdline):
            found.append(p)
    for p in psutil.Process().children(recursive=True):
        try:
            if p.name() == "ssh" and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.NoSuchProcess:  # it ended between the listing and the look
            continue
    return found


class Harness:
    def __init__(self, lab, tmp_path, transport):
        self.lab = lab
        self.transport = transport
        self.tmp = tmp_path
        self.config = load_config(self.write_config("difpipe.toml"))
        self.bus = EventBus()
        self.events = []
        self.bus.subscribe(self.events.append)
        self.store = Store.open(tmp_path / "state.db")
        self.known = tmp_path / "known_hosts"
        self.ssh_configs: list[Path] = []  # the engines' generated ssh_config files

    def write_config(self, name, **defaults):
        return self.lab.write_config(self.tmp / name, transport=self.transport, **defaults)

    def kinds(self, kind):
        return [e for e in self.events if e.kind == kind]

    def engine(self, pool):
        engine = TransferEngine(self.config, pool=pool, store=self.store, bus=self.bus)
        original = engine.openssh_for

        def openssh_for(job):
            ctx = original(job)
            if ctx is not None and ctx.config_file not in self.ssh_configs:
                self.ssh_configs.append(ctx.config_file)
            return ctx

        engine.openssh_for = openssh_for
        return engine

    async def copy(self, **kw):
        async with SSHPool(self.config, bus=self.bus, known_hosts_file=self.known) as pool:
            result = await self.engine(pool).copy(CopyJob(**kw))
        self.check_nothing_left()
        return result

    async def start(self, pool, **kw):
        return await self.engine(pool).start(CopyJob(**kw))

    def pool(self):
        return SSHPool(self.config, bus=self.bus, known_hosts_file=self.known)

    async def interrupted(self, **kw):
        """Start a copy, stop it once it saved a checkpoint; its result."""
        async with self.pool() as pool:
            handle = await self.start(pool, **kw)
            while not self.kinds("transfer.checkpoint"):
                await asyncio.sleep(0.05)
            handle.cancel()
            return await handle.wait()

    def check_nothing_left(self):
        assert leftover_ssh(self.ssh_configs) == []
        if self.transport == "openssh":
            assert self.ssh_configs, "the engine never made its OpenSSH context"
        assert not any(f.exists() for f in self.ssh_configs)


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        fh.write(os.urandom(size))
    return path


def log_file(path: Path, lines: int = 200_000) -> Path:
    path.write_text(
        "".join(f"2026-11-22T10:00:{i % 60:02d} INFO req {i} ok\n" for i in range(lines))
    )
    return path


async def test_remote_to_remote_relay_lands_identical_bytes(h, workdirs):
    src = random_file(workdirs["edge"] / "data.bin", 12 * MiB + 123)
    result = await h.copy(source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",))
    landed = workdirs["cloud"] / "data.bin"
    assert result.status == "done", result
    assert result.transport == result.destinations[0].transport == h.transport
    assert landed.read_bytes() == src.read_bytes()
    assert result.destinations[0].digest == sha(src)
    assert not list(workdirs["cloud"].glob(f"*{PART_SUFFIX}"))
    assert next(e.kind for e in h.events if e.kind.startswith("transfer.")) == "transfer.start"
    assert h.kinds("transfer.done")[0].status == "done"
    record = h.store.get_transfer(result.transfer_id)
    assert record.status == "done" and record.digest == sha(src)
    assert h.store.get_checkpoints(result.transfer_id) == []


async def test_fan_out_compressed_to_remote_and_local(h, workdirs, tmp_path):
    src = log_file(workdirs["edge"] / "app.log")
    local = tmp_path / "local.log"
    result = await h.copy(
        source=f"edge:{src}",
        destinations=(
            f"cloud:{workdirs['cloud']}/app.log",
            f"storage:{workdirs['storage']}/renamed.log",
            str(local),
        ),
    )
    assert result.status == "done", result
    assert result.codec == "zstd" and "compresses to" in result.codec_reason
    for path in (workdirs["cloud"] / "app.log", workdirs["storage"] / "renamed.log", local):
        assert path.read_bytes() == src.read_bytes()
    assert {d.digest for d in result.destinations} == {sha(src)}


async def test_remote_codec_on_both_ends_carries_compressed_bytes(h, workdirs):
    src = log_file(workdirs["edge"] / "app.log")
    result = await h.copy(
        source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",), compress="zstd"
    )
    assert result.status == "done"
    assert "both ends have zstd" in result.codec_reason
    assert (workdirs["cloud"] / "app.log").read_bytes() == src.read_bytes()


async def test_local_to_remote_and_back(h, workdirs, tmp_path):
    src = random_file(tmp_path / "up.bin", 3 * MiB)
    up = await h.copy(source=str(src), destinations=(f"storage:{workdirs['storage']}/up.bin",))
    assert up.status == "done"
    down = tmp_path / "down.bin"
    back = await h.copy(source=f"storage:{workdirs['storage']}/up.bin", destinations=(str(down),))
    assert back.status == "done" and down.read_bytes() == src.read_bytes()


async def test_zero_byte_file_and_nasty_names(h, workdirs):
    names = ["with space", "it's", "$(touch pwned)", "`x`", "semi;colon", "new\nline", "-dash"]
    for name in names:
        (workdirs["edge"] / name).write_bytes(b"" if name == "with space" else name.encode())
        result = await h.copy(
            source=f"edge:{workdirs['edge'] / name}", destinations=(f"cloud:{workdirs['cloud']}/",)
        )
        assert result.status == "done", (name, result)
        assert (workdirs["cloud"] / name).read_bytes() == (workdirs["edge"] / name).read_bytes()
    assert sorted(os.listdir(workdirs["cloud"])) == sorted(names)
    assert not Path("pwned").exists() and not (workdirs["cloud"] / "pwned").exists()


async def test_missing_source_and_directory_without_r(h, workdirs):
    with pytest.raises(RemoteCommandError, match="no such file") as info:
        await h.copy(
            source=f"edge:{workdirs['edge']}/nope", destinations=(f"cloud:{workdirs['cloud']}/",)
        )
    assert info.value.exit_code == ExitCode.REMOTE
    assert str(info.value).startswith("edge:")
    with pytest.raises(UsageError, match=r"is a directory.*-r"):
        await h.copy(
            source=f"edge:{workdirs['edge']}", destinations=(f"cloud:{workdirs['cloud']}/",)
        )
    with pytest.raises(LocalIOError):
        await h.copy(source="/nonexistent/x", destinations=(f"cloud:{workdirs['cloud']}/",))


async def test_full_disk_never_replaces_the_good_file(h, workdirs, small_tmpfs):
    mnt, seen = small_tmpfs
    (seen / "f.bin").write_bytes(b"the good old file")
    src = random_file(workdirs["edge"] / "f.bin", 4 * MiB)
    result = await h.copy(source=f"edge:{src}", destinations=(f"cloud:{mnt}/f.bin",), retries=0)
    assert result.status == "failed"
    assert "no space left" in result.destinations[0].error
    assert result.destinations[0].exit_code == ExitCode.REMOTE
    assert (seen / "f.bin").read_bytes() == b"the good old file"


async def test_permission_denied_at_destination(lab, h, workdirs, tmp_path, monkeypatch):
    cfg = h.write_config("pw.toml")
    storage = lab.hosts["storage"]
    with cfg.open("a") as fh:
        fh.write(
            f'\n[hosts.pw]\naddress = "{storage.address}"\nport = {storage.port}\n'
            f'user = "{lab.password_user}"\n[hosts.pw.auth]\nagent = false\n'
            'password_env = "DIFPIPE_LAB_PW"\n'
        )
    monkeypatch.setenv("DIFPIPE_LAB_PW", lab.password)
    h.config = load_config(cfg)
    os.chmod(workdirs["storage"], 0o755)
    src = random_file(workdirs["edge"] / "f.bin", MiB)
    result = await h.copy(source=f"edge:{src}", destinations=(f"pw:{workdirs['storage']}/f.bin",))
    assert result.status == "failed"
    assert "permission denied" in result.destinations[0].error.lower()
    assert not (workdirs["storage"] / "f.bin").exists()


async def test_interrupt_saves_checkpoint_and_rerun_resumes(h, workdirs):
    src = random_file(workdirs["edge"] / "big.bin", 24 * MiB)
    dest = f"cloud:{workdirs['cloud']}/"
    job = dict(
        source=f"edge:{src}", destinations=(dest,), rate_limit=8 * MiB, checkpoint_interval=2 * MiB
    )
    async with h.pool() as pool:
        handle = await h.start(pool, **job)
        while not h.kinds("transfer.checkpoint"):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        handle.cancel()
        first = await handle.wait()
    assert first.status == "interrupted"
    saved = h.store.get_checkpoints(first.transfer_id)
    assert saved and saved[0].offset > 0
    assert not (workdirs["cloud"] / "big.bin").exists()
    assert (workdirs["cloud"] / f"big.bin{PART_SUFFIX}").exists()

    h.events.clear()
    second = await h.copy(**{**job, "rate_limit": None})
    assert second.status == "done" and second.transfer_id == first.transfer_id
    resumed = h.kinds("transfer.resume")
    assert resumed and resumed[0].offset == saved[0].offset
    assert second.resumed_from == saved[0].offset
    assert sha(workdirs["cloud"] / "big.bin") == sha(src)
    assert second.destinations[0].digest == sha(src)


async def test_corrupted_prefix_starts_over(h, workdirs):
    src = random_file(workdirs["edge"] / "big.bin", 16 * MiB)
    job = dict(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/",),
        rate_limit=8 * MiB,
        checkpoint_interval=2 * MiB,
    )
    first = await h.interrupted(**job)
    part = workdirs["cloud"] / f"big.bin{PART_SUFFIX}"
    with part.open("r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    h.events.clear()
    second = await h.copy(**{**job, "rate_limit": None})
    assert second.transfer_id == first.transfer_id and second.status == "done"
    resumed = h.kinds("transfer.resume")
    assert resumed[0].offset == 0 and "does not match" in resumed[0].note
    assert sha(workdirs["cloud"] / "big.bin") == sha(src)


async def test_source_that_grows_while_read_is_reported(h, workdirs):
    src = random_file(workdirs["edge"] / "grow.log", 32 * MiB)
    target = workdirs["cloud"] / "grow.log"
    target.write_bytes(b"previous good copy")
    async with h.pool() as pool:
        handle = await h.start(
            pool, source=f"edge:{src}", destinations=(f"cloud:{target}",), rate_limit=8 * MiB
        )
        while not h.kinds("transfer.progress"):
            await asyncio.sleep(0.05)
        with src.open("ab") as fh:
            fh.write(os.urandom(MiB))
        result = await handle.wait()
    assert result.status == "failed"
    assert "changed size" in result.destinations[0].error
    assert result.destinations[0].exit_code == ExitCode.VERIFY
    assert target.read_bytes() == b"previous good copy"


async def test_pause_stops_the_stream_and_resume_finishes(h, workdirs):
    src = random_file(workdirs["edge"] / "p.bin", 8 * MiB)
    async with h.pool() as pool:
        handle = await h.start(
            pool,
            source=f"edge:{src}",
            destinations=(f"cloud:{workdirs['cloud']}/",),
            rate_limit=4 * MiB,
        )
        while not h.kinds("transfer.progress"):
            await asyncio.sleep(0.05)
        handle.pause()
        await asyncio.sleep(0.5)
        before = h.kinds("transfer.progress")[-1].bytes
        await asyncio.sleep(1.0)
        after = h.kinds("transfer.progress")[-1].bytes
        assert after - before <= 2 * MiB  # at most what was already queued
        handle.resume()
        result = await handle.wait()
    assert result.status == "done"
    assert sha(workdirs["cloud"] / "p.bin") == sha(src)


async def test_rate_limit_paces_the_stream(h, workdirs):
    src = random_file(workdirs["edge"] / "r.bin", 6 * MiB)
    result = await h.copy(
        source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",), rate_limit=3 * MiB
    )
    assert result.status == "done"
    assert result.seconds >= 1.3  # 6 MiB at 3 MiB/s, less the initial burst


@pytest.fixture
def splice_calls(monkeypatch):
    """How many chunks went through splice(2) (pass-through OpenSSH copies)."""
    from difpipe_tui.core.transfer import splice

    calls = []
    real = splice.splice_chunk

    def counting(src, dst, n):
        calls.append(n)
        return real(src, dst, n)

    monkeypatch.setattr(splice, "splice_chunk", counting)
    return calls


async def test_pass_through_copy_pauses_stops_and_resumes(h, workdirs, splice_calls):
    """--verify none, nothing compressed: OpenSSH legs splice the bytes from pipe to pipe."""
    src = random_file(workdirs["edge"] / "pt.bin", 24 * MiB + 7)
    job = dict(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/",),
        verify="none",
        compress="none",
        rate_limit=6 * MiB,
    )
    async with h.pool() as pool:
        handle = await h.start(pool, **job)
        while not h.kinds("transfer.progress"):
            await asyncio.sleep(0.05)
        handle.pause()
        await asyncio.sleep(0.5)
        before = h.kinds("transfer.progress")[-1].bytes
        await asyncio.sleep(1.0)
        assert h.kinds("transfer.progress")[-1].bytes - before <= 2 * MiB
        handle.resume()
        await asyncio.sleep(0.5)
        handle.cancel()
        first = await handle.wait()
    assert first.status == "interrupted"
    saved = h.store.get_checkpoints(first.transfer_id)
    assert saved and 0 < saved[0].offset < src.stat().st_size
    assert not (workdirs["cloud"] / "pt.bin").exists()
    h.events.clear()
    second = await h.copy(**{**job, "rate_limit": None})
    assert second.status == "done", second
    assert second.resumed_from == saved[0].offset
    assert sha(workdirs["cloud"] / "pt.bin") == sha(src)
    assert bool(splice_calls) == (h.transport == "openssh")


async def test_pass_through_copy_to_a_full_disk_fails_cleanly(h, workdirs, small_tmpfs):
    mnt, seen = small_tmpfs
    (seen / "f.bin").write_bytes(b"the good old file")
    src = random_file(workdirs["edge"] / "f.bin", 4 * MiB)
    result = await h.copy(
        source=f"edge:{src}",
        destinations=(f"cloud:{mnt}/f.bin",),
        retries=0,
        verify="none",
        compress="none",
    )
    assert result.status == "failed"
    assert result.destinations[0].error.startswith("cloud: ")
    assert "no space left" in result.destinations[0].error
    assert result.destinations[0].exit_code == ExitCode.REMOTE
    assert (seen / "f.bin").read_bytes() == b"the good old file"


@pytest.mark.netns
async def test_cut_link_mid_transfer_retries_and_resumes(lab, h, workdirs):
    src = random_file(workdirs["edge"] / "cut.bin", 20 * MiB)
    h.config = load_config(
        h.write_config(
            "cut.toml", connect_timeout=2.0, keepalive_interval=0.5, keepalive_count_max=2
        )
    )
    async with h.pool() as pool:
        handle = await h.start(
            pool,
            source=f"edge:{src}",
            destinations=(f"cloud:{workdirs['cloud']}/",),
            rate_limit=6 * MiB,
            checkpoint_interval=MiB,
            retries=5,
        )
        while not h.kinds("transfer.checkpoint"):
            await asyncio.sleep(0.05)
        lab.cut("cloud")
        # The link stays cut until the engine gives up on the stream: keepalives notice it in
        # ~1.5 s over asyncssh, ~3 s over OpenSSH (whole seconds: 1 s x 2, then the close).
        await asyncio.wait_for(until(lambda: h.kinds("transfer.retry")), 20)
        lab.heal("cloud")
        result = await asyncio.wait_for(handle.wait(), 120)
    assert result.status == "done", result
    assert sha(workdirs["cloud"] / "cut.bin") == sha(src)


async def until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.05)


def make_tree(root: Path, files: int = 300) -> Path:
    for i in range(files):
        sub = root / f"d{i % 7}" / ("deep" if i % 3 else "")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f {i} '$(x)'.txt").write_bytes(os.urandom(i % 5000))
    (root / "empty-dir").mkdir()
    os.symlink("d0", root / "link")
    return root


def tree(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = path.read_bytes()
    return out


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # a directory: tar over asyncssh
async def test_directory_remote_to_remote_as_one_tar_stream(h, workdirs):
    src = make_tree(workdirs["edge"] / "site")
    result = await h.copy(
        source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",), recursive=True
    )
    assert result.status == "done", result
    assert result.strategy == "tar"
    assert tree(workdirs["cloud"] / "site") == tree(src)
    assert not list(workdirs["cloud"].glob("*difpipe*"))
    # a new name receives the contents (like cp -r)
    renamed = await h.copy(
        source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/copy",), recursive=True
    )
    assert renamed.status == "done" and tree(workdirs["cloud"] / "copy") == tree(src)
    # a rerun into the same directory replaces the copy whole: a removed file goes too
    (src / "d1" / "added.txt").write_text("new")
    os.unlink(next((src / "d2").glob("*.txt")))
    again = await h.copy(
        source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",), recursive=True
    )
    assert again.status == "done"
    assert tree(workdirs["cloud"] / "site") == tree(src)


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # a directory: tar over asyncssh
async def test_directory_local_to_remote_and_back(h, workdirs, tmp_path):
    src = make_tree(tmp_path / "local-site", files=50)
    up = await h.copy(
        source=str(src), destinations=(f"storage:{workdirs['storage']}/up",), recursive=True
    )
    assert up.status == "done", up
    assert tree(workdirs["storage"] / "up") == tree(src)
    down = await h.copy(
        source=f"storage:{workdirs['storage']}/up",
        destinations=(str(tmp_path / "down"),),
        recursive=True,
    )
    assert down.status == "done", down
    assert tree(tmp_path / "down") == tree(src)


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # a directory: tar over asyncssh
@pytest.mark.parametrize("direction", ["remote", "local-source"])
async def test_interrupted_directory_resumes_with_the_files_still_missing(
    h, workdirs, tmp_path, direction
):
    root = workdirs["edge"] if direction == "remote" else tmp_path
    src = make_tree(root / "resumable-site", files=30)
    for i in range(24):
        (src / "d1" / f"-big {i}.bin").write_bytes(os.urandom(256 * 1024))
    source = f"edge:{src}" if direction == "remote" else str(src)
    job = dict(
        source=source,
        destinations=(f"cloud:{workdirs['cloud']}/",),
        recursive=True,
        rate_limit=2 * MiB,
        checkpoint_interval=MiB,
    )
    first = await h.interrupted(**job)
    assert first.status == "interrupted"
    staging = workdirs["cloud"] / "resumable-site.difpipe-part"
    assert staging.is_dir() and not (workdirs["cloud"] / "resumable-site").exists()
    # between the runs the source changes: a file goes, a file comes
    gone = next((src / "d2").glob("*.txt"))
    gone_rel = gone.relative_to(src)
    os.unlink(gone)
    (src / "late.txt").write_text("written after the first run")

    h.events.clear()
    second = await h.copy(**{**job, "rate_limit": None})
    assert second.status == "done" and second.transfer_id == first.transfer_id
    resumed = h.kinds("transfer.resume")
    assert resumed and "already there" in resumed[0].note, resumed
    assert resumed[0].offset > 0  # the bytes of the files kept
    sent = second.destinations[0].bytes
    assert 0 < sent < sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    landed = tree(workdirs["cloud"] / "resumable-site")
    assert landed == tree(src) and str(gone_rel) not in landed
    assert not staging.exists()


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # a directory: tar over asyncssh
async def test_failed_directory_copy_leaves_the_old_tree(h, workdirs, small_tmpfs):
    mnt, seen = small_tmpfs
    (seen / "site").mkdir()
    (seen / "site" / "keep.txt").write_text("old tree")
    src = workdirs["edge"] / "big-site"
    src.mkdir()
    for i in range(4):
        (src / f"{i}.bin").write_bytes(os.urandom(MiB))
    result = await h.copy(
        source=f"edge:{src}", destinations=(f"cloud:{mnt}/site",), recursive=True, retries=0
    )
    assert result.status == "failed"
    assert (seen / "site" / "keep.txt").read_text() == "old tree"
    # nothing under the final name; the staging directory stays for a resume
    assert sorted(os.listdir(seen / "site")) == ["big-site.difpipe-part", "keep.txt"]


@pytest.mark.parametrize("kind", ["random", "log"])
async def test_encrypted_copy_decrypts_to_the_original(h, workdirs, tmp_path, kind):
    from difpipe_tui.core.transfer.encrypt import decrypt_file, generate_key

    key_path = tmp_path / "backup.key"
    key = generate_key(key_path)
    if kind == "random":
        src = random_file(workdirs["edge"] / "secret.bin", 3 * MiB + 17)
    else:
        src = log_file(workdirs["edge"] / "secret.log")
    result = await h.copy(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/enc", str(tmp_path / "enc-local")),
        encrypt=str(key_path),
    )
    assert result.status == "done", result
    stored = (workdirs["cloud"] / "enc").read_bytes()
    assert stored.startswith(b"DIFPIPE\x00")
    assert stored == (tmp_path / "enc-local").read_bytes()  # one encryption, fanned out
    assert src.read_bytes()[:64] not in stored
    assert result.destinations[0].digest == hashlib.sha256(stored).hexdigest()
    if kind == "log":
        assert len(stored) < src.stat().st_size / 3  # compressed at the source, then encrypted
    out = tmp_path / "plain"
    decrypt_file(workdirs["cloud"] / "enc", out, key)
    assert out.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # --parallel: asyncssh
async def test_parallel_ranges_over_separate_connections(h, workdirs, tmp_path):
    src = random_file(workdirs["edge"] / "par.bin", 9 * MiB + 4321)
    result = await h.copy(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/", str(tmp_path / "par-local.bin")),
        parallel=4,
    )
    assert result.status == "done", result
    assert (workdirs["cloud"] / "par.bin").read_bytes() == src.read_bytes()
    assert (tmp_path / "par-local.bin").read_bytes() == src.read_bytes()
    assert {d.digest for d in result.destinations} == {sha(src)}
    opened = [e for e in h.kinds("connection.opened") if e.host == "edge"]
    assert len(opened) == 4  # one connection per range
    assert not list(workdirs["cloud"].glob(f"*{PART_SUFFIX}"))


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # SFTP: asyncssh
async def test_sftp_strategy_copies_verifies_and_resumes(h, workdirs, tmp_path):
    src = random_file(workdirs["edge"] / "s.bin", 12 * MiB + 5)
    job = dict(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/", str(tmp_path / "s-local.bin")),
        strategy="sftp",
        checkpoint_interval=MiB,
        rate_limit=6 * MiB,
    )
    first = await h.interrupted(**job)
    assert first.status == "interrupted"
    h.events.clear()
    second = await h.copy(**{**job, "rate_limit": None})
    assert second.status == "done", second
    assert second.strategy == "sftp"
    assert h.kinds("transfer.resume")[0].offset > 0
    assert (workdirs["cloud"] / "s.bin").read_bytes() == src.read_bytes()
    assert (tmp_path / "s-local.bin").read_bytes() == src.read_bytes()
    with pytest.raises(RemoteCommandError, match="no such file"):
        await h.copy(
            source=f"edge:{workdirs['edge']}/missing",
            destinations=(f"cloud:{workdirs['cloud']}/",),
            strategy="sftp",
        )


#: sha256 of 2 GiB of zeros with ``a marker in the middle`` written at 1 GiB (sha256sum's)
SPARSE_2GIB_SHA256 = "85294fa43b9cb6d1ec0977091b78fe621bf41453034a16474655a2dba3f9f39c"


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # 2 GiB once is enough
async def test_sparse_2gib_file_streams_compressed(lab, h, workdirs):
    """The source sits on a tmpfs, whose holes read as the kernel's zero page: on a disk
    filesystem the source host spends ~8 s filling the page cache with zeros. The landed
    copy is a whole 2 GiB file on cloud's disk, and its digest is known in advance."""
    from tests.integration.conftest import host_tmpfs

    landed = workdirs["cloud"] / "sparse.img"
    with host_tmpfs(lab, "edge", workdirs["edge"] / "holes", "16m") as (holes, seen):
        with (seen / "sparse.img").open("wb") as fh:
            fh.truncate(2 * 1024 * MiB)
            fh.seek(1024 * MiB)
            fh.write(b"a marker in the middle")
        try:
            result = await h.copy(
                source=f"edge:{holes}/sparse.img", destinations=(f"cloud:{workdirs['cloud']}/",)
            )
            assert result.status == "done", result
            assert result.codec in ("zstd", "lz4")
            assert landed.stat().st_size == 2 * 1024 * MiB
            with landed.open("rb") as fh:
                fh.seek(1024 * MiB)
                assert fh.read(22) == b"a marker in the middle"
            assert result.destinations[0].digest == SPARSE_2GIB_SHA256
        finally:
            landed.unlink(missing_ok=True)


@pytest.mark.skipif(ssh_available() is None, reason="needs the OpenSSH client")
async def test_host_openssh_cannot_express_falls_back_or_fails_by_setting(
    lab, workdirs, tmp_path, monkeypatch
):
    """A key file whose name ssh_config would expand (``${...}``): auto streams that host over
    asyncssh and the plan says why; transport = "openssh" fails that destination alone."""
    monkeypatch.setattr(plan_module, "OPENSSH_MIN_BYTES", MiB)  # auto takes OpenSSH for 2 MiB
    odd_key = tmp_path / "key${HOME}"
    odd_key.write_bytes(Path(lab.client_key).read_bytes())
    odd_key.chmod(0o600)
    src = random_file(workdirs["edge"] / "f.bin", 2 * MiB)
    for transport in ("auto", "openssh"):
        h = Harness(lab, tmp_path / transport, transport)
        cfg = h.write_config("odd.toml")
        storage = lab.hosts["storage"]
        with cfg.open("a") as fh:
            fh.write(
                f'\n[hosts.odd]\naddress = "{storage.address}"\nport = {storage.port}\n'
                f'[hosts.odd.auth]\nkey_files = ["{odd_key}"]\nagent = false\n'
            )
        h.config = load_config(cfg)
        job = dict(
            source=f"edge:{src}",
            destinations=(f"odd:{workdirs['storage']}/f.bin", f"cloud:{workdirs['cloud']}/"),
        )
        async with h.pool() as pool:
            plan = await h.engine(pool).analyze(CopyJob(**job))
        odd, cloud = plan.destinations
        assert plan.source.transport == cloud.transport == "openssh"
        assert odd.transport == "asyncssh" and "${" in odd.transport_reason
        result = await h.copy(**job)
        odd_result, cloud_result = result.destinations
        assert cloud_result.status == "done"
        if transport == "auto":
            assert result.status == "done" and odd_result.transport == "asyncssh"
            assert sha(workdirs["storage"] / "f.bin") == sha(src)
        else:
            assert result.status == "partial" and odd_result.status == "failed"
            assert odd_result.exit_code == ExitCode.CONFIG
            assert odd_result.error.startswith("odd: ") and 'transport = "openssh"' in (
                odd_result.error
            )
            assert "\n" not in odd_result.error
        h.check_nothing_left()
        h.store.close()
        (workdirs["storage"] / "f.bin").unlink(missing_ok=True)


@pytest.mark.skipif(ssh_available() is None, reason="needs the OpenSSH client")
async def test_what_openssh_cannot_stream_goes_over_asyncssh(lab, workdirs, tmp_path):
    """With ``transport = "openssh"`` a directory, SFTP and ``--parallel`` still plan asyncssh
    ends, each with its reason: what the tests of those copies over asyncssh rely on."""
    h = Harness(lab, tmp_path, "openssh")
    src = random_file(workdirs["edge"] / "f.bin", MiB)
    dest = f"cloud:{workdirs['cloud']}/"
    jobs = {
        "a directory streams as tar": CopyJob(
            source=f"edge:{workdirs['edge']}", destinations=(dest,), recursive=True
        ),
        "SFTP runs inside difpipe": CopyJob(
            source=f"edge:{src}", destinations=(dest,), strategy="sftp"
        ),
        "--parallel 2: byte ranges": CopyJob(
            source=f"edge:{src}", destinations=(dest,), parallel=2
        ),
    }
    try:
        async with h.pool() as pool:
            engine = h.engine(pool)
            for why, job in jobs.items():
                plan = await engine.analyze(job)
                for end in (plan.source, *plan.destinations):
                    assert end.transport == "asyncssh", (why, end.transport_reason)
                    assert end.transport_reason.startswith(why), end.transport_reason
        h.check_nothing_left()
    finally:
        h.store.close()


@pytest.mark.skipif(ssh_available() is None, reason="needs the OpenSSH client")
async def test_auto_streams_a_small_file_inside_difpipe(lab, workdirs, tmp_path, monkeypatch):
    """``auto`` leaves OpenSSH legs to files of ``OPENSSH_MIN_BYTES`` or more: below, a leg's
    own ssh process and login cost more than they save. ``openssh`` takes them whatever the
    size; stdin, of unknown size, streams over OpenSSH with ``auto``."""
    monkeypatch.setattr(plan_module, "OPENSSH_MIN_BYTES", 2 * MiB)
    small = random_file(workdirs["edge"] / "small.bin", 2 * MiB - 1)
    large = random_file(workdirs["edge"] / "large.bin", 2 * MiB)
    dest = f"cloud:{workdirs['cloud']}/"
    for transport, path, expected in (
        ("auto", small, "asyncssh"),
        ("auto", large, "openssh"),
        ("openssh", small, "openssh"),
    ):
        h = Harness(lab, tmp_path / f"{transport}-{path.name}", transport)
        try:
            async with h.pool() as pool:
                plan = await h.engine(pool).analyze(
                    CopyJob(source=f"edge:{path}", destinations=(dest,))
                )
            ends = (plan.source, *plan.destinations)
            assert {end.transport for end in ends} == {expected}, (transport, path.name)
            if expected == "asyncssh":
                assert all("under 2 MiB" in end.transport_reason for end in ends)
            h.check_nothing_left()
        finally:
            h.store.close()
    h = Harness(lab, tmp_path / "stdin", "auto")
    try:
        async with h.pool() as pool:
            plan = await h.engine(pool).analyze(CopyJob(source="-", destinations=(dest,)))
        assert plan.destinations[0].transport == "openssh"
    finally:
        h.store.close()
    # a small local file: no master is even started for its destination
    local = random_file(tmp_path / "local.bin", MiB)
    h = Harness(lab, tmp_path / "local", "auto")
    try:
        async with h.pool() as pool:
            engine = h.engine(pool)
            handle = await engine.start(CopyJob(source=str(local), destinations=(dest,)))
            ctx = engine.openssh
            assert ctx is not None and not ctx._warming and not ctx._masters
            result = await handle.wait()
            await engine.close()
        assert result.status == "done" and result.destinations[0].transport == "asyncssh"
        assert sha(workdirs["cloud"] / "local.bin") == sha(local)
        h.check_nothing_left()
    finally:
        h.store.close()


# -- the fixed cost of a copy ------------------------------------------------------------------
# Every remote command pays the remote shell's start-up (0.3 s on a host whose .bashrc is slow),
# so the number a simple copy runs is asserted from the bus and from the sshd logs, and cannot
# creep back up unnoticed.

LAB_HOSTS = ("edge", "cloud", "storage")


def sessions(lab) -> Counter[str]:
    """Sessions (one per remote command or stream) each lab sshd has started so far."""
    return Counter(
        {
            name: lab.hosts[name].log_path.read_text(errors="replace").count("Starting session")
            for name in LAB_HOSTS
        }
    )


def commands(h) -> Counter[str]:
    return Counter(e.host for e in h.kinds("remote.command"))


async def test_a_file_copy_runs_five_remote_commands(lab, h, workdirs):
    src = random_file(workdirs["edge"] / "f.bin", 3 * MiB + 1)
    before = sessions(lab)
    result = await h.copy(source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",))
    assert result.status == "done", result
    assert (workdirs["cloud"] / "f.bin").read_bytes() == src.read_bytes()
    # edge: survey (tools, inspect, sample) + the stream; cloud: survey + the stream + rename
    assert sessions(lab) - before == Counter(edge=2, cloud=3)
    assert commands(h) == Counter(edge=1, cloud=2)  # the streams are not run to completion


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # a directory: tar over asyncssh
async def test_a_directory_copy_runs_five_remote_commands(lab, h, workdirs):
    src = make_tree(workdirs["edge"] / "site", files=40)
    before = sessions(lab)
    result = await h.copy(
        source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",), recursive=True
    )
    assert result.status == "done", result
    assert tree(workdirs["cloud"] / "site") == tree(src)
    # the survey also sizes the directory and samples its tar stream
    assert sessions(lab) - before == Counter(edge=2, cloud=3)


async def test_a_part_file_that_cannot_be_created_fails_that_destination_alone(h, workdirs):
    """Creating the part file is the first step of the destination's stream: its failure is
    that destination's one-line error, and the file already there is kept."""
    src = random_file(workdirs["edge"] / "f.bin", 2 * MiB)
    target = workdirs["cloud"] / "f.bin"
    target.write_bytes(b"the good old file")
    (workdirs["cloud"] / f"f.bin{PART_SUFFIX}").mkdir()  # in the way of the part file
    result = await h.copy(
        source=f"edge:{src}",
        destinations=(f"cloud:{target}", f"storage:{workdirs['storage']}/"),
        retries=0,
    )
    assert result.status == "partial", result
    bad, good = result.destinations
    assert bad.status == "failed" and bad.exit_code == ExitCode.REMOTE
    assert "directory" in bad.error.lower() and "\n" not in bad.error
    assert target.read_bytes() == b"the good old file"
    assert good.status == "done" and good.digest == sha(src)
    assert (workdirs["storage"] / "f.bin").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # --parallel: asyncssh
async def test_parallel_ranges_size_the_part_file_themselves(lab, h, workdirs):
    src = random_file(workdirs["edge"] / "p.bin", 5 * MiB + 7)
    stale = workdirs["cloud"] / f"p.bin{PART_SUFFIX}"
    stale.write_bytes(os.urandom(9 * MiB))  # longer than the file: must be cut, not kept
    before = sessions(lab)
    result = await h.copy(
        source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",), parallel=3
    )
    assert result.status == "done", result
    assert (workdirs["cloud"] / "p.bin").read_bytes() == src.read_bytes()
    assert result.destinations[0].digest == sha(src)
    # 6 ranges, two per connection; edge: survey, ranges, whole-file digest (while the ranges
    # move); cloud: survey, ranges, one command that hashes the part and renames it
    assert sessions(lab) - before == Counter(edge=8, cloud=8)


async def test_parallel_lands_only_a_part_whose_digest_is_the_sources(lab, workdirs, tmp_path):
    """The destination hashes the part and renames it in one command, only on a match."""
    h = Harness(lab, tmp_path, "asyncssh")
    target = workdirs["cloud"] / "d.bin"
    part = workdirs["cloud"] / f"d.bin{PART_SUFFIX}"
    part.write_bytes(b"the bytes that arrived")
    good = hashlib.sha256(b"the bytes that arrived").hexdigest()
    async with h.pool() as pool:
        info = await pool.info("cloud")
        sink = RemoteSink(pool, "cloud", str(target), algo="none", tools=set(info.tools))
        digest, landed = await digest_and_land(sink, "0" * 64, True, "sha256")
        assert (digest, landed) == (good, False)
        assert part.exists() and not target.exists()
        assert await digest_and_land(sink, good, True, "sha256") == (good, True)
    assert target.read_bytes() == b"the bytes that arrived" and not part.exists()
    h.store.close()


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # a window of asyncssh's channels
async def test_a_far_source_streams_through_a_window_sized_to_its_round_trip(lab, h, workdirs):
    """One channel moves at most a window per round trip: a far source's gets a larger one."""
    host, port = lab.delay_proxy("edge", 50)
    cfg = Path(h.known).with_name("far.toml")
    lab.write_config(cfg)
    edge = lab.hosts["edge"]
    with cfg.open("a") as fh:
        fh.write(
            f'\n[hosts.edge-far]\naddress = "{host}"\nport = {port}\n'
            f'[hosts.edge-far.auth]\nkey_files = ["{lab.client_key}"]\nagent = false\n'
        )
    h.config = load_config(cfg)
    src = random_file(workdirs["edge"] / "far.bin", 6 * MiB + 3)
    async with h.pool() as pool:
        windows = {}
        for name in ("edge", "edge-far"):
            rtt = await pool.rtt(name)
            source = RemoteSource(pool, name, str(src))
            await source.open()
            windows[name] = (rtt, source._proc.channel.get_recv_window())
            data = b"".join([chunk async for chunk in _chunks(source)])
            await source.finish()
            assert data == src.read_bytes()
    assert edge.address != host
    (near_rtt, near), (far_rtt, far) = windows["edge"], windows["edge-far"]
    assert far_rtt >= 100 > near_rtt
    assert near == window_for(near_rtt) < far == window_for(far_rtt)
    assert near >= DEFAULT_WINDOW and far >= 8 * MiB
    # and a copy from there measures the round trip while it plans
    result = await h.copy(source=f"edge-far:{src}", destinations=(f"cloud:{workdirs['cloud']}/",))
    assert result.status == "done" and result.destinations[0].digest == sha(src)


async def _chunks(source):
    while chunk := await source.read(MiB):
        yield chunk


# -- --verify sha256 on a pass-through relay: the source host hashes what it sends ---------------
#
# With OpenSSH legs the bytes go from pipe to pipe by splice(2) and this process hashes nothing:
# the source host's digest of what it sent meets the destination's digest of what it wrote.
# These tests break each half on purpose (a byte changed on the way in, a digest that never
# comes) and check that nothing lands; with asyncssh the same faults meet this process's hash.

_PLAIN_STREAM_LINE = RemoteSink.stream_line


def corrupt_on_the_way_in(monkeypatch) -> None:
    """The destination's stream turns every NUL byte into 0x01 before it writes and hashes."""

    def stream_line(self):
        return command("tr", "\\000", "\\001") + " | " + _PLAIN_STREAM_LINE(self)

    monkeypatch.setattr(RemoteSink, "stream_line", stream_line)


async def test_sha256_relay_hashes_on_the_source_and_splices(h, workdirs, splice_calls):
    src = random_file(workdirs["edge"] / "s.bin", 9 * MiB + 5)
    job = dict(source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",))
    async with h.pool() as pool:
        plan = await h.engine(pool).analyze(CopyJob(**job))
    expected_site = "source" if h.transport == "openssh" else "local"
    assert plan.digest_site == expected_site, plan.digest_reason
    assert plan.to_dict()["digest_site"] == expected_site
    result = await h.copy(**job)
    assert result.status == "done", result
    assert (workdirs["cloud"] / "s.bin").read_bytes() == src.read_bytes()
    assert result.destinations[0].digest == sha(src)
    assert bool(splice_calls) == (h.transport == "openssh")


async def test_a_destination_without_python3_hashes_through_tee(lab, h, workdirs):
    """Where the destination has no python3, the portable ``cat | tee | openssl`` writes and
    hashes; a full disk still fails that destination and keeps the good file."""
    from tests.integration.conftest import tiny_tmpfs

    src = random_file(workdirs["edge"] / "t.bin", 4 * MiB)
    async with h.pool() as pool:  # the lab's hosts have it: copies write through it
        assert "python3" in (await pool.info("cloud")).tools
    with lab.without_tools("cloud", ["python3"]):
        async with h.pool() as pool:
            assert "python3" not in (await pool.info("cloud")).tools
        result = await h.copy(source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",))
        assert result.status == "done", result
        assert sha(workdirs["cloud"] / "t.bin") == sha(src) == result.destinations[0].digest
        with tiny_tmpfs(lab, workdirs["cloud"] / "tiny") as (mnt, seen):
            (seen / "t.bin").write_bytes(b"the good old file")
            full = await h.copy(
                source=f"edge:{src}", destinations=(f"cloud:{mnt}/t.bin",), retries=0
            )
            assert full.status == "failed"
            assert "no space left" in full.destinations[0].error
            assert (seen / "t.bin").read_bytes() == b"the good old file"


async def test_a_byte_changed_on_the_way_in_fails_verification(h, workdirs, monkeypatch):
    src = random_file(workdirs["edge"] / "c.bin", 4 * MiB)
    target = workdirs["cloud"] / "c.bin"
    target.write_bytes(b"previous good copy")
    corrupt_on_the_way_in(monkeypatch)
    result = await h.copy(source=f"edge:{src}", destinations=(f"cloud:{target}",), retries=0)
    assert result.status == "failed"
    assert "sha256 mismatch" in result.destinations[0].error
    assert result.destinations[0].exit_code == ExitCode.VERIFY
    assert target.read_bytes() == b"previous good copy"
    assert not list(workdirs["cloud"].glob(f"*{PART_SUFFIX}"))


async def test_a_resumed_run_verifies_the_bytes_it_sends(h, workdirs, monkeypatch):
    src = random_file(workdirs["edge"] / "r.bin", 16 * MiB)
    job = dict(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/",),
        rate_limit=8 * MiB,
        checkpoint_interval=2 * MiB,
        retries=0,
    )
    first = await h.interrupted(**job)
    assert first.status == "interrupted"
    saved = h.store.get_checkpoints(first.transfer_id)[0].offset
    assert saved > 0
    corrupt_on_the_way_in(monkeypatch)  # only the bytes after the checkpoint pass through it
    h.events.clear()
    second = await h.copy(**{**job, "rate_limit": None})
    assert h.kinds("transfer.resume")[0].offset == saved
    assert second.status == "failed"
    assert second.destinations[0].exit_code == ExitCode.VERIFY
    assert not (workdirs["cloud"] / "r.bin").exists()

    monkeypatch.undo()  # a clean run starts over (the failed one dropped its checkpoint)
    third = await h.copy(**{**job, "rate_limit": None})
    assert third.status == "done", third
    assert sha(workdirs["cloud"] / "r.bin") == sha(src)


async def test_a_source_digest_that_never_comes_lands_nothing(h, workdirs, monkeypatch):
    src = random_file(workdirs["edge"] / "m.bin", 2 * MiB)
    target = workdirs["cloud"] / "m.bin"
    target.write_bytes(b"previous good copy")
    monkeypatch.setattr(RemoteSource, "_digest_line", lambda self: "")
    result = await h.copy(source=f"edge:{src}", destinations=(f"cloud:{target}",), retries=0)
    if h.transport == "asyncssh":  # this process hashes: the source is not asked
        assert result.status == "done", result
        return
    assert result.status == "failed"
    assert "no digest" in result.destinations[0].error
    assert target.read_bytes() == b"previous good copy"


async def test_more_openssh_legs_than_sshd_allows_sessions_still_land(lab, workdirs, tmp_path):
    """sshd's default MaxSessions is 10 per connection: twelve copies at once through one
    engine (as the console runs them) still land."""
    h = Harness(lab, tmp_path, "openssh")
    src = random_file(workdirs["edge"] / "many.bin", 2 * MiB)
    try:
        with lab.max_sessions("cloud", None):
            async with h.pool() as pool:
                engine = h.engine(pool)
                handles = [
                    await engine.start(
                        CopyJob(
                            source=f"edge:{src}",
                            destinations=(f"cloud:{workdirs['cloud']}/many-{i}.bin",),
                            rate_limit=MiB,
                        )
                    )
                    for i in range(12)
                ]
                results = await asyncio.gather(*(hd.wait() for hd in handles))
                await engine.close()
        assert [r.status for r in results] == ["done"] * 12, [
            r.destinations[0].error for r in results
        ]
        assert {r.destinations[0].transport for r in results} == {"openssh"}
        assert not h.kinds("transfer.retry")
        for i in range(12):
            assert sha(workdirs["cloud"] / f"many-{i}.bin") == sha(src)
        h.check_nothing_left()
    finally:
        h.store.close()
