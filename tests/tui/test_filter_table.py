"""FilterTable in a real Textual app: what a frame shows after rows arrive."""

from __future__ import annotations

from textual.app import App, ComposeResult

from difpipe_tui.widgets import FilterTable, Row


class OneTable(App[None]):
    CSS = "FilterTable { height: 6; }"  # a fixed size, as in the overview's panels

    def compose(self) -> ComposeResult:
        yield FilterTable("TIME", "KIND", id="t")


async def test_a_frame_drawn_before_the_columns_are_measured_is_not_kept():
    app = OneTable()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(FilterTable)
        table.append_rows([Row("a", ("00:00:01", "connection.opened"))])
        early = table.render_line(1).text  # a frame painted before the table's idle
        assert "connection.opened" not in early  # columns still at their label widths
        await pilot.pause()
        assert "connection.opened" in table.render_line(1).text
