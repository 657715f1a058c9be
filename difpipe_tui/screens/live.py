"""Live state folded from engine events: hosts up or down, transfers and their rates.

No Textual here: screens feed events in and render what comes out, so the Hosts and Transfers
screens can share the same folding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import events as ev
from ..core.config import Config
from ..core.store import HostStatus


@dataclass
class HostView:
    name: str
    role: str
    state: str = "unknown"  # up | down | unknown
    latency_ms: float | None = None
    checked_at: float | None = None
    error: str | None = None


@dataclass
class TransferView:
    id: str
    source: str
    destinations: tuple[str, ...]
    total: int | None
    status: str = "running"
    bytes: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    started: float = 0.0

    @property
    def done_bytes(self) -> int:
        return min(self.bytes.values(), default=0)

    @property
    def rate(self) -> float:
        """Bytes per second written to all destinations together, while running."""
        return sum(self.rates.values()) if self.status == "running" else 0.0


class HostsLive:
    """Every configured host with its last known state: the store's last check, then events."""

    def __init__(self, config: Config):
        self.hosts = {n: HostView(n, h.role) for n, h in config.hosts.items()}

    def load(self, statuses: dict[str, HostStatus]) -> None:
        for name, view in self.hosts.items():
            status = statuses.get(name)
            if status is not None:
                view.state = "up" if status.reachable else "down"
                view.latency_ms = status.latency_ms
                view.checked_at = status.checked_at
                view.error = status.last_error

    def apply(self, event: ev.Event) -> bool:
        """Fold one event in; True when it changed a host."""
        view = self.hosts.get(event.host or "")
        if view is None:
            return False
        match event:
            case ev.HostChecked():
                view.state = "up" if event.reachable else "down"
                view.latency_ms = event.latency_ms
                view.checked_at = event.ts
                view.error = event.error
            case ev.ConnectionOpened() | ev.ConnectionRestored():
                view.state, view.error = "up", None
                view.checked_at = event.ts
            case ev.ConnectionLost():
                view.state, view.error = "down", event.reason or "connection lost"
                view.checked_at = event.ts
            case ev.ConnectionFailed():
                view.state, view.error = "down", event.error
                view.checked_at = event.ts
            case _:
                return False
        return True

    def count(self, state: str) -> int:
        return sum(1 for v in self.hosts.values() if v.state == state)


class TransfersLive:
    """Transfers seen on the bus since the console started; the finished ones are kept last."""

    def __init__(self, keep_finished: int = 20):
        self.transfers: dict[str, TransferView] = {}
        self.keep_finished = keep_finished

    def apply(self, event: ev.Event) -> bool:
        match event:
            case ev.TransferStarted():
                self.transfers[event.transfer_id] = TransferView(
                    event.transfer_id,
                    event.source,
                    event.destinations,
                    event.total,
                    started=event.ts,
                )
            case ev.TransferProgress() if event.transfer_id in self.transfers:
                view = self.transfers[event.transfer_id]
                view.bytes[event.destination] = event.bytes
                view.rates[event.destination] = event.rate
                view.total = event.total if event.total is not None else view.total
            case ev.TransferPaused() if event.transfer_id in self.transfers:
                self.transfers[event.transfer_id].status = "paused" if event.paused else "running"
            case ev.TransferFinished() if event.transfer_id in self.transfers:
                view = self.transfers[event.transfer_id]
                view.status, view.rates = event.status, {}
                self._trim()
            case _:
                return False
        return True

    def _trim(self) -> None:
        finished = [t for t in self.transfers.values() if t.status not in ("running", "paused")]
        for view in finished[: max(0, len(finished) - self.keep_finished)]:
            del self.transfers[view.id]

    @property
    def running(self) -> list[TransferView]:
        return [t for t in self.transfers.values() if t.status in ("running", "paused")]

    @property
    def rate(self) -> float:
        return sum(t.rate for t in self.transfers.values())
