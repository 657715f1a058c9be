"""FilterTable in a real Textual app: what a frame shows after rows arrive."""

from __future__ import annotations

from textual.app import App, ComposeResult

from difpipe_tui.widgets import FilterTable, Row


class OneTable(App[None]):
    CSS = "FilterTable { height: 6; }"  # a fixed size, as in the overview's panels

    def compose(self) -> ComposeResult:
        yield FilterTable("TIME", "KIND", id="t")


async def test_rows_appended_are_measured_at_once():
    """DataTable measures new rows on idle; a frame drawn before that cut them to the column
    labels' widths, and the cursor following the last row scrolled only one frame later."""
    app = OneTable()
    async with app.run_test(size=(60, 10)):
        table = app.query_one(FilterTable)
        table.append_rows([Row(str(n), ("00:00:01", f"connection.opened {n}")) for n in range(9)])
        last = table.render_line(table.size.height - 1).text  # no idle in between
        assert "connection.opened 8" in last  # measured, and scrolled to the cursor
        assert table.cursor_row == 8


async def test_a_frame_drawn_before_a_widened_column_is_measured_is_not_kept():
    app = OneTable()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(FilterTable)
        table.set_rows([Row("a", ("00:00:01", "open"))])
        await pilot.pause()
        table.set_rows([Row("a", ("00:00:01", "connection.opened"))])  # measured on idle
        early = table.render_line(1).text  # a frame painted before the table's idle
        assert "connection.opened" not in early  # the column still at its old width
        await pilot.pause()
        assert "connection.opened" in table.render_line(1).text


async def test_a_column_grows_to_fit_an_update_and_does_not_shrink_back():
    app = OneTable()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(FilterTable)
        table.set_rows([Row("a", ("00:00:01", "1.0 MiB/s"))])
        await pilot.pause()
        kind = list(table.columns.values())[1]
        assert kind.content_width == len("1.0 MiB/s")
        table.set_rows([Row("a", ("00:00:01", "999.9 KiB/s"))])
        await pilot.pause()
        assert kind.content_width == len("999.9 KiB/s")
        assert "999.9 KiB/s" in table.render_line(1).text
        table.set_rows([Row("a", ("00:00:01", "1.0 MiB/s"))])
        await pilot.pause()
        assert kind.content_width == len("999.9 KiB/s")  # no jump, no layout
        assert "1.0 MiB/s" in table.render_line(1).text


async def test_cells_are_literal_text_never_markup():
    """Paths and event details come from hosts and users: ``[/b]`` once raised a MarkupError
    that took the console down, and ``[bold]`` vanished from the path shown."""
    app = OneTable()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(FilterTable)
        table.append_rows([Row("a", ("edge:/srv/[bold]x", "a[/b]c"))])
        await pilot.pause()
        assert "edge:/srv/[bold]x" in table.render_line(1).text
        table.set_rows([Row("a", ("edge:/srv/[bold]x", "a[/b]c")), Row("b", ("[red]", "[/]"))])
        await pilot.pause()
        table.set_rows([Row("a", ("edge:/srv/[bold]x", "z[/i]")), Row("b", ("[red]", "[/]"))])
        await pilot.pause()
        assert "z[/i]" in table.render_line(1).text
        assert "[red]" in table.render_line(2).text and "[/]" in table.render_line(2).text
