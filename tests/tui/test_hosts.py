"""The Hosts screen driven by real keys: the config file on disk, the store, real sshd."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from difpipe_tui.app import build_app
from difpipe_tui.core import events as ev
from difpipe_tui.core.store import Store
from difpipe_tui.screens.confirm import ConfirmScreen
from difpipe_tui.screens.host_form import HostForm
from difpipe_tui.screens.host_import import ImportScreen
from difpipe_tui.screens.hosts import HostsScreen
from tests.tui.helpers import FIXED_SYS, SEEDED_CONFIG, T0, cell_texts, type_text, wait_until

SIZE = (120, 40)
CONFIG = '[ui]\ntheme = "light"\n' + SEEDED_CONFIG


def toml(path: Path) -> dict:
    return tomllib.loads(path.read_text())


@pytest.fixture
def config_file(write_config) -> Path:
    return write_config(CONFIG)


@pytest.fixture
def app(config_file, make_bridge):
    return build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)


async def open_hosts(pilot) -> None:
    await pilot.press("h")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    assert isinstance(pilot.app.screen, HostsScreen)


async def select(pilot, name: str) -> None:
    table = pilot.app.screen.query_one("#hosts-table")
    table.focus()
    table.move_cursor(row=table.shown_keys.index(name))
    await pilot.pause()


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_add_host_saves_it_with_the_other_hosts_and_ui_kept(app, config_file):
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("a")
        assert isinstance(app.screen, HostForm)
        await type_text(pilot, "nas")
        await pilot.press("tab")
        await type_text(pilot, "192.0.2.40")
        await pilot.press("tab")
        await type_text(pilot, "2200")
        await pilot.press("tab")
        await type_text(pilot, "admin")
        form = app.screen
        form.query_one("#f-tags").focus()
        await type_text(pilot, "rack-2, site-b")
        form.query_one("#f-password-env").focus()
        await type_text(pilot, "NAS_PASSWORD")
        await pilot.press("ctrl+s")
        await wait_until(lambda: isinstance(app.screen, HostsScreen))
        await settle(pilot)
        assert app.screen.selected == "nas"
        assert [r[0] for r in cell_texts(app, "#hosts-table")][-1] == "nas"
    data = toml(config_file)
    assert data["ui"] == {"theme": "light"}
    assert list(data["hosts"]) == ["edge-pi", "cloud", "backup", "nas"]
    assert data["hosts"]["nas"] == {
        "address": "192.0.2.40",
        "port": 2200,
        "user": "admin",
        "tags": ["rack-2", "site-b"],
        "auth": {"password_env": "NAS_PASSWORD"},
    }
    assert data["hosts"]["edge-pi"] == {"address": "192.0.2.10", "role": "edge"}


EDITED = (
    CONFIG
    + """
