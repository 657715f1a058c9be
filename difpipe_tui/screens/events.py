"""The live event log, filterable by host, kind and text (``/`` opens the filter)."""

from __future__ import annotations

import itertools

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input

from ..core.events import Event
from ..widgets import FilterTable, Row, describe, local_time
from .base import EngineScreen

KEEP = 2000


def match_event(row: Row, text: str) -> bool:
    """``host:NAME`` and ``kind:PREFIX`` narrow by host and kind; other words must appear."""
    event: Event = row.data
    for word in text.lower().split():
        field, _, value = word.partition(":")
        if field == "host" and value:
            if (event.host or "").lower() != value:
                return False
        elif field == "kind" and value:
            if not event.kind.startswith(value):
                return False
        elif word not in row.text.lower():
            return False
    return True


class EventsScreen(EngineScreen):
    BINDINGS = [
        Binding("slash", "open_filter", "Filter", id="events.filter"),
        Binding("escape", "escape", "Back", show=False, id="events.escape"),
    ]

    def __init__(self, **kw):
        super().__init__(**kw)
        self._keys = itertools.count()

    def compose(self) -> ComposeResult:
        yield self.header()
        yield FilterTable("TIME", "KIND", "HOST", "DETAILS", matcher=match_event, id="events")
        yield Input(
            placeholder="host:NAME kind:PREFIX words   (enter keeps it, esc clears)", id="filter"
        )
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self.catch_up()

    def on_events(self, events: list[Event]) -> None:
        rows = (
            Row(f"e{next(self._keys)}", (local_time(e.ts), e.kind, e.host or "", describe(e)), e)
            for e in events
        )
        self.query_one("#events", FilterTable).append_rows(rows, limit=KEEP)
        self._title()

    def _title(self) -> None:
        table = self.query_one("#events", FilterTable)
        shown = table.row_count
        text = table.filter_text
        self.sub_title = f"Events · {shown} shown" + (f" · filter: {text}" if text else "")

    def action_open_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#events", FilterTable).set_filter(event.value)
        self._title()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(box.value)
        self.query_one("#events", FilterTable).focus()

    def action_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.query_one("#events", FilterTable).focus()
        else:
            self.console.action_back()
