"""The Checkpoints screen over a store seeded with fixed transfers: list, filter, inspect,
delete (confirmed), read-only, and refreshing on transfer events without losing the cursor.

Resuming a real interrupted transfer is in test_checkpoints_lab.py.
"""

from __future__ import annotations

import dataclasses
import io
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from difpipe_tui.app import DifpipeApp, build_app
from difpipe_tui.core import events as ev
from difpipe_tui.core.store import Checkpoint, Store
from difpipe_tui.screens import checkpoints
from difpipe_tui.screens.checkpoint_detail import CheckpointDetail
from difpipe_tui.screens.checkpoints import CheckpointsScreen
from difpipe_tui.screens.confirm import ConfirmScreen
from tests.tui.helpers import (
    FIXED_SYS,
    SEEDED_CONFIG,
    T0,
    cell_texts,
    palette_hits,
    run_command,
    type_text,
    wait_until,
)

MiB = 1024 * 1024
SIZE = (120, 40)
LOGS = "a1b2c3d4e5f6"  # interrupted, two destinations with checkpoints
DB = "0f1e2d3c4b5a"  # failed before its first checkpoint
DONE = "9e8d7c6b5a49"  # done: never listed
PREFIX = "3f9a0c41d2b7e85a6c19f0e2d4b3a5c7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6"


def seed_checkpoints(db: Path) -> None:
    """Three transfers at fixed times (created / updated before ``T0``)."""
    rows = [
        (LOGS, "edge-pi:/var/log/app.log", ["cloud:/srv/logs/", "backup:/b/"], "interrupted"),
        (DB, "edge-pi:/srv/data/db.sqlite", ["cloud:/srv/data/"], "failed"),
        (DONE, "edge-pi:/etc/hosts", ["cloud:/tmp/"], "done"),
    ]
    with Store.open(db) as store:
        for tid, source, dests, status in rows:
            spec = {"source": source, "destinations": dests, "rate_limit": 20_000_000}
            store.create_transfer(
                source=source,
                destinations=dests,
                spec=spec,
                spec_key=tid,
                total_bytes=64 * MiB,
                transfer_id=tid,
            )
            store.update_transfer(tid, status=status)
        store.update_transfer(
            DB, error="cloud: connection refused by ops@192.0.2.20:22 (is sshd running?)"
        )
        for dest, offset, digest in (("cloud:/srv/logs/", 16, PREFIX), ("backup:/b/", 8, "")):
            store.save_checkpoint(
                Checkpoint(
                    transfer_id=LOGS,
                    destination=dest,
                    offset=offset * MiB,
                    prefix_digest=digest,
                    digest_algo="sha256",
                    total=64 * MiB,
                )
            )
    with sqlite3.connect(db) as conn:
        for tid, created, updated in ((LOGS, 7200, 600), (DB, 2 * 86400, 86400), (DONE, 60, 30)):
            conn.execute(
                "UPDATE transfers SET created_at = ?, updated_at = ? WHERE id = ?",
                (T0 - created, T0 - updated, tid),
            )
        conn.execute(
            "UPDATE checkpoints SET updated_at = ? WHERE destination = ?",
            (T0 - 600, "cloud:/srv/logs/"),
        )
        conn.execute(
            "UPDATE checkpoints SET updated_at = ? WHERE destination = ?", (T0 - 3700, "backup:/b/")
        )


@pytest.fixture
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> float:
    """Ages measured from ``T0``; no periodic reading, so only events refresh the list."""
    monkeypatch.setattr(CheckpointsScreen, "clock", staticmethod(lambda: T0))
    monkeypatch.setattr(checkpoints, "REFRESH_SECONDS", 3600.0)
    return T0


@pytest.fixture
def cp_home(home: Path, write_config) -> Path:
    write_config(SEEDED_CONFIG)
    seed_checkpoints(home / "state" / "state.db")
    return home


@pytest.fixture
def cp_app(cp_home, make_bridge, fixed_now) -> DifpipeApp:
    return build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)


