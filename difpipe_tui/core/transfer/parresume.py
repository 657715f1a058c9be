"""Resuming ``--parallel N``: how far each byte range got, and when a run may continue it.

``--parallel`` writes each range in place (``dd seek=K conv=notrunc``) into a part file sized
up front (:mod:`.parallel`), so its size, unlike a streamed part file's, says nothing of what
arrived. A checkpoint of such a copy records, per destination, how far each range is *known*
to be written, and the source's stamp (:mod:`.encresume`: size, inode, modification and
status-change times), as a :class:`RangeState` in the checkpoint's ``hash_state``:

- A range's write returns once its bytes are in the range's SSH channel, not on the
  destination's disk: up to :func:`.parallel.in_flight` bytes (the channel's window at sshd,
  the pipe into ``dd``, ``dd``'s block) may still be on their way, and a cut link or a kill
  loses them. A running range counts what it sent less that. A range whose writer ended
  cleanly (``dd`` read the end of its data and exited 0: the range is done, or it was stopped)
  counts all it sent. A local part file is written with ``pwrite``: what returned is there.
- A count is kept on a 1 MiB block boundary, where ``dd seek=`` can continue, except a
  finished range's, which is its length.

A run continues every range from the lowest count its destinations have for it, when each of
them can continue: the source's stamp is the checkpoint's, the part file is still there at the
source's size, and the copy has a digest to check it with (not ``--verify none``). Otherwise
the ranges start over from byte 0, and the ``transfer.resume`` event of each destination says
why. Nothing reads the written ranges back: the digest of the whole part file, compared with
the source's before the rename, is the guard, and a continued part file whose digest differs
is dropped with its checkpoint and copied again once from byte 0 (:data:`DIGEST`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .parallel import ALIGN

#: Why a destination starts over (one line, for the resume event); see also :func:`part_problem`.
NO_PART = "no part file left"
CHANGED = "the source changed since the checkpoint (size or times); starting over"
NO_STAMP = "cannot stat the source to prove it unchanged; starting over"
NOT_RANGES = "the checkpoint does not describe --parallel ranges; starting over"
NO_DIGEST = "--verify none: no digest to check a continued part file against; starting over"
OTHERS = (
    "another destination starts over and each range is read once for all of them; starting over"
)
DIGEST = (
    "the digest of the continued part file did not match the source's; its checkpoint is"
    " dropped and the copy starts over from byte 0"
)

Layout = tuple[tuple[int, int], ...]  # (offset, length) of each range


def align_down(n: int) -> int:
    """``n`` rounded down to the block ``dd seek=`` continues from."""
    return n - n % ALIGN


@dataclass(frozen=True)
class RangeState:
    """One destination's checkpoint of ``--parallel``: ``ranges`` are ``(offset, length,
    done)``, ``done`` the bytes from ``offset`` known to be written; ``stamp`` and ``size``
    are the source's when they were read."""

    stamp: str
    size: int
    ranges: tuple[tuple[int, int, int], ...]

    def to_blob(self) -> bytes:
        return json.dumps(
            {
                "parallel": 1,
                "stamp": self.stamp,
                "size": self.size,
                "ranges": [list(r) for r in self.ranges],
            }
        ).encode()

    @classmethod
    def from_blob(cls, blob: bytes | None) -> RangeState | None:
        """The state in a checkpoint's ``hash_state``; None when there is none, or it is not
        one of ``--parallel`` ranges, or its ranges do not tile the file on block boundaries."""
        if not blob:
            return None
        try:
            doc = json.loads(blob)
            if doc.get("parallel") != 1:
                return None
            ranges = tuple((int(o), int(n), int(d)) for o, n, d in doc["ranges"])
            state = cls(stamp=str(doc["stamp"]), size=int(doc["size"]), ranges=ranges)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return state if state._tiles() else None

    def _tiles(self) -> bool:
        end = 0
        for offset, length, done in self.ranges:
            if offset != end or offset % ALIGN or length < 0 or not 0 <= done <= length:
                return False
            end = offset + length
        return bool(self.ranges) and end == self.size

    @property
    def done(self) -> int:
        """The bytes known to be written, over all ranges."""
        return sum(done for _, _, done in self.ranges)

    def layout(self) -> Layout:
        return tuple((offset, length) for offset, length, _ in self.ranges)

    def starts(self) -> list[int]:
        """Where each range continues, from its offset: its count on a block boundary, or
        its whole length once it is finished."""
        return [n if done == n else align_down(done) for _, n, done in self.ranges]

    def prefix(self) -> int:
        """The bytes known to be written from byte 0 without a gap: what a plain stream of the
        file can continue from."""
        end = 0
        for offset, length, done in self.ranges:
            end = offset + done
            if done < length:
                break
        return end


