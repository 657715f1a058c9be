"""A DataTable that keeps the cells and lines it drew while other rows change.

DataTable caches each drawn cell and line under a key holding a counter of updates: adding,
removing or updating any row drops everything drawn so far, and its lines also under the cursor
position, so a cursor move draws every line again. A live table (the event log, transfers) then
drew all its visible rows again after each change, ~1 ms a row, and a screen shown again after
rows arrived while it was hidden drew them all before its first frame.

:class:`CellCacheTable` keeps each drawn cell (and line) with the values it drew and hands it
back while that row, at that index, still holds the same value objects (a changed cell is a new
object) and everything else that styles it is unchanged: widths, whether the cursor or the
mouse is on it, focus. Styles, theme, padding and clearing the table drop what it kept, as they
drop DataTable's own caches.
"""

from __future__ import annotations

from typing import Any

from textual.cache import LRUCache
from textual.widgets import DataTable

KEPT_CELLS = 4096
"""At most this many drawn cells are kept (a screen shows ~40 rows of a few columns)."""
KEPT_LINES = 1024
"""At most this many drawn lines are kept."""


class CellCacheTable(DataTable):
    _frame_style: Any = None

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self._kept: LRUCache[tuple[Any, ...], tuple[Any, Any]] = LRUCache(KEPT_CELLS)
        self._kept_lines: LRUCache[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = LRUCache(
            KEPT_LINES
        )

    def render_lines(self, crop: Any) -> Any:
        """DataTable works out its style (a walk up the DOM) for every line it draws: once a
        frame is enough."""
        self._frame_style = super().rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._frame_style = None

    @property
    def rich_style(self) -> Any:
        return super().rich_style if self._frame_style is None else self._frame_style

    def _render_line(self, y: int, x1: int, x2: int, base_style: Any) -> Any:
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:  # below the last row
            return super()._render_line(y, x1, x2, base_style)
        row_index = self._row_locations.get(row_key)
        if row_index is None:  # the header
            row_index = -1
        cursor_type = self.cursor_type
        columns = self.ordered_columns
        key = (
            row_key,
            row_index,
            line_no,
            x1,
            x2,
            base_style,
            cursor_type,
            _on_row(self.cursor_coordinate, row_index, cursor_type),
            _on_row(self.hover_coordinate, row_index, cursor_type),
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
            self.size.width,
            tuple(column.get_render_width(self) for column in columns),
            self.fixed_columns,
            self.fixed_rows,
            self._labelled_row_exists and self.show_row_labels,
            self._row_label_column_width,
            None if cursor_type == "row" else self.background_colors[1],
        )
        values = self._row_values(row_key, columns)
        kept = self._kept_lines.get(key)
        if kept is not None and _same(kept[0], values):
            return kept[1]
        strip = super()._render_line(y, x1, x2, base_style)
        self._kept_lines.set(key, (values, strip))
        return strip

    def _row_values(self, row_key: Any, columns: list[Any]) -> tuple[Any, ...]:
        """The objects a row draws: its label and cells (the header's: the column labels)."""
        if row_key is self._header_row_key:
            return tuple(column.label for column in columns)
        cells = self._data.get(row_key, {})
        row = self.rows.get(row_key)
        label = row.label if row is not None else None
        return (label, *(cells.get(column.key) for column in columns))

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Any,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> Any:
        if column_index < 0:  # a row label: not used here, left to DataTable
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (
            row_index,
            column_index,
            base_style,
            width,
            cursor,
            hover,
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        value = self._cell_value(row_index, column_index)
        kept = self._kept.get(key)
        if kept is not None and kept[0] is value:
            return kept[1]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._kept.set(key, (value, lines))
        return lines

    def _cell_value(self, row_index: int, column_index: int) -> Any:
        """The object drawn at (row, column): a cell's value, or a column's label (row -1)."""
        column_key = self._column_locations.get_key(column_index)
        if row_index < 0:
            return self.columns[column_key].label
        return self._data[self._row_locations.get_key(row_index)].get(column_key)

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._kept.clear()
        self._kept_lines.clear()

    def notify_style_update(self) -> None:
        self._kept.clear()
        self._kept_lines.clear()
        super().notify_style_update()


def _on_row(location: Any, row_index: int, cursor_type: str) -> Any:
    """What of a cursor (or the mouse) at ``location`` a row at ``row_index`` shows."""
    if cursor_type == "column":
        return location.column
    if location.row != row_index:
        return None
    return location.column if cursor_type == "cell" else True


def _same(kept: tuple[Any, ...], values: tuple[Any, ...]) -> bool:
    return len(kept) == len(values) and all(a is b for a, b in zip(kept, values, strict=True))
