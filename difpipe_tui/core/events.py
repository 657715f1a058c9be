"""Typed engine events and the small pub/sub bus every part of DifPipe publishes to.

The bus never blocks the publisher: callback subscribers run inline and must be quick (their
exceptions are logged and swallowed), queue subscribers get a bounded :class:`asyncio.Queue`
from which the oldest event is dropped when the consumer falls behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event. ``kind`` is a stable dotted name used in logs, NDJSON and filters."""

    kind: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time)

    @property
    def host(self) -> str | None:
        return getattr(self, "host_name", None)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["kind"] = self.kind
        return data


@dataclass(frozen=True, kw_only=True)
class ConnectionOpened(Event):
    kind: ClassVar[str] = "connection.opened"
    host_name: str
    via: tuple[str, ...] = ()
    auth_method: str | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, kw_only=True)
class ConnectionLost(Event):
    kind: ClassVar[str] = "connection.lost"
    host_name: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ConnectionRetry(Event):
    kind: ClassVar[str] = "connection.retry"
    host_name: str
    attempt: int
    delay: float
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ConnectionRestored(Event):
    kind: ClassVar[str] = "connection.restored"
    host_name: str
    attempts: int = 1


@dataclass(frozen=True, kw_only=True)
class ConnectionFailed(Event):
    kind: ClassVar[str] = "connection.failed"
    host_name: str
    error: str
    exit_code: int
    retryable: bool


@dataclass(frozen=True, kw_only=True)
class HostKeyAccepted(Event):
    kind: ClassVar[str] = "hostkey.accepted"
    host_name: str
    fingerprint: str
    known_hosts: str


@dataclass(frozen=True, kw_only=True)
class HostChecked(Event):
    kind: ClassVar[str] = "host.checked"
    host_name: str
    reachable: bool
    latency_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class RemoteCommandFinished(Event):
    kind: ClassVar[str] = "remote.command"
    host_name: str
    command: str
    exit_status: int | None
    duration_ms: float


@dataclass(frozen=True, kw_only=True)
class TransferStarted(Event):
    kind: ClassVar[str] = "transfer.start"
    transfer_id: str
    source: str
    destinations: tuple[str, ...]
    total: int | None
    strategy: str
    codec: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class TransferResumed(Event):
    kind: ClassVar[str] = "transfer.resume"
    transfer_id: str
    destination: str
    offset: int
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class TransferProgress(Event):
    kind: ClassVar[str] = "transfer.progress"
    transfer_id: str
    destination: str
    bytes: int
    total: int | None
    rate: float  # bytes per second, smoothed
    eta: float | None  # seconds


@dataclass(frozen=True, kw_only=True)
class TransferCheckpoint(Event):
    kind: ClassVar[str] = "transfer.checkpoint"
    transfer_id: str
    destination: str
    offset: int


@dataclass(frozen=True, kw_only=True)
class TransferRetry(Event):
    kind: ClassVar[str] = "transfer.retry"
    transfer_id: str
    attempt: int
    delay: float
    reason: str


@dataclass(frozen=True, kw_only=True)
class TransferPaused(Event):
    kind: ClassVar[str] = "transfer.paused"
    transfer_id: str
    paused: bool


@dataclass(frozen=True, kw_only=True)
class TransferDestinationDone(Event):
    kind: ClassVar[str] = "transfer.destination"
    transfer_id: str
    destination: str
    status: str  # done | failed
    bytes: int
    digest: str | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class TransferFinished(Event):
    kind: ClassVar[str] = "transfer.done"
    transfer_id: str
    status: str  # done | partial | failed | interrupted
    bytes: int
    seconds: float
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConfigReloaded(Event):
    """The engine now runs on a changed config (a host added, edited, removed or imported)."""

    kind: ClassVar[str] = "config.reloaded"
    hosts: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ConfigRejected(Event):
    """The config file changed but does not load: the engine keeps running on the config it
    has until the file loads again (then :class:`ConfigReloaded`)."""

    kind: ClassVar[str] = "config.rejected"
    path: str
    error: str


Subscriber = Callable[[Event], None]


class EventBus:
    """Fan events out to every subscriber without ever blocking the publisher."""

    def __init__(self) -> None:
        self._callbacks: list[Subscriber] = []
        self._queues: list[tuple[asyncio.Queue[Event], asyncio.AbstractEventLoop]] = []
        self.dropped = 0

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every event. Returns a function that unsubscribes."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def queue(self, maxsize: int = 1000) -> asyncio.Queue[Event]:
        """A bounded queue of future events on the running loop; the oldest are dropped first."""
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self._queues.append((q, asyncio.get_running_loop()))
        return q

    def unsubscribe_queue(self, q: asyncio.Queue[Event]) -> None:
        self._queues = [(qq, lp) for qq, lp in self._queues if qq is not q]

    def publish(self, event: Event) -> None:
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", callback, event.kind)
        for q, loop in list(self._queues):
            if loop.is_closed():
                self.unsubscribe_queue(q)
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._put(q, event)
            else:
                loop.call_soon_threadsafe(self._put, q, event)

    def _put(self, q: asyncio.Queue[Event], event: Event) -> None:
        while True:
            try:
                q.put_nowait(event)
                return
            except asyncio.QueueFull:
                try:
                    q.get_nowait()
                    self.dropped += 1
                except asyncio.QueueEmpty:
                    pass
