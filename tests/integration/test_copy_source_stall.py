"""A source that stops sending, on the real-sshd lab: the copy fails after the stall timeout.

The remote ``cat`` of the source is stopped (SIGSTOP) mid-stream. SSH keepalives are off and
the connection is healthy, so without the stall timeout the copy would wait forever; with
``stall_timeout=2`` it fails a few seconds later with a retryable network error that names the
source, lands nothing and keeps its checkpoints, and with retries it continues from them.
What must not trip it: a source that is slow but sending (a capped link), and a source host
whose hash of what it sent ends well after the stream (the stream ends at the file's length);
nor a file that shrinks under such a source: its reader ends early while the hash holds the
channel open, and that is the change of size (exit 8), not a stall.

The cases run over the three ways a remote source is read: an asyncssh channel (the relay),
an ``ssh`` process whose pipe is spliced into the destination's (one OpenSSH destination), and
an ``ssh`` process read by the relay (two destinations); and over ``--parallel``, whose byte
ranges are each read by their own remote ``tail``: one of them stopped fails the attempt and
ends all of its ranges.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from difpipe_tui.cli_copy import exit_code_for
from difpipe_tui.core.config import load_config
from difpipe_tui.core.errors import DifpipeError, ExitCode, VerifyError
from difpipe_tui.core.transfer import engine, splice
from difpipe_tui.core.transfer.ends import PART_SUFFIX, LocalSink, RemoteSource
from difpipe_tui.core.transfer.openssh import OpenSSHSource
from difpipe_tui.core.transfer.parresume import RangeState
from difpipe_tui.core.transfer.stream import Relay
from tests.integration.test_copy import TRANSPORTS, MiB, random_file, sha
from tests.integration.test_openssh_legs import Env, remote_processes

STALL = 2.0
WAIT = 30.0  # seconds before a copy that never ends fails the test

OPENSSH = TRANSPORTS[1].marks
WAYS = [
    pytest.param("asyncssh", 1, id="asyncssh"),
    pytest.param("openssh", 1, id="openssh-spliced", marks=OPENSSH),
    pytest.param("openssh", 2, id="openssh-relay", marks=OPENSSH),
]


@pytest.fixture
def workdirs(lab):
    with lab.scratch_dirs("srcstall", ("edge", "cloud", "storage")) as made:
        yield made


@pytest.fixture
def spliced(monkeypatch):
    """The sizes of the splice calls made (none: the bytes went through the relay)."""
    calls: list[int] = []
    real = splice.splice_chunk
    monkeypatch.setattr(
        splice, "splice_chunk", lambda src, dst, n: calls.append(n) or real(src, dst, n)
    )
    return calls


def cats_of(path) -> list[psutil.Process]:
    """The remote ``cat`` processes reading ``path``: ``cat -- PATH``, or the bare ``cat`` of
    a source that hashes what it sends, which reads the file its shell opened on its stdin."""
    found = []
    for p in remote_processes(["cat"]):
        with contextlib.suppress(psutil.Error):
            if p.cmdline()[1:] == ["--", str(path)] or any(
                f.path == str(path) for f in p.open_files()
            ):
                found.append(p)
    return found


@contextlib.contextmanager
def stoppable(
    path, readers: Callable[[], list[psutil.Process]] | None = None
) -> Iterator[Callable[[], None]]:
    """Yields a function that stops (SIGSTOP) the remote ``cat`` of ``path`` streaming now
    (:func:`cats_of`; or the first of ``readers()``); at the end every process so stopped is
    continued and killed."""
    stopped: list[psutil.Process] = []

    def stop() -> None:
        if readers is None:
            (proc,) = cats_of(path)
        else:
            running = readers()
            assert running, "no reader of the source left to stop"
            proc = running[0]
        proc.suspend()
        stopped.append(proc)

    try:
        yield stop
    finally:
        for proc in stopped:
            with contextlib.suppress(psutil.Error):
                proc.resume()
                proc.kill()


def destinations(workdirs, fanout: int) -> tuple[str, ...]:
    return tuple(f"{host}:{workdirs[host]}/" for host in ("cloud", "storage")[:fanout])


async def until(check, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} after {timeout:g} s"
        await asyncio.sleep(0.05)


def stall_config(h):
    return load_config(h.write_config("srcstall.toml", connect_timeout=2.0, keepalive_interval=0))


async def stop_mid_stream(h, pool, workdirs, src, stop, fanout: int, *, retries: int):
    """Start a copy of ``src`` at 8 MiB/s; once 4 MiB have gone, :func:`stoppable`'s ``stop``.
    The copy's handle."""
    handle = await h.start(
        pool,
        source=f"edge:{src}",
        destinations=destinations(workdirs, fanout),
        stall_timeout=STALL,
        retries=retries,
        rate_limit=8 * MiB,
        checkpoint_interval=MiB,
    )
    await until(lambda: any(e.bytes >= 4 * MiB for e in h.kinds("transfer.progress")), "progress")
    stop()
    return handle


