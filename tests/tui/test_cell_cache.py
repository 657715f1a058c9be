"""CellCacheTable: cells drawn once are kept while other rows change, and never shown stale."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from difpipe_tui.widgets import FilterTable, Row


class OneTable(App[None]):
    CSS = "FilterTable { height: 8; }"

    def compose(self) -> ComposeResult:
        yield FilterTable("TIME", "KIND", id="t")


def rows(start: int, stop: int) -> list[Row]:
    return [Row(f"r{n}", (f"00:00:{n:02d}", f"event {n}")) for n in range(start, stop)]


def drawn_lines(table: FilterTable) -> list[str]:
    table.refresh()  # as a frame after a change: the widget's own line cache dropped
    return [table.render_lines(table.region.reset_offset)[y].text for y in range(table.size.height)]


async def test_appending_draws_only_the_new_rows_and_the_cursor_rows(monkeypatch):
    app = OneTable()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(FilterTable)
        table.append_rows(rows(0, 3))
        await pilot.pause()
        drawn_lines(table)
        drawn: list[int] = []
        original = DataTable._render_cell

        def count(self, row_index, *args, **kw):
            drawn.append(row_index)
            return original(self, row_index, *args, **kw)

        monkeypatch.setattr(DataTable, "_render_cell", count)
        table.append_rows(rows(3, 4))  # the cursor follows: from row 2 to row 3
        lines = drawn_lines(table)
        assert "event 3" in lines[4]
        assert sorted(set(drawn)) == [2, 3]  # the old cursor row, the new row


async def test_a_changed_cell_is_drawn_again(monkeypatch):
    app = OneTable()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(FilterTable)
        table.set_rows([Row("a", ("00:00:01", "running")), Row("b", ("00:00:02", "running"))])
        await pilot.pause()
        assert "running" in drawn_lines(table)[2]
        table.set_rows([Row("a", ("00:00:01", "running")), Row("b", ("00:00:02", "done"))])
        await pilot.pause()
        lines = drawn_lines(table)
        assert "running" in lines[1] and "done" in lines[2]


async def test_rows_dropped_at_the_limit_move_up_with_their_click_targets():
    """A drawn cell carries its row index for mouse clicks: a row moved up is drawn again."""
    app = OneTable()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(FilterTable)
        table.append_rows(rows(0, 10), limit=10)
        await pilot.pause()
        drawn_lines(table)
        table.append_rows(rows(10, 11), limit=10)  # 11 > 10: down to 9 rows, r2..r10
        await pilot.pause()
        assert table.row_count == 9 and table.shown_keys[0] == "r2"
        table.move_cursor(row=0)
        await pilot.pause()
        table.refresh()
        strips = table.render_lines(table.region.reset_offset)
        first = strips[1]  # below the header
        assert "event 2" in first.text
        assert {seg.style.meta.get("row") for seg in first if seg.style and seg.style.meta} == {0}


async def test_a_theme_change_draws_every_cell_again():
    app = OneTable()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(FilterTable)
        table.append_rows(rows(0, 3))
        await pilot.pause()
        before = table.render_lines(table.region.reset_offset)[1]
        app.theme = "textual-light"
        await pilot.pause()
        table.refresh()
        after = table.render_lines(table.region.reset_offset)[1]
        assert after.text == before.text
        assert [s.style for s in after] != [s.style for s in before]


def segments(table: FilterTable) -> list[list[tuple[str, object]]]:
    table.refresh()
    return [[(s.text, s.style) for s in strip] for strip in table.render_lines(table.region)]


async def test_what_is_kept_is_what_would_be_drawn_afresh():
    """After each change, the kept cells and rows draw exactly what DataTable draws with its
    caches cleared: text, colours, and the row and column each cell answers clicks for."""

    async def check(pilot, table: FilterTable) -> None:
        await pilot.pause()
        kept = segments(table)
        table._clear_caches()
        assert kept == segments(table)

    app = OneTable()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(FilterTable)
        table.focus()
        table.append_rows(rows(0, 12), limit=10)
        await check(pilot, table)
        table.move_cursor(row=2)
        await check(pilot, table)
        table.set_rows([*rows(0, 5), Row("r5", ("00:00:05", "a much longer kind of event"))])
        await check(pilot, table)
        table._set_hover_cursor(True)
        table.hover_coordinate = table.hover_coordinate._replace(row=4)
        await check(pilot, table)
        table.blur()
        await check(pilot, table)
        await pilot.resize_terminal(50, 12)
        await check(pilot, table)
        table.set_rows([*rows(0, 5), Row("r5", ("00:00:05", "a kind of event " * 6))])
        await check(pilot, table)
        table.scroll_to(x=12, animate=False)
        await check(pilot, table)
        table.set_filter("event 3")
        await check(pilot, table)
        app.theme = "textual-light"
        await check(pilot, table)


async def test_a_cursor_move_draws_only_the_rows_it_leaves_and_reaches(monkeypatch):
    app = OneTable()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(FilterTable)
        table.append_rows(rows(0, 6))
        table.move_cursor(row=1)
        await pilot.pause()
        drawn_lines(table)
        drawn: list[object] = []
        original = DataTable._render_line_in_row

        def count(self, row_key, *args, **kw):
            drawn.append(row_key.value)
            return original(self, row_key, *args, **kw)

        monkeypatch.setattr(DataTable, "_render_line_in_row", count)
        table.move_cursor(row=2)
        await pilot.pause()
        drawn_lines(table)
        assert sorted(set(drawn)) == ["r1", "r2"]