[hosts.cloud.auth]
key_files = ["~/.ssh/cloud"]
certificate = "~/.ssh/cloud-cert.pub"
"""
).replace('role = "cloud"\n', 'role = "cloud"\nconnect_timeout = 3.5\nknown_hosts = ["~/kh"]\n')


async def test_edit_changes_only_that_host_and_keeps_fields_the_form_does_not_show(
    write_config, make_bridge
):
    path = write_config(EDITED)
    before = toml(path)
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await select(pilot, "cloud")
        await pilot.press("enter")
        assert isinstance(app.screen, HostForm)
        form = app.screen
        assert form.query_one("#f-name").disabled
        assert form.query_one("#f-keys").value == "~/.ssh/cloud"
        form.query_one("#f-port").focus()
        await pilot.press("ctrl+u")
        await type_text(pilot, "2222")
        form.query_one("#f-description").focus()
        await type_text(pilot, "the cloud side")
        await pilot.press("enter")
        await wait_until(lambda: isinstance(app.screen, HostsScreen))
        await settle(pilot)
        row = next(r for r in cell_texts(app, "#hosts-table") if r[0] == "cloud")
        assert row[2] == "192.0.2.20:2222"
    after = toml(path)
    assert after["hosts"]["cloud"] == {
        **before["hosts"]["cloud"],
        "port": 2222,
        "description": "the cloud side",
    }
    assert after["hosts"]["cloud"]["connect_timeout"] == 3.5
    assert after["hosts"]["cloud"]["auth"]["certificate"] == "~/.ssh/cloud-cert.pub"
    for name in ("edge-pi", "backup"):
        assert after["hosts"][name] == before["hosts"][name]
    assert after["ui"] == before["ui"]


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("22a", 'hosts.nas.port: expected an integer, got "22a"'),
        ("70000", "hosts.nas.port: expected an integer from 1 to 65535, got 70000"),
    ],
)
async def test_an_invalid_port_shows_the_config_error_and_saves_nothing(
    app, config_file, port, message
):
    before = config_file.read_bytes()
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("a")
        await type_text(pilot, "nas")
        await pilot.press("tab")
        await type_text(pilot, "192.0.2.40")
        await pilot.press("tab")
        await type_text(pilot, port)
        await pilot.press("enter")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, HostForm)
        error = form.query_one("#e-port")
        assert error.display and str(error.render()) == message
        assert form.focused is form.query_one("#f-port")
        await pilot.press("ctrl+u")
        await type_text(pilot, "2200")  # fixing it clears the message
        assert not error.display
        await pilot.press("escape")
        assert isinstance(app.screen, HostsScreen)
        assert "nas" not in app.screen.table.shown_keys
    assert config_file.read_bytes() == before


async def test_a_clear_password_has_no_field_and_both_password_sources_are_refused(
    app, config_file
):
    before = config_file.read_bytes()
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("a")
        await type_text(pilot, "nas")
        await pilot.press("tab")
        await type_text(pilot, "192.0.2.40")
        form = app.screen
        assert not any(i.password for i in form.query("Input"))
        form.query_one("#f-password-env").focus()
        await type_text(pilot, "NAS_PW")
        form.query_one("#f-password-command").focus()
        await type_text(pilot, "pass show nas")
        await pilot.press("ctrl+s")
        await settle(pilot)
        error = form.query_one("#e-password-env")
        assert str(error.render()) == (
            "hosts.nas.auth: password_env and password_command are both set (keep one)"
        )
    assert config_file.read_bytes() == before


async def test_adding_a_name_that_exists_is_refused(app, config_file):
    before = config_file.read_bytes()
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("a")
        await type_text(pilot, "cloud")
        await pilot.press("tab")
        await type_text(pilot, "192.0.2.99")
        await pilot.press("enter")
        await settle(pilot)
        assert "a host with this name exists" in str(app.screen.query_one("#e-name").render())
    assert config_file.read_bytes() == before


async def test_delete_asks_and_removes_only_after_yes(app, config_file):
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await select(pilot, "backup")
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert "backup" in toml(config_file)["hosts"]
        await pilot.press("d", "enter")  # enter lands on Cancel, which is focused
        await settle(pilot)
        assert "backup" in toml(config_file)["hosts"]
        await pilot.press("d", "y")
        await settle(pilot)
        assert app.screen.table.shown_keys == ["edge-pi", "cloud"]
    data = toml(config_file)
    assert list(data["hosts"]) == ["edge-pi", "cloud"]
    assert data["ui"] == {"theme": "light"}


async def test_deleting_a_jump_host_is_refused_with_a_notification(write_config, make_bridge):
    path = write_config(CONFIG + 'jump = ["edge-pi"]\n')  # backup jumps through edge-pi
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_hosts(pilot)
        await select(pilot, "edge-pi")
        await pilot.press("d", "y")
        await settle(pilot)
        note = list(app._notifications)[-1]
        assert note.title == "Could not delete host edge-pi"
        assert note.message == (
            "hosts.edge-pi: cannot remove: backup jumps through it "
            "(remove it from those jump lists first)"
        )
    assert "edge-pi" in toml(path)["hosts"]


SSH_CONFIG = """
Host *
    ServerAliveInterval 30

