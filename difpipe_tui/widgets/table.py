"""A DataTable that is refreshed in place and filtered, keeping its cursor across both."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Size
from textual.widgets.data_table import RowDoesNotExist

from .cellcache import CellCacheTable


@dataclass(frozen=True)
class Row:
    """One row: ``key`` identifies it across refreshes, ``cells`` are shown, ``data`` is what
    a filter matches against (default: the cells' text)."""

    key: str
    cells: tuple[Any, ...]
    data: Any = None

    @property
    def text(self) -> str:
        return " ".join(str(c) for c in self.cells)


Matcher = Callable[[Row, str], bool]


def match_text(row: Row, text: str) -> bool:
    return all(word in row.text.lower() for word in text.lower().split())


class FilterTable(CellCacheTable):
    """Give it every row with :meth:`set_rows` (or add some with :meth:`append_rows`);
    it shows the ones that match :attr:`filter_text`, updating cells in place rather than
    rebuilding, so the cursor stays on the same row and nothing flickers.

    A cell updated in place widens its column when it no longer fits but never narrows it:
    a live rate going from ``1.0 MiB/s`` to ``999.9 KiB/s`` neither makes the columns jump
    nor costs a layout of the whole screen.

    Rows added are measured at once (DataTable waits for idle), and drawn cells are kept
    while other rows change (:class:`~.cellcache.CellCacheTable`)."""

    def __init__(self, *columns: str, matcher: Matcher = match_text, **kw: Any):
        kw.setdefault("cursor_type", "row")
        kw.setdefault("zebra_stripes", False)
        super().__init__(**kw)
        self._columns = columns
        self._matcher = matcher
        self._rows: dict[str, Row] = {}
        self.filter_text = ""

    def on_mount(self) -> None:
        self.add_columns(*self._columns)

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        """Columns are measured on idle after rows are added, and DataTable caches the lines it
        drew before that under a key without the column widths: a frame painted in between
        left rows drawn at the old widths until some other change. New widths drop them."""
        if old.width != new.width:
            self.notify_style_update()

    @property
    def shown_keys(self) -> list[str]:
        return [str(r.key.value) for r in self.ordered_rows]

    @property
    def selected(self) -> Row | None:
        key = self._cursor_key()
        return None if key is None else self._rows.get(key)

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._sync(list(self._rows.values()), rebuild=True)

    def set_rows(self, rows: Iterable[Row]) -> None:
        """Show exactly ``rows`` (those matching the filter), in this order."""
        rows = list(rows)
        before, self._rows = self._rows, {r.key: r for r in rows}
        self._sync(rows, before=before)

    def append_rows(self, rows: Iterable[Row], *, limit: int | None = None) -> None:
        """Add rows at the end; with ``limit``, the oldest rows beyond it are dropped, a tenth
        of ``limit`` more at a time: a drop moves every row up, and a row drawn at another
        index is drawn again."""
        rows = list(rows)
        if not rows:  # nothing new: no cursor move, no scroll, no repaint
            return
        follow = self.row_count == 0 or self.cursor_row >= self.row_count - 1
        for row in rows:
            self._rows[row.key] = row
            if self._matcher(row, self.filter_text):
                self.add_row(*map(plain, row.cells), key=row.key)
        if limit is not None and len(self._rows) > limit:
            for key in list(itertools.islice(self._rows, len(self._rows) - limit + limit // 10)):
                del self._rows[key]
                self._remove(key)
        self._measure()
        if follow and self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def _measure(self) -> None:
        """Measure the rows just added now, not on idle as DataTable does: until then a frame
        shows the table at its old height, and a cursor moved to a new row scrolls only after
        that frame, a second layout and paint of the screen."""
        if self._require_update_dimensions and self.is_mounted:
            self._require_update_dimensions = False
            new_rows = self._new_rows.copy()
            self._new_rows.clear()
            self._update_dimensions(new_rows)

    def _remove(self, key: str) -> None:
        with contextlib.suppress(RowDoesNotExist):
            self.remove_row(key)

    def _cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def _sync(
        self, rows: list[Row], *, rebuild: bool = False, before: dict[str, Row] | None = None
    ) -> None:
        wanted = [r for r in rows if self._matcher(r, self.filter_text)]
        keys = [r.key for r in wanted]
        if rebuild or keys != self.shown_keys:
            cursor = self._cursor_key()
            self.clear()
            for row in wanted:
                self.add_row(*map(plain, row.cells), key=row.key)
            self._measure()
            if cursor in keys:
                self.move_cursor(row=keys.index(cursor), animate=False)
            return
        columns = list(self.columns)
        for row in wanted:
            old = (before or {}).get(row.key)
            for i, (col, value) in enumerate(zip(columns, row.cells, strict=False)):
                if old is not None and i < len(old.cells) and old.cells[i] == value:
                    continue  # an unchanged cell costs nothing to keep
                wider = _width(value) > self.columns[col].content_width
                self.update_cell(row.key, col, plain(value), update_width=wider)


def plain(value: Any) -> Any:
    """A text cell as literal text. DataTable reads a ``str`` cell as Rich markup, every time
    it draws it: a path with ``[/b]`` in it raised an error and ``[bold]`` vanished."""
    return Text(value, no_wrap=True, end="") if isinstance(value, str) else value


def _width(value: Any) -> int:
    return value.cell_len if isinstance(value, Text) else cell_len(str(value))
