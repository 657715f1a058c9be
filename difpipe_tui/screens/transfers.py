"""Transfers: every transfer seen since the console started, live, one row per destination.

A transfer's row shows its state, overall progress, rate and its sparkline, ETA, codec and
strategy; the rows below it show each destination's own bar, rate, ETA and, once done, its
digest (or why it failed). Narrower than :data:`NARROW` columns, the table keeps what fits 80
(state, route, progress, rate, ETA) and the panel below it carries the rest for the selected row.
The transfers themselves belong to the engine bridge, so leaving this screen (or the console)
never drops one: quitting stops them with a checkpoint.

Keys: ``n`` new transfer (a form with an "analyze first" preview), ``p`` pause / resume,
``x`` stop (asks first; a checkpoint is saved), ``enter`` details, ``/`` filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Label, Static

from ..core.events import Event
from ..render import human_bytes
from ..widgets import FilterTable, Row, badge, human_rate
from ..widgets.progress import bar, duration, shorten, sparkline
from .base import FilteredScreen, ScreenCommand
from .confirm import ConfirmScreen
from .live import TransfersLive, TransferView
from .transfer_details import TransferDetailsScreen
from .transfer_form import TransferForm

if TYPE_CHECKING:
    from ..app import DifpipeApp

TREND = 10  # rate samples in a row's sparkline
REFRESH_SECONDS = 0.25  # at most four redraws a second, however many events arrive
COLUMNS = ("ID", "STATE", "FROM → TO", "PROGRESS", "RATE", "ETA", "TREND", "CODEC", "HOW", "RESULT")
ALL_COLUMNS = tuple(range(len(COLUMNS)))
NARROW = 100  # below this width: only NARROW_COLUMNS, a shorter route and bar
NARROW_COLUMNS = (1, 2, 3, 4, 5)  # STATE, FROM → TO, PROGRESS, RATE, ETA: 80 columns at most


def match_transfer(row: Row, text: str) -> bool:
    """Every word appears in the transfer (id, state, ends, codec, strategy): a match keeps
    the transfer's destination rows with it."""
    view: TransferView = row.data
    hay = " ".join(
        (view.id, view.status, view.source, *view.destinations, view.codec, view.strategy)
    ).lower()
    return all(word in hay for word in text.lower().split())


def dest_errors(view: TransferView) -> list[str]:
    """Each failed destination's error, naming the destination when the engine did not."""
    return [e if e.startswith(d.split(":")[0]) else f"{d}: {e}" for d, e in view.errors.items()]


def short_digest(digest: str | None, n: int = 8) -> str:
    return "" if not digest else digest[:n] + "…"


