"""Transfers that are not done and their checkpoints: one row per destination with how far it
got, how long ago, and the start of its prefix digest.

``/`` filters, ``r`` resumes the selected transfer, ``enter`` inspects it, ``d`` deletes it
after a confirmation. The list is read again whenever a transfer starts, saves a checkpoint or
finishes (and every few seconds while shown, for copies run elsewhere), keeping the cursor and
the filter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import DataTable, Input, Label
from textual.worker import Worker, WorkerState

from ..core import events as ev
from ..widgets import FilterTable, Row, badge
from .base import FilteredScreen, ScreenCommand
from .checkpoint_detail import CheckpointDetail, Unfinished, age, done_text, load_unfinished
from .confirm import ConfirmScreen

if TYPE_CHECKING:
    from ..app import DifpipeApp

# events after which the stored transfers may have changed
CHANGES = (
    ev.TransferStarted,
    ev.TransferResumed,
    ev.TransferCheckpoint,
    ev.TransferDestinationDone,
    ev.TransferFinished,
)
READ = "read the checkpoints"
REFRESH_SECONDS = 5.0
FINAL = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)


class CheckpointsScreen(FilteredScreen):
    FILTER_TABLE = "#checkpoints"
    MUTATING = frozenset({"resume", "delete"})
    BINDINGS = [
        Binding("slash", "open_filter", "Filter", id="checkpoints.filter"),
        # before the table's own enter, so that the footer and ``?`` show it
        Binding("enter", "inspect", "Inspect", id="checkpoints.inspect", priority=True),
        Binding("r", "resume", "Resume", id="checkpoints.resume"),
        Binding("d", "delete", "Delete", id="checkpoints.delete"),
        Binding("escape", "escape", "Back", show=False, id="checkpoints.escape"),
    ]
    # where ages are measured from; tests fix it
    clock: ClassVar[Callable[[], float]] = staticmethod(time.time)

    def filter_changed(self) -> None:
        self._title()

    def __init__(self, **kw):
        super().__init__(**kw)
        self.items: dict[str, Unfinished] = {}
        self._reading = self._stale = False

    def compose(self) -> ComposeResult:
        yield self.header()
        yield FilterTable(
            "ID", "STATUS", "CHECKPOINT", "AGE", "DESTINATION", "PREFIX", "SOURCE", id="checkpoints"
        )
        yield Label("No unfinished transfers.", id="no-checkpoints")
        yield Input(placeholder="words to match   (enter keeps it, esc clears)", id="filter")
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self.query_one("#no-checkpoints").display = False
        self._title()
        self.set_interval(REFRESH_SECONDS, self._tick)

    def _tick(self) -> None:
        if self.is_current:  # copies run by other processes publish no events here
            self.reload()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()

    def on_events(self, events: list[ev.Event]) -> None:
        if any(isinstance(e, CHANGES) for e in events):
            self.reload()

    # -- reading -------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the store again; asked while a read runs, one more read follows it."""
        if self._reading:
            self._stale = True
            return
        self._reading, self._stale = True, False

        async def read() -> list[Unfinished]:
            return load_unfinished(self.bridge.store)

        self.run_engine(read, what=READ, then=self._show)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.name == READ and event.state in FINAL:
            self._reading = False
            if self._stale:
                self.reload()

    def _show(self, items: list[Unfinished]) -> None:
        self.items = {item.id: item for item in items}
        now = self.clock()
        table = self.query_one("#checkpoints", FilterTable)
        table.set_rows(row for item in items for row in _rows(item, now))
        table.display = bool(items)
        self.query_one("#no-checkpoints").display = not items
        self._title()

    def _title(self) -> None:
        table = self.query_one("#checkpoints", FilterTable)
        text = table.filter_text
        self.sub_title = (
            f"Checkpoints · {len(self.items)} unfinished"
            + (f" · filter: {text}" if text else "")
            + (" · read-only" if self.readonly else "")
        )

    def selected(self) -> Unfinished | None:
        row = self.query_one("#checkpoints", FilterTable).selected
        if row is None:
            self.notify("No transfer selected.", severity="warning")
            return None
        return self.items.get(row.data)

    # -- verbs ---------------------------------------------------------------------------

    def action_inspect(self) -> None:
        item = self.selected()
        if item is not None:
            self.inspect(item)

    def inspect(self, item: Unfinished) -> None:
        self.app.push_screen(CheckpointDetail(item, self.clock()))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # a click on the selected row
        self.action_inspect()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "inspect" and isinstance(self.focused, Input):
            return False  # enter in the filter box keeps the filter
        return super().check_action(action, parameters)

    def action_resume(self) -> None:
        item = self.selected()
        if item is not None:
            self.resume(item)

    def resume(self, item: Unfinished) -> None:
        """Continue ``item`` from its checkpoints, with its stored job."""
        self.notify("Connecting to its hosts…", title=f"Resuming {item.id}", timeout=3)
        self.run_engine(
            self.bridge.resume_from_checkpoint,
            item.id,
            what=f"resume transfer {item.id}",
            then=lambda _id: self._resumed(item),
            exclusive=False,
        )

    def _resumed(self, item: Unfinished) -> None:
        where = ", ".join(item.destinations)
        more = ""
        key = self._screen_key("transfers")
        if key is not None:
            more = f"\nIts progress is on the Transfers screen ({key})."
        self.notify(f"{item.record.source} → {where}{more}", title=f"Resumed {item.id}")
        self.reload()

    def _screen_key(self, screen_id: str) -> str | None:
        for active in self.active_bindings.values():
            if active.binding.id == f"screen.{screen_id}":
                return self.app.get_key_display(active.binding)
        return None

    def action_delete(self) -> None:
        item = self.selected()
        if item is not None:
            self.delete(item)

    def delete(self, item: Unfinished) -> None:
        """Forget ``item`` and its checkpoints, after a yes."""
        saved = sum(1 for cp in item.checkpoints.values() if cp.offset > 0)
        what = {0: "", 1: " and its checkpoint"}.get(saved, f" and its {saved} checkpoints")
        question = f"Delete transfer {item.id}{what}?"
        detail = (
            f"{item.record.source} → {', '.join(item.destinations)}\n"
            "It can no longer be resumed. Part files at the destinations stay where they are."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(item)

        self.app.push_screen(ConfirmScreen(question, detail, verb="Delete"), answered)

    def _delete(self, item: Unfinished) -> None:
        def deleted(existed: bool) -> None:
            if existed:
                self.notify(f"Deleted transfer {item.id}.", title="Checkpoints")
            else:
                self.notify(f"Transfer {item.id} was already gone.", severity="warning")
            self.reload()

        self.run_engine(
            self.bridge.delete_transfer,
            item.id,
            what=f"delete transfer {item.id}",
            then=deleted,
            exclusive=False,
        )

    @classmethod
    async def engine_palette(cls, console: DifpipeApp) -> Iterable[ScreenCommand]:
        bridge = console.bridge

        async def read() -> list[Unfinished]:
            return load_unfinished(bridge.store)

        now = cls.clock()
        commands = []
        for item in await bridge.call(read):
            said = _said(item, now)
            commands += [
                ScreenCommand(
                    f"Resume checkpoint {item.id}",
                    said,
                    lambda s, i=item: s.resume(i),
                    "resume",
                    False,
                ),
                ScreenCommand(
                    f"Inspect checkpoint {item.id}", said, lambda s, i=item: s.inspect(i)
                ),
                ScreenCommand(
                    f"Delete checkpoint {item.id}",
                    f"{said} · asks first",
                    lambda s, i=item: s.delete(i),
                    "delete",
                    False,
                ),
            ]
        return commands

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Reload checkpoints", "read the store again", self.reload)

    # -- filter --------------------------------------------------------------------------


def _said(item: Unfinished, now: float) -> str:
    """One line for the palette: the route, how far each destination got, how long ago."""
    done = ", ".join(
        done_text(cp.offset if (cp := item.checkpoints.get(d)) else 0, item.total(d))
        for d in item.destinations
    )
    since = min((now - item.updated(d) for d in item.destinations), default=0.0)
    route = f"{item.record.source} → {', '.join(item.destinations)}"
    return f"{route} · {done} · {age(since)} ago"


def _rows(item: Unfinished, now: float) -> Iterable[Row]:
    rec = item.record
    for dest in item.destinations:
        cp = item.checkpoints.get(dest)
        yield Row(
            f"{rec.id} {dest}",
            (
                rec.id,
                badge(str(rec.status)),
                done_text(cp.offset if cp else 0, item.total(dest)),
                age(now - item.updated(dest)),
                dest,
                (cp.prefix_digest[:12] if cp and cp.prefix_digest else "-"),
                rec.source,
            ),
            rec.id,
        )
