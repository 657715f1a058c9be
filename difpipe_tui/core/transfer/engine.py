"""Running copies: plan, resume from checkpoints, relay, verify, land, retry.

A transfer is recorded in the store before its first byte moves, and every checkpoint is
committed as soon as a destination has passed it, so a killed orchestrator (or a cut link)
resumes where the data is. Resuming compares the digest of the first N bytes on both ends; a
prefix that differs starts that destination over and says so. A ``--parallel`` attempt
(:mod:`.parattempt`) moves byte ranges, which keep checkpoints of their own (:mod:`.parresume`).

When the streams of an attempt end, :mod:`.landing` decides what lands: a part file becomes its
target only once every check passed, and with ``--fail-fast`` the first failure stops the
other destinations.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from typing import BinaryIO

from ..config import Config
from ..errors import DifpipeError, UsageError, VerifyError
from ..events import (
    EventBus,
    TransferCheckpoint,
    TransferFinished,
    TransferPaused,
    TransferProgress,
    TransferResumed,
    TransferRetry,
    TransferStarted,
)
from ..remote import command
from ..ssh import NO_RETRY, RetryPolicy, SSHPool
from ..store import Checkpoint, Store, new_transfer_id
from . import encresume, parresume
from . import parallel as par
from .codecs import Transformer, get_codec, make_compressor, make_decompressor
from .encresume import EncryptedStream, ResumeState
from .encrypt import CODEC_IDS, Encryptor, load_key
from .endpoints import parse_endpoint
from .ends import (
    LocalSink,
    LocalSource,
    RemoteSink,
    RemoteSource,
    Sink,
    Source,
    StdinSource,
    StdoutSink,
)
from .job import CopyJob, CopyResult, DestinationResult, job_from_mapping
from .landing import Dest, Landing
from .openssh import OpenSSHContext, OpenSSHSink, OpenSSHSource, ssh_available
from .parattempt import ParallelAttempts
from .plan import Plan, make_plan, small_local_file, transport_setting
from .ratelimit import TokenBucket
from .sftp import SftpSink, SftpSource
from .splice import SpliceRelay, can_splice
from .stream import Relay, SinkState
from .tarstream import LocalTarSink, LocalTarSource, RemoteTarSink, RemoteTarSource
from .treeresume import Listing, TreeResume, list_local, list_remote, plan_resume
from .verify import (
    digest_argv,
    parse_digest_output,
    prefix_digest_argvs,
    prefix_digest_local,
)

PROGRESS_EVERY = 0.25  # seconds between progress events per destination
RETRY = RetryPolicy(attempts=4, base_delay=1.0, max_delay=30.0)


def _stream_offset(cp: Checkpoint) -> int:
    """Where a streamed copy may continue ``cp``: its offset, or for the ranges of a
    ``--parallel`` copy the bytes they wrote from byte 0 without a gap."""
    ranges = parresume.RangeState.from_blob(cp.hash_state)
    return cp.offset if ranges is None else ranges.prefix()


def absolute_local_paths(job: CopyJob, config: Config) -> CopyJob:
    """The job with local ends as absolute paths: a resume from elsewhere finds the same files."""

    def fix(text: str) -> str:
        ep = parse_endpoint(text, config)
        if ep.kind != "local":
            return text
        path = os.path.abspath(ep.path)
        return path + "/" if text.endswith("/") and not path.endswith("/") else path

    return dataclasses.replace(
        job, source=fix(job.source), destinations=tuple(fix(d) for d in job.destinations)
    )


class TransferHandle:
    """A running transfer: pause, resume, cancel, wait for its result."""

    def __init__(self, transfer_id: str, runner: _Runner):
        self.id = transfer_id
        self._runner = runner
        self._task: asyncio.Task[CopyResult] | None = None

    def pause(self) -> None:
        self._runner.set_paused(True)

    def resume(self) -> None:
        self._runner.set_paused(False)

    def cancel(self, reason: str = "interrupted") -> None:
        self._runner.stop(reason)

    @property
    def paused(self) -> bool:
        return self._runner.paused

    async def wait(self) -> CopyResult:
        assert self._task is not None
        return await self._task


class TransferEngine:
    """Copies over one SSH pool.

    Plain remote files stream through OpenSSH legs when the transport allows it (see
    :mod:`.openssh`): the engine makes one :class:`OpenSSHContext` over its pool on first use
    and closes it (legs, control masters, private directory) in :meth:`close`, which also runs
    when the pool closes.
    """

    def __init__(self, config: Config, *, pool: SSHPool, store: Store, bus: EventBus | None = None):
        self.config = config
        self.pool = pool
        self.store = store
        self.bus = bus or pool.bus
        self._openssh: OpenSSHContext | None = None
        pool.on_close(self.close)

    def openssh_for(self, job: CopyJob) -> OpenSSHContext | None:
        """The OpenSSH context for ``job``; None when its transport is asyncssh or there is no
        ssh client (the plan then says why each end uses asyncssh)."""
        if transport_setting(job, self.config) == "asyncssh" or ssh_available() is None:
            return None
        if self._openssh is None:
            self._openssh = OpenSSHContext.for_pool(self.pool)
        return self._openssh

    @property
    def openssh(self) -> OpenSSHContext | None:
        """The OpenSSH context made so far, if any."""
        return self._openssh

    async def close(self) -> None:
        """Stop the OpenSSH legs and masters; the pool stays open (it closes this too)."""
        ctx, self._openssh = self._openssh, None
        if ctx is not None:
            await ctx.close()

    async def analyze(self, job: CopyJob) -> Plan:
        return await make_plan(job, self.config, self.pool, self.openssh_for(job))

    def job_for_resume(self, transfer_id: str) -> CopyJob:
        record = self.store.get_transfer(transfer_id)
        if record is None:
            raise UsageError(f"no transfer with id {transfer_id}", hint="difpipe checkpoints list")
        return job_from_mapping(record.spec, what=f"transfer {transfer_id}")

    async def start(
        self,
        job: CopyJob,
        *,
        resume_id: str | None = None,
        stdin: BinaryIO | None = None,
        stdout: BinaryIO | None = None,
    ) -> TransferHandle:
        key = load_key(job.encrypt) if job.encrypt else None
        job = absolute_local_paths(job, self.config)
        # --parallel: the ranges' own connections open while the plan is made
        warming = asyncio.create_task(self._range_pools(job)) if job.parallel > 1 else None
        self._warm_masters(job)
        try:
            plan = await make_plan(job, self.config, self.pool, self.openssh_for(job))
            handle = self._launch(job, plan, resume_id, stdin, stdout, key)
        except BaseException:
            if warming is not None:
                for spare in await warming:
                    await spare.close()
            raise
        handle._runner.warm_pools = warming
        handle._task = asyncio.create_task(handle._runner.run(), name=f"transfer {handle.id}")
        return handle

    def _launch(
        self,
        job: CopyJob,
        plan: Plan,
        resume_id: str | None,
        stdin: BinaryIO | None,
        stdout: BinaryIO | None,
        key: bytes | None,
    ) -> TransferHandle:
        """The record of the transfer (new, or the one resumed) and its runner, not yet run."""
        record = None
        note = ""
        if resume_id:
            record = self.store.get_transfer(resume_id)
            if record is None:
                raise UsageError(
                    f"no transfer with id {resume_id}", hint="difpipe checkpoints list"
                )
        elif not plan.source.endpoint.is_stdio:
            record = self.store.find_resumable(job.key())
            if record is not None:
                note = f"found the unfinished transfer {record.id} of the same job"
        resuming = record is not None
        if record is None:
            record = self.store.create_transfer(
                source=job.source,
                destinations=list(job.destinations),
                spec=job.to_dict(),
                spec_key=job.key(),
                total_bytes=plan.source.size,
                transfer_id=new_transfer_id(),
            )
        else:
            record = self.store.update_transfer(
                record.id, status="running", total_bytes=plan.source.size, error=None
            )
        runner = _Runner(self, plan, record.id, stdin=stdin, stdout=stdout, note=note, key=key)
        runner.resuming = resuming
        return TransferHandle(record.id, runner)

    def new_range_pools(self, n: int) -> list[SSHPool]:
        """``n`` connection pools of their own, for the byte ranges of ``--parallel``."""
        return [
            SSHPool(
                self.config,
                bus=self.bus,
                retry=self.pool.retry,
                known_hosts_file=self.pool.known_hosts_file,
            )
            for _ in range(n)
        ]

    def _warm_masters(self, job: CopyJob) -> None:
        """Open the OpenSSH masters of a file copy's remote ends while the plan is made.

        Only where a leg is likely: not for ``-r`` (a directory streams over asyncssh), SFTP,
        tar or ``--parallel``, nor, with ``auto``, for a local file that ``auto`` streams over
        asyncssh by its size. A remote file's size is known only once the plan has surveyed
        it, too late for its master to be ready with the stream; a master the plan then does
        not use closes with the engine.
        """
        ctx = self.openssh_for(job)
        if ctx is None or job.recursive or job.parallel > 1 or job.strategy in ("sftp", "tar"):
            return
        ends = []
        with contextlib.suppress(DifpipeError):  # the plan reports a bad end
            for text in (job.source, *job.destinations):
                ends.append(parse_endpoint(text, self.config))
        if ends and transport_setting(job, self.config) == "auto" and small_local_file(ends[0]):
            return
        ctx.warm(dict.fromkeys(ep.host for ep in ends if ep.is_remote and ep.host))

    async def _range_pools(self, job: CopyJob) -> list[SSHPool]:
        """The extra pools of ``--parallel N``, connected to every remote end.

        A host that cannot be reached here is left alone: the plan and the ranges report it.
        """
        pools = self.new_range_pools(job.parallel - 1)
        hosts = set()
        with contextlib.suppress(DifpipeError):
            for text in (job.source, *job.destinations):
                ep = parse_endpoint(text, self.config)
                if ep.is_remote and ep.host:
                    hosts.add(ep.host)
        await asyncio.gather(
            *(p.connect(h, retry=NO_RETRY) for p in pools for h in hosts), return_exceptions=True
        )
        return pools

    async def copy(self, job: CopyJob, **kw: object) -> CopyResult:
        handle = await self.start(job, **kw)  # type: ignore[arg-type]
        return await handle.wait()


class _Runner(ParallelAttempts):
    def __init__(
        self,
        engine: TransferEngine,
        plan: Plan,
        transfer_id: str,
        *,
        stdin: BinaryIO | None,
        stdout: BinaryIO | None,
        note: str,
        key: bytes | None = None,
    ):
        self.engine, self.plan, self.id = engine, plan, transfer_id
        self.key = key
        self.job = plan.job
        self.pool, self.store, self.bus = engine.pool, engine.store, engine.bus
        self.stdin, self.stdout = stdin, stdout
        self.note = note
        self.paused = False
        self._stop_reason: str | None = None
        self._stopped = asyncio.Event()
        self._relay: Relay | SpliceRelay | None = None
        self._ranges: par.RangeRelays | None = None  # --parallel: the ranges' relays
        self.started = time.monotonic()
        self.dests = [
            Dest(d, DestinationResult(destination=d.label, transport=d.transport))
            for d in plan.destinations
        ]
        self.landing = Landing(
            transfer_id,
            self.job,
            self.dests,
            bus=self.bus,
            store=self.store,
            check_part=self._check_continued_part,
        )
        self.limiter = TokenBucket(self.job.rate_limit) if self.job.rate_limit else None
        self.warm_pools: asyncio.Task[list[SSHPool]] | None = None
        self.tree: TreeResume | None = None  # a resumed directory: what it still sends
        self.enc: EncryptedStream | None = None  # the encrypted stream of the current run
        self._enc_from: EncryptedStream | None = None  # the checkpoint the next run continues
        self._stamp: str | None = None  # the source's stamp when this attempt began
        self.resuming = False  # continues a transfer of the store (--resume, or a rerun)
        self._tries = 0  # attempts begun
        self._passes = 0  # --parallel: passes of the ranges begun
        self._range_stamp: str | None = None  # --parallel: the source's stamp as this pass began
        self._redone: set[str] = set()  # --parallel: started over once after a wrong digest

    # -- control -------------------------------------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        for relay in (self._relay, self._ranges):
            if relay is not None:
                relay.pause() if paused else relay.resume()
        self.bus.publish(TransferPaused(transfer_id=self.id, paused=paused))

    def stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stopped.set()
        for relay in (self._relay, self._ranges):
            if relay is not None:
                relay.stop()

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> CopyResult:
        plan = self.plan
        self.bus.publish(
            TransferStarted(
                transfer_id=self.id,
                source=self.job.source,
                destinations=tuple(self.job.destinations),
                total=plan.source.size,
                strategy=plan.strategy,
                codec=plan.codec.codec,
                reason=plan.codec.reason,
            )
        )
        for d in self.dests:
            if d.plan.problem is not None:
                self.landing.fail(d, d.plan.problem)
        if self.landing.sweep():
            await self._cleanup()
            return self._finish()
        attempt = 0
        while True:
            todo = [d for d in self.dests if d.result.status == "pending"]
            if not todo or self._stop_reason:
                break
            attempt += 1
            try:
                await self._attempt(todo)
            except DifpipeError as err:
                for d in todo:
                    if d.result.status == "pending":
                        d.result.error, d.result.exit_code = str(err), int(err.exit_code)
                if (
                    not err.retryable
                    or attempt > self.job.retries
                    or self.plan.source.endpoint.is_stdio
                ):
                    for d in todo:
                        if d.result.status == "pending":
                            self.landing.fail(d, err)
                    break
                await self._backoff(attempt, str(err))
                continue
            retryable = [
                d for d in todo if d.result.status == "retry" and attempt <= self.job.retries
            ]
            for d in todo:
                if d.result.status == "retry":
                    if d in retryable:
                        d.result.status = "pending"
                    else:
                        d.result.status = "failed"
            if not retryable or self.landing.sweep():
                break
            await self._backoff(attempt, retryable[0].result.error or "")
        await self._cleanup()
        return self._finish()

    async def _take_warm_pools(self) -> list[SSHPool]:
        task, self.warm_pools = self.warm_pools, None
        return await task if task is not None else []

    async def _cleanup(self) -> None:
        """Remove what a failed destination that cannot resume left behind."""
        for unused in await self._take_warm_pools():
            await unused.close()
        for d in self.dests:
            if d.result.status != "done" and d.sink is not None and not d.sink.resumable:
                with contextlib.suppress(DifpipeError):
                    await d.sink.discard()

    async def _backoff(self, attempt: int, reason: str) -> None:
        delay = RETRY.delay(attempt)
        self.bus.publish(
            TransferRetry(transfer_id=self.id, attempt=attempt, delay=delay, reason=reason)
        )
        with contextlib.suppress(TimeoutError):  # a stop request ends the wait at once
            await asyncio.wait_for(self._stopped.wait(), delay)

    async def _attempt(self, todo: list[Dest]) -> None:
        if self.job.parallel > 1:
            await self._attempt_parallel(todo)
            return
        start = await self._resume_offsets(todo)
        for d in todo:
            d.sink = self._make_sink(d)
            d.offset = start
            d.rate_mark = (time.monotonic(), start)
        # prepare every destination (permission problems show here, before any data moves)
        live = []
        for d, outcome in zip(
            todo,
            await asyncio.gather(
                *(self._prepare(d, self._sink_offset(start)) for d in todo),
                return_exceptions=True,
            ),
            strict=True,
        ):
            if isinstance(outcome, DifpipeError):
                self.landing.fail(d, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                live.append(d)
        if not live:
            return
        if self.job.fail_fast and len(live) < len(todo):
            cause = next(d for d in todo if d not in live)
            await self.landing.stop_prepared(live, cause)
            return
        source = self._make_source(start)
        opened = await self._open_ends(source, live)
        if not opened or (self.job.fail_fast and len(opened) < len(live)):
            await source.abort()
            if opened:
                cause = next(d for d in live if d not in opened)
                await self.landing.stop_all(opened, cause)
            return
        live = opened
        sinks = [d.sink for d in live if d.sink is not None]
        relay: Relay | SpliceRelay
        compressor = self._local_compressor(live)
        transforms = source.compressed or compressor is not None or self.key is not None
        if can_splice(source, sinks, algo=self.job.verify, transforms=transforms):
            assert isinstance(source, OpenSSHSource) and isinstance(sinks[0], OpenSSHSink)
            relay = SpliceRelay(
                source,
                sinks[0],
                start=start,
                limiter=self.limiter,
                checkpoint_interval=self.job.checkpoint_interval,
                stall_timeout=self.job.stall_timeout,
                on_progress=self._progress,
                on_checkpoint=self._checkpoint,
            )
        else:
            relay = self._relay_of(source, sinks, start, compressor)
        self._relay = relay
        if self.paused:
            relay.pause()
        if self._stop_reason:
            relay.stop()
        try:
            outcome = await relay.run()
        except BaseException:
            await source.abort()
            for d in live:
                if d.sink is not None:
                    await d.sink.abort()
            raise
        finally:
            self._relay = None
        by_sink = {id(st.sink): st for st in outcome.states}
        if outcome.halted is not None:  # --fail-fast: one destination failed, all stop
            await source.abort()
            cause = self._dest_for(outcome.halted.sink)
            await self.landing.after_error(cause, outcome.halted.error or DifpipeError("failed"))
            await self.landing.stop_all([d for d in live if d is not cause], cause)
            return
        if outcome.stopped:
            await source.abort()
            await self._save_stop_checkpoints(live, by_sink, outcome.offset, relay, start)
            return
        if not outcome.eof:  # every destination failed before the end: nothing to land
            await source.abort()
            for d in live:
                await self.landing.after_error(
                    d, by_sink[id(d.sink)].error or DifpipeError("stopped")
                )
            return
        try:
            await source.finish()
        except BaseException:
            for d in live:
                if d.sink is not None:
                    await d.sink.abort()
            raise
        total = self.plan.source.size if self.plan.source.kind == "file" else None
        if total is not None and outcome.offset != total:
            raise VerifyError(
                f"{self.job.source}: the source changed size while it was read"
                f" ({total} bytes expected, {outcome.offset} read)",
                hint="copy it again once it stops changing",
            )
        await self._check_stamp()
        digest = outcome.digest
        if isinstance(relay, SpliceRelay) and self.job.verify != "none":
            digest = source.digest  # the source host hashed what it sent (finish checked it)
            if digest is None:
                raise VerifyError(f"{self.job.source}: the source sent no digest to compare")
        await self.landing.complete(live, by_sink, digest, start, outcome.offset)

    def _relay_of(
        self, source: Source, sinks: list[Sink], start: int, compressor: Transformer | None
    ) -> Relay:
        return Relay(
            source,
            sinks,
            start=start,
            algo=self.job.verify,
            decompressor=make_decompressor(self.plan.codec.codec, what=self.job.source)
            if source.compressed
            else None,
            compressor=compressor,
            buffer=self.job.buffer,
            limiter=self.limiter,
            checkpoint_interval=self.job.checkpoint_interval,
            fail_fast=self.job.fail_fast,
            stall_timeout=self.job.stall_timeout,
            on_progress=self._progress,
            on_checkpoint=self._checkpoint,
            encryptor=self._encryptor(source),
        )

    async def _open_ends(self, source: Source, live: list[Dest]) -> list[Dest]:
        """Open the source and every destination's stream at once; the destinations that opened.

        A destination that cannot open fails alone; when the source cannot, nothing is left open.
        """
        sinks = [d.sink for d in live if d.sink is not None]
        outcomes = await asyncio.gather(
            source.open(), *(s.open() for s in sinks), return_exceptions=True
        )
        if isinstance(outcomes[0], BaseException):
            for sink, outcome in zip(sinks, outcomes[1:], strict=True):
                if not isinstance(outcome, BaseException):
                    await sink.abort()
            raise outcomes[0]
        opened = []
        for d, outcome in zip(live, outcomes[1:], strict=True):
            if isinstance(outcome, DifpipeError):  # that destination fails; the others go on
                await self.landing.after_error(d, outcome)
            elif isinstance(outcome, BaseException):
                await source.abort()
                raise outcome
            else:
                opened.append(d)
        return opened

    async def _prepare(self, d: Dest, start: int) -> None:
        assert d.sink is not None
        await d.sink.prepare(start)

    async def _save_stop_checkpoints(
        self,
        live: list[Dest],
        by_sink: dict[int, SinkState],
        offset: int,
        relay: Relay | SpliceRelay,
        start: int,
    ) -> None:
        """After a requested stop every writer has drained: checkpoint the exact offset."""
        whole = start == 0 or self.key is not None  # an encrypted run keeps its own segment
        digest = relay.prefix_digest() if whole and self.job.verify != "none" else ""
        for d in live:
            st = by_sink[id(d.sink)]
            if st.error is not None or d.sink is None:
                continue
            with contextlib.suppress(DifpipeError):
                await d.sink.finish()
            if d.sink.resumable:
                here = digest if st.written == offset else ""
                if not here and isinstance(relay, SpliceRelay) and self.job.verify != "none":
                    here = await self._written_prefix_digest(d.sink, st.written)
                self._checkpoint(d.sink, st.written, here)
            d.result.status = "interrupted"
            d.result.bytes = st.written

    async def _written_prefix_digest(self, sink: Sink, n: int) -> str:
        """The digest of what the destination holds, for a stop's checkpoint when no byte
        passed through this process (spliced): one read of the part file on that host."""
        try:
            return await sink.prefix_digest(n, self.job.verify) or ""
        except DifpipeError:
            return ""

    # -- resume --------------------------------------------------------------------------------

    async def _resume_offsets(self, todo: list[Dest]) -> int:
        """The offset every destination in ``todo`` continues from (0: from the start)."""
        if self.plan.source.endpoint.is_stdio:
            return 0
        saved = {cp.destination: cp for cp in self.store.get_checkpoints(self.id)}
        if self.key is not None:
            return await self._resume_encrypted(todo, saved)
        if self.plan.source.kind == "dir":
            self.tree = await self._resume_tree(todo, saved)
            return 0
        offsets = []
        for d in todo:
            cp = saved.get(d.plan.label)
            sink = self._make_sink(d)
            if cp is None or _stream_offset(cp) <= 0 or not sink.resumable:
                offsets.append(0)
                continue
            size = await sink.part_size()
            n = min(_stream_offset(cp), size or 0)
            ok = n > 0 and await self._prefix_matches(sink, n, cp)
            if ok:
                offsets.append(n)
                self.bus.publish(
                    TransferResumed(
                        transfer_id=self.id, destination=d.plan.label, offset=n, note=self.note
                    )
                )
            else:
                offsets.append(0)
                why = (
                    "no part file left"
                    if not size
                    else "the data already there does not match the source; starting over"
                )
                self.bus.publish(
                    TransferResumed(
                        transfer_id=self.id, destination=d.plan.label, offset=0, note=why
                    )
                )
        return min(offsets) if offsets else 0

    async def _resume_encrypted(self, todo: list[Dest], saved: dict[str, Checkpoint]) -> int:
        """The plaintext offset an encrypted stream continues from, or 0 (a new salt).

        Every destination receives the same ciphertext, so they continue together from the
        latest checkpoint that all their part files hold, or all start over: see
        :mod:`.encresume` for when continuing is safe. Sets :attr:`_enc_from` to the stream
        to continue.
        """
        self._enc_from = None
        self._tries += 1
        self._stamp = await self._source_stamp()
        cps = [saved.get(d.plan.label) for d in todo]
        why = self._encrypted_resume_blocker()
        if not any(cp is not None and cp.offset > 0 for cp in cps):
            if why is not None and (self.resuming or self._tries > 1):
                for d in todo:  # such a stream keeps no checkpoint: say why it starts over
                    self._resumed(d, 0, why)
            return 0
        states = [
            ResumeState.from_blob(cp.hash_state)
            if cp is not None and cp.digest_algo == self.job.verify
            else None
            for cp in cps
        ]
        reasons: dict[str, str] = {}
        found = None
        if why is None:
            why, found = await self._common_mark(todo, states, reasons)
        if why is not None or reasons or found is None:
            for d in todo:
                self._resumed(d, 0, why or reasons.get(d.plan.label, encresume.OTHERS))
            return 0
        state, plain, digest = found
        self._enc_from = EncryptedStream.continuing(state, plain, digest)
        where = f"the encrypted part file continues at byte {self._enc_from.cipher_start}"
        note = "; ".join(filter(None, (self.note, where)))
        for d in todo:
            self._resumed(d, plain, note)
        return plain

    async def _common_mark(
        self, todo: list[Dest], states: list[ResumeState | None], reasons: dict[str, str]
    ) -> tuple[str | None, tuple[ResumeState, int, str] | None]:
        """``(why not, (state, plaintext offset, digest))``: the latest checkpoint mark that
        every part file holds and proves by its digests. A destination's own problem goes
        into ``reasons``."""
        if any(st is None for st in states):
            return encresume.NO_STATE, None
        ref = states[0]
        assert ref is not None
        if any(
            (st.header, st.stamp, st.segments) != (ref.header, ref.stamp, ref.segments)
            for st in states
            if st is not None
        ):
            return encresume.NO_STATE, None
        if not ref.stamp or not self._stamp:
            return encresume.NO_STAMP, None
        if ref.stamp != self._stamp:
            return encresume.CHANGED, None
        sinks = [self._make_sink(d) for d in todo]
        sizes = await asyncio.gather(*(s.part_size() for s in sinks), return_exceptions=True)
        common: dict[int, str] | None = None
        for d, st, size in zip(todo, states, sizes, strict=True):
            assert st is not None
            if not isinstance(size, int) or not size:
                reasons[d.plan.label] = encresume.NO_PART
                continue
            marks = st.usable(size, self.plan.source.size)
            if not marks:
                reasons[d.plan.label] = encresume.TOO_SHORT
            common = marks if common is None else {
                off: dg for off, dg in common.items() if marks.get(off) == dg
            }  # fmt: skip
        if reasons or not common:
            return (None if reasons else encresume.TOO_SHORT), None
        plain = max(common)
        spans = ref.spans(plain, common[plain])
        checks = await asyncio.gather(
            *(encresume.check_part(s, spans, ref.header, self.job.verify) for s in sinks)
        )
        reasons.update({d.plan.label: r for d, r in zip(todo, checks, strict=True) if r})
        return None, (ref, plain, common[plain])

    def _encrypted_resume_blocker(self) -> str | None:
        """Why no encrypted checkpoint of this transfer can be continued, if that is so."""
        if self.plan.codec.source_compresses:
            return encresume.COMPRESSED
        if self.job.verify == "none":
            return encresume.NO_DIGEST
        return None

    async def _source_stamp(self, *, strict: bool = False) -> str | None:
        """The source's stamp (see :func:`.encresume.stamp_remote` for ``strict``)."""
        ep = self.plan.source.endpoint
        if ep.is_remote:
            assert ep.host is not None
            return await encresume.stamp_remote(self.pool, ep.host, ep.path, strict=strict)
        return await asyncio.to_thread(encresume.stamp_local, ep.path)

    async def _check_stamp(self) -> None:
        """A continued encrypted stream fails when its source changed while it was read:
        it then never lands, and the next run starts over under a new salt."""
        if self.enc is None or self.enc.start == 0:
            return
        if await self._source_stamp() != self.enc.stamp:
            raise VerifyError(
                f"{self.job.source}: the source changed while the encrypted copy resumed",
                hint="copy it again once it stops changing",
            )

    async def _check_continued_part(self, sink: Sink, what: str) -> None:
        """Before a continued encrypted part file lands, its earlier runs' ciphertext must
        still have their digests: with this run's, they cover the whole file."""
        if self.enc is None or self.enc.start == 0:
            return
        why = await encresume.check_part(sink, self.enc.spans(), self.enc.header, self.job.verify)
        if why is not None:
            raise VerifyError(f"{what}: the part file's earlier ciphertext changed: {why}")

    def _sink_offset(self, start: int) -> int:
        """Where a destination's part file is cut and continued for a stream from ``start``."""
        if self.key is not None and start:
            assert self._enc_from is not None
            return self._enc_from.cipher_start
        return start

    async def _resume_tree(
        self, todo: list[Dest], saved: dict[str, Checkpoint]
    ) -> TreeResume | None:
        """What a directory copy still sends, when every destination kept its staging
        directory; None (send everything into fresh ones) otherwise."""
        if not todo or any(d.plan.label not in saved for d in todo) or self.key is not None:
            return None
        sinks = [self._make_sink(d) for d in todo]
        assert all(isinstance(s, RemoteTarSink | LocalTarSink) for s in sinks)
        tar_sinks: list[RemoteTarSink | LocalTarSink] = sinks  # type: ignore[assignment]
        try:
            staged = await asyncio.gather(*(s.listing() for s in tar_sinks))
            source = await self._source_listing()
        except DifpipeError:
            staged, source = [None], None
        why = ""
        if source is None:
            why = "cannot list the source directory (needs GNU find); starting over"
        elif any(lst is None for lst in staged):
            why = "no staging directory left; starting over"
        if why:
            for d in todo:
                self._resumed(d, 0, why)
            return None
        assert source is not None
        tree = plan_resume(source, {d.plan.label: lst for d, lst in zip(todo, staged, strict=True)})  # type: ignore[misc]
        for d, sink in zip(todo, tar_sinks, strict=True):
            if tree.extra.get(d.plan.label):
                await sink.remove(tree.extra[d.plan.label])
            self._resumed(d, tree.skipped_bytes, tree.note)
        return tree

    async def _source_listing(self) -> Listing | None:
        ep = self.plan.source.endpoint
        if ep.is_remote:
            assert ep.host is not None
            return await list_remote(self.pool, ep.host, ep.path)
        return await asyncio.to_thread(list_local, ep.path)

    def _resumed(self, d: Dest, offset: int, note: str) -> None:
        self.bus.publish(
            TransferResumed(transfer_id=self.id, destination=d.plan.label, offset=offset, note=note)
        )

    async def _prefix_matches(self, sink: Sink, n: int, cp: Checkpoint) -> bool:
        algo = cp.digest_algo if cp.digest_algo in ("sha256", "blake2b") else "sha256"
        try:
            dest, src = await asyncio.gather(
                sink.prefix_digest(n, algo), self._source_prefix_digest(n, algo)
            )
        except DifpipeError:
            return False
        if dest is None:
            return False
        if src is None:  # the source cannot hash: trust the recorded digest of the same prefix
            return bool(cp.prefix_digest) and n == cp.offset and cp.prefix_digest == dest
        return src == dest and (not cp.prefix_digest or n != cp.offset or cp.prefix_digest == src)

    async def _source_prefix_digest(self, n: int, algo: str) -> str | None:
        ep = self.plan.source.endpoint
        if ep.is_remote:
            argvs = prefix_digest_argvs(ep.path, n, algo, self.plan.source.tools)
            if argvs is None:
                return None
            assert ep.host is not None
            res = await self.pool.run(ep.host, " | ".join(command(*a) for a in argvs))
            return parse_digest_output(res.text, algo)
        return await asyncio.to_thread(prefix_digest_local, ep.path, n, algo)

    # -- ends ----------------------------------------------------------------------------------

    def _make_source(self, offset: int) -> Source:
        ep = self.plan.source.endpoint
        codec = self.plan.codec
        is_dir = self.plan.source.kind == "dir"
        if self.plan.source.sftp:
            assert ep.host is not None
            return SftpSource(self.pool, ep.host, ep.path, offset=offset)
        if ep.is_remote:
            assert ep.host is not None
            argv = (
                get_codec(codec.codec).compress_argv(codec.level)
                if codec.source_compresses
                else None
            )
            if self.plan.source.transport == "openssh":
                ctx = self.engine.openssh_for(self.job)
                assert ctx is not None
                hashes = self.plan.digest_site == "source" and argv is None
                tool = digest_argv(self.job.verify, self.plan.source.tools) if hashes else None
                size = self.plan.source.size
                return OpenSSHSource(
                    ctx,
                    ep.host,
                    ep.path,
                    offset=offset,
                    compress_argv=argv,
                    digest=(self.job.verify, tool) if tool is not None else None,
                    # its stream's end waits for the hash: it ends when the file has arrived
                    length=size - offset if tool is not None and size is not None else None,
                )
            names = self.tree.stdin() if self.tree is not None else None
            if is_dir:
                source = RemoteTarSource(self.pool, ep.host, ep.path, compress_argv=argv)
                source.names = names
                return source
            return RemoteSource(self.pool, ep.host, ep.path, offset=offset, compress_argv=argv)
        if is_dir:
            return LocalTarSource(ep.path, self.tree.stdin() if self.tree is not None else None)
        if ep.is_stdio:
            return StdinSource(self.stdin)
        return LocalSource(ep.path, offset=offset)

    def _make_sink(self, d: Dest) -> Sink:
        sink = self._new_sink(d)
        if isinstance(sink, RemoteTarSink | LocalTarSink):
            sink.keep = self.tree is not None
        if self.key is not None and self._encrypted_resume_blocker() is not None:
            sink.resumable = False  # such a stream starts over under a new salt
        return sink

    def _new_sink(self, d: Dest) -> Sink:
        if d.plan.sftp:
            assert d.plan.endpoint.host is not None
            return SftpSink(self.pool, d.plan.endpoint.host, d.plan.target, algo=self.job.verify)
        ep = d.plan.endpoint
        codec = self.plan.codec
        if ep.is_remote:
            assert ep.host is not None
            argv = (
                get_codec(codec.codec).decompress_argv() if codec.destination_decompresses else None
            )
            if d.plan.transport == "openssh":
                ctx = self.engine.openssh_for(self.job)
                assert ctx is not None
                return OpenSSHSink(
                    ctx,
                    ep.host,
                    d.plan.target,
                    algo=self.job.verify,
                    tools=d.plan.tools,
                    decompress_argv=argv,
                    pool=self.pool,
                )
            cls = RemoteTarSink if self.plan.source.kind == "dir" else RemoteSink
            return cls(
                self.pool,
                ep.host,
                d.plan.target,
                algo=self.job.verify,
                tools=d.plan.tools,
                decompress_argv=argv,
            )
        if ep.is_stdio:
            return StdoutSink(self.stdout)
        if self.plan.source.kind == "dir":
            return LocalTarSink(d.plan.target, algo=self.job.verify)
        return LocalSink(d.plan.target, algo=self.job.verify)

    def _encryptor(self, source: Source) -> Encryptor | None:
        if self.key is None:
            return None
        if self._enc_from is not None and not source.compressed:
            self.enc = self._enc_from
            return Encryptor.resume(
                self.key, self.enc.header, self.enc.start // self.enc.chunk_size
            )
        codec = self.plan.codec.codec if source.compressed else "none"
        encryptor = Encryptor(self.key, codec_id=CODEC_IDS[codec])
        self.enc = EncryptedStream(encryptor.header(), self._stamp or "")
        return encryptor

    def _local_compressor(self, live: list[Dest]):
        codec = self.plan.codec
        if self.key is not None:
            return None
        if codec.where == "local-compress" and any(d.sink and d.sink.compressed for d in live):
            return make_compressor(codec.codec, codec.level)
        return None

    # -- events and checkpoints ----------------------------------------------------------------

    def _dest_for(self, sink: Sink) -> Dest:
        return next(d for d in self.dests if d.sink is sink)

    def _progress(self, sink: Sink, offset: int) -> None:
        d = self._dest_for(sink)
        d.offset = offset
        now = time.monotonic()
        if now - d.last_progress < PROGRESS_EVERY:
            return
        t0, b0 = d.rate_mark
        if now > t0:
            inst = (offset - b0) / (now - t0)
            d.rate = inst if d.rate == 0 else 0.7 * d.rate + 0.3 * inst
        d.rate_mark = (now, offset)
        d.last_progress = now
        total = self.plan.source.size
        if total is not None and self.plan.source.kind == "dir":
            if self.tree is not None:  # a resumed directory sends only what is missing
                total = self.tree.remaining_bytes
            total = max(total, offset)  # a directory's size is an estimate of its tar stream
        eta = (total - offset) / d.rate if total is not None and d.rate > 0 else None
        self.bus.publish(
            TransferProgress(
                transfer_id=self.id,
                destination=d.plan.label,
                bytes=offset,
                total=total,
                rate=round(d.rate, 1),
                eta=None if eta is None else round(eta, 1),
            )
        )

    def _checkpoint(self, sink: Sink, offset: int, digest: str) -> None:
        if not sink.resumable or self.plan.source.endpoint.is_stdio:
            return
        d = self._dest_for(sink)
        state = None
        if self.key is not None:
            if self.enc is None:
                return
            state = self.enc.checkpoint(offset, digest).to_blob()  # digest: this run's segment
        elif (self._relay is not None and self._relay.start > 0) or self.plan.source.kind == "dir":
            digest = ""  # the stream's hash covers only this run's bytes, or a tar stream's
        self._keep(d, offset, digest, state)

    def _keep(self, d: Dest, offset: int, digest: str, state: bytes | None) -> None:
        """Commit ``d``'s checkpoint at ``offset`` (``digest`` of the prefix, if any; ``state``
        what continues it), then say so."""
        self.store.save_checkpoint(
            Checkpoint(
                transfer_id=self.id,
                destination=d.plan.label,
                offset=offset,
                total=self.plan.source.size,
                prefix_digest=digest,
                digest_algo=self.job.verify,
                hash_state=state,
            )
        )
        self.store.update_transfer(self.id, bytes_done=offset)
        self.bus.publish(
            TransferCheckpoint(transfer_id=self.id, destination=d.plan.label, offset=offset)
        )

    def _finish(self) -> CopyResult:
        results = [d.result for d in self.dests]
        for r in results:
            if r.status in ("pending", "retry"):
                r.status = "failed"
        done = [r for r in results if r.status == "done"]
        if self._stop_reason and not all(r.status == "done" for r in results):
            status = "interrupted"
        elif len(done) == len(results):
            status = "done"
        elif done:
            status = "partial"
        else:
            status = "failed"
        seconds = time.monotonic() - self.started
        moved = max((r.bytes for r in results), default=0)
        digest = next((r.digest for r in done if r.digest), None)
        result = CopyResult(
            transfer_id=self.id,
            source=self.job.source,
            status=status,
            bytes=moved,
            total=self.plan.source.size,
            seconds=round(seconds, 3),
            strategy=self.plan.strategy,
            codec=self.plan.codec.codec,
            codec_reason=self.plan.codec.reason,
            verify=self.job.verify,
            digest=digest,
            resumed_from=min((r.resumed_from for r in done), default=0),
            destinations=results,
            transport=self.plan.source.transport,
        )
        error = next((r.error for r in results if r.error), None)
        store_status = {"done": "done", "partial": "partial", "failed": "failed"}.get(
            status, "interrupted"
        )
        self.store.update_transfer(
            self.id,
            status=store_status,
            bytes_done=moved,
            digest=digest,
            error=error,
            result=result.to_dict(),
        )
        if status == "done":
            for r in results:
                self.store.delete_checkpoint(self.id, r.destination)
        self.bus.publish(
            TransferFinished(
                transfer_id=self.id, status=status, bytes=moved, seconds=result.seconds, error=error
            )
        )
        return result
