"""One unfinished transfer and its checkpoints: the data the Checkpoints screen lists, read
from the store, and the modal that shows all of it (``enter`` on a row).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..core.store import Checkpoint, Store, TransferRecord, TransferStatus
from ..render import human_bytes
from ..widgets import badge
from ..widgets.keys import key_hint

# the job fields the modal lists after source and destinations, in this order
JOB_FIELDS = (
    "recursive",
    "strategy",
    "compress",
    "level",
    "verify",
    "checkpoint_interval",
    "retries",
    "fail_fast",
    "rate_limit",
    "parallel",
    "buffer",
    "encrypt",
    "overwrite",
)
SIZES = ("checkpoint_interval", "buffer")
NO_DIGEST = "none recorded (a resume compares both ends)"
LABEL_WIDTH = len("prefix digest")
LABELS = {"checkpoint_interval": "checkpoints"}


@dataclass(frozen=True)
class Unfinished:
    """A transfer that is not done, with the checkpoint of each destination that has one."""

    record: TransferRecord
    checkpoints: dict[str, Checkpoint]

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def destinations(self) -> list[str]:
        """The job's destinations, then any other that has a checkpoint."""
        known = list(self.record.destinations)
        return known + [d for d in self.checkpoints if d not in known]

    def total(self, destination: str) -> int | None:
        cp = self.checkpoints.get(destination)
        return cp.total if cp is not None and cp.total is not None else self.record.total_bytes

    def updated(self, destination: str) -> float:
        cp = self.checkpoints.get(destination)
        return cp.updated_at if cp is not None else self.record.updated_at


def load_unfinished(store: Store, limit: int = 1000) -> list[Unfinished]:
    """Every transfer that is not done, newest first (call it on the engine thread)."""
    statuses = [s for s in TransferStatus if s is not TransferStatus.DONE]
    return [
        Unfinished(rec, {cp.destination: cp for cp in store.get_checkpoints(rec.id)})
        for rec in store.list_transfers(status=statuses, limit=limit)
    ]


def age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def done_text(offset: int, total: int | None) -> str:
    """``8.0 MiB / 24.0 MiB 33%``; without a total, the offset alone."""
    if total:
        return f"{human_bytes(offset)} / {human_bytes(total)} {100 * offset / total:.0f}%"
    return human_bytes(offset)


def stamp(ts: float, now: float) -> str:
    """A date and time in the local zone, and how long ago."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    return f"{when} ({age(now - ts)} ago)"


def _job_value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "checkpoint_interval" and isinstance(value, int):
        return f"every {human_bytes(value)}"
    if key in SIZES and isinstance(value, int):
        return human_bytes(value)
    if key == "rate_limit" and isinstance(value, int | float):
        return f"{human_bytes(int(value))}/s"
    return str(value)


class CheckpointDetail(ModalScreen[None]):
    DEFAULT_CSS = """
    CheckpointDetail { align: center middle; }
    CheckpointDetail > VerticalScroll {
        width: 100; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape,enter,q", "dismiss", "Close", id="checkpoint.close"),
    ]

    def __init__(self, item: Unfinished, now: float):
        super().__init__()
        self.item = item
        self.now = now

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = f"Transfer {self.item.id}"
            box.border_subtitle = f"{key_hint(self, 'checkpoint.close', first=True)} closes"
            yield Static(self._summary(), id="detail-transfer")
            yield Static(self._job(), id="detail-job")
            for n, dest in enumerate(self.item.destinations):
                yield Static(self._destination(dest), id=f"detail-dest-{n}")

    def _grid(self, title: str) -> Table:
        table = Table.grid(padding=(0, 2))
        table.title = title
        table.title_justify = "left"
        table.title_style = "bold"
        table.add_column(style="italic", no_wrap=True, min_width=LABEL_WIDTH)
        table.add_column(overflow="fold")
        return table

    def _summary(self) -> Table:
        rec = self.item.record
        table = self._grid("")
        table.title = None
        table.add_row("status", badge(str(rec.status)))
        table.add_row("source", Text(rec.source))
        table.add_row("size", human_bytes(rec.total_bytes))
        table.add_row("created", stamp(rec.created_at, self.now))
        table.add_row("updated", stamp(rec.updated_at, self.now))
        table.add_row("last error", Text(rec.error or "-", style="bold" if rec.error else ""))
        return table

    def _job(self) -> Table:
        spec = self.item.record.spec
        table = self._grid("\nJob")
        table.add_row("destinations", Text("\n".join(self.item.record.destinations)))
        for key in JOB_FIELDS:
            if key in spec and spec[key] is not None:
                label = LABELS.get(key, key.replace("_", " "))
                table.add_row(label, _job_value(key, spec[key]))
        return table

    def _destination(self, dest: str) -> Table:
        table = self._grid(f"\n→ {dest}")
        cp = self.item.checkpoints.get(dest)
        if cp is None:
            table.add_row("checkpoint", "none: a resume starts this destination over")
            return table
        table.add_row("checkpoint", done_text(cp.offset, self.item.total(dest)))
        table.add_row("offset", f"{cp.offset} bytes")
        digest = f"{cp.digest_algo} {cp.prefix_digest}" if cp.prefix_digest else NO_DIGEST
        table.add_row("prefix digest", Text(digest))
        table.add_row("saved", stamp(cp.updated_at, self.now))
        return table