Host nas storage-box
    HostName 192.0.2.40
    User admin
    Port 2200
    IdentityFile ~/.ssh/nas

Host inner
    HostName 10.0.0.5
    ProxyJump nas

Host edge-pi
    HostName 192.0.2.99

Match host foo
    User bar
"""


async def test_import_previews_then_adds_only_the_new_hosts(app, config_file, tmp_path):
    source = tmp_path / "ssh_config"
    source.write_text(SSH_CONFIG)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("i")
        assert isinstance(app.screen, ImportScreen)
        path_box = app.screen.query_one("#import-path")
        path_box.focus()
        await pilot.press("ctrl+u")
        await type_text(pilot, str(source))
        await pilot.press("enter")
        await settle(pilot)
        rows = {(r[0], r[1]) for r in cell_texts(app, "#import-preview")}
        assert {("nas", "new"), ("inner", "new"), ("edge-pi", "exists"), ("*", "skipped")} <= rows
        assert any(
            r[1] == "skipped" and "Match" in r[2] for r in cell_texts(app, "#import-preview")
        )
        assert toml(config_file)["hosts"].keys() == {"edge-pi", "cloud", "backup"}  # not yet
        await pilot.press("ctrl+s")
        await wait_until(lambda: isinstance(app.screen, HostsScreen))
        await settle(pilot)
        assert app.screen.table.shown_keys == ["edge-pi", "cloud", "backup", "nas", "inner"]
    data = toml(config_file)
    assert data["hosts"]["edge-pi"] == {"address": "192.0.2.10", "role": "edge"}  # kept
    assert data["hosts"]["nas"]["address"] == "192.0.2.40"
    assert data["hosts"]["nas"]["auth"] == {"key_files": ["~/.ssh/nas"]}
    assert data["hosts"]["inner"]["jump"] == ["nas"]
    assert data["ui"] == {"theme": "light"}


async def test_import_of_a_missing_file_says_so_and_adds_nothing(app, config_file, tmp_path):
    before = config_file.read_bytes()
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("i")
        app.screen.query_one("#import-path").focus()
        await pilot.press("ctrl+u")
        await type_text(pilot, str(tmp_path / "nope"))
        await pilot.press("enter")
        await settle(pilot)
        error = app.screen.query_one("#import-error")
        assert error.display and "nope: No such file or directory" in str(error.render())
        assert app.screen.query_one("#import-save").disabled
        await pilot.press("ctrl+s", "escape")
        assert isinstance(app.screen, HostsScreen)
    assert config_file.read_bytes() == before


async def test_check_selected_host_against_real_sshd(lab, home, make_bridge):
    lab.write_config(home / "difpipe.toml", ["edge", "cloud"])
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_hosts(pilot)
        await select(pilot, "edge")
        await pilot.press("c")
        await settle(pilot)
        rows = {r[0]: r for r in cell_texts(app, "#hosts-table")}
        edge = rows["edge"]
        assert edge[3] == "UP"
        assert edge[4].endswith(" ms") and float(edge[4].split()[0]) > 0
        assert edge[5].startswith("Linux/")
        assert edge[6].endswith("iB")  # free disk
        assert edge[7] != "-"  # last seen
        assert "sha256sum" in edge[8]  # the tools found
        assert rows["cloud"][3] == "?"  # only the selected host was checked
        assert any(n.title == "edge is up" for n in app._notifications)
    stored = await app.bridge.call(app.bridge.host_statuses)
    assert stored["edge"].reachable and "cloud" not in stored
    assert "sh" in stored["edge"].tools


async def test_check_of_a_host_that_is_down_names_it(write_config, make_bridge):
    write_config('[hosts.nowhere]\naddress = "127.0.0.1"\nport = 9\n')
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_hosts(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert cell_texts(app, "#hosts-table")[0][3] == "DOWN"
        note = list(app._notifications)[-1]
        assert note.title == "nowhere is down" and note.message.startswith("nowhere:")
        assert "last error: nowhere:" in str(app.screen.query_one("#host-detail").render())


async def test_live_events_update_rows_keeping_cursor_and_filter(seeded_app):
    app = seeded_app
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("slash")
        await type_text(pilot, "o")
        await pilot.press("enter")
        assert app.screen.table.shown_keys == ["cloud", "backup"]
        await select(pilot, "backup")
        app.bridge.publish(
            ev.HostChecked(ts=T0, host_name="backup", reachable=True, latency_ms=7.0)
        )
        app.bridge.publish(ev.ConnectionLost(ts=T0 + 1, host_name="cloud", reason="reset"))
        # the two events may reach the screen in two batches
        await wait_until(lambda: [r[3] for r in cell_texts(app, "#hosts-table")] == ["DOWN", "UP"])
        rows = {r[0]: r for r in cell_texts(app, "#hosts-table")}
        assert rows["backup"][4] == "7.0 ms" and rows["backup"][7] == "Jan 01 00:00"
        assert rows["cloud"][3] == "DOWN"
        assert app.screen.selected == "backup"
        assert app.screen.table.filter_text == "o"


async def test_palette_selects_a_host_and_checks_all(seeded_app):
    app = seeded_app
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Check all hosts", "Add host", "Host: edge-pi", "Host: backup"} <= set(titles)
        await pilot.press("ctrl+p")
        await type_text(pilot, "Host: backup")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.selected == "backup"


async def test_readonly_hides_and_refuses_the_changing_verbs(seeded_bridge, home):
    app = build_app(bridge=seeded_bridge, readonly=True, sysinfo=FIXED_SYS)
    before = (home / "difpipe.toml").read_bytes()
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        screen = app.screen
        for action in ("add_host", "edit_host", "delete_host", "import_hosts"):
            assert screen.check_action(action, ()) is False
        assert screen.check_action("check_host", ()) is True
        shown = {b.binding.action for b in screen.active_bindings.values() if b.binding.show}
        assert {"check_host", "check_all", "open_filter"} <= shown
        assert not shown & {"add_host", "edit_host", "delete_host", "import_hosts"}
        titles = [c.title for c in app.get_system_commands(screen)]
        assert "Add host" not in titles and "Check all hosts" in titles
        await pilot.press("a", "enter", "d", "i")
        assert app.screen is screen
        assert screen.sub_title.endswith("· read-only")
    assert (home / "difpipe.toml").read_bytes() == before


async def test_host_commands_are_in_the_palette_on_every_screen(seeded_app):
    app = seeded_app
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key in ("o", "e", "t", "k"):
            await pilot.press(key)
            await settle(pilot)
            titles = {c.title for c in app.get_system_commands(app.screen)}
            wanted = {"Check all hosts", "Add host", "Host: edge-pi", "Host: backup"}
            assert wanted | {"New transfer"} <= titles, key
        await pilot.press("o")
        await pilot.press("ctrl+p")
        await type_text(pilot, "Host: backup")
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(lambda: isinstance(app.screen, HostsScreen))
        await settle(pilot)
        assert app.screen.selected == "backup"
        await pilot.press("e", "ctrl+p")
        await type_text(pilot, "Add host")
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(lambda: isinstance(app.screen, HostForm))
        assert app.current_mode == "hosts"


async def test_readonly_palette_has_no_changing_commands_on_any_screen(seeded_bridge):
    app = build_app(bridge=seeded_bridge, readonly=True, sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE) as pilot:
        for key in ("o", "t", "h"):
            await pilot.press(key)
            await settle(pilot)
            titles = {c.title for c in app.get_system_commands(app.screen)}
            assert "Check all hosts" in titles and "Host: cloud" in titles
            assert not {"Add host", "New transfer"} & titles


async def test_a_host_added_or_deleted_on_the_hosts_screen_reaches_the_overview(app, home):
    with Store.open(home / "state" / "state.db") as store:
        store.record_host_status("edge-pi", reachable=True, latency_ms=3.0, checked_at=T0)
        store.record_host_status("backup", reachable=True, latency_ms=5.0, checked_at=T0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert [r[0] for r in cell_texts(app, "#hosts")] == ["edge-pi", "cloud", "backup"]
        await open_hosts(pilot)
        await pilot.press("a")
        await type_text(pilot, "nas")
        await pilot.press("tab")
        await type_text(pilot, "192.0.2.40")
        await pilot.press("ctrl+s")
        await wait_until(lambda: isinstance(app.screen, HostsScreen))
        await settle(pilot)
        await select(pilot, "backup")
        await pilot.press("d", "y")
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        rows = {r[0]: r for r in cell_texts(app, "#hosts")}
        assert list(rows) == ["edge-pi", "cloud", "nas"]
        assert rows["nas"][2] == "?" and rows["edge-pi"][2] == "UP"  # known states kept
    with Store.open(home / "state" / "state.db") as store:
        assert store.get_host_status("backup") is None


async def test_a_host_added_from_the_cli_shows_keeping_cursor_and_filter(
    app, config_file, tmp_path
):
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host nas\n  HostName 192.0.2.40\n  User ops\n")
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("slash")
        await type_text(pilot, "o")
        await pilot.press("enter")
        await select(pilot, "backup")
        cli = [sys.executable, "-m", "difpipe_tui", "--config", str(config_file)]
        done = subprocess.run(
            [*cli, "hosts", "import-ssh-config", str(ssh_config)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "nas" in toml(config_file)["hosts"]
        await wait_until(lambda: "nas" in app.screen.table.shown_keys, timeout=10)
        assert app.screen.table.shown_keys == ["cloud", "backup", "nas"]
        assert app.screen.selected == "backup"
        assert app.screen.table.filter_text == "o"
        assert "Hosts · 4" in app.screen.sub_title


async def jump_menu(pilot) -> list[str]:
    """Open the jump picker's menu; what it offers, its prompt first."""
    picker = pilot.app.screen.query_one("#f-jump")
    picker.focus()
    await pilot.press("enter")
    await pilot.pause()
    menu = picker.query_one("SelectOverlay")
    return [str(menu.get_option_at_index(i).prompt) for i in range(menu.option_count)]


