"""Switching screens stays cheap without going stale: the footer keeps its key widgets while the
keys are the same and rebuilds them when they change; a theme picked on one screen reaches the
others when they are shown again."""

from __future__ import annotations

from textual.app import App
from textual.color import Color
from textual.widgets._footer import FooterKey

from difpipe_tui.app import SWITCH_MASK
from difpipe_tui.themes import THEMES
from difpipe_tui.widgets import FilterTable, KeysFooter
from tests.tui.helpers import FIXED_EVENTS, publish_fixed

SIZE = (120, 40)


def footer_keys(app) -> list[FooterKey]:
    return list(app.screen.query_one(KeysFooter).query(FooterKey))


def shown(keys: list[FooterKey]) -> list[tuple[str, str]]:
    return [(k.key_display, k.description) for k in keys]


async def test_the_footer_keeps_its_keys_across_switches_and_follows_the_keymap(seeded_app):
    app = seeded_app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        before = footer_keys(app)
        assert ("c", "Check hosts") in shown(before)
        await pilot.press("e")
        assert ("/", "Filter") in shown(footer_keys(app))
        assert ("c", "Check hosts") not in shown(footer_keys(app))
        await pilot.press("o")
        await pilot.pause()
        assert footer_keys(app) == before  # the same widgets: nothing was rebuilt

        app.set_keymap({"overview.check": "x"})
        await pilot.pause()
        assert ("x", "Check hosts") in shown(footer_keys(app))
        assert ("c", "Check hosts") not in shown(footer_keys(app))


async def test_a_theme_picked_on_one_screen_reaches_the_others(seeded_app):
    app = seeded_app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e", "o")  # both screens exist, the events one hidden
        app.theme = "light"
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        table = app.screen.query_one("#events")
        assert table.styles.background == Color.parse(THEMES["light"].surface)


async def test_a_switch_to_a_mounted_screen_holds_frames_only_briefly(seeded_app):
    """Textual holds frames 50 ms on a mode switch to hide a screen being mounted; a screen
    that is mounted already is shown after SWITCH_MASK, and a first visit keeps the 50 ms."""
    app = seeded_app
    held: list[float] = []
    original = App.delay_update

    def spy(self, delay: float = 0.05) -> None:
        held.append(delay)
        original(self, delay)

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        App.delay_update = spy  # the class's: DifpipeApp.delay_update calls it with its delay
        try:
            await pilot.press("e")  # first visit: mounted now
            await pilot.pause()
            await pilot.press("o")  # mounted since the start
            await pilot.pause()
        finally:
            App.delay_update = original
    assert held == [0.05, SWITCH_MASK]


async def test_a_screen_shown_again_has_caught_up_before_its_first_frame(seeded_app):
    """Events that came while a screen was hidden are added before the switch, not after the
    screen's first frame: one layout and paint instead of two."""
    app = seeded_app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e", "o")
        await pilot.pause()
        table = app._screen_stacks["events"][0].query_one("#events", FilterTable)
        before = table.row_count
        await publish_fixed(app)  # the overview is shown: the events screen misses them
        assert table.row_count == before
        app.action_show("events")  # no frame, no message handled since
        assert table.row_count == before + len(FIXED_EVENTS)
        assert table.cursor_row == table.row_count - 1
