"""``--parallel N``: byte ranges of one file over N SSH connections to each remote end.

On a long, fat link one SSH channel is limited by its window: sshd gives every channel a fixed
2 MiB window, so a range written into sshd moves at most ~2 MiB per round trip (~15 MB/s
measured at 100 ms), however large the TCP window. The window belongs to the channel, not to
the connection, so each connection carries :data:`RANGES_PER_CONNECTION` ranges, each on its
own channel. Each range is read with ``tail -c +OFF | head -c LEN`` and written in place with
``dd ... seek=K conv=notrunc`` into the part file, whose size is set first. Ranges start on
1 MiB boundaries so ``dd``'s block-sized seek is exact on every POSIX ``dd``. Verification
compares the digest of the whole source file with the digest of the whole part file, each
computed by its own host, before the part is renamed over the target.

The ranges keep checkpoints (:mod:`.parresume`): :func:`run_ranges` reports what each range's
writes handed over, and when a range's writer ended cleanly (everything it was sent is in the
part file); :func:`in_flight` is what a destination may still hold behind a write that
returned. :class:`RangeRelays` pauses and stops the ranges of a run as one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import DifpipeError, LocalIOError, VerifyError
from ..remote import command, quote_arg
from ..ssh import SSHPool
from .ends import (
    FAIL_MARK,
    LocalSink,
    LocalSource,
    RemoteSink,
    RemoteSource,
    Sink,
    Source,
    _guard,
    _must,
)
from .ratelimit import TokenBucket
from .stream import Relay, SinkState
from .verify import digest_argv, file_digest_local, parse_digest_output

ALIGN = 1024 * 1024
RANGES_PER_CONNECTION = 2  # channels (each with its own window) per connection and end

#: What a remote destination may hold unwritten behind a range's write that returned: the
#: write left once the bytes were in the channel, and sshd's window for it (OpenSSH gives a
#: session channel 2 MiB), the pipe into ``dd`` and ``dd``'s 1 MiB block are not yet on disk.
IN_FLIGHT = 4 * ALIGN


def split_ranges(size: int, n: int, align: int = ALIGN) -> list[tuple[int, int]]:
    """``n`` (offset, length) ranges covering ``size`` bytes, offsets on ``align`` boundaries."""
    if size <= 0:
        return [(0, 0)]
    blocks = -(-size // align)
    n = max(1, min(n, blocks))
    per, extra = divmod(blocks, n)
    ranges, block = [], 0
    for i in range(n):
        count = per + (1 if i < extra else 0)
        start = block * align
        end = min(size, (block + count) * align)
        ranges.append((start, end - start))
        block += count
    return ranges


class RemoteRangeSource(RemoteSource):
    def __init__(
        self,
        pool: SSHPool,
        host: str,
        path: str,
        offset: int,
        length: int,
        window: int | None = None,
    ):
        super().__init__(pool, host, path, offset=offset)
        self.length = length
        self.window = window  # the ranges share the link: each gets its part of its window

    def command_line(self) -> str:
        read = command("tail", "-c", f"+{self.offset + 1}", "--", self.path)
        # tail is stopped by SIGPIPE (status 141) once head has its bytes: not a failure
        tail = (
            f"{{ {read}; s=$?; [ $s -eq 0 ] || [ $s -eq 141 ] || echo {FAIL_MARK} read $s >&2; }}"
        )
        return tail + " | " + _guard(command("head", "-c", self.length), "read")


class LocalRangeSource(LocalSource):
    def __init__(self, path: str, offset: int, length: int):
        super().__init__(path, offset=offset)
        self.left = length

    async def read(self, n: int) -> bytes:
        if self.left <= 0:
            return b""
        data = await super().read(min(n, self.left))
        self.left -= len(data)
        return data


class RemoteRangeSink(RemoteSink):
    """Writes one range in place into the destination's part file.

    Every range's command first gives the part file its full size (created if need be, cut if
    longer), which any number of them can do in any order without touching another's bytes, so
    no separate command has to run before the ranges start.
    """

    def __init__(self, base: RemoteSink, pool: SSHPool, offset: int, size: int):
        super().__init__(
            pool, base.host, base.target, algo="none", tools=base.tools, decompress_argv=None
        )
        self.offset, self.size = offset, size

    def command_line(self) -> str:
        return (
            "umask 077; "
            + _must(_size_line(self.part, self.size), "create")
            + " && "
            + (
                _guard(
                    command(
                        "dd",
                        f"of={self.part}",
                        f"bs={ALIGN}",
                        f"seek={self.offset // ALIGN}",
                        "conv=notrunc",
                    )
                    + " 2>/dev/null",
                    "write",
                )
            )
        )


def in_flight(sink: Sink) -> int:
    """What a range's destination may hold unwritten behind a write that returned: a local
    part file is written with ``pwrite``, and what returned is in it."""
    return 0 if isinstance(sink, LocalSink) else IN_FLIGHT


def _size_line(part: str, size: int) -> str:
    """Set the length of ``part`` to ``size`` bytes, creating it if missing."""
    if not size:
        return ": > " + quote_arg(part)
    dd = command("dd", "if=/dev/null", f"of={part}", "bs=1", f"seek={size}", "count=0")
    return dd + " 2>/dev/null"


class LocalRangeSink(Sink):
    def __init__(self, part: str, offset: int):
        self.part, self.offset, self.name = part, offset, part
        self._fd: int | None = None

    async def open(self) -> None:
        try:
            self._fd = os.open(self.part, os.O_WRONLY)
        except OSError as exc:
            raise LocalIOError(f"cannot write {self.part}: {exc.strerror}") from exc
        self._pos = self.offset

    async def write(self, data: bytes) -> None:
        assert self._fd is not None
        try:
            await asyncio.to_thread(os.pwrite, self._fd, data, self._pos)
        except OSError as exc:
            raise LocalIOError(f"cannot write {self.part}: {exc.strerror}") from exc
        self._pos += len(data)

    async def finish(self) -> str | None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        return None

    async def abort(self) -> None:
        await self.finish()


@dataclass
class RangeJob:
    """What one range sends in this run: ``length`` bytes from ``offset``, over ``pool``;
    ``index`` is the range's among all of the file's (a resumed run skips finished ones)."""

    offset: int
    length: int
    pool: SSHPool
    index: int = 0


async def size_part(sink: Sink, size: int) -> None:
    """Give a local part file its full size (created if missing, cut if longer, the bytes
    before ``size`` kept for a resumed run) so every range can be written in place.

    A remote part file is sized by each range's own command (:class:`RemoteRangeSink`).
    """
    if isinstance(sink, LocalSink):
        try:
            fd = os.open(sink.part, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.ftruncate(fd, size)
            finally:
                os.close(fd)
        except OSError as exc:
            raise LocalIOError(f"cannot write {sink.part}: {exc.strerror}") from exc


async def whole_digest(sink: Sink, algo: str) -> str | None:
    return await sink.full_digest(algo)


LANDED = "difpipe-landed"


async def digest_and_land(
    sink: RemoteSink, expected: str, overwrite: bool, algo: str
) -> tuple[str | None, bool]:
    """One command on the destination: hash the whole part file and, when the digest is the
    source's, rename the part over the target. Returns (the digest, whether it landed).

    Hashing and landing as two commands cost two more round trips on a far link. A digest that
    differs (or a destination without the tool) leaves the part file where it is.
    """
    argv = digest_argv(algo, sink.tools)
    if argv is None:
        return None, False
    digest = command(*argv) + " < " + quote_arg(sink.part)
    line = (
        f"h=$({digest}) || {{ echo {FAIL_MARK} digest $? >&2; exit 1; }}; "
        'printf "%s\\n" "$h"; set -- $h; '
        f'if [ "$1" = {quote_arg(expected)} ]; then '
        f"{sink._land_line(overwrite)} && echo {LANDED}; fi"
    )
    text = await sink._run(line, sink.target)
    lines = text.splitlines()
    landed = bool(lines) and lines[-1].strip() == LANDED
    if landed:
        lines = lines[:-1]
    return parse_digest_output("\n".join(lines), algo), landed


async def source_digest(pool: SSHPool, host: str | None, path: str, algo: str, tools: set[str]):
    if host is None:
        return await asyncio.to_thread(file_digest_local, path, algo)
    argv = digest_argv(algo, tools)
    if argv is None:
        return None
    res = await pool.run(host, command(*argv) + " < " + quote_arg(path))
    return parse_digest_output(res.text, algo)


class RangeRelays:
    """The relays of the ranges running now: paused, resumed and stopped as one. A relay
    added later (a range still opening) starts paused or stopped when the others are."""

    def __init__(self, *, paused: bool = False, stopped: bool = False):
        self.paused, self.stopped = paused, stopped
        self._relays: set[Relay] = set()

    def add(self, relay: Relay) -> None:
        self._relays.add(relay)
        if self.paused:
            relay.pause()
        if self.stopped:
            relay.stop()

    def remove(self, relay: Relay) -> None:
        self._relays.discard(relay)

    def pause(self) -> None:
        self.paused = True
        for relay in self._relays:
            relay.pause()

    def resume(self) -> None:
        self.paused = False
        for relay in self._relays:
            relay.resume()

    def stop(self) -> None:
        self.stopped = True
        for relay in self._relays:
            relay.stop()


@dataclass
class RangesOutcome:
    """Per range, the error of each destination (None: written); ``stopped``: a stop cut
    ranges short (their destinations hold what they were sent, and no error)."""

    errors: list[list[DifpipeError | None]] = field(default_factory=list)
    stopped: bool = False


#: ``(job, sink, n)``: ``n`` bytes of this run's piece of the range, handed over or written.
RangeCallback = Callable[[RangeJob, Sink, int], None]


async def run_ranges(
    ranges: list[RangeJob],
    make_source: Callable[[RangeJob], Source],
    make_sinks: Callable[[RangeJob], list[Sink]],
    *,
    limiter: TokenBucket | None,
    buffer: int,
    on_progress: RangeCallback,
    on_end: RangeCallback | None = None,
    on_lost: Callable[[RangeJob, Sink, DifpipeError], None] | None = None,
    relays: RangeRelays | None = None,
    stall_timeout: float = 0,
) -> RangesOutcome:
    """Relay every range at once, each to every destination.

    ``on_progress`` follows what each range's writes handed over; ``on_end`` says that a
    range's writer ended cleanly after ``n`` bytes (its range done, or stopped), so they are
    all in the part file; ``on_lost``, that a writer failed (``err``). ``relays`` pauses and
    stops them. An error that ends the attempt (a range's source failed or stalled) ends every
    range.
    """
    group = relays or RangeRelays()

    async def settle(job: RangeJob, st: SinkState, counted: bool) -> DifpipeError | None:
        """End one destination's writer of a range; its error, if any."""
        err = st.error
        if err is None:
            try:
                await st.sink.finish()
            except DifpipeError as failed:
                err = failed
        if err is not None:
            if on_lost is not None:
                on_lost(job, st.sink, err)
            return err
        if counted and on_end is not None:
            on_end(job, st.sink, st.written - job.offset)
        return None

    async def one(job: RangeJob) -> tuple[list[DifpipeError | None], bool]:
        source = make_source(job)
        sinks = make_sinks(job)
        try:
            opened = await asyncio.gather(
                source.open(), *(sink.open() for sink in sinks), return_exceptions=True
            )
        except BaseException:  # cancelled (another range failed): close what did open
            for end in (source, *sinks):
                await end.abort()
            raise
        failure = next((o for o in opened if isinstance(o, BaseException)), None)
        if failure is not None:  # nothing of this range is left running
            for end, outcome in zip([source, *sinks], opened, strict=True):
                if not isinstance(outcome, BaseException):
                    await end.abort()
            raise failure
        relay = Relay(
            source,
            sinks,
            start=job.offset,
            algo="none",
            buffer=buffer,
            limiter=limiter,
            checkpoint_interval=0,
            stall_timeout=stall_timeout,
            on_progress=lambda sink, end: on_progress(job, sink, end - job.offset),
        )
        group.add(relay)
        try:
            outcome = await relay.run()
        except BaseException:
            await source.abort()
            for sink in sinks:
                await sink.abort()
            raise
        finally:
            group.remove(relay)
        if not outcome.eof:  # stopped, or every destination failed: the source is not needed
            await source.abort()
        else:
            try:
                await source.finish()
            except DifpipeError as err:
                for sink in sinks:
                    await sink.abort()
                return [err for _ in sinks], False
        whole = outcome.eof and outcome.offset - job.offset == job.length
        errors = [await settle(job, st, whole or outcome.stopped) for st in outcome.states]
        if outcome.eof and not whole:
            err = VerifyError(
                f"the source changed size while it was read (the range at {job.offset} gave"
                f" {outcome.offset - job.offset} of {job.length} bytes)"
            )
            return [err for _ in sinks], False
        return errors, outcome.stopped

    tasks = [asyncio.ensure_future(one(r)) for r in ranges]
    try:
        done = await asyncio.gather(*tasks)
    except BaseException:
        # a range failed for all (a stalled source, a lost connection) or the copy was
        # cancelled: the attempt ends here, so the other ranges stop now (each aborts its
        # ends) instead of reading and writing on behind the failure, or beside a retry
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return RangesOutcome([errors for errors, _ in done], any(stopped for _, stopped in done))
