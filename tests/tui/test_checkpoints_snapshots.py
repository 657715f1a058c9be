"""Pictures of the Checkpoints screen and its inspect modal over fixed store rows, with ages
measured from a fixed now, at 120x40 and 80x24 (``--snapshot-update`` after a wanted change).
"""

from __future__ import annotations

import pytest

from difpipe_tui.app import DifpipeApp, build_app
from difpipe_tui.screens.checkpoints import CheckpointsScreen
from tests.tui.helpers import FIXED_SYS, SEEDED_CONFIG, T0, wait_until
from tests.tui.test_checkpoints import seed_checkpoints

SIZES = [(120, 40), (80, 24)]


@pytest.fixture
def app(home, write_config, make_bridge, monkeypatch) -> DifpipeApp:
    write_config(SEEDED_CONFIG)
    seed_checkpoints(home / "state" / "state.db")
    monkeypatch.setattr(CheckpointsScreen, "clock", staticmethod(lambda: T0))
    return build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)


async def _listed(pilot) -> None:
    await pilot.press("k")
    await wait_until(lambda: pilot.app.screen.query_one("#checkpoints").row_count == 3)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_checkpoints(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_listed)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_checkpoint_inspect(snap_compare, app, size):
    async def run_before(pilot) -> None:
        await _listed(pilot)
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_checkpoint_delete_confirmation(snap_compare, app, size):
    async def run_before(pilot) -> None:
        await _listed(pilot)
        await pilot.press("d")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
