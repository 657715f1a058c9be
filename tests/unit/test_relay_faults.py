"""The relay with a destination that stalls, crawls or fails: stall timeout and --fail-fast;
a source that stops sending, or sends slowly."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from types import SimpleNamespace

import pytest

from difpipe_tui.core.errors import NetworkError
from difpipe_tui.core.transfer.ends import LocalSource, RemoteSource, Sink, Source, StdinSource
from difpipe_tui.core.transfer.openssh import _Leg
from difpipe_tui.core.transfer.sftp import SftpSource
from difpipe_tui.core.transfer.stall import SourceStall, watched
from difpipe_tui.core.transfer.stream import Relay
from difpipe_tui.core.transfer.tarstream import LocalTarSource, RemoteTarSource

CHUNK = 64 * 1024


class BytesSource(Source):
    name = "src"

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    async def read(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


class Collect(Sink):
    def __init__(self, name: str):
        self.name, self.got, self.aborted = name, bytearray(), False

    async def write(self, data: bytes) -> None:
        self.got += data

    async def abort(self) -> None:
        self.aborted = True


class Stalls(Collect):
    """Takes ``after`` bytes, then nothing: its next write never returns."""

    def __init__(self, name: str, after: int = 0):
        super().__init__(name)
        self.after = after
        self.host = "cloud"

    async def write(self, data: bytes) -> None:
        if len(self.got) >= self.after:
            await asyncio.Event().wait()
        self.got += data


class Crawls(Collect):
    """Each write takes ``seconds``, while :meth:`taken` shows its bytes going out."""

    def __init__(self, name: str, seconds: float):
        super().__init__(name)
        self.seconds, self.moved = seconds, 0

    def taken(self) -> int | None:
        return self.moved

    async def write(self, data: bytes) -> None:
        steps = 10
        for _ in range(steps):
            await asyncio.sleep(self.seconds / steps)
            self.moved += len(data) // steps
        self.got += data


class Breaks(Collect):
    """Fails with a plain OSError (a network error) once it has ``after`` bytes."""

    def __init__(self, name: str, after: int):
        super().__init__(name)
        self.after = after

    async def write(self, data: bytes) -> None:
        if len(self.got) >= self.after:
            raise ConnectionResetError("connection reset by peer")
        self.got += data


def relay(data: bytes, sinks: list[Sink], **kw) -> Relay:
    return Relay(BytesSource(data), sinks, start=0, algo="sha256", chunk=CHUNK, buffer=CHUNK, **kw)


async def test_a_stalled_destination_fails_and_the_others_get_everything():
    data = bytes(range(256)) * 4096  # 1 MiB
    good, stuck = Collect("good"), Stalls("cloud:/x", after=2 * CHUNK)
    outcome = await asyncio.wait_for(relay(data, [good, stuck], stall_timeout=0.3).run(), 10)
    assert outcome.eof and bytes(good.got) == data
    err = outcome.states[1].error
    assert isinstance(err, NetworkError) and err.retryable
    assert str(err).startswith("cloud:/x: no progress for 0.3 s")
    assert stuck.aborted and outcome.halted is None


async def test_a_slow_destination_that_still_takes_bytes_is_not_a_stall():
    data = b"x" * (4 * CHUNK)
    slow = Crawls("slow", seconds=0.5)  # each write is longer than the stall timeout
    outcome = await relay(data, [slow], stall_timeout=0.2).run()
    assert outcome.eof and outcome.states[0].error is None and bytes(slow.got) == data


async def test_no_stall_timeout_for_a_destination_that_opts_out():
    stuck = Stalls("-")
    stuck.watch_stall = False
    task = asyncio.create_task(relay(b"y" * CHUNK, [stuck], stall_timeout=0.1).run())
    await asyncio.sleep(0.5)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_fail_fast_a_network_error_halts_every_destination_at_once():
    data = b"z" * (64 * CHUNK)
    good, stuck, bad = Collect("good"), Stalls("stuck", after=CHUNK), Breaks("bad", after=CHUNK)
    outcome = await asyncio.wait_for(
        relay(data, [good, stuck, bad], fail_fast=True, stall_timeout=60).run(), 5
    )
    assert outcome.halted is outcome.states[2]
    assert isinstance(outcome.halted.error, NetworkError)
    assert "connection reset" in str(outcome.halted.error)
    assert not outcome.eof and len(good.got) < len(data)
    assert outcome.states[0].error is None and outcome.states[1].error is None


async def test_without_fail_fast_a_network_error_drops_only_that_destination():
    data = b"z" * (16 * CHUNK)
    good, bad = Collect("good"), Breaks("bad", after=CHUNK)
    outcome = await relay(data, [good, bad]).run()
    assert outcome.eof and outcome.halted is None and bytes(good.got) == data
    assert isinstance(outcome.states[1].error, NetworkError) and bad.aborted


async def test_watched_without_a_limit_waits_for_the_write():
    done = []

    async def write():
        await asyncio.sleep(0.05)
        done.append(1)

    await watched(write(), lambda: None, 0, lambda: NetworkError("never"))
    assert done == [1]


class StopsSending(BytesSource):
    """Sends ``after`` bytes, then nothing: its next read never returns."""

    host = "edge"

    def __init__(self, data: bytes, after: int):
        super().__init__(data)
        self.name, self.after = "edge:/src", after

    async def read(self, n: int) -> bytes:
        if self.pos >= self.after:
            await asyncio.Event().wait()
        return await super().read(n)


class Trickles(BytesSource):
    """Each read takes ``seconds``, while :meth:`received` shows its bytes arriving."""

    def __init__(self, data: bytes, seconds: float):
        super().__init__(data)
        self.seconds, self.arrived = seconds, 0

    def received(self) -> int | None:
        return self.arrived

    async def read(self, n: int) -> bytes:
        steps = 10
        for _ in range(steps):
            await asyncio.sleep(self.seconds / steps)
            self.arrived += 1
        return await super().read(n)


def relay_from(source: Source, sinks: list[Sink], **kw) -> Relay:
    return Relay(source, sinks, start=0, algo="sha256", chunk=CHUNK, buffer=CHUNK, **kw)


async def test_a_source_that_stops_sending_fails_the_run_with_a_retryable_error():
    data = b"s" * (8 * CHUNK)
    good = Collect("good")
    run = relay_from(StopsSending(data, after=2 * CHUNK), [good], stall_timeout=0.3).run()
    with pytest.raises(SourceStall) as caught:
        await asyncio.wait_for(run, 10)
    err = caught.value
    assert isinstance(err, NetworkError) and err.retryable and err.host == "edge"
    assert str(err).startswith("edge:/src: no data for 0.3 s (the source sent nothing)")
    assert bytes(good.got) == data[: 2 * CHUNK]


async def test_a_slow_source_that_still_sends_bytes_is_not_a_stall():
    data = b"t" * (2 * CHUNK)
    source = Trickles(data, seconds=0.4)  # each read is longer than the stall timeout
    good = Collect("good")
    outcome = await relay_from(source, [good], stall_timeout=0.15).run()
    assert outcome.eof and bytes(good.got) == data


async def test_waiting_for_a_slow_destination_is_never_a_source_stall():
    """The source shows no progress until a read ends (``received`` None), but its reads are
    instant: the relay waits on the destination far longer than the stall timeout."""
    data = b"u" * (4 * CHUNK)  # more than the queue holds: the reader waits on it
    slow = Crawls("slow", seconds=0.3)
    outcome = await relay_from(BytesSource(data), [slow], stall_timeout=0.1).run()
    assert outcome.eof and outcome.states[0].error is None and bytes(slow.got) == data


async def test_no_stall_timeout_for_a_source_that_opts_out():
    source = StopsSending(b"v" * CHUNK, after=0)
    source.watch_stall = False
    task = asyncio.create_task(relay_from(source, [Collect("c")], stall_timeout=0.1).run())
    await asyncio.sleep(0.5)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_local_sources_are_not_watched_but_remote_ones_are():
    assert not StdinSource().watch_stall
    assert not LocalSource("/x").watch_stall and not LocalTarSource("/x").watch_stall
    assert RemoteSource(None, "h", "/x").watch_stall
    assert RemoteTarSource(None, "h", "/x").watch_stall
    assert SftpSource(None, "h", "/x").watch_stall


class Pieces:
    """Stands in for an asyncssh channel's stdout: each read gives one piece once it is sent."""

    def __init__(self):
        self.sent: asyncio.Queue[bytes] = asyncio.Queue()

    async def read(self, n: int) -> bytes:
        piece = await self.sent.get()
        assert len(piece) <= n
        return piece


