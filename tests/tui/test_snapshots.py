"""Pictures of the console with fixed data (store rows, events, sysinfo) at 120x40 and 80x24.

Update them after an intended change with ``pytest tests/tui --snapshot-update`` and look at
the new SVGs before committing them.
"""

from __future__ import annotations

import pytest

from tests.tui.helpers import publish_fixed, type_text

SIZES = [(120, 40), (80, 24)]


async def _seeded(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await publish_fixed(pilot.app)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview(snap_compare, seeded_app, size):
    assert snap_compare(seeded_app, terminal_size=size, run_before=_seeded)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_events_filtered(snap_compare, seeded_app, size):
    async def run_before(pilot) -> None:
        await _seeded(pilot)
        await pilot.press("e", "slash")
        await type_text(pilot, "kind:conn")

    assert snap_compare(seeded_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help(snap_compare, seeded_app, size):
    async def run_before(pilot) -> None:
        await _seeded(pilot)
        await pilot.press("question_mark")

    assert snap_compare(seeded_app, terminal_size=size, run_before=run_before)
