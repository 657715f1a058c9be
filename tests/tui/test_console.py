"""The console driven by real keys over a real engine bridge, files and event bus."""

from __future__ import annotations

import tomllib

import pytest
from textual.binding import Binding

from difpipe_tui.app import binding_ids, build_app, check_ui
from difpipe_tui.core.config import ConfigKeyError
from difpipe_tui.core.errors import UsageError
from difpipe_tui.screens import SCREENS
from difpipe_tui.screens.checkpoint_detail import CheckpointDetail
from difpipe_tui.screens.confirm import ConfirmScreen
from difpipe_tui.screens.events import EventsScreen
from difpipe_tui.screens.help import HelpScreen
from difpipe_tui.screens.host_form import HostForm
from difpipe_tui.screens.host_import import ImportScreen
from difpipe_tui.screens.overview import ROUTINE, OverviewScreen
from difpipe_tui.screens.transfer_details import TransferDetailsScreen
from difpipe_tui.screens.transfer_form import TransferForm
from tests.tui.helpers import (
    FIXED_EVENTS,
    FIXED_SYS,
    cell_texts,
    publish_fixed,
    type_text,
    wait_until,
)

SIZE = (120, 40)


async def test_overview_shows_stored_checks_and_live_events(seeded_app):
    async with seeded_app.run_test(size=SIZE) as pilot:
        app = seeded_app
        await app.workers.wait_for_complete()
        await pilot.pause()
        states = {row[0]: row[2] for row in cell_texts(app, "#hosts")}
        assert states == {"edge-pi": "UP", "cloud": "?", "backup": "DOWN"}
        await publish_fixed(app)
        await pilot.pause()
        states = {row[0]: row[2] for row in cell_texts(app, "#hosts")}
        assert states == {"edge-pi": "UP", "cloud": "UP", "backup": "DOWN"}
        panel = app.screen.query_one("#transfers-panel")
        assert panel.border_title == "Transfers · 1 running · 4.0 MiB/s"
        assert cell_texts(app, "#transfers")[0][4] == "25% of 64.0 MiB"
        news = [e.kind for e in FIXED_EVENTS if e.kind not in ROUTINE]
        assert len(news) < len(FIXED_EVENTS)  # progress is left to the transfers panel
        assert [row[1] for row in cell_texts(app, "#latest")] == news


async def test_slash_filters_every_table_of_the_overview(seeded_app):
    async with seeded_app.run_test(size=SIZE) as pilot:
        app = seeded_app
        await app.workers.wait_for_complete()
        await publish_fixed(app)
        await pilot.pause()
        await pilot.press("slash")
        await type_text(pilot, "cloud")
        assert [r[0] for r in cell_texts(app, "#hosts")] == ["cloud"]
        assert len(cell_texts(app, "#transfers")) == 1  # edge-pi:/var/log/app.log → cloud
        assert {r[2] for r in cell_texts(app, "#latest")} == {"cloud", ""}
        assert app.screen.sub_title == "Overview · filter: cloud"
        await pilot.press("enter")  # kept: new rows are filtered too
        await publish_fixed(app, FIXED_EVENTS[:1])  # edge-pi
        await pilot.pause()
        assert {r[2] for r in cell_texts(app, "#latest")} == {"cloud", ""}
        await pilot.press("slash", "ctrl+u")
        await type_text(pilot, "backup")
        assert [r[0] for r in cell_texts(app, "#hosts")] == ["backup"]
        assert cell_texts(app, "#transfers") == []
        await pilot.press("escape")  # clears every table
        assert [r[0] for r in cell_texts(app, "#hosts")] == ["edge-pi", "cloud", "backup"]
        assert len(cell_texts(app, "#latest")) == 5  # four news, then edge-pi again
        assert app.screen.sub_title == "Overview"
        assert isinstance(app.screen, OverviewScreen)


async def test_events_screen_filters_by_host_and_kind(seeded_app):
    async with seeded_app.run_test(size=SIZE) as pilot:
        app = seeded_app
        await publish_fixed(app)  # before the screen exists: it catches up when shown
        await pilot.press("e")
        assert isinstance(app.screen, EventsScreen)
        assert len(cell_texts(app, "#events")) == len(FIXED_EVENTS)
        await pilot.press("slash")
        await type_text(pilot, "host:backup")
        assert [r[2] for r in cell_texts(app, "#events")] == ["backup"]
        await pilot.press("enter")  # keeps the filter; new events are filtered too
        await publish_fixed(app, FIXED_EVENTS[:3])
        await pilot.pause()
        assert [r[1] for r in cell_texts(app, "#events")] == ["connection.failed"] * 2
        await pilot.press("slash", "ctrl+u")
        await type_text(pilot, "kind:transfer")
        assert [r[1] for r in cell_texts(app, "#events")] == [
            "transfer.start",
            "transfer.progress",
        ]
        await pilot.press("escape")  # clears the filter
        assert len(cell_texts(app, "#events")) == len(FIXED_EVENTS) + 3
        await pilot.press("escape")  # back to where we came from
        assert isinstance(app.screen, OverviewScreen)


async def test_theme_switch_from_the_palette_is_saved(seeded_app, home):
    async with seeded_app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await type_text(pilot, "Theme: light")
        await pilot.pause()
        await pilot.press("enter")
        assert seeded_app.theme == "light"
        path = home / "difpipe.toml"
        await wait_until(lambda: "light" in path.read_text())
    data = tomllib.loads(path.read_text())
    assert data["ui"]["theme"] == "light"
    assert list(data["hosts"]) == ["edge-pi", "cloud", "backup"]  # other entries kept