async def test_a_remote_source_counts_the_pieces_of_a_read_that_is_pending():
    source = RemoteSource(None, "edge", "/src")
    stdout = Pieces()
    source._proc = SimpleNamespace(stdout=stdout)
    reading = asyncio.create_task(source.read(10))
    for piece, seen in ((b"abc", 3), (b"defg", 7)):
        stdout.sent.put_nowait(piece)
        await asyncio.sleep(0.01)
        assert source.received() == seen and not reading.done()
    stdout.sent.put_nowait(b"hij")
    assert await asyncio.wait_for(reading, 5) == b"abcdefghij"
    for piece in (b"k", b""):  # the end of the stream: fewer bytes
        stdout.sent.put_nowait(piece)
    assert await asyncio.wait_for(source.read(10), 5) == b"k"
    assert source.received() == 11


def test_an_openssh_leg_counts_what_a_pending_read_has_received():
    leg = _Leg(None, "edge")
    ours, theirs = os.pipe()
    os.set_blocking(ours, False)
    leg.fd = ours
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(leg.read_exact(10)))
    reader.start()
    try:
        os.write(theirs, b"abcd")
        deadline = time.monotonic() + 5
        while leg.moved < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert leg.moved == 4 and reader.is_alive()
        os.write(theirs, b"efghij")
        reader.join(5)
        assert got == [b"abcdefghij"] and leg.moved == 10
    finally:
        os.close(theirs)
        reader.join(5)
        leg.close_fds()