class TransfersScreen(FilteredScreen):
    FILTER_TABLE = "#transfers"
    DEFAULT_CSS = """
    TransfersScreen #transfer-summary {
        height: auto; padding: 0 1; border: round $border-blurred; border-title-color: $text;
    }
    TransfersScreen #no-transfers { color: $text-muted; padding: 0 1; height: 1fr; }
    """
    MUTATING = frozenset({"new", "pause", "cancel"})
    BINDINGS = [
        Binding("n", "new", "New", id="transfers.new"),
        Binding("p", "pause", "Pause/resume", id="transfers.pause"),
        Binding("x", "cancel", "Stop", id="transfers.cancel"),
        Binding("enter", "details", "Details", id="transfers.details"),
        Binding("slash", "open_filter", "Filter", id="transfers.filter"),
        Binding("escape", "escape", "Back", show=False, id="transfers.escape"),
    ]

    def filter_changed(self) -> None:
        self._redraw()

    def __init__(self, **kw):
        super().__init__(**kw)
        self.live = TransfersLive(keep_finished=50)
        self._dirty = False
        self._select: str | None = None  # a transfer to put the cursor on once it shows
        self._shown = ALL_COLUMNS  # which of COLUMNS the table has

    def compose(self) -> ComposeResult:
        yield self.header()
        yield FilterTable(*COLUMNS, matcher=match_transfer, id="transfers")
        yield Static(id="transfer-summary")
        yield Label("No transfer since the console started: n starts one.", id="no-transfers")
        yield Input(
            placeholder="words in id, state, hosts, paths   (enter keeps, esc clears)", id="filter"
        )
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self.catch_up()
        self._redraw()
        self.set_interval(REFRESH_SECONDS, self._flush)

    def on_resize(self) -> None:
        self._dirty = True

    # -- events: folded at once, drawn at most every REFRESH_SECONDS ------------------------

    def on_events(self, events: list[Event]) -> None:
        for event in events:
            if self.live.apply(event) and event.kind == "transfer.done":
                self._finished(event.transfer_id)  # type: ignore[attr-defined]
        self._dirty = True

    def _flush(self) -> None:
        if self._dirty and self.is_current:
            self._redraw()

    def _finished(self, transfer_id: str) -> None:
        view = self.live.transfers.get(transfer_id)
        if view is None or view.status in ("done", "interrupted"):
            return
        errors = dest_errors(view) or [view.error or "no detail"]
        self.notify(
            "\n".join(errors),
            title=f"Transfer {transfer_id[:8]} {view.status}",
            severity="error" if view.status == "failed" else "warning",
            timeout=15,
        )

    # -- rendering -------------------------------------------------------------------------

    def _redraw(self) -> None:
        self._dirty = False
        views = sorted(self.live.transfers.values(), key=lambda v: (v.finished, -v.started))
        table = self.query_one("#transfers", FilterTable)
        narrow = self.size.width < NARROW
        self._columns(table, NARROW_COLUMNS if narrow else ALL_COLUMNS)
        route, width = (26, 8) if narrow else (40, 10)
        table.set_rows(
            Row(row.key, tuple(row.cells[i] for i in self._shown), row.data)
            for v in views
            for row in _rows(v, route, width)
        )
        self.query_one("#no-transfers").display = not views
        table.display = bool(views)
        self._summary()
        if self._select is not None and self._select in table.shown_keys:
            table.move_cursor(row=table.shown_keys.index(self._select), animate=False)
            self._select = None
        running = self.live.running
        text = table.filter_text
        self.sub_title = (
            f"Transfers · {len(running)} running · {human_rate(self.live.rate)}"
            + (f" · filter: {text}" if text else "")
            + (" · read-only" if self.readonly else "")
        )

    def _columns(self, table: FilterTable, shown: tuple[int, ...]) -> None:
        """Give the table the columns ``shown`` (indexes into COLUMNS), keeping its cursor."""
        if shown == self._shown:
            return
        if table.selected is not None and self._select is None:
            self._select = table.selected.key
        table.clear(columns=True)
        table.add_columns(*(COLUMNS[i] for i in shown))
        self._shown = shown

    def on_data_table_row_highlighted(self, event: FilterTable.RowHighlighted) -> None:
        self._summary()

    def _summary(self) -> None:
        """The selected transfer in words, below the table: what the narrow columns hide."""
        panel = self.query_one("#transfer-summary", Static)
        view = self.selected()
        panel.display = view is not None
        if view is not None:
            panel.border_title = f"{view.id} · {view.status}"
            panel.update(summary_text(view))

    # -- actions ---------------------------------------------------------------------------

    def selected(self) -> TransferView | None:
        row = self.query_one("#transfers", FilterTable).selected
        return None if row is None else row.data

    def action_new(self) -> None:
        hosts = list(self.bridge.config.hosts)
        self.app.push_screen(TransferForm(hosts), self._started)

    def _started(self, transfer_id: str | None) -> None:
        if transfer_id:
            self._select = transfer_id
            self.notify(f"Transfer {transfer_id[:8]} started.", title="New transfer")
            self.catch_up()
            self._redraw()

    def action_pause(self) -> None:
        view = self.selected()
        if view is None or view.finished:
            self.notify("Select a running transfer first.", severity="warning")
            return
        self.pause(view.id, resume=view.status == "paused")

    def pause(self, transfer_id: str, *, resume: bool = False) -> None:
        """Pause the running transfer ``transfer_id``, or with ``resume`` let it go on."""
        self.select(transfer_id)
        if resume:
            self.run_engine(self.bridge.resume_transfer, transfer_id, what="resume the transfer")
        else:
            self.run_engine(self.bridge.pause_transfer, transfer_id, what="pause the transfer")

    def action_cancel(self) -> None:
        view = self.selected()
        if view is None or view.finished:
            self.notify("Select a running transfer first.", severity="warning")
            return
        self.stop(view.id, f"{view.source} → {', '.join(view.destinations)}")

    def stop(self, transfer_id: str, route: str) -> None:
        """Stop the running transfer ``transfer_id`` (``route`` says what it copies), after a
        yes; it keeps a checkpoint."""
        self.select(transfer_id)
        question = f"Stop transfer {transfer_id[:8]}: {route}?"
        detail = (
            "A checkpoint is saved: resume it from the Checkpoints screen or with "
            f"difpipe copy --resume {transfer_id}"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_engine(self.bridge.cancel_transfer, transfer_id, what="stop the transfer")

        self.app.push_screen(ConfirmScreen(question, detail, verb="Stop"), answered)

    def select(self, transfer_id: str) -> None:
        """Put the cursor on ``transfer_id``'s row (the filter cleared if it hides it)."""
        self.catch_up()
        table = self.query_one("#transfers", FilterTable)
        if transfer_id not in table.shown_keys and table.filter_text:
            self.set_filter("")
        self._select = transfer_id
        self._redraw()

    def on_data_table_row_selected(self, event: FilterTable.RowSelected) -> None:
        event.stop()  # enter on the table: the table takes the key, so answer its message
        self.action_details()

    def action_details(self) -> None:
        view = self.selected()
        if view is not None:
            self.details(view.id)

    def details(self, transfer_id: str) -> None:
        self.select(transfer_id)
        if transfer_id in self.live.transfers:
            self.app.push_screen(TransferDetailsScreen(self, transfer_id))

    @classmethod
    def palette(cls, console: DifpipeApp) -> Iterable[ScreenCommand]:
        yield ScreenCommand(
            "New transfer", "copy between hosts, with a plan first", cls.action_new, "new"
        )

    @classmethod
    async def engine_palette(cls, console: DifpipeApp) -> Iterable[ScreenCommand]:
        bridge = console.bridge
        commands = []
        for r in await bridge.call(bridge.transfers.running):
            verb = "Resume" if r.paused else "Pause"
            commands += [
                ScreenCommand(f"Transfer {r.id}", r.route, lambda s, i=r.id: s.details(i)),
                ScreenCommand(
                    f"{verb} transfer {r.id}",
                    r.route,
                    lambda s, i=r.id, p=r.paused: s.pause(i, resume=p),
                    "pause",
                    False,
                ),
                ScreenCommand(
                    f"Stop transfer {r.id}",
                    f"{r.route} · asks first, keeps a checkpoint",
                    lambda s, i=r.id, route=r.route: s.stop(i, route),
                    "cancel",
                    False,
                ),
            ]
        return commands

    # -- filter ----------------------------------------------------------------------------


def _rows(v: TransferView, route: int, width: int = 10) -> Iterator[Row]:
    """The transfer's row, then one per destination (the same data, so a filter keeps them)."""
    total_rate = _average(v) if v.finished else v.rate
    yield Row(
        v.id,
        (
            v.id[:8],
            badge(v.status),
            shorten(v.source, route),
            bar(v.done_bytes, v.total, width=width, finished=v.status == "done"),
            human_rate(total_rate) if total_rate else "-",
            duration(v.eta) if not v.finished else f"in {duration(v.seconds)}",
            sparkline(v.history, TREND),
            v.codec,
            v.strategy,
            short_digest(next((d for d in v.digests.values() if d), None)),
        ),
        v,
    )
    for dest in v.destinations:
        state = v.dest_state(dest)
        rate = v.rates.get(dest) if state == "running" else None
        yield Row(
            f"{v.id}/{dest}",
            (
                "",
                badge(state),
                "→ " + shorten(dest, route - 2),
                bar(v.bytes.get(dest, 0), v.total, width=width, finished=state == "done"),
                human_rate(rate) if rate else "",
                duration(v.etas.get(dest)) if state == "running" else "",
                "",
                "",
                "",
                short_digest(v.digests.get(dest)) or v.errors.get(dest, ""),
            ),
            v,
        )


def _average(v: TransferView) -> float:
    moved = max(v.bytes.values(), default=0)
    return moved / v.seconds if v.seconds else 0.0


def summary_text(v: TransferView) -> Text:
    """Three lines: the route; size, rate, ETA and how it moves; the digest or the error."""
    lines = Text(f"{v.source} → {', '.join(v.destinations)}", no_wrap=True, overflow="ellipsis")
    size = human_bytes(v.total) if v.total is not None else "size unknown"
    done = f"{100 * v.done_bytes / v.total:.0f}% of {size}" if v.total else size
    if v.finished:
        pace = f"{human_rate(_average(v))} average, took {duration(v.seconds)}"
    else:
        pace = f"{human_rate(v.rate)}, ETA {duration(v.eta)}"
    codec = f"{v.codec} ({v.reason})" if v.reason else v.codec
    lines.append(f"\n{done} · {pace} · {v.strategy or '-'} · {codec or '-'}")
    problems = dest_errors(v)
    if problems or v.error:
        lines.append("\n" + ("; ".join(problems) or v.error or ""), style="bold")
    elif digest := next((d for d in v.digests.values() if d), None):
        lines.append(f"\ndigest {digest}")
    return lines
