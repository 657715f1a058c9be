"""The command palette reaches every screen, host and action by name, runs the same actions as
the keys (confirmations included) and offers nothing that changes anything in --readonly.

Transfers and checkpoints by name are in test_transfers.py and test_checkpoints.py.
"""

from __future__ import annotations

import tomllib

from difpipe_tui.app import build_app
from difpipe_tui.screens.checkpoints import CheckpointsScreen
from difpipe_tui.screens.confirm import ConfirmScreen
from difpipe_tui.screens.host_form import HostForm
from difpipe_tui.screens.host_import import ImportScreen
from difpipe_tui.screens.hosts import HostsScreen
from difpipe_tui.screens.overview import OverviewScreen
from tests.tui.helpers import FIXED_SYS, cell_texts, palette_hits, run_command, wait_until

SIZE = (120, 40)
CHANGING = ("Add host", "Import hosts", "Edit host", "Delete host", "New transfer")


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_every_screen_is_a_command_and_esc_comes_back(seeded_app):
    app = seeded_app
    async with app.run_test(size=SIZE) as pilot:
        hits = await palette_hits(pilot, "Screen: ")
        assert {
            "Screen: Overview",
            "Screen: Events",
            "Screen: Transfers",
            "Screen: Hosts",
            "Screen: Checkpoints",
        } <= set(hits)
        await pilot.press("escape")
        await run_command(pilot, "Screen: Checkpoints")
        await wait_until(lambda: isinstance(app.screen, CheckpointsScreen))
        await pilot.press("escape")
        assert isinstance(app.screen, OverviewScreen)


async def test_a_host_deleted_from_the_palette_asks_first(seeded_app, home):
    app = seeded_app
    config = home / "difpipe.toml"
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")  # from another screen: the command shows the Hosts screen
        await run_command(pilot, "Delete host backup")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        assert app.current_mode == "hosts"
        assert "Delete host backup" in app.screen.question
        await pilot.press("n")
        await settle(pilot)
        assert "backup" in tomllib.loads(config.read_text())["hosts"]
        await run_command(pilot, "Delete host backup")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(app.screen, HostsScreen)
        assert app.screen.table.shown_keys == ["edge-pi", "cloud"]
    assert list(tomllib.loads(config.read_text())["hosts"]) == ["edge-pi", "cloud"]


async def test_edit_and_import_from_the_palette_open_their_forms(seeded_app):
    app = seeded_app
    async with app.run_test(size=SIZE) as pilot:
        await run_command(pilot, "Edit host cloud")
        await wait_until(lambda: isinstance(app.screen, HostForm))
        assert app.screen.editing == "cloud"
        await pilot.press("escape")
        await wait_until(lambda: isinstance(app.screen, HostsScreen))
        assert app.screen.selected == "cloud"
        await run_command(pilot, "Import hosts from ~/.ssh/config")
        await wait_until(lambda: isinstance(app.screen, ImportScreen))


async def test_check_a_host_by_name_against_real_sshd(lab_app):
    app = lab_app
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await run_command(pilot, "Check host edge")
        await wait_until(lambda: isinstance(app.screen, HostsScreen))
        await wait_until(lambda: any(n.title == "edge is up" for n in app._notifications))
        await settle(pilot)
        states = {row[0]: row[3] for row in cell_texts(app, "#hosts-table")}
        assert states["edge"] == "UP"
        assert states["cloud"] == "?" and states["storage"] == "?"  # only the one named


async def test_the_open_palette_lists_hosts_and_leaves_their_verbs_to_typing(seeded_app):
    async with seeded_app.run_test(size=SIZE) as pilot:
        listed = await palette_hits(pilot, "")
        assert {"Screen: Hosts", "Check all hosts", "Host: cloud", "Theme: light"} <= set(listed)
        assert not [t for t in listed if t.startswith(("Check host", "Edit host", "Delete host"))]
        await pilot.press("escape")
        assert "Edit host cloud" in await palette_hits(pilot, "Edit host cloud")


async def test_readonly_offers_no_command_that_changes_anything(seeded_bridge, home):
    before = (home / "difpipe.toml").read_bytes()
    app = build_app(bridge=seeded_bridge, readonly=True, sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE) as pilot:
        for key in ("o", "h", "t"):
            await pilot.press(key)
            await settle(pilot)
            titles = {c.title for c in app.get_system_commands(app.screen)}
            assert {"Screen: Hosts", "Check host cloud", "Host: cloud", "Check all hosts"} <= titles
            assert not [t for t in titles if t.startswith(CHANGING)], key
        hits = await palette_hits(pilot, "host backup")
        assert "Check host backup" in hits
        assert not [t for t in hits if t.startswith(CHANGING)]
    assert (home / "difpipe.toml").read_bytes() == before
