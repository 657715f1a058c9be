"""``EngineScreen.run_engine`` over the real engine bridge: a second exclusive call cancels the
first, even before it started, and nothing is left half made (with warnings as errors: no
"coroutine ... was never awaited")."""

from __future__ import annotations

import gc

import pytest

from difpipe_tui.screens.host_import import ImportScreen
from tests.tui.helpers import wait_until

SIZE = (120, 40)


@pytest.mark.filterwarnings("error")
async def test_an_exclusive_call_cancels_one_not_yet_started_cleanly(seeded_app):
    async with seeded_app.run_test(size=SIZE) as pilot:
        await seeded_app.workers.wait_for_complete()
        screen = seeded_app.screen
        got: list[object] = []
        bridge = seeded_app.bridge
        first = screen.run_engine(bridge.host_statuses, what="read", then=got.append)
        second = screen.run_engine(bridge.host_statuses, what="read", then=got.append)
        await second.wait()
        await pilot.pause()
        assert first.is_cancelled and second.is_finished
        assert len(got) == 1 and set(got[0]) == {"edge-pi", "backup"}
        del first, second
        gc.collect()  # a coroutine made but never run warns here, when it is collected


@pytest.mark.filterwarnings("error")
async def test_a_second_import_path_cancels_the_first_read_cleanly(seeded_app, tmp_path):
    first_file, second_file = tmp_path / "first", tmp_path / "second"
    first_file.write_text("Host one\n  HostName 192.0.2.41\n")
    second_file.write_text("Host two\n  HostName 192.0.2.42\n")
    async with seeded_app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        await seeded_app.workers.wait_for_complete()
        await pilot.press("i")
        screen = seeded_app.screen
        assert isinstance(screen, ImportScreen)
        screen.load(str(first_file))
        screen.load(str(second_file))  # before the first read started
        await wait_until(lambda: screen.path == str(second_file) and screen.new_hosts)
        await pilot.pause()
        assert [h.name for h in screen.new_hosts] == ["two"]
        gc.collect()