async def shown(pilot, app: DifpipeApp) -> list[list[str]]:
    """Open the screen and wait until it shows the store's rows."""
    if not isinstance(app.screen, CheckpointsScreen):
        await pilot.press("k")
    await wait_until(lambda: app.screen.query_one("#checkpoints").row_count > 0)
    return cell_texts(app, "#checkpoints")


async def test_lists_each_destination_with_offset_age_and_prefix(cp_app):
    async with cp_app.run_test(size=SIZE) as pilot:
        rows = await shown(pilot, cp_app)
        assert rows == [
            [LOGS, "INTERRUPTED", "16.0 MiB / 64.0 MiB 25%", "10m", "cloud:/srv/logs/",
             PREFIX[:12], "edge-pi:/var/log/app.log"],
            [LOGS, "INTERRUPTED", "8.0 MiB / 64.0 MiB 12%", "1h", "backup:/b/", "-",
             "edge-pi:/var/log/app.log"],
            [DB, "FAILED", "0 B / 64.0 MiB 0%", "1d", "cloud:/srv/data/", "-",
             "edge-pi:/srv/data/db.sqlite"],
        ]  # fmt: skip
        assert cp_app.screen.sub_title == "Checkpoints · 2 unfinished"


async def test_filter_then_inspect_shows_prefix_digest_job_and_error(cp_app):
    async with cp_app.run_test(size=SIZE) as pilot:
        await shown(pilot, cp_app)
        await pilot.press("slash")
        await type_text(pilot, "backup")
        await pilot.press("enter")
        assert [r[4] for r in cell_texts(cp_app, "#checkpoints")] == ["backup:/b/"]
        await pilot.press("escape", "slash")
        await type_text(pilot, "db.sqlite")
        await pilot.press("enter")
        await pilot.press("enter")
        detail = cp_app.screen
        assert isinstance(detail, CheckpointDetail) and detail.item.id == DB
        text = modal_text(detail)
        assert "connection refused by ops@192.0.2.20:22" in text
        assert "none: a resume starts this destination over" in text
        await pilot.press("escape")
        await pilot.press("slash", "ctrl+u")
        await type_text(pilot, "srv/logs")
        await pilot.press("enter", "enter")
        text = modal_text(cp_app.screen)
        assert f"sha256 {PREFIX}" in text
        assert "16.0 MiB / 64.0 MiB 25%" in text and "16777216 bytes" in text
        assert "rate limit" in text and "19.1 MiB/s" in text
        assert "2025-12-31 23:50:00 (10m ago)" in text  # saved, in the local zone (UTC here)
        assert "created" in text and "2025-12-31 22:00:00 (2h ago)" in text


def modal_text(screen) -> str:
    """The text of every Static of a modal, as a terminal 100 columns wide shows it."""
    console = Console(width=100, record=True, file=io.StringIO())
    for static in screen.query("Static"):
        console.print(static.content)
    return console.export_text()


async def test_delete_asks_and_removes_only_that_transfer(cp_app, cp_home):
    db = cp_home / "state" / "state.db"
    async with cp_app.run_test(size=SIZE, notifications=True) as pilot:
        await shown(pilot, cp_app)
        for no in ("n", "escape"):
            await pilot.press("d")
            assert isinstance(cp_app.screen, ConfirmScreen)
            assert LOGS in cp_app.screen.question
            await pilot.press(no)
            assert isinstance(cp_app.screen, CheckpointsScreen)
        with Store.open(db) as store:
            assert store.get_transfer(LOGS) is not None
        await pilot.press("d", "y")
        await wait_until(lambda: len(cell_texts(cp_app, "#checkpoints")) == 1)
        assert cell_texts(cp_app, "#checkpoints")[0][0] == DB
    with Store.open(db) as store:
        assert store.get_transfer(LOGS) is None and store.get_checkpoints(LOGS) == []
        assert store.get_transfer(DB) is not None and store.get_transfer(DONE) is not None


