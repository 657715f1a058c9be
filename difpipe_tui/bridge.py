"""The engine's asyncio loop in a worker thread, for the console.

:class:`EngineBridge` owns the config (and its path), the SSH pools, the store, the event bus
and the transfer engine, all created and used on one daemon thread running its own event loop,
so SSH, crypto and compression never run on the UI thread. The UI hands work over with
:meth:`EngineBridge.submit` (a :class:`concurrent.futures.Future`) or awaits it with
:meth:`EngineBridge.call`; bus subscribers registered with :meth:`EngineBridge.subscribe` are
called on the engine thread and must hand events on (``App.post_message`` is thread-safe).

The bridge watches the config file: when it changes under the console (``difpipe hosts add``,
another console, an editor), the engine reloads it and every screen hears ``ConfigReloaded``.

This module imports no Textual: it is the console's side of the engine, testable alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import itertools
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .core import config as cfg
from .core import paths
from .core.errors import DifpipeError, LocalIOError, UsageError
from .core.events import ConfigRejected, ConfigReloaded, Event, EventBus, Subscriber
from .core.hostcheck import HostCheckResult, check_hosts, record
from .core.store import HostStatus, Store
from .running import RunningTransfers

if TYPE_CHECKING:
    from .core.ssh import SSHPool
    from .core.transfer.engine import TransferEngine
    from .core.transfer.job import CopyJob, CopyResult
    from .core.transfer.plan import Plan

T = TypeVar("T")
WATCH_SECONDS = 1.0  # how often the config file's size and time are looked at
Work = Coroutine[Any, Any, T] | Callable[..., Awaitable[T]]


@dataclasses.dataclass(frozen=True)
class Locations:
    """Where the console reads its config and keeps its state."""

    config: Path
    store: Path
    known_hosts: Path

    @classmethod
    def resolve(cls, config_path: str | Path | None = None, home: str | Path | None = None):
        """``home`` works like ``DIFPIPE_HOME``: ``home/difpipe.toml`` and ``home/state/``."""
        if home is not None:
            base = Path(home).expanduser()
            state = base / "state"
            config = Path(config_path).expanduser() if config_path else base / "difpipe.toml"
            return cls(config, state / "state.db", state / "known_hosts")
        return cls(paths.config_path(config_path), paths.state_db_path(), paths.known_hosts_path())


class EngineBridge:
    """The engine on its own thread. Create it, use it, :meth:`close` it (idempotent).

    The constructor loads the config (raising :class:`~difpipe_tui.core.errors.ConfigError`
    before any thread starts) and opens the store on the engine thread. The SSH pools and the
    transfer engine (asyncssh, cryptography) are built on first use, so the console paints its
    first screen without waiting for them.
    """

    def __init__(self, config_path: str | Path | None = None, *, home: str | Path | None = None):
        self.locations = Locations.resolve(config_path, home)
        self.config: cfg.Config = cfg.load_config(self.locations.config)
        self.bus = EventBus()
        self.transfers = RunningTransfers(self.bus)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="difpipe-engine", daemon=True)
        self._closed = False
        self._resuming: set[str] = set()  # transfer ids between a resume request and its start
        self._pool: SSHPool | None = None
        self._check_pool: SSHPool | None = None
        self._engine: TransferEngine | None = None
        self._thread.start()
        try:
            self.submit(self._open).result()
        except BaseException:
            self.close()
            raise

    # -- engine-thread state (touch only from coroutines run on the bridge) ------------------

    store: Store

    @property
    def pool(self) -> SSHPool:
        if self._pool is None:
            self._build_engine()
        assert self._pool is not None
        return self._pool

    @property
    def check_pool(self) -> SSHPool:
        if self._check_pool is None:
            self._build_engine()
        assert self._check_pool is not None
        return self._check_pool

    @property
    def engine(self) -> TransferEngine:
        if self._engine is None:
            self._build_engine()
        assert self._engine is not None
        return self._engine

    @property
    def config_path(self) -> Path:
        return self.locations.config

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _open(self) -> None:
        self.store = Store.open(self.locations.store)
        self._build(self.config)
        self._config_stamp = self._stamp()
        self._watcher = asyncio.create_task(self._watch_config(), name="watch the config")

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.config_path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    async def _watch_config(self) -> None:
        """Reload the config when its file changes; a file that does not load (half written,
        or wrong) is reported with :class:`ConfigRejected` and the running config kept."""
        rejected = False
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            stamp = self._stamp()
            if stamp == self._config_stamp:
                continue
            self._config_stamp = stamp
            try:
                new = cfg.load_config(self.config_path)
            except DifpipeError as err:
                rejected = True
                self.bus.publish(ConfigRejected(path=str(self.config_path), error=err.render()))
                continue
            if new != self.config or rejected:  # the console's own saves are loaded already
                rejected = False
                await self.reload_config(new)

    def _build(self, config: cfg.Config) -> None:
        """Use ``config``; the pools and the engine are built for it when next needed."""
        self.config = config
        self._pool = self._check_pool = self._engine = None

    def _build_engine(self) -> None:
        from .core.ssh import NO_RETRY, SSHPool
        from .core.transfer.engine import TransferEngine

        config, known = self.config, self.locations.known_hosts
        pool = SSHPool(config, bus=self.bus, known_hosts_file=known)
        # a check answers now or says why not: no retries, like ``difpipe hosts check``
        check = SSHPool(config, bus=self.bus, retry=NO_RETRY, known_hosts_file=known)
        self._engine = TransferEngine(config, pool=pool, store=self.store, bus=self.bus)
        self._pool, self._check_pool = pool, check

    # -- the API for the UI thread ------------------------------------------------------------

    def submit(self, work: Work[T], *args: Any, **kw: Any) -> concurrent.futures.Future[T]:
        """Run a coroutine (or a coroutine function with ``args``) on the engine loop."""
        coro = work(*args, **kw) if callable(work) else work
        if self._closed:
            coro.close()
            raise RuntimeError("the engine bridge is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, work: Work[T], *args: Any, **kw: Any) -> asyncio.Future[T]:
        """:meth:`submit`, awaitable from the caller's running loop; cancelling it cancels the
        work on the engine loop."""
        return asyncio.wrap_future(self.submit(work, *args, **kw))

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every bus event, on the thread that published it (the
        engine thread). Returns the function that unsubscribes."""
        return self.bus.subscribe(callback)

    def publish(self, event: Event) -> None:
        """Publish on the bus from any thread; subscribers run on the engine thread."""
        self.loop.call_soon_threadsafe(self.bus.publish, event)

    # -- engine-side operations (coroutines: pass them to submit / call) -----------------------

    async def host_statuses(self) -> dict[str, HostStatus]:
        """The last recorded check of every host, by name."""
        return {s.host: s for s in self.store.list_host_status()}

    async def check_hosts(self, names: Iterable[str] | None = None) -> list[HostCheckResult]:
        """Check hosts (default: all) at once and record each result in the store."""
        wanted = list(names) if names is not None else list(self.config.hosts)
        results = await check_hosts(self.check_pool, wanted)
        record(self.store, results)
        return results

    async def reload_config(self, config: cfg.Config | None = None) -> cfg.Config:
        """Use ``config`` (default: the file as it is now): the pools and the engine are
        rebuilt, connections to the old hosts closed (once no running transfer uses them),
        and :class:`~difpipe_tui.core.events.ConfigReloaded` published for every screen."""
        new = config if config is not None else cfg.load_config(self.config_path)
        old_pool, old_check = self._pool, self._check_pool
        self._build(new)
        self.bus.publish(ConfigReloaded(hosts=tuple(new.hosts)))
        # running transfers keep the pool they started on until they end
        retired = self.transfers.retire([old_pool]) if old_pool is not None else []
        closing = [p for p in (old_check, *retired) if p is not None]
        await asyncio.gather(*(p.close() for p in closing), return_exceptions=True)
        return new

    async def save_ui(self, **changes: Any) -> cfg.Config:
        """Change ``[ui]`` settings in the config file (read anew, written atomically, every
        other entry kept) and in the running config."""
        current = cfg.load_config(self.config_path)
        saved = dataclasses.replace(current, ui=dataclasses.replace(current.ui, **changes))
        cfg.save_config(saved, self.config_path)
        self.config = dataclasses.replace(self.config, ui=saved.ui)
        return saved

    async def save_host(self, host: cfg.Host) -> cfg.Config:
        """Add or replace one host in the config file (read anew, written atomically, every
        other entry kept) and reload the engine with the result."""
        return await self.reload_config(cfg.upsert_host(host, self.config_path))

    async def remove_host(self, name: str) -> cfg.Config:
        """Remove one host from the config file (refused while another jumps through it) and
        its last check from the store."""
        config = await self.reload_config(cfg.remove_host(name, self.config_path))
        self.store.delete_host_status(name)
        return config

    async def read_ssh_config(self, path: str) -> tuple[list[cfg.Host], list[str]]:
        """The hosts an ssh_config file describes and the import's messages; nothing is saved."""
        try:
            text = Path(path).expanduser().read_text()
        except OSError as err:
            raise LocalIOError(f"cannot read {path}: {err.strerror or err}") from err
        return cfg.import_ssh_config(text, source=path)

    async def import_hosts(self, hosts: Iterable[cfg.Host]) -> list[str]:
        """Add the hosts the config file does not have yet (those it has are kept as they are);
        the names added."""
        current = cfg.load_config(self.config_path)
        new = [h for h in hosts if h.name not in current.hosts]
        if new:
            await self.reload_config(cfg.upsert_hosts(new, self.config_path))
        return [h.name for h in new]

    # -- transfers: owned here, so that leaving a screen never stops one ----------------------

    async def analyze(self, job: CopyJob) -> Plan:
        """The plan of ``job`` without moving a byte (``difpipe analyze``)."""
        return await self.engine.analyze(job)

    async def start_transfer(self, job: CopyJob) -> str:
        """Start ``job``; returns its transfer id. It runs until it ends or is cancelled."""
        return await self.transfers.start(self.engine, job)

    async def pause_transfer(self, transfer_id: str) -> None:
        self.transfers.handle(transfer_id).pause()

    async def resume_transfer(self, transfer_id: str) -> None:
        self.transfers.handle(transfer_id).resume()

    async def cancel_transfer(self, transfer_id: str) -> None:
        """Stop a transfer; it saves a checkpoint to resume from."""
        self.transfers.handle(transfer_id).cancel("interrupted")

    async def transfer_result(self, transfer_id: str) -> CopyResult | None:
        """The result of a transfer this console ran, once it has ended."""
        return self.transfers.results.get(transfer_id)

    # -- checkpoints: unfinished transfers ------------------------------------------------------

    async def resume_from_checkpoint(self, transfer_id: str) -> str:
        """Continue an unfinished transfer from its checkpoints, with its stored job, like
        ``difpipe checkpoints resume ID``; it then runs like one :meth:`start_transfer` began."""
        self._refuse_running(transfer_id, "resume")
        job = self.engine.job_for_resume(transfer_id)
        if job.source == "-" or "-" in job.destinations:
            raise UsageError(
                f"transfer {transfer_id} reads stdin or writes stdout; the console has neither",
                hint=f"resume it in a shell: difpipe copy --resume {transfer_id}",
            )
        self._resuming.add(transfer_id)
        try:
            return await self.transfers.start(self.engine, job, resume_id=transfer_id)
        finally:
            self._resuming.discard(transfer_id)

    async def delete_transfer(self, transfer_id: str) -> bool:
        """Forget a transfer and its checkpoints (part files stay); whether it existed."""
        self._refuse_running(transfer_id, "delete")
        return self.store.delete_transfer(transfer_id)

    def _refuse_running(self, transfer_id: str, verb: str) -> None:
        if transfer_id in self.transfers.handles or transfer_id in self._resuming:
            raise UsageError(
                f"cannot {verb} transfer {transfer_id}: it is starting or running",
                hint="cancel it on the Transfers screen first",
            )

    # -- shutdown -------------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop running transfers (each saves a checkpoint), cancel other work, close the
        pools and the store, stop and join the thread."""
        if self._closed:
            return
        self._closed = True
        if self.loop.is_running():
            done = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), self.loop)
            with contextlib.suppress(Exception):  # closing anyway: nothing to report it to
                done.result(timeout + 1.0)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()

    async def _shutdown(self, timeout: float) -> None:
        await self.transfers.stop_all(timeout / 2)
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout / 2)
        pools = [p for p in (self._pool, self._check_pool) if p is not None]
        await asyncio.gather(*(p.close(timeout / 2) for p in pools), return_exceptions=True)
        if hasattr(self, "store"):
            self.store.close()


class EventLog:
    """The console's memory of recent events: each gets a sequence number, the oldest go first.

    Screens remember the last number they showed and ask for what came :meth:`since`.
    """

    def __init__(self, maxlen: int = 2000):
        self._items: deque[tuple[int, Event]] = deque(maxlen=maxlen)
        self._seq = itertools.count(1)

    def extend(self, events: Iterable[Event]) -> None:
        for event in events:
            self._items.append((next(self._seq), event))

    def since(self, seq: int) -> list[tuple[int, Event]]:
        if not self._items or self._items[-1][0] <= seq:
            return []
        return [item for item in self._items if item[0] > seq]

    def latest(self, n: int) -> list[Event]:
        return [event for _, event in list(self._items)[-n:]]

    def __len__(self) -> int:
        return len(self._items)
