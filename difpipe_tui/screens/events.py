"""The live event log, filterable by host, kind and text (``/`` opens the filter)."""

from __future__ import annotations

import itertools

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input

from ..core.events import Event
from ..widgets import FilterTable, Row, describe, local_time
from .base import FilteredScreen

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


class EventsScreen(FilteredScreen):
    FILTER_TABLE = "#events"
    BINDINGS = [
        Binding("slash", "open_filter", "Filter", id="events.filter"),
        Binding("escape", "escape", "Back", show=False, id="events.escape"),
    ]

    def filter_changed(self) -> None:
        self._title()

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