async def test_readonly_hides_and_refuses_resume_and_delete(cp_home, make_bridge, fixed_now):
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot, app)
        await pilot.pause()
        footer = {key.description for key in app.screen.query("FooterKey")}
        assert {"Filter", "Inspect"} <= footer
        assert not {"Resume", "Delete"} & footer
        await pilot.press("d")
        assert isinstance(app.screen, CheckpointsScreen)
        await pilot.press("r")
        await pilot.pause()
        assert not [w for w in app.screen.workers if w.name.startswith("resume")]
        assert app.screen.sub_title.endswith("read-only")
        await pilot.press("enter")
        assert isinstance(app.screen, CheckpointDetail)


async def test_transfer_events_refresh_keeping_cursor_and_filter(cp_app, cp_home):
    db = cp_home / "state" / "state.db"
    async with cp_app.run_test(size=SIZE) as pilot:
        await shown(pilot, cp_app)
        await pilot.press("slash")
        await type_text(pilot, "app.log")
        await pilot.press("enter")
        await pilot.press("down")
        table = cp_app.screen.query_one("#checkpoints")
        assert table.selected.key == f"{LOGS} backup:/b/"
        with Store.open(db) as store:  # another process saves a checkpoint
            cp = store.get_checkpoint(LOGS, "backup:/b/")
            store.save_checkpoint(dataclasses.replace(cp, offset=32 * MiB))
        cp_app.bridge.publish(
            ev.TransferCheckpoint(transfer_id=LOGS, destination="backup:/b/", offset=32 * MiB)
        )
        await wait_until(lambda: "32.0 MiB" in cell_texts(cp_app, "#checkpoints")[1][2])
        assert table.selected.key == f"{LOGS} backup:/b/"
        assert table.filter_text == "app.log" and len(cell_texts(cp_app, "#checkpoints")) == 2


async def test_changes_by_another_process_show_within_the_refresh_interval(
    cp_home, make_bridge, fixed_now, monkeypatch
):
    monkeypatch.setattr(checkpoints, "REFRESH_SECONDS", 0.2)
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE) as pilot:
        await shown(pilot, app)
        with Store.open(cp_home / "state" / "state.db") as store:  # `difpipe checkpoints rm`
            store.delete_transfer(DB)
        await wait_until(lambda: DB not in {r[0] for r in cell_texts(app, "#checkpoints")})
        assert app.screen.sub_title == "Checkpoints · 1 unfinished"


async def test_checkpoints_by_id_in_the_palette_inspect_and_delete_after_a_yes(cp_app, cp_home):
    db = cp_home / "state" / "state.db"
    app = cp_app
    async with app.run_test(size=SIZE) as pilot:
        hits = await palette_hits(pilot, f"checkpoint {DB}")
        assert {f"{verb} checkpoint {DB}" for verb in ("Resume", "Inspect", "Delete")} <= set(hits)
        assert not [h for h in hits if DONE in h]  # a finished transfer has none
        await pilot.press("escape")
        await run_command(pilot, f"Inspect checkpoint {LOGS}")
        await wait_until(lambda: isinstance(app.screen, CheckpointDetail))
        assert app.screen.item.id == LOGS and app.current_mode == "checkpoints"
        await pilot.press("escape")
        await pilot.press("o")  # from another screen
        await run_command(pilot, f"Delete checkpoint {DB}")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        assert DB in app.screen.question
        await pilot.press("y")
        await wait_until(lambda: [r[0] for r in cell_texts(app, "#checkpoints")] == [LOGS] * 2)
    with Store.open(db) as store:
        assert store.get_transfer(DB) is None
        assert store.get_transfer(LOGS) is not None


async def test_readonly_palette_inspects_checkpoints_but_offers_no_resume_or_delete(
    cp_home, make_bridge, fixed_now
):
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        hits = await palette_hits(pilot, "checkpoint")
        assert {f"Inspect checkpoint {LOGS}", f"Inspect checkpoint {DB}"} <= set(hits)
        assert not [h for h in hits if h.startswith(("Resume", "Delete"))]
