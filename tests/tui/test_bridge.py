"""The engine bridge alone: its thread, its shutdown, its events and its config writes."""

from __future__ import annotations

import asyncio
import threading
import time
import tomllib

import pytest

from difpipe_tui.core import events as ev
from difpipe_tui.core.config import Host
from tests.tui.helpers import SEEDED_CONFIG


def test_work_runs_on_the_engine_thread_and_events_reach_subscribers(make_bridge):
    bridge = make_bridge()

    async def where() -> str:
        return threading.current_thread().name

    assert bridge.submit(where).result(5) == "difpipe-engine"
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def on_event(event: ev.Event) -> None:
        seen.append((event.kind, threading.current_thread().name))
        done.set()

    bridge.subscribe(on_event)
    bridge.publish(ev.HostChecked(host_name="edge", reachable=True))
    assert done.wait(5)
    assert seen == [("host.checked", "difpipe-engine")]


def test_close_cancels_running_work_and_joins_in_bounded_time(make_bridge):
    bridge = make_bridge()
    long = bridge.submit(asyncio.sleep, 3600)
    start = time.monotonic()
    bridge.close(timeout=2.0)
    assert time.monotonic() - start < 3.0
    assert long.cancelled()
    assert not bridge._thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        bridge.submit(asyncio.sleep, 0)
    bridge.close()  # twice is harmless


def test_save_ui_keeps_the_other_entries_and_reload_sees_new_hosts(write_config, make_bridge):
    path = write_config(SEEDED_CONFIG)
    bridge = make_bridge()
    bridge.submit(bridge.save_ui, theme="high-contrast").result(5)
    data = tomllib.loads(path.read_text())
    assert data["ui"] == {"theme": "high-contrast"}
    assert list(data["hosts"]) == ["edge-pi", "cloud", "backup"]
    assert bridge.config.ui.theme == "high-contrast"

    path.write_text(path.read_text() + '\n[hosts.new]\naddress = "192.0.2.40"\n')
    old_pool = bridge.pool
    config = bridge.submit(bridge.reload_config).result(5)
    assert "new" in config.hosts and "new" in bridge.pool.config.hosts
    assert bridge.pool is not old_pool and bridge.engine.pool is bridge.pool


def test_config_changes_publish_the_hosts_and_removal_forgets_the_last_check(
    write_config, make_bridge
):
    write_config(SEEDED_CONFIG)
    bridge = make_bridge()
    seen: list[ev.Event] = []
    bridge.subscribe(seen.append)
    bridge.submit(bridge.save_host, Host(name="nas", address="192.0.2.40")).result(5)

    async def record() -> None:
        bridge.store.record_host_status("backup", reachable=True, latency_ms=1.0)

    bridge.submit(record).result(5)
    assert "backup" in bridge.submit(bridge.host_statuses).result(5)
    bridge.submit(bridge.remove_host, "backup").result(5)
    reloads = [e.hosts for e in seen if isinstance(e, ev.ConfigReloaded)]
    assert reloads == [("edge-pi", "cloud", "backup", "nas"), ("edge-pi", "cloud", "nas")]
    assert "backup" not in bridge.submit(bridge.host_statuses).result(5)


def test_a_config_file_changed_elsewhere_is_reloaded_once_it_loads(
    write_config, make_bridge, monkeypatch
):
    # the watcher looks every quarter second, not every second: each wait below spans two looks
    watch = 0.25
    monkeypatch.setattr("difpipe_tui.bridge.WATCH_SECONDS", watch)
    path = write_config(SEEDED_CONFIG)
    bridge = make_bridge()
    reloads: list[tuple[str, ...]] = []
    rejected: list[ev.ConfigRejected] = []
    bridge.subscribe(lambda e: reloads.append(e.hosts) if e.kind == "config.reloaded" else None)
    bridge.subscribe(lambda e: rejected.append(e) if e.kind == "config.rejected" else None)
    path.write_text(SEEDED_CONFIG + "\n[hosts.nas\n")  # half written: not TOML
    time.sleep(2.5 * watch)
    assert reloads == [] and "nas" not in bridge.config.hosts
    assert len(rejected) == 1 and rejected[0].path == str(path)
    assert rejected[0].error.startswith(str(path))
    path.write_text(SEEDED_CONFIG + '\n[hosts.nas]\naddress = "192.0.2.40"\n')
    deadline = time.monotonic() + 5
    while not reloads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reloads == [("edge-pi", "cloud", "backup", "nas")]
    assert bridge.config.hosts["nas"].address == "192.0.2.40"
    bridge.submit(bridge.save_host, Host(name="db", address="192.0.2.50")).result(5)
    time.sleep(2.5 * watch)  # the watcher sees its own save as nothing new
    assert len(reloads) == 2