@pytest.mark.parametrize(("h", "fanout"), WAYS, indirect=["h"])
async def test_a_stopped_source_fails_the_copy_after_the_stall_timeout(
    h, workdirs, spliced, fanout
):
    h.config = stall_config(h)
    src = random_file(workdirs["edge"] / "s.bin", 32 * MiB)
    with stoppable(src) as stop:
        async with h.pool() as pool:
            handle = await stop_mid_stream(h, pool, workdirs, src, stop, fanout, retries=0)
            stopped = time.monotonic()
            result = await asyncio.wait_for(handle.wait(), WAIT)
            waited = time.monotonic() - stopped
    assert result.status == "failed", result
    assert exit_code_for(result) == ExitCode.NETWORK
    for d in result.destinations:
        assert d.error.startswith(f"edge:{src}: no data for 2 s (the source sent nothing)"), d
        assert d.exit_code == ExitCode.NETWORK
    assert waited < STALL + 8, waited  # what the pipes and windows held, then the timeout
    for host in ("cloud", "storage")[:fanout]:
        assert not (workdirs[host] / "s.bin").exists()
        assert (workdirs[host] / f"s.bin{PART_SUFFIX}").exists()
    kept = h.store.get_checkpoints(result.transfer_id)
    assert len(kept) == fanout and all(cp.offset >= MiB for cp in kept), kept
    assert bool(spliced) == (h.transport == "openssh" and fanout == 1)


@pytest.mark.parametrize(("h", "fanout"), WAYS[:2], indirect=["h"])
async def test_after_a_source_stall_the_copy_retries_from_its_checkpoint(h, workdirs, fanout):
    h.config = stall_config(h)
    src = random_file(workdirs["edge"] / "r.bin", 24 * MiB)
    with stoppable(src) as stop:
        async with h.pool() as pool:
            handle = await stop_mid_stream(h, pool, workdirs, src, stop, fanout, retries=1)
            result = await asyncio.wait_for(handle.wait(), WAIT)
    assert result.status == "done", result
    (retry,) = h.kinds("transfer.retry")
    assert "no data for 2 s (the source sent nothing)" in retry.reason
    (resumed,) = h.kinds("transfer.resume")
    assert resumed.offset >= MiB
    assert sha(workdirs["cloud"] / "r.bin") == sha(src) == result.destinations[0].digest


@pytest.mark.netns
@pytest.mark.parametrize(("h", "fanout"), WAYS, indirect=["h"])
async def test_a_slow_source_that_still_sends_is_not_a_stall(lab, h, workdirs, fanout):
    """edge's link carries ~500 KB/s: each 1 MiB read of the stream takes about 2 s, longer
    than the stall timeout, while the bytes keep arriving."""
    h.config = stall_config(h)
    src = random_file(workdirs["edge"] / "slow.bin", 2 * MiB)
    lab.cap("edge", "4mbit")
    result = await asyncio.wait_for(
        h.copy(
            source=f"edge:{src}",
            destinations=destinations(workdirs, fanout),
            stall_timeout=1.0,
            retries=0,
        ),
        WAIT,
    )
    assert result.status == "done", result
    assert result.seconds > 3  # the cap held: reads were longer than the timeout
    assert sha(workdirs["cloud"] / "slow.bin") == sha(src)


@pytest.fixture
async def env(lab, tmp_path):
    made = Env(lab, tmp_path)
    yield made
    await made.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_source_stream_ends_before_the_hosts_hash_of_it(env, workdirs, transport):
    """The host's hash of what it sends runs beside the stream; here it takes 3 s more, and
    sshd holds the channel's end until it is done. The stream of a source that knows its
    length ends when the file has arrived, and :meth:`finish` then waits for the hash."""
    pool, ctx = env.open()
    size = 4 * MiB
    src = random_file(workdirs["edge"] / "h.bin", size)
    slow = ["sh", "-c", "sleep 3; exec sha256sum"]
    if transport == "openssh":
        source = OpenSSHSource(ctx, "edge", str(src), digest=("sha256", slow), length=size)
    else:
        source = RemoteSource(pool, "edge", str(src), digest_argv=slow, length=size)
    await source.open()
    began = time.monotonic()
    sent = bytearray()
    while chunk := await asyncio.wait_for(source.read(MiB), WAIT):
        sent += chunk
    streamed = time.monotonic() - began
    await asyncio.wait_for(source.finish(), WAIT)
    finished = time.monotonic() - began
    assert sent == src.read_bytes()
    assert streamed < 2 <= finished, (streamed, finished)
    if transport == "openssh":
        assert source.digest == sha(src)


