"""The relay: one read of the source, many destinations written concurrently, with backpressure.

Each destination has a writer task and a bounded queue. The reader waits whenever a queue is
full, so memory stays bounded by ``buffer`` per destination whatever the file size, and a
slow destination paces the stream instead of filling RAM. A destination that fails is dropped
and the others go on. A destination that takes no bytes for ``stall_timeout`` seconds fails
(see :mod:`.stall`), so a cut link cannot hold the others back for longer than that; a source
that sends none for as long ends the run with a retryable error.

With ``fail_fast`` the first destination that fails ends the stream for all of them:
:attr:`RelayOutcome.halted` names it, and nothing is landed.

The relay hashes the raw bytes of the stream (after decompressing what a remote compressed)
and snapshots the digest every ``checkpoint_interval`` bytes. A checkpoint is reported for a
destination once its writer has passed that offset.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import DifpipeError, NetworkError
from .codecs import Decompressor, Transformer
from .encrypt import Encryptor
from .ends import Sink, Source
from .ratelimit import TokenBucket
from .stall import DEFAULT_STALL_TIMEOUT, stall_error, watched
from .verify import hash_piece, new_hasher

CHUNK = 1024 * 1024

T = TypeVar("T")


@dataclass
class SinkState:
    sink: Sink
    queue: asyncio.Queue[tuple[int, bytes] | None]
    written: int  # raw offset written so far
    error: DifpipeError | None = None
    checkpoints_done: int = 0
    task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.error is None


@dataclass
class RelayOutcome:
    offset: int  # raw offset reached
    wire_bytes: int
    digest: str | None  # of the raw bytes relayed in this run (from the start offset)
    stopped: bool  # stopped on request before the end of the data
    eof: bool  # the whole source was read
    states: list[SinkState] = field(default_factory=list)
    halted: SinkState | None = None  # with fail_fast: the destination whose failure ended it


class Relay:
    def __init__(
        self,
        source: Source,
        sinks: list[Sink],
        *,
        start: int,
        algo: str,
        decompressor: Decompressor | None = None,
        compressor: Transformer | None = None,
        buffer: int = 16 * CHUNK,
        chunk: int = CHUNK,
        limiter: TokenBucket | None = None,
        checkpoint_interval: int = 64 * CHUNK,
        fail_fast: bool = False,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        on_progress: Callable[[Sink, int], None] | None = None,
        on_checkpoint: Callable[[Sink, int, str], None] | None = None,
        encryptor: Encryptor | None = None,
    ):
        self.source = source
        self.encryptor = encryptor
        self._header_sent = False
        self.start = start
        self.algo = algo
        self.decompressor = decompressor
        self.compressor = compressor
        self.chunk = chunk
        self.limiter = limiter
        self.interval = checkpoint_interval
        self.fail_fast = fail_fast
        self.stall_timeout = stall_timeout
        self.halted: SinkState | None = None
        self.on_progress = on_progress
        self.on_checkpoint = on_checkpoint
        depth = max(2, buffer // chunk)
        self.states = [SinkState(s, asyncio.Queue(maxsize=depth), start) for s in sinks]
        self.running = asyncio.Event()
        self.running.set()
        self._stop = False
        self._pending: list[tuple[int, str]] = []  # (offset, prefix digest) snapshots
        self._hasher = new_hasher(algo)
        self.offset = start
        self._plain_read = start  # plaintext read so far (an encrypted stream's offset lags)
        self.wire_bytes = 0

    # -- control -------------------------------------------------------------------------------

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def stop(self) -> None:
        """End the stream after the current chunk, landing nothing; writers drain first."""
        self._stop = True
        self.running.set()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> RelayOutcome:
        for st in self.states:
            st.task = asyncio.create_task(self._writer(st), name=f"write {st.sink.name}")
        stopped = eof = False
        try:
            while True:
                await self.running.wait()
                if self._stop:
                    stopped = True
                    break
                if self.halted is not None:
                    break
                wire = await self._read()
                if not wire:
                    eof = True
                    break
                self.wire_bytes += len(wire)
                if self.limiter is not None:
                    await self.limiter.take(len(wire))
                await self._relay(wire)
                if not any(st.alive for st in self.states):
                    break
            if eof:
                tail_raw = self.decompressor.flush() if self.decompressor else b""
                await self._emit(tail_raw, b"", final=True)
            for st in self.states:
                if st.alive:
                    await st.queue.put(None)
            ended = await asyncio.gather(
                *(st.task for st in self.states if st.task), return_exceptions=True
            )
            for outcome in ended:  # only a halt cancels a writer
                if isinstance(outcome, BaseException) and not (
                    self.halted is not None and isinstance(outcome, asyncio.CancelledError)
                ):
                    raise outcome
        except BaseException:
            for st in self.states:
                if st.task is not None:
                    st.task.cancel()
            raise
        digest = None if self.algo == "none" else self._hasher.hexdigest()
        return RelayOutcome(
            self.offset, self.wire_bytes, digest, stopped, eof, self.states, self.halted
        )

    async def _relay(self, wire: bytes) -> None:
        """Pass one chunk read from the source on: what it decompresses to goes in the
        decompressor's bounded pieces, the chunk itself with the last one (to the destinations
        that take it compressed)."""
        if self.decompressor is None:
            await self._emit(wire, wire)
            return
        held = b""
        for piece in self.decompressor.pieces(wire):
            if held:
                await self._emit(held, b"")
            held = piece
        await self._emit(held, wire)

    def prefix_digest(self) -> str:
        """The digest of the raw bytes relayed in this run so far."""
        return self._hasher.copy().hexdigest()

    async def _emit(self, raw: bytes, wire: bytes, *, final: bool = False) -> None:
        if self.encryptor is not None:
            await self._emit_encrypted(raw, wire, final=final)
            return
        if raw:
            await hash_piece(self._hasher, raw)
            self.offset += len(raw)
        compressed = None
        if self.compressor is not None:
            compressed = self.compressor.feed(raw) if raw else b""
            if final:
                compressed += self.compressor.flush()
        elif self.source.compressed:
            compressed = wire
        if (
            self.interval
            and self.offset - self.start >= (len(self._pending) + 1) * self.interval
            and self.algo != "none"
        ):
            self._pending.append((self.offset, self._hasher.copy().hexdigest()))
        for st in self.states:
            if not st.alive:
                continue
            payload = compressed if st.sink.compressed else raw
            if payload:
                await st.queue.put((self.offset, payload))
            elif final:
                await st.queue.put((self.offset, b""))

    async def _emit_encrypted(self, raw: bytes, wire: bytes, *, final: bool) -> None:
        """Every destination gets the same ciphertext; the digest is of the ciphertext sent.

        What is encrypted is the stream as the source sent it (compressed when the source
        compresses; the header records the codec for ``difpipe decrypt``). A stream resumed at
        ``start`` > 0 continues a part file that has its header already.

        Until the end, the offset of an uncompressed stream is the plaintext its sealed chunks
        hold (:attr:`Encryptor.sealed`), so a destination's offset and every checkpoint fall on
        a chunk boundary, where the stream can be continued; the final chunk is never a
        checkpoint. A compressed stream counts the bytes read and takes no checkpoints.
        """
        assert self.encryptor is not None
        plain = wire if self.source.compressed else raw
        out = b""
        if not self._header_sent and self.start == 0:
            out += self.encryptor.header()
        self._header_sent = True
        if plain:
            out += self.encryptor.feed(plain)
        self._plain_read += len(raw)
        if final:
            out += self.encryptor.finish()
            self.offset = self._plain_read
        elif self.source.compressed:
            self.offset = self._plain_read
        else:
            self.offset = self.encryptor.sealed
        if out:
            await hash_piece(self._hasher, out)
        if (
            not final
            and not self.source.compressed
            and self.interval
            and self.offset - self.start >= (len(self._pending) + 1) * self.interval
            and self.algo != "none"
        ):
            self._pending.append((self.offset, self._hasher.copy().hexdigest()))
        for st in self.states:
            if st.alive and (out or final):
                await st.queue.put((self.offset, out))

    async def _writer(self, st: SinkState) -> None:
        while True:
            item = await st.queue.get()
            if item is None:
                return
            end, payload = item
            if not st.alive:
                continue
            try:
                if payload:
                    await self._write(st.sink, payload)
            except DifpipeError as err:
                await self._dead(st, err)
                return
            except (ConnectionError, OSError) as exc:
                await self._dead(st, NetworkError(f"{st.sink.name}: {exc}"))
                return
            st.written = end
            if self.on_progress is not None:
                self.on_progress(st.sink, end)
            while st.checkpoints_done < len(self._pending):
                offset, digest = self._pending[st.checkpoints_done]
                if offset > end:
                    break
                st.checkpoints_done += 1
                if self.on_checkpoint is not None:
                    self.on_checkpoint(st.sink, offset, digest)

    async def _read(self) -> bytes:
        """One read, failed as a stall when the source sends nothing for too long."""
        source = self.source
        return await self._watched(source.read(self.chunk), source, source.received, source=True)

    async def _write(self, sink: Sink, payload: bytes) -> None:
        """One write, failed as a stall when the destination takes nothing for too long."""
        await self._watched(sink.write(payload), sink, sink.taken, source=False)

    async def _watched(
        self,
        op: Awaitable[T],
        end: Source | Sink,
        progress: Callable[[], int | None],
        *,
        source: bool,
    ) -> T:
        timeout = self.stall_timeout if end.watch_stall else 0
        host = getattr(end, "host", None)
        return await watched(
            op, progress, timeout, lambda: stall_error(end.name, timeout, host, source=source)
        )

    async def _dead(self, st: SinkState, err: DifpipeError) -> None:
        """A destination failed: drop it; with ``fail_fast`` the whole stream ends."""
        st.error = err
        await st.sink.abort()
        if self.fail_fast and self.halted is None:
            self.halted = st
            self.running.set()  # a paused relay wakes to end
            for other in self.states:  # they stop at once, a stalled one too
                if other is not st and other.task is not None:
                    other.task.cancel()
                    self._drain(other)
        self._drain(st)

    def _drain(self, st: SinkState) -> None:
        """Empty a dead destination's queue so the reader never waits on it."""
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                st.queue.get_nowait()