async def hop(pilot, name: str) -> None:
    """Add ``name`` to the jump chain with the picker's menu."""
    offered = await jump_menu(pilot)
    await pilot.press(*["down"] * offered.index(name), "enter")
    await pilot.pause()


async def test_a_jump_chain_of_two_hops_is_saved_and_shown_again(app, config_file, home):
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("a")
        form = app.screen
        await type_text(pilot, "inner")
        await pilot.press("tab")
        await type_text(pilot, "10.0.0.7")
        chain = form.query_one("#jump-chain")
        assert str(chain.render()) == "direct"
        await hop(pilot, "backup")
        await hop(pilot, "edge-pi")
        assert str(chain.render()) == "backup → edge-pi"
        form.query_one("#jump-pop").focus()
        await pilot.press("enter")  # takes edge-pi off again
        assert str(chain.render()) == "backup"
        await hop(pilot, "cloud")
        assert str(chain.render()) == "backup → cloud"
        await pilot.press("ctrl+s")
        await wait_until(lambda: isinstance(app.screen, HostsScreen))
        await settle(pilot)
        assert toml(config_file)["hosts"]["inner"] == {
            "address": "10.0.0.7",
            "jump": ["backup", "cloud"],
        }
        hops = [h.name for h in app.bridge.config.jump_chain("inner")]
        assert hops == ["backup", "cloud"]
        await select(pilot, "inner")
        await pilot.press("enter")
        form = app.screen
        assert isinstance(form, HostForm)
        assert str(form.query_one("#jump-chain").render()) == "backup → cloud"
        assert await jump_menu(pilot) == ["+ hop", "edge-pi"]  # not twice, not itself
        await pilot.press("escape")  # closes the menu, not the form
        assert app.screen is form
        form.query_one("#f-description").focus()
        await type_text(pilot, "two hops in")
        await pilot.press("ctrl+s")
        await wait_until(lambda: isinstance(app.screen, HostsScreen))
        await settle(pilot)
    saved = toml(config_file)["hosts"]["inner"]
    assert saved["jump"] == ["backup", "cloud"] and saved["description"] == "two hops in"