@pytest.mark.parametrize("h", TRANSPORTS[1:], indirect=True)
async def test_a_slow_hash_on_the_source_host_is_not_a_stall(h, workdirs, spliced, monkeypatch):
    """A spliced copy: the source host hashes what it sends, here 4 s after the file has
    gone, longer than the stall timeout. The copy waits for the digest and lands."""
    real = engine.digest_argv
    monkeypatch.setattr(
        engine,
        "digest_argv",
        lambda algo, tools: ["sh", "-c", "sleep 4; exec " + " ".join(real(algo, tools))],
    )
    src = random_file(workdirs["edge"] / "slowhash.bin", 4 * MiB)
    result = await asyncio.wait_for(
        h.copy(
            source=f"edge:{src}",
            destinations=(f"cloud:{workdirs['cloud']}/",),
            stall_timeout=1.0,
            retries=0,
        ),
        WAIT,
    )
    assert result.status == "done", result
    assert spliced and result.seconds >= 4
    assert result.destinations[0].digest == sha(src) == sha(workdirs["cloud"] / "slowhash.bin")


# -- --parallel: byte ranges, each read by its own remote command ------------------------------


def range_readers(path) -> list[psutil.Process]:
    """The remote ``tail -c +OFF -- PATH`` processes reading ranges of ``path`` (see
    :class:`~difpipe_tui.core.transfer.parallel.RemoteRangeSource`) that are not stopped."""
    running = []
    for p in remote_processes(["tail", "-c"]):
        with contextlib.suppress(psutil.Error):
            if p.cmdline()[3:] == ["--", str(path)] and p.status() != psutil.STATUS_STOPPED:
                running.append(p)
    return running


async def stop_a_range_mid_stream(h, pool, workdirs, src, stop, *, retries: int, rate: int):
    """Start a ``--parallel 2`` copy of ``src`` (four ranges) at ``rate`` bytes/s; once its
    first MiB has gone, ``stop`` the reader of a range still streaming. The copy's handle."""
    handle = await h.start(
        pool,
        source=f"edge:{src}",
        destinations=destinations(workdirs, 1),
        parallel=2,
        stall_timeout=STALL,
        retries=retries,
        rate_limit=rate,
    )
    await until(lambda: h.kinds("transfer.progress"), "progress")
    stop()
    return handle


def ranges_running() -> list[asyncio.Task]:
    """The tasks of this loop that still relay a range of ``--parallel``."""
    return [
        t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "run_ranges.<locals>.one"
    ]


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # --parallel: asyncssh
async def test_a_stopped_range_reader_fails_a_parallel_copy_after_the_stall_timeout(h, workdirs):
    """One range's reader stops: the copy fails as a stall of the source, and the attempt
    ends every range it began. The file is large enough that the other ranges are still
    moving when the stall is found: none of them runs on behind the failure."""
    h.config = stall_config(h)
    src = random_file(workdirs["edge"] / "p.bin", 48 * MiB)
    with stoppable(src, lambda: range_readers(src)) as stop:
        async with h.pool() as pool:
            handle = await stop_a_range_mid_stream(
                h, pool, workdirs, src, stop, retries=0, rate=8 * MiB
            )
            stopped = time.monotonic()
            result = await asyncio.wait_for(handle.wait(), WAIT)
            waited = time.monotonic() - stopped
            running = ranges_running()
            moved = len(h.kinds("transfer.progress"))
            await asyncio.sleep(0.5)
            moved_after = h.kinds("transfer.progress")[moved:]
    assert result.status == "failed", result
    assert exit_code_for(result) == ExitCode.NETWORK
    (d,) = result.destinations
    assert d.error.startswith(f"edge:{src}: no data for 2 s (the source sent nothing)"), d
    assert d.exit_code == ExitCode.NETWORK
    assert waited < STALL + 8, waited
    assert result.bytes < 40 * MiB, result.bytes  # the others were still moving
    assert running == [] and moved_after == [], (running, moved_after)
    assert not (workdirs["cloud"] / "p.bin").exists()
    # the part file stays, with how far each range is known to have got, for a retry
    assert (workdirs["cloud"] / f"p.bin{PART_SUFFIX}").exists()
    for cp in h.store.get_checkpoints(result.transfer_id):
        kept = RangeState.from_blob(cp.hash_state)
        assert kept is not None and cp.offset == kept.done, cp


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # --parallel: asyncssh
async def test_after_a_range_stall_the_parallel_copy_retries_and_lands(h, workdirs):
    h.config = stall_config(h)
    src = random_file(workdirs["edge"] / "pr.bin", 24 * MiB)
    with stoppable(src, lambda: range_readers(src)) as stop:
        async with h.pool() as pool:
            handle = await stop_a_range_mid_stream(
                h, pool, workdirs, src, stop, retries=1, rate=16 * MiB
            )
            result = await asyncio.wait_for(handle.wait(), WAIT)
    assert result.status == "done", result
    (retry,) = h.kinds("transfer.retry")
    assert retry.reason.startswith(f"edge:{src}: no data for 2 s (the source sent nothing)")
    assert sha(workdirs["cloud"] / "pr.bin") == sha(src) == result.destinations[0].digest


