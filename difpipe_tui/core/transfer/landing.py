"""Landing and ``--fail-fast``: which destinations' copies become their targets, and when.

Every destination writes its copy into a part file next to its target. When the streams of an
attempt have ended, :meth:`Landing.complete` checks every destination first (its stream ended
cleanly, its digest is the source's) and only then renames the part files that passed over
their targets. A copy that fails verification is removed and its checkpoint dropped: it is
never resumed. Any other failure fails that destination for good or, when it is retryable,
leaves it to the next attempt (:meth:`Landing.after_error`).

With ``--fail-fast`` nothing lands anywhere unless every destination passed. The first
destination that fails stops the others: each fails with a :class:`~..errors.FailFastStop`
(``stopped: DEST failed (--fail-fast)``) that carries the failure's exit code and
retryability, so the copy exits with that failure's code whichever destination is listed
first, and a retryable failure retries every destination together.

``--parallel`` lands the same way with whole-file digests (:meth:`Landing.land_ranges`); a
part file that continued an earlier run's and whose digest is wrong is copied again once
from byte 0 instead of failing.

:class:`Dest` is one destination of a transfer: the runner (:mod:`.engine`) moves its data,
this module settles it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from ..errors import DifpipeError, ExitCode, FailFastStop, VerifyError
from ..events import EventBus, TransferDestinationDone
from ..store import Store
from . import parallel as par
from . import parresume
from .ends import RemoteSink, Sink
from .job import CopyJob, DestinationResult
from .plan import DestinationPlan
from .stream import SinkState
from .verify import compare

#: A destination's digest of its whole file: the digest, or with the source's digest a
#: remote destination also lands it when they match: (digest, landed); or why it has none.
WholeDigest = str | DifpipeError | tuple[str | None, bool] | None


@dataclass
class Dest:
    """One destination of a transfer: its plan, its result so far, its sink in this attempt."""

    plan: DestinationPlan
    result: DestinationResult
    sink: Sink | None = None
    error: DifpipeError | None = None  # why it failed or waits for a retry
    offset: int = 0
    last_progress: float = 0.0
    rate: float = 0.0
    rate_mark: tuple[float, int] = (0.0, 0)


class Landing:
    """The outcome of every destination of one transfer: failed, to retry, or landed.

    ``check_part(sink, label)`` raises :class:`~..errors.VerifyError` when a part file that
    this attempt continued no longer holds what earlier attempts wrote (see :mod:`.encresume`).
    """

    def __init__(
        self,
        transfer_id: str,
        job: CopyJob,
        dests: list[Dest],
        *,
        bus: EventBus,
        store: Store,
        check_part: Callable[[Sink, str], Awaitable[None]],
    ):
        self.id, self.job, self.dests = transfer_id, job, dests
        self.bus, self.store = bus, store
        self.check_part = check_part

    # -- one destination -----------------------------------------------------------------------

    def fail(self, d: Dest, err: DifpipeError) -> None:
        d.error = err
        d.result.status = "failed"
        d.result.error = str(err)
        d.result.exit_code = int(err.exit_code) if err.exit_code else int(ExitCode.INTERNAL)
        self.bus.publish(
            TransferDestinationDone(
                transfer_id=self.id,
                destination=d.plan.label,
                status="failed",
                bytes=d.offset,
                error=str(err),
            )
        )

    async def after_error(self, d: Dest, err: DifpipeError) -> None:
        """A retryable failure of a part file that can be continued retries; others fail."""
        d.error = err
        if err.retryable and d.sink is not None and d.sink.resumable:
            d.result.status = "retry"
            d.result.error, d.result.exit_code = str(err), int(err.exit_code)
            return
        self.fail(d, err)

    async def rejected(self, d: Dest, err: DifpipeError) -> None:
        """A copy that cannot land: one that failed verification is removed, never resumed."""
        if isinstance(err, VerifyError):
            await self.discard(d)
            self.store.delete_checkpoint(self.id, d.plan.label)
        await self.after_error(d, err)

    async def discard(self, d: Dest) -> None:
        if d.sink is not None:
            await d.sink.discard()

    # -- --fail-fast ---------------------------------------------------------------------------

    def sweep(self) -> bool:
        """With ``--fail-fast``, once a destination has failed for good every other one that
        has not landed fails too, with that failure's exit code. Whether that happened."""
        failed = [d for d in self.dests if d.result.status == "failed"]
        if not self.job.fail_fast or not failed:
            return False
        cause = next((d for d in failed if not isinstance(d.error, FailFastStop)), failed[0])
        for d in self.dests:
            if d.result.status not in ("done", "failed"):
                self.fail(d, self.stopped_by(cause))
        return True

    @staticmethod
    def stopped_by(cause: Dest) -> DifpipeError:
        """The error of a destination that ``--fail-fast`` stops because ``cause`` failed."""
        err = cause.error or DifpipeError(cause.result.error or "failed")
        if isinstance(err, FailFastStop):
            return err
        return FailFastStop(cause.plan.label, err)

    async def stop_prepared(self, dests: list[Dest], cause: Dest) -> None:
        """``--fail-fast``: ``cause`` could not be prepared; ``dests``, prepared, never open
        their streams: their part files go, and they fail with its exit code."""
        for d in dests:
            await self.discard(d)
            self.fail(d, self.stopped_by(cause))

    async def stop_all(self, dests: list[Dest], cause: Dest) -> None:
        """``--fail-fast``: end the streams of ``dests`` because ``cause`` failed; they retry
        with it (a retryable failure) or fail with its exit code, and land nothing."""
        for d in dests:
            if d.sink is not None:
                await d.sink.abort()
            await self.after_error(d, self.stopped_by(cause))

    # -- a streamed copy -----------------------------------------------------------------------

    async def complete(
        self,
        live: list[Dest],
        by_sink: dict[int, SinkState],
        digest: str | None,
        start: int,
        end: int,
    ) -> None:
        """Check every destination's copy, then land those that passed.

        With ``--fail-fast`` a destination lands only when every one passed, so a failed
        check (a mismatch, a remote command that failed at the end) lands nothing anywhere.
        """
        checks = await asyncio.gather(*(self._check(d, by_sink[id(d.sink)], digest) for d in live))
        failed = [d for d, (_, err) in zip(live, checks, strict=True) if err is not None]
        for d, (_, err) in zip(live, checks, strict=True):
            if err is not None:
                await self.rejected(d, err)
        if self.job.fail_fast and failed:
            for d in live:
                if d not in failed:
                    await self.after_error(d, self.stopped_by(failed[0]))
            return
        await asyncio.gather(
            *(
                self._land(d, digest, dest_digest, start, end)
                for d, (dest_digest, err) in zip(live, checks, strict=True)
                if err is None
            )
        )

    async def _check(
        self, d: Dest, st: SinkState, digest: str | None
    ) -> tuple[str | None, DifpipeError | None]:
        """(the destination's digest, why its copy cannot land): its stream ends and its
        digest of what it wrote is compared with the stream's."""
        assert d.sink is not None
        if st.error is not None:
            return None, st.error
        try:
            dest_digest = await d.sink.finish()
            await self.check_part(d.sink, d.plan.label)
            if self.job.verify != "none" and digest is not None and dest_digest is not None:
                compare(digest, dest_digest, what=d.plan.label, algo=self.job.verify)
        except DifpipeError as err:
            return None, err
        return dest_digest, None

    async def _land(
        self, d: Dest, digest: str | None, dest_digest: str | None, start: int, end: int
    ) -> None:
        """Rename a checked part file over its target."""
        assert d.sink is not None
        try:
            if self.job.verify != "none" and digest is not None:
                if start > 0:  # this run's digest covers only its bytes: report the whole file's
                    dest_digest = await d.sink.land_with_digest(self.job.overwrite, self.job.verify)
                else:
                    dest_digest = dest_digest or digest
                    await d.sink.land(self.job.overwrite)
            else:
                await d.sink.land(self.job.overwrite)
        except DifpipeError as err:
            await self.rejected(d, err)
            return
        d.result.resumed_from = start
        self._done(d, end, dest_digest)

    def _done(self, d: Dest, size: int, digest: str | None) -> None:
        """Record and announce a destination that landed."""
        d.result.status, d.result.bytes, d.result.digest = "done", size, digest
        d.result.error, d.result.exit_code = None, 0
        self.bus.publish(
            TransferDestinationDone(
                transfer_id=self.id,
                destination=d.plan.label,
                status="done",
                bytes=size,
                digest=digest,
            )
        )

    # -- --parallel ----------------------------------------------------------------------------

    async def land_ranges(
        self,
        live: list[Dest],
        failed: list[DifpipeError | None],
        hashing: asyncio.Task[str | None] | None,
        size: int,
        *,
        continued: Collection[int] = (),
    ) -> list[tuple[Dest, str]]:
        """Settle ``--parallel``'s destinations once their ranges are written: ``failed``
        holds each one's first range error, ``hashing`` the source's whole-file digest.

        ``continued``: the ids of those whose ranges continued an earlier run's part file.
        One of them whose digest is not the source's does not land: its part file and
        checkpoint go, and it is returned with why, to be copied again from byte 0 (with
        ``--fail-fast`` every destination is, as none may land alone). Any other error keeps
        the part file and checkpoint for a retry, unless it is one of verification."""
        if self.job.fail_fast and any(failed):  # nothing lands when one destination failed
            for k, err in enumerate(failed):
                if err is not None:
                    live[k].error = err
            cause = next(d for d, err in zip(live, failed, strict=True) if err is not None)
            failed = [err or self.stopped_by(cause) for err in failed]
        written = [d for d, err in zip(live, failed, strict=True) if err is None]
        expected, digests = None, {}
        if hashing is not None and not written:
            hashing.cancel()
            await asyncio.gather(hashing, return_exceptions=True)
        elif hashing is not None:
            # it hashed while the ranges moved (hashing outruns any link): with its digest
            # each remote destination hashes and lands in one command; with --fail-fast
            # they only hash, and land once every digest matched
            expected = await hashing
            combined = None if self.job.fail_fast else expected
            checks = await asyncio.gather(*(self._whole_digest(d, combined) for d in written))
            digests = dict(zip(map(id, written), checks, strict=True))
        if self.job.fail_fast and written:
            rejected = {id(d): self._whole_check(d, expected, digests.get(id(d))) for d in written}
            wrong = [d for d in written if _wrong(rejected[id(d)], id(d), continued)]
            if wrong:
                return [await self._again(d, d in wrong) for d in written]
            cause = next((d for d in written if rejected[id(d)] is not None), None)
            if cause is not None:
                cause.error = rejected[id(cause)]
                failed = [
                    err or rejected.get(id(d)) or self.stopped_by(cause)
                    for d, err in zip(live, failed, strict=True)
                ]
                written = []
        landed = await asyncio.gather(
            *(self._land_whole(d, expected, digests.get(id(d)), size) for d in written)
        )
        outcome = dict(zip(map(id, written), landed, strict=True))
        again = []
        for d, err in zip(live, failed, strict=True):
            late = outcome.get(id(d))  # its whole-file check's error, or its rename's
            if err is None and _wrong(late, id(d), continued):
                again.append(await self._again(d, True))
            elif (err := err or late) is not None:
                await self.rejected(d, err)
        return again

    async def _again(self, d: Dest, wrong: bool) -> tuple[Dest, str]:
        """``d`` is copied again from byte 0: its continued part file proved ``wrong`` (then
        it goes, with its checkpoint), or another destination's did."""
        if wrong:
            await self.discard(d)
            self.store.delete_checkpoint(self.id, d.plan.label)
        return d, parresume.DIGEST if wrong else parresume.OTHERS

    async def _whole_digest(self, d: Dest, expected: str | None = None) -> WholeDigest:
        """The destination's digest of its whole file; with the source's ``expected`` digest a
        remote destination also lands the file when they match: (digest, landed)."""
        assert d.sink is not None
        try:
            if expected is not None and isinstance(d.sink, RemoteSink):
                return await par.digest_and_land(
                    d.sink, expected, self.job.overwrite, self.job.verify
                )
            return await d.sink.full_digest(self.job.verify)
        except DifpipeError as err:
            return err

    def _whole_check(
        self, d: Dest, expected: str | None, digest: WholeDigest
    ) -> DifpipeError | None:
        """Why a destination's whole-file digest rules out landing it, if it does."""
        if isinstance(digest, tuple):
            digest = digest[0]
        if isinstance(digest, DifpipeError):
            return digest
        if expected is not None and digest is not None:
            try:
                compare(expected, digest, what=d.plan.label, algo=self.job.verify)
            except DifpipeError as err:
                return err
        return None

    async def _land_whole(
        self, d: Dest, expected: str | None, digest: WholeDigest, size: int
    ) -> DifpipeError | None:
        assert d.sink is not None
        landed = False
        if isinstance(digest, tuple):
            digest, landed = digest
        try:
            if isinstance(digest, DifpipeError):
                raise digest
            if expected is None:
                digest = None
            elif digest is not None:
                compare(expected, digest, what=d.plan.label, algo=self.job.verify)
            if not landed:
                await d.sink.land(self.job.overwrite)
        except DifpipeError as err:
            return err
        self._done(d, size, digest or expected)
        return None


def _wrong(err: DifpipeError | None, key: int, continued: Collection[int]) -> bool:
    """Whether ``err`` is a continued part file's digest that is not the source's."""
    return isinstance(err, VerifyError) and key in continued
