"""A DataTable that keeps the cells it drew while other cells change.

DataTable caches each drawn cell under a key holding a counter of updates: adding, removing or
updating any row drops every cell drawn so far. A live table (the event log, transfers) then
draws all its visible cells again after each change, ~1 ms a row, and a screen shown again
after rows arrived while it was hidden draws them all before its first frame.

:class:`CellCacheTable` keeps each drawn cell with the value it drew and hands it back while
that row and column, at that index, still hold the same value object (a changed cell is a new
object) and everything else that styles a cell is unchanged. Styles, theme, focus, padding and
clearing the table drop the kept cells, as they drop DataTable's own.
"""

from __future__ import annotations

from typing import Any

from textual.cache import LRUCache
from textual.widgets import DataTable

KEPT_CELLS = 4096
"""At most this many drawn cells are kept (a screen shows ~40 rows of a few columns)."""


class CellCacheTable(DataTable):
    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self._kept: LRUCache[tuple[Any, ...], tuple[Any, Any]] = LRUCache(KEPT_CELLS)

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

    def notify_style_update(self) -> None:
        self._kept.clear()
        super().notify_style_update()
