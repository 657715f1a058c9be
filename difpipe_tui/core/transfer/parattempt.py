"""The ``--parallel N`` attempt of a transfer: byte ranges over N connections.

The ranges of one file move at once (:mod:`.parallel`), each destination keeps checkpoints of
how far each range got and continues them where that is safe (:mod:`.parresume`), and the
whole file's digest decides what lands (:meth:`.landing.Landing.land_ranges`).
:class:`ParallelAttempts` is the part of the engine's runner (``engine._Runner``) that does
it; the runner provides the attributes annotated below and the methods named in
:data:`HOST_METHODS`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..errors import DifpipeError, NetworkError
from ..events import EventBus
from ..ssh import SSHPool
from ..store import Checkpoint, Store
from . import parallel as par
from . import parresume
from .ends import LocalSink, RemoteSink, Sink, Source
from .job import CopyJob
from .landing import Dest, Landing
from .plan import Plan
from .ratelimit import TokenBucket

if TYPE_CHECKING:
    from .engine import TransferEngine

#: What the runner provides besides the attributes: progress events, a destination's sink, a
#: resume event, the connections opened while the plan was made, the source's stamp, and a
#: checkpoint committed and announced.
HOST_METHODS = (
    "_progress", "_make_sink", "_resumed", "_take_warm_pools", "_source_stamp", "_keep",
)  # fmt: skip


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class ParallelAttempts:
    """``--parallel``: one attempt's passes of the ranges, their checkpoints and resume."""

    id: str
    job: CopyJob
    plan: Plan
    pool: SSHPool
    store: Store
    bus: EventBus
    engine: TransferEngine
    landing: Landing
    limiter: TokenBucket | None
    note: str
    paused: bool
    _stop_reason: str | None
    _ranges: par.RangeRelays | None
    _passes: int
    _range_stamp: str | None
    _redone: set[str]

    async def _attempt_parallel(self, todo: list[Dest]) -> None:
        """``--parallel N``: byte ranges over N connections, continued from the ranges'
        checkpoints where that is safe (:mod:`.parresume`); whole-file digests at the end.
        A continued part file whose digest is not the source's starts over once, from 0."""
        pools = await self._range_pools()
        try:
            again = await self._parallel_pass(todo, pools)
            if again:
                why = {d.plan.label: reason for d, reason in again}
                await self._parallel_pass([d for d, _ in again], pools, why)
        finally:
            for extra in pools[1:]:
                await extra.close()

    async def _range_pools(self) -> list[SSHPool]:
        """The connections of the ranges: the engine's pool and up to N - 1 more (those opened
        while the plan was made, on the first attempt)."""
        size = self.plan.source.size or 0
        spans = par.split_ranges(size, self.job.parallel * par.RANGES_PER_CONNECTION)
        conns = min(self.job.parallel, len(spans))
        spare = await self._take_warm_pools()
        for unused in spare[conns - 1 :]:
            await unused.close()
        spare = spare[: conns - 1]
        spare += self.engine.new_range_pools(conns - 1 - len(spare))
        return [self.pool, *spare]

    async def _parallel_pass(
        self, todo: list[Dest], pools: list[SSHPool], why: dict[str, str] | None = None
    ) -> list[tuple[Dest, str]]:
        """The ranges to ``todo``, then their landing; the destinations to copy again from
        byte 0 (a continued part file proved wrong), with why. ``why``: by destination
        label, why this pass starts them over."""
        size = self.plan.source.size or 0
        for d in todo:
            d.sink = self._make_sink(d)
        plan = await self._resume_ranges(todo, size, why)
        live = []
        for d in todo:
            try:
                await par.size_part(d.sink, size)
                live.append(d)
            except DifpipeError as err:
                self.landing.fail(d, err)
        if not live:
            return []
        ranges = {id(d): self._range_progress(d, plan) for d in live}
        hashing = self._hash_whole_source()
        try:
            outcome = await self._run_pieces(live, plan, pools, ranges)
        except BaseException:
            await _cancel(hashing)
            self._save_ranges(live, ranges)  # persist what the ranges wrote before leaving
            raise
        self._save_ranges(live, ranges)
        if outcome.stopped:
            await _cancel(hashing)
            for d in live:
                d.result.status, d.result.bytes = "interrupted", ranges[id(d)].kept
            return []
        errors = outcome.errors
        failed = [next((e[k] for e in errors if e[k]), None) for k in range(len(live))]
        continued = {id(d) for d in live if plan.continued and d.plan.label not in self._redone}
        again = await self.landing.land_ranges(live, failed, hashing, size, continued=continued)
        self._redone.update(d.plan.label for d, _ in again)
        return again

    def _range_progress(self, d: Dest, plan: parresume.RangePlan) -> parresume.RangeProgress:
        assert d.sink is not None
        d.result.resumed_from = d.offset = plan.continued
        d.rate_mark = (time.monotonic(), plan.continued)
        return parresume.RangeProgress(plan, par.in_flight(d.sink))

    def _hash_whole_source(self) -> asyncio.Task[str | None] | None:
        """The source hashes its whole file while the ranges move: its digest is ready by the
        time the destinations have theirs, instead of one more command after them."""
        if self.job.verify == "none":
            return None
        ep = self.plan.source.endpoint
        return asyncio.create_task(
            par.source_digest(
                self.pool,
                ep.host if ep.is_remote else None,
                ep.path,
                self.job.verify,
                self.plan.source.tools,
            )
        )

    async def _run_pieces(
        self,
        live: list[Dest],
        plan: parresume.RangePlan,
        pools: list[SSHPool],
        ranges: dict[int, parresume.RangeProgress],
    ) -> par.RangesOutcome:
        """Relay what is left of every range to every destination in ``live``."""
        ep = self.plan.source.endpoint
        size = self.plan.source.size or 0
        jobs = [
            par.RangeJob(offset, length, pools[k % len(pools)], index=i)
            for k, (i, offset, length) in enumerate(plan.pieces())
        ]
        window = self.pool.window(ep.host, max(1, len(jobs))) if ep.host else None
        owner: dict[int, Dest] = {}

        def make_source(job: par.RangeJob) -> Source:
            if ep.is_remote:
                assert ep.host is not None
                return par.RemoteRangeSource(
                    job.pool, ep.host, ep.path, job.offset, job.length, window
                )
            return par.LocalRangeSource(ep.path, job.offset, job.length)

        def make_sinks(job: par.RangeJob) -> list[Sink]:
            sinks: list[Sink] = []
            for d in live:
                if isinstance(d.sink, RemoteSink):
                    sink: Sink = par.RemoteRangeSink(d.sink, job.pool, job.offset, size)
                else:
                    assert isinstance(d.sink, LocalSink)
                    sink = par.LocalRangeSink(d.sink.part, job.offset)
                owner[id(sink)] = d
                sinks.append(sink)
            return sinks

        def wrote(job: par.RangeJob, sink: Sink, n: int) -> None:
            d = owner[id(sink)]
            progress = ranges[id(d)]
            progress.wrote(job.index, n)
            assert d.sink is not None
            self._progress(d.sink, progress.moved)
            if progress.due(self.job.checkpoint_interval):
                self._save_range(d, progress)

        def ended(job: par.RangeJob, sink: Sink, n: int) -> None:
            ranges[id(owner[id(sink)])].ended(job.index, n)

        def lost(job: par.RangeJob, sink: Sink, err: DifpipeError) -> None:
            if not isinstance(err, NetworkError):  # its dd may have dropped what followed
                ranges[id(owner[id(sink)])].lost(job.index)

        self._ranges = par.RangeRelays(paused=self.paused, stopped=bool(self._stop_reason))
        try:
            return await par.run_ranges(
                jobs,
                make_source,
                make_sinks,
                limiter=self.limiter,
                buffer=max(par.ALIGN, self.job.buffer // max(1, len(jobs))),  # they share it
                on_progress=wrote,
                on_end=ended,
                on_lost=lost,
                relays=self._ranges,
                stall_timeout=self.job.stall_timeout,
            )
        finally:
            self._ranges = None

    # -- --parallel: checkpoints and resume ----------------------------------------------------

    def _save_ranges(self, live: list[Dest], ranges: dict[int, parresume.RangeProgress]) -> None:
        for d in live:
            self._save_range(d, ranges[id(d)])

    def _save_range(self, d: Dest, progress: parresume.RangeProgress) -> None:
        """Checkpoint how far each range of ``d`` is known to be written, when that moved."""
        state = progress.checkpoint(self._range_stamp or "", self.plan.source.size or 0)
        if state is not None:  # no prefix digest: the whole file's is checked
            self._keep(d, state.done, "", state.to_blob())

    async def _resume_ranges(
        self, todo: list[Dest], size: int, why: dict[str, str] | None
    ) -> parresume.RangePlan:
        """Where the ranges to ``todo`` continue: from their checkpoints when every destination
        can continue, else from byte 0 (the part files of an earlier attempt are removed
        first, so that no writer of it can reach the new ones). Each destination that had a
        checkpoint, or starts over for ``why``, says so in a resume event."""
        self._passes += 1
        self._range_stamp = await self._parallel_stamp()
        saved = {cp.destination: cp for cp in self.store.get_checkpoints(self.id)}
        cps = [saved.get(d.plan.label) for d in todo]
        reasons: list[str | None] = [(why or {}).get(d.plan.label) for d in todo]
        if why is None:
            checks = (self._range_problem(d, cp, size) for d, cp in zip(todo, cps, strict=True))
            reasons = list(await asyncio.gather(*checks))
        states = [
            None if cp is None or r is not None else parresume.RangeState.from_blob(cp.hash_state)
            for cp, r in zip(cps, reasons, strict=True)
        ]
        fresh = par.split_ranges(size, self.job.parallel * par.RANGES_PER_CONNECTION)
        plan = parresume.plan_ranges(fresh, states)
        for d, cp, reason in zip(todo, cps, reasons, strict=True):
            earlier = cp is not None or self._passes > 1  # a part file may be there
            if not plan.continued and earlier and why is None:  # (after ``why``, it is gone)
                await self.landing.discard(d)
                self.store.delete_checkpoint(self.id, d.plan.label)
            if cp is not None or reason is not None:
                note = reason or (self.note if plan.continued else parresume.OTHERS)
                self._resumed(d, plan.continued, note)
        return plan

    async def _range_problem(self, d: Dest, cp: Checkpoint | None, size: int) -> str | None:
        """Why ``d``'s checkpoint cannot be continued (None: it can, or there is none)."""
        if cp is None:
            return None
        state = parresume.RangeState.from_blob(cp.hash_state)
        why = parresume.source_problem(state, self._range_stamp, size, self.job.verify)
        if why is not None:
            return why
        assert d.sink is not None
        return parresume.part_problem(await d.sink.part_size(), size)

    async def _parallel_stamp(self) -> str | None:
        """The source's stamp as this pass begins: the plan surveyed a remote one just before
        the first; a remote host that cannot be reached fails the attempt (retryable) rather
        than pass for a changed file."""
        if self._passes == 1 and self.plan.source.stamp is not None:
            return self.plan.source.stamp
        return await self._source_stamp(strict=True)
