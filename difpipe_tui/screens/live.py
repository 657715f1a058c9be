"""Live state folded from engine events: hosts up or down, transfers and their rates.

No Textual here: screens feed events in and render what comes out, so the Hosts and Transfers
screens can share the same folding.
"""

from __future__ import annotations

from collections import deque
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


HISTORY = 30  # rate samples kept per transfer, for its sparkline


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
    strategy: str = ""
    codec: str = ""
    reason: str = ""  # why this codec
    etas: dict[str, float | None] = field(default_factory=dict)
    dest_status: dict[str, str] = field(default_factory=dict)  # running | done | failed | ...
    digests: dict[str, str | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    checkpoints: dict[str, int] = field(default_factory=dict)
    resumed: dict[str, int] = field(default_factory=dict)
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    retries: int = 0
    seconds: float | None = None  # once finished
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status not in ("running", "paused")

    @property
    def eta(self) -> float | None:
        """Seconds until the slowest destination is done, while running."""
        if self.finished:
            return None
        etas = [self.etas.get(d) for d in self.destinations if self.dest_state(d) == "running"]
        known = [e for e in etas if e is not None]
        return max(known) if known and len(known) == len(etas) else None

    def dest_state(self, dest: str) -> str:
        state = self.dest_status.get(dest, "running")
        return "paused" if state == "running" and self.status == "paused" else state

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
                    strategy=event.strategy,
                    codec=event.codec,
                    reason=event.reason,
                    dest_status=dict.fromkeys(event.destinations, "running"),
                )
            case ev.TransferProgress() if event.transfer_id in self.transfers:
                view = self.transfers[event.transfer_id]
                view.bytes[event.destination] = event.bytes
                view.rates[event.destination] = event.rate
                view.etas[event.destination] = event.eta
                view.total = event.total if event.total is not None else view.total
                view.history.append(sum(view.rates.values()))
            case ev.TransferResumed() if event.transfer_id in self.transfers:
                view = self.transfers[event.transfer_id]
                view.resumed[event.destination] = event.offset
                view.bytes[event.destination] = event.offset
            case ev.TransferCheckpoint() if event.transfer_id in self.transfers:
                self.transfers[event.transfer_id].checkpoints[event.destination] = event.offset
            case ev.TransferRetry() if event.transfer_id in self.transfers:
                self.transfers[event.transfer_id].retries = event.attempt
            case ev.TransferDestinationDone() if event.transfer_id in self.transfers:
                view = self.transfers[event.transfer_id]
                view.dest_status[event.destination] = event.status
                view.bytes[event.destination] = event.bytes
                view.rates.pop(event.destination, None)
                view.etas.pop(event.destination, None)
                if event.digest:
                    view.digests[event.destination] = event.digest
                if event.error:
                    view.errors[event.destination] = event.error
            case ev.TransferPaused() if event.transfer_id in self.transfers:
                self.transfers[event.transfer_id].status = "paused" if event.paused else "running"
            case ev.TransferFinished() if event.transfer_id in self.transfers:
                view = self.transfers[event.transfer_id]
                view.status, view.rates, view.etas = event.status, {}, {}
                view.seconds, view.error = event.seconds, event.error
                left = "interrupted" if event.status == "interrupted" else "failed"
                for dest, state in view.dest_status.items():
                    if state == "running":
                        view.dest_status[dest] = left
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