async def test_a_config_file_broken_elsewhere_is_a_notification_and_the_hosts_stay(
    seeded_app, home
):
    path = home / "difpipe.toml"
    good = path.read_text()
    async with seeded_app.run_test(size=SIZE, notifications=True) as pilot:
        await open_hosts(pilot)
        path.write_text(good + '\n[hosts.nas]\nport = "x"\n')
        await wait_until(lambda: seeded_app._notifications, timeout=10)
        note = list(seeded_app._notifications)[-1]
        assert note.title == "Config file changed but does not load"
        assert note.severity == "error" and str(path) in note.message
        assert "Fix the file" in note.message
        assert seeded_app.screen.table.shown_keys == ["edge-pi", "cloud", "backup"]
        path.write_text(good + '\n[hosts.nas]\naddress = "192.0.2.40"\n')
        await wait_until(lambda: "nas" in seeded_app.screen.table.shown_keys, timeout=10)


async def test_keys_of_the_host_form_and_the_confirmation_follow_the_keymap(
    write_config, make_bridge
):
    config_file = write_config(
        CONFIG + '\n[ui.keymap]\n"hostform.save" = "f2"\n"confirm.yes" = "j"\n'
    )
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("a")
        await type_text(pilot, "nas")
        await pilot.press("tab")
        await type_text(pilot, "192.0.2.40")
        form = app.screen
        assert isinstance(form, HostForm)
        assert form.query_one("#host-form").border_subtitle == "enter/f2 save · esc cancel"
        await pilot.press("ctrl+s")  # the key it had: no longer saves
        await pilot.pause()
        assert app.screen is form
        assert "nas" not in toml(config_file)["hosts"]
        await pilot.press("f2")
        await wait_until(lambda: isinstance(app.screen, HostsScreen))
        await settle(pilot)
        assert toml(config_file)["hosts"]["nas"] == {"address": "192.0.2.40"}
        await select(pilot, "nas")
        await pilot.press("d", "y")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)  # y is no longer the answer
        assert str(app.screen.query_one("#confirm-yes").label) == "Delete (j)"
        await pilot.press("j")
        await settle(pilot)
        assert isinstance(app.screen, HostsScreen)
        assert "nas" not in app.screen.table.shown_keys
    assert list(toml(config_file)["hosts"]) == ["edge-pi", "cloud", "backup"]


