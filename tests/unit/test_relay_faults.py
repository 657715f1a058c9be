"""The relay with a destination that stalls, crawls or fails: stall timeout and --fail-fast."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from types import SimpleNamespace

import pytest

from difpipe_tui.core.errors import NetworkError
from difpipe_tui.core.transfer.ends import RemoteSource, Sink, Source
from difpipe_tui.core.transfer.openssh import _Leg
from difpipe_tui.core.transfer.stall import watched
from difpipe_tui.core.transfer.stream import Relay

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
