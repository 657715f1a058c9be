"""The transfers the console started, owned by the engine bridge rather than by any screen.

A screen that starts a transfer hands it to :class:`RunningTransfers` (through
:meth:`EngineBridge.start_transfer <difpipe_tui.bridge.EngineBridge.start_transfer>`), so
leaving or closing that screen never stops it. Everything here runs on the engine thread.

- :meth:`RunningTransfers.start` starts a job and keeps its handle until the transfer ends;
  its :class:`CopyResult` stays in :attr:`RunningTransfers.results`.
- :meth:`RunningTransfers.running` says which run now, their ends and whether paused.
- :meth:`RunningTransfers.stop_all` asks every running transfer to stop (each saves a
  checkpoint) and waits for them: the bridge calls it before it closes the pools.
- :meth:`RunningTransfers.retire` keeps the pools of a replaced config open while transfers
  started on them still run.

No Textual here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .core.errors import DifpipeError, UsageError
from .core.events import EventBus, TransferFinished

if TYPE_CHECKING:
    from .core.ssh import SSHPool
    from .core.transfer.engine import TransferEngine, TransferHandle
    from .core.transfer.job import CopyJob, CopyResult

KEEP_RESULTS = 100


@dataclass(frozen=True)
class Running:
    """A transfer running now: its id, its ends, whether it is paused."""

    id: str
    source: str
    destinations: tuple[str, ...]
    paused: bool

    @property
    def route(self) -> str:
        return f"{self.source} → {', '.join(self.destinations)}"


class RunningTransfers:
    def __init__(self, bus: EventBus):
        self.bus = bus
        self.handles: dict[str, TransferHandle] = {}
        self.jobs: dict[str, CopyJob] = {}
        self.results: OrderedDict[str, CopyResult] = OrderedDict()
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._retired: list[SSHPool] = []

    async def start(
        self, engine: TransferEngine, job: CopyJob, *, resume_id: str | None = None
    ) -> str:
        """Start ``job`` (or continue the transfer ``resume_id`` from its checkpoints); returns
        its transfer id once its first event is on the bus."""
        handle = await engine.start(job, resume_id=resume_id)
        self.handles[handle.id] = handle
        self.jobs[handle.id] = job
        self._watchers[handle.id] = asyncio.create_task(
            self._watch(handle), name=f"watch transfer {handle.id}"
        )
        return handle.id

    def handle(self, transfer_id: str) -> TransferHandle:
        handle = self.handles.get(transfer_id)
        if handle is None:
            state = "finished" if transfer_id in self.results else "not started here"
            raise UsageError(
                f"transfer {transfer_id} is not running ({state})",
                hint="resume an interrupted transfer from the Checkpoints screen",
            )
        return handle

    async def running(self) -> list[Running]:
        """The transfers running now, oldest first."""
        return [
            Running(tid, self.jobs[tid].source, tuple(self.jobs[tid].destinations), h.paused)
            for tid, h in self.handles.items()
            if tid in self.jobs
        ]

    async def _watch(self, handle: TransferHandle) -> None:
        try:
            result = await handle.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as err:  # a bug in the engine: say so, never leave it "running"
            text = err.render() if isinstance(err, DifpipeError) else f"{type(err).__name__}: {err}"
            self.bus.publish(
                TransferFinished(
                    transfer_id=handle.id, status="failed", bytes=0, seconds=0.0, error=text
                )
            )
        else:
            self.results[handle.id] = result
            while len(self.results) > KEEP_RESULTS:
                self.results.popitem(last=False)
        finally:
            self.handles.pop(handle.id, None)
            self.jobs.pop(handle.id, None)
            self._watchers.pop(handle.id, None)
            if not self.handles and self._retired:
                retired, self._retired = self._retired, []
                await asyncio.gather(*(p.close() for p in retired), return_exceptions=True)

    def retire(self, pools: list[SSHPool]) -> list[SSHPool]:
        """Pools replaced by a new config: those to close now (none while transfers run on
        them; they are closed when the last running transfer ends)."""
        if self.handles:
            self._retired.extend(pools)
            return []
        return pools

    async def stop_all(self, timeout: float) -> None:
        """Stop every running transfer the way Ctrl-C stops ``difpipe copy``: each saves a
        checkpoint. Waits up to ``timeout`` seconds for them."""
        for handle in list(self.handles.values()):
            handle.cancel("interrupted")
        watchers = list(self._watchers.values())
        if watchers:
            await asyncio.wait(watchers, timeout=timeout)
        for pool in self._retired:
            with contextlib.suppress(Exception):
                await pool.close(timeout)
        self._retired = []