async def test_a_theme_switched_in_readonly_lasts_the_session_and_writes_nothing(
    seeded_bridge, home
):
    path = home / "difpipe.toml"
    before = path.read_bytes()
    app = build_app(bridge=seeded_bridge, sysinfo=FIXED_SYS, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await type_text(pilot, "Theme: light")
        await pilot.pause()
        await pilot.press("enter")
        assert app.theme == "light"
        # anything the switch handed the engine thread has run before this call returns
        seeded_bridge.submit(seeded_bridge.host_statuses).result(timeout=5)
        await pilot.pause(0.2)
        assert path.read_bytes() == before
        assert seeded_bridge.config.ui.theme == "dark"
    assert path.read_bytes() == before


async def test_help_lists_the_keys_of_the_screen_with_the_keymap_applied(write_config, make_bridge):
    write_config('[ui.keymap]\n"screen.events" = "v"\n"overview.check" = "k"\n')
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = app.screen.sections()
        assert ("k", "Check hosts") in keys["This screen"]
        assert ("v", "Events") in keys["Everywhere"]
        await pilot.press("escape", "v")
        assert isinstance(app.screen, EventsScreen)
        await pilot.press("question_mark")
        keys = app.screen.sections()
        assert ("/", "Filter") in keys["This screen"]
        assert all(text != "Check hosts" for _, text in keys["This screen"])


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[ui]\ntheme = "neon"\n', "ui.theme"),
        ('[ui.keymap]\n"screen.nope" = "x"\n', "ui.keymap.screen.nope"),
    ],
)
def test_a_bad_theme_or_keymap_names_the_key(write_config, make_bridge, toml, key):
    write_config(toml)
    with pytest.raises(ConfigKeyError) as info:
        build_app(bridge=make_bridge())
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


MODALS = (
    HostForm,
    ImportScreen,
    TransferForm,
    ConfirmScreen,
    CheckpointDetail,
    TransferDetailsScreen,
    HelpScreen,
)


def test_every_binding_of_every_screen_and_modal_can_be_remapped():
    ids = binding_ids()
    for cls in (*MODALS, *(spec.screen for spec in SCREENS)):
        declared = {b.id for b in cls.BINDINGS if isinstance(b, Binding)}
        assert declared, cls.__name__
        assert declared <= ids, cls.__name__
    assert {"transfer_form.start", "hostform.save", "confirm.yes", "checkpoint.close"} <= ids
    check_ui("dark", dict.fromkeys(ids, "f9"))  # all accepted


def test_an_unknown_binding_id_is_refused_in_one_line_naming_it():
    with pytest.raises(ConfigKeyError) as info:
        check_ui("dark", {"hostform.save": "f2", "transfer_form.strat": "f5"})
    text = info.value.render()
    assert info.value.key == "ui.keymap.transfer_form.strat"
    assert "\n" not in text
    assert text.startswith("ui.keymap.transfer_form.strat: no such binding (did you mean ")
    assert "'transfer_form.start'?" in text


def test_an_unknown_theme_option_is_a_usage_error(seeded_bridge):
    with pytest.raises(UsageError, match="--theme: no theme 'neon'"):
        build_app(bridge=seeded_bridge, theme="neon")


async def test_engine_errors_are_notifications_naming_the_host(seeded_app):
    async with seeded_app.run_test(size=SIZE, notifications=True) as pilot:
        screen = seeded_app.screen
        screen.run_engine(seeded_app.bridge.pool.run, "ghost", "true", what="run a command")
        await seeded_app.workers.wait_for_complete()
        await pilot.pause()
        notes = list(seeded_app._notifications)
        assert len(notes) == 1
        assert notes[0].title == "Could not run a command"
        assert notes[0].message.startswith("ghost: no such host")
        assert "known: edge-pi, cloud, backup" in notes[0].message
        assert notes[0].severity == "error"


async def test_check_hosts_against_real_sshd(lab, home, make_bridge):
    config = lab.write_config(home / "difpipe.toml", ["edge"])
    text = config.read_text() + '\n[hosts.nowhere]\naddress = "127.0.0.1"\nport = 9\n'
    config.write_text(text)
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("c")
        await wait_until(lambda: "checking" not in str(cell_texts(app, "#hosts")).lower())
        await app.workers.wait_for_complete()
        await pilot.pause()
        states = {row[0]: row[2] for row in cell_texts(app, "#hosts")}
        assert states == {"edge": "UP", "nowhere": "DOWN"}
        assert any(n.title == "1 of 2 hosts down" for n in app._notifications)

        def logged() -> bool:
            """both checks in the event log (it takes the engine's events in batches)"""
            kinds = {(e.kind, e.host) for e in app.event_log.latest(100)}
            return {("host.checked", "edge"), ("host.checked", "nowhere")} <= kinds

        await wait_until(logged, timeout=5)
    with_store = await app.bridge.call(app.bridge.host_statuses)
    assert with_store["edge"].reachable and not with_store["nowhere"].reachable


async def test_readonly_is_shown(seeded_bridge):
    app = build_app(bridge=seeded_bridge, readonly=True, sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE):
        assert app.readonly
        assert app.screen.sub_title == "Overview · read-only"
