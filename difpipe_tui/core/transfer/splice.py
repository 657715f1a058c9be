"""A relay that never copies the data into Python: ``splice(2)`` from one ssh pipe to another.

When a copy has one OpenSSH source leg and one OpenSSH destination leg and nothing to
compress, decompress or encrypt on this machine, the bytes only pass through, as long as this
machine need not hash them either: with ``--verify none``, or when the source host hashes what
it sends (the plan says so, see :func:`.plan.digest_site`) while the destination hashes what it
writes. :class:`SpliceRelay` then moves them from the source's pipe into the destination's pipe
inside the kernel, with the same controls as :class:`~.stream.Relay`: pause, stop, rate limit,
progress and checkpoints (without a prefix digest: resuming compares the prefixes on both hosts).
Measured on a 2 GiB relay, this process then spends ~0.5 ms of CPU per MB instead of ~2 ms
(reading into bytes and writing them out again).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import select
import time
from collections.abc import Callable

from ..errors import DifpipeError, NetworkError
from .ends import FAIL_MARK, Sink, Source
from .openssh import ABORT_TIMEOUT, OpenSSHSink, OpenSSHSource, _Aborted, _Leg, _Shrunk
from .ratelimit import TokenBucket
from .stall import DEFAULT_STALL_TIMEOUT, SourceStall, stall_error, watched
from .stream import CHUNK, RelayOutcome, SinkState

_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
#: After a wait, let the pipes gather (or drain) this long before the next splice: ssh writes
#: 32-64 KiB at a time, and waking for each costs more CPU here than the bytes are worth,
#: while a 1 MiB pipe takes ~4 ms to fill or drain even at 250 MB/s.
GATHER = 0.001
STEP = 0.05  # seconds of the stream per worker-thread call
MAX_CHUNK = 8 * CHUNK


def can_splice(source: Source, sinks: list[Sink], *, algo: str, transforms: bool) -> bool:
    """Whether ``source`` → ``sinks`` can go through :class:`SpliceRelay`."""
    hashed = algo == "none" or (
        getattr(source, "digest_argv", None) is not None
        and all(getattr(s, "digest_argv", None) is not None for s in sinks)
    )
    return (
        hasattr(os, "splice")
        and hashed
        and not transforms
        and isinstance(source, OpenSSHSource)
        and not source.compressed
        and len(sinks) == 1
        and isinstance(sinks[0], OpenSSHSink)
        and not sinks[0].compressed
    )


def _wait_on(leg: _Leg, event: int, wake: tuple[int, int]) -> None:
    """Wait for ``event`` on ``leg``'s pipe, with :attr:`_Leg.blocked` set meanwhile; a wait
    for data is :meth:`_Leg.poll_input` (which may raise :class:`_Shrunk`)."""
    assert leg.fd is not None
    poller = select.poll()
    poller.register(leg.fd, event | select.POLLERR | select.POLLHUP)
    for w in wake:
        poller.register(w, select.POLLIN)
    leg.blocked = True
    try:
        ready = leg.poll_input(poller) if event == select.POLLIN else poller.poll()
    finally:
        leg.blocked = False
    for which, _ in ready:
        if which in wake:
            raise _Aborted


def _ready(fd: int, event: int) -> bool:
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(0))


def splice_chunk(src: _Leg, dst: _Leg, n: int) -> tuple[int, bool]:
    """Move ``n`` bytes (fewer at the end) from ``src``'s pipe into ``dst``'s.

    Returns (bytes moved, whether the source ended). Runs in a worker thread. Raises
    :class:`BrokenPipeError` when the destination stopped reading, :class:`_Aborted` when
    either leg is aborted, :class:`_Shrunk` when the source's reader ended short.
    """
    moved = 0
    wake = (src._wake_r, dst._wake_r)
    with src._io, dst._io:
        while moved < n:
            if src._aborted or dst._aborted:
                raise _Aborted
            if src.fd is None or src.eof:
                return moved, True
            if dst.fd is None:
                raise BrokenPipeError("the destination stream is closed")
            try:
                k = os.splice(src.fd, dst.fd, n - moved, flags=_FLAGS)
            except BlockingIOError:  # whole chunks, like OpenSSHSource.read: fewer wake-ups
                if not _ready(src.fd, select.POLLIN):
                    _wait_on(src, select.POLLIN, wake)
                else:
                    _wait_on(dst, select.POLLOUT, wake)
                time.sleep(GATHER)
                continue
            if k == 0:
                src.eof = True
                return moved, True
            moved += k
            src.moved += k
            dst.moved += k
    return moved, False


class SpliceRelay:
    """:class:`~.stream.Relay` for one OpenSSH leg to another, with no Python copies.

    Without a rate limit, each call moves what the stream carries in about :data:`STEP`
    seconds (``chunk`` to :data:`MAX_CHUNK` bytes): fewer hand-offs to a worker thread on a
    fast link, while pause and stop still act within a fraction of a second on a slow one.
    When the destination's pipe takes nothing for ``stall_timeout`` seconds while data waits
    for it, the destination fails as in :class:`~.stream.Relay`; when the source's pipe gives
    nothing for as long, the run fails with the source's stall. Only a wait on either pipe
    counts: not a pause, nor the rate limit.
    """

    def __init__(
        self,
        source: OpenSSHSource,
        sink: OpenSSHSink,
        *,
        start: int,
        chunk: int = CHUNK,
        limiter: TokenBucket | None = None,
        checkpoint_interval: int = 0,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        on_progress: Callable[[Sink, int], None] | None = None,
        on_checkpoint: Callable[[Sink, int, str], None] | None = None,
    ):
        self.source, self.sink = source, sink
        self.start = start
        self.chunk = chunk
        self.limiter = limiter
        self.interval = checkpoint_interval
        self.stall_timeout = stall_timeout
        self.on_progress = on_progress
        self.on_checkpoint = on_checkpoint
        self._checkpoints = 0
        self.running = asyncio.Event()
        self.running.set()
        self._stop = False
        self.offset = start
        self.state = SinkState(sink, asyncio.Queue(), start)

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def stop(self) -> None:
        self._stop = True
        self.running.set()

    def prefix_digest(self) -> str:
        return ""  # nothing is hashed here: resuming compares the prefixes on both hosts

    async def run(self) -> RelayOutcome:
        src, dst = self.source._leg, self.sink._leg
        assert src is not None and dst is not None
        stopped = eof = False
        chunk = self.chunk
        ticks = itertools.count()

        def progress() -> int:  # only a wait on either pipe can be a stall
            return dst.moved if src.blocked or dst.blocked else -next(ticks) - 1

        def stalled() -> NetworkError:  # the pipe the splice waits on tells whose stall it is
            if dst.blocked:
                return stall_error(self.sink.name, self.stall_timeout, self.sink.host)
            return stall_error(self.source.name, self.stall_timeout, self.source.host, source=True)

        while True:
            await self.running.wait()
            if self._stop:
                stopped = True
                break
            want = self.source.wanted(chunk)
            if not want:  # the stream's length has arrived: the source's hash may still run
                eof = True
                break
            began = time.monotonic()
            try:
                moved, eof = await watched(
                    asyncio.to_thread(splice_chunk, src, dst, want),
                    progress,
                    self.stall_timeout,
                    stalled,
                )
            except SourceStall:  # nothing to send: the run ends
                raise
            except _Shrunk:  # the source's reader ended short of its length: the file shrank
                assert src.ended_at is not None
                raise self.source.shrunk(src.ended_at) from None
            except NetworkError as err:  # a stall: only the destination's stream ends
                self.state.error = err
                await self.sink.abort()
                break
            except _Aborted:
                raise NetworkError(
                    f"{self.source.path}: the stream was aborted", host=self.source.host
                ) from None
            except BrokenPipeError as exc:
                self.state.error = await self._sink_error(dst, exc)
                await self.sink.abort()
                break
            except OSError as exc:
                raise NetworkError(
                    f"{self.source.path}: cannot relay the stream: {exc}", host=self.source.host
                ) from exc
            if moved and self.limiter is None:
                rate = moved / max(time.monotonic() - began, 1e-6)
                chunk = min(MAX_CHUNK, max(self.chunk, int(rate * STEP)))
            if moved:
                self.offset += moved
                self.state.written = self.offset
                if self.limiter is not None:
                    await self.limiter.take(moved)
                if self.on_progress is not None:
                    self.on_progress(self.sink, self.offset)
                self._checkpoint()
            if eof:
                break
        return RelayOutcome(self.offset, self.offset - self.start, None, stopped, eof, [self.state])

    def _checkpoint(self) -> None:
        """Like :class:`~.stream.Relay`: once the destination's pipe has taken each interval."""
        if not self.interval or self.on_checkpoint is None:
            return
        if self.offset - self.start >= (self._checkpoints + 1) * self.interval:
            self._checkpoints = (self.offset - self.start) // self.interval
            self.on_checkpoint(self.sink, self.offset, "")

    async def _sink_error(self, leg: _Leg, exc: BaseException) -> DifpipeError:
        status = await leg.wait(ABORT_TIMEOUT)
        error = await leg.failure(self.sink.target, status)
        if status == 0 and FAIL_MARK not in leg.stderr_text():
            error = NetworkError(
                f"{self.sink.target}: the destination stopped reading early", host=self.sink.host
            )
        return error