# -- a file that shrinks while a source that hashes it sends it ---------------------------------

SHRINK_STALL = 2.0  # the stall timeout of these copies: the error must come well before it
SLOW_HASH = ["sh", "-c", "sleep 6; exec sha256sum"]  # holds the channel's end for 6 s


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_file_that_shrinks_under_a_hashed_source_is_a_change_of_size(
    env, workdirs, tmp_path, transport
):
    """The file is cut to half its planned length after the first MiB: the source's reader
    sends 8 MiB and ends, while the host's (slow) hash keeps the channel from ending. The
    relay reading it fails at once with the change of size, not as a stall after the timeout
    (retryable, which would read the changed file again) nor after the hash."""
    pool, ctx = env.open()
    size = 16 * MiB
    src = random_file(workdirs["edge"] / "shrink.bin", size)
    if transport == "openssh":
        source = OpenSSHSource(ctx, "edge", str(src), digest=("sha256", SLOW_HASH), length=size)
    else:
        source = RemoteSource(pool, "edge", str(src), digest_argv=SLOW_HASH, length=size)
    sink = LocalSink(str(tmp_path / "shrink.bin"), algo="sha256")
    await sink.prepare(0)
    await source.open()
    first = await asyncio.wait_for(source.read(MiB), WAIT)
    assert len(first) == MiB
    os.truncate(src, 8 * MiB)
    relay = Relay(source, [sink], start=MiB, algo="sha256", stall_timeout=SHRINK_STALL)
    began = time.monotonic()
    try:
        with pytest.raises(DifpipeError) as caught:
            await asyncio.wait_for(relay.run(), WAIT)
    finally:
        await source.abort()
        await sink.abort()
    failed = time.monotonic() - began
    err = caught.value
    assert isinstance(err, VerifyError), err
    assert err.exit_code == ExitCode.VERIFY and not err.retryable
    assert str(err).startswith(
        f"edge:{src}: the source changed size while it was read ({size} bytes expected,"
        f" its reader ended at {8 * MiB})"
    ), err
    assert failed < SHRINK_STALL, failed


@pytest.mark.parametrize("h", TRANSPORTS[1:], indirect=True)
async def test_a_spliced_copy_of_a_file_that_shrinks_fails_with_the_change_of_size(
    h, workdirs, spliced, monkeypatch
):
    """The same in a spliced copy, where the source host's digest is the one compared: the
    copy fails with the change of size (exit 8) before the stall timeout, and is not retried."""
    h.config = stall_config(h)
    real = engine.digest_argv
    monkeypatch.setattr(
        engine,
        "digest_argv",
        lambda algo, tools: ["sh", "-c", "sleep 6; exec " + " ".join(real(algo, tools))],
    )
    size = 16 * MiB
    src = random_file(workdirs["edge"] / "shrink.bin", size)
    async with h.pool() as pool:
        handle = await h.start(
            pool,
            source=f"edge:{src}",
            destinations=destinations(workdirs, 1),
            stall_timeout=SHRINK_STALL,
            retries=1,
            rate_limit=8 * MiB,
        )
        await until(lambda: h.kinds("transfer.progress"), "progress")
        os.truncate(src, 8 * MiB)
        cut = time.monotonic()
        result = await asyncio.wait_for(handle.wait(), WAIT)
        failed = time.monotonic() - cut
    assert result.status == "failed", result
    assert exit_code_for(result) == ExitCode.VERIFY
    (d,) = result.destinations
    assert d.exit_code == ExitCode.VERIFY, d
    assert d.error.startswith(
        f"edge:{src}: the source changed size while it was read ({size} bytes expected,"
        f" its reader ended at {8 * MiB})"
    ), d
    assert h.kinds("transfer.retry") == []
    assert failed < SHRINK_STALL, failed
    assert spliced  # the bytes went through splice(2)
    assert not (workdirs["cloud"] / "shrink.bin").exists()