async def test_the_import_preview_filters_and_esc_clears_before_it_cancels(
    app, config_file, tmp_path
):
    source = tmp_path / "ssh_config"
    source.write_text(SSH_CONFIG)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("i")
        screen = app.screen
        screen.query_one("#import-path").focus()
        await pilot.press("ctrl+u")
        await type_text(pilot, str(source))  # a path's / is typed, not a filter
        await pilot.press("enter")
        await settle(pilot)
        everything = cell_texts(app, "#import-preview")
        assert len(everything) > 3
        screen.query_one("#import-preview").focus()
        await pilot.press("slash")
        await type_text(pilot, "new")
        assert {(r[0], r[1]) for r in cell_texts(app, "#import-preview")} == {
            ("nas", "new"),
            ("inner", "new"),
        }
        await pilot.press("enter")  # keeps the filter, back on the table
        assert screen.focused is screen.query_one("#import-preview")
        assert len(cell_texts(app, "#import-preview")) == 2
        await pilot.press("escape")  # clears the filter, the preview stays open
        assert app.screen is screen
        assert cell_texts(app, "#import-preview") == everything
        await pilot.press("escape")
        assert isinstance(app.screen, HostsScreen)
    assert list(toml(config_file)["hosts"]) == ["edge-pi", "cloud", "backup"]