def source_problem(
    state: RangeState | None, stamp: str | None, size: int, verify: str
) -> str | None:
    """Why a checkpoint cannot be continued from the source's side (None: it can). Without a
    digest (``verify`` none) nothing would catch a continued part file that is wrong."""
    if verify == "none":
        return NO_DIGEST
    if state is None:
        return NOT_RANGES
    if state.size != size:
        return CHANGED
    if not state.stamp or not stamp:
        return NO_STAMP
    if state.stamp != stamp:
        return CHANGED
    return None


def part_problem(part_size: int | None, size: int) -> str | None:
    """Why a part file cannot be continued (None: it is there at the source's size)."""
    if part_size is None or (not part_size and size):
        return NO_PART
    if part_size != size:
        return f"the part file has {part_size or 0} bytes, not the source's {size}; starting over"
    return None


@dataclass(frozen=True)
class RangePlan:
    """The ranges of one run and where each continues (0: from its offset)."""

    layout: Layout
    starts: tuple[int, ...]

    @property
    def continued(self) -> int:
        """The bytes the run does not send again."""
        return sum(self.starts)

    def pieces(self) -> list[tuple[int, int, int]]:
        """``(range index, offset, length)`` of what is left to send of each range (a range of
        an empty file is sent: its command creates the part file)."""
        pairs = enumerate(zip(self.layout, self.starts, strict=True))
        return [
            (i, offset + start, length - start)
            for i, ((offset, length), start) in pairs
            if start < length or not length
        ]


def plan_ranges(fresh: Sequence[tuple[int, int]], states: Sequence[RangeState | None]) -> RangePlan:
    """The ranges of a run to destinations whose checkpoints are ``states`` (None: one that
    starts over): the checkpoints' ranges, each from the lowest count of the destinations,
    when every one of them continues; else ``fresh``, from byte 0."""
    layout = states[0].layout() if states and states[0] is not None else None
    if layout is None or any(s is None or s.layout() != layout for s in states):
        return RangePlan(tuple(fresh), (0,) * len(fresh))
    counts = zip(*(s.starts() for s in states if s is not None), strict=True)
    return RangePlan(layout, tuple(min(c) for c in counts))


class RangeProgress:
    """How far each range of one destination got in this run (see the module's rules).

    ``wrote`` follows a range's progress (what its writes handed over), ``ended`` a writer that
    ended cleanly, ``lost`` one that failed other than by its connection (a ``dd`` that died
    may have dropped what it was sent after). ``in_flight``: what a destination may hold
    unwritten behind a write that returned.
    """

    def __init__(self, plan: RangePlan, in_flight: int):
        self.plan, self.in_flight = plan, in_flight
        self.start = list(plan.starts)
        self.sent = list(plan.starts)
        self.known = list(plan.starts)  # known written: where it began, or where it ended
        self._saved = self.counts()
        self._due = plan.continued

    def wrote(self, i: int, n: int) -> None:
        """Range ``i``'s writes have handed over ``n`` bytes of this run."""
        self.sent[i] = self.start[i] + n

    def ended(self, i: int, n: int) -> None:
        """Range ``i``'s writer ended cleanly after ``n`` bytes of this run: all written."""
        self.sent[i] = self.known[i] = self.start[i] + n

    def lost(self, i: int) -> None:
        self.sent[i] = self.known[i]

    @property
    def moved(self) -> int:
        """The bytes handed over, over all ranges (what progress shows)."""
        return sum(self.sent)

    @property
    def kept(self) -> int:
        """The bytes known to be written, over all ranges (what a checkpoint keeps)."""
        return sum(self.counts())

    def counts(self) -> tuple[int, ...]:
        """What each range is known to have written, as a checkpoint keeps it."""
        out = []
        for (_, length), sent, known in zip(self.plan.layout, self.sent, self.known, strict=True):
            out.append(length if known == length else align_down(max(known, sent - self.in_flight)))
        return tuple(out)

    def due(self, interval: int) -> bool:
        """Whether ``interval`` more bytes moved (over all ranges) since the last time."""
        if not interval or self.moved < self._due + interval:
            return False
        self._due = self.moved
        return True

    def checkpoint(self, stamp: str, size: int) -> RangeState | None:
        """The state to save, when the counts moved since the last one saved (or began)."""
        counts = self.counts()
        if counts == self._saved:
            return None
        self._saved = counts
        ranges = tuple((o, n, c) for (o, n), c in zip(self.plan.layout, counts, strict=True))
        return RangeState(stamp, size, ranges)
