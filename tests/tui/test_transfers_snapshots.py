"""Pictures of the Transfers screen, its form and a transfer's details, with fixed events (no
live rates) at 120x40 and 80x24. Update them with ``pytest tests/tui --snapshot-update`` and
look at the new SVGs before committing them.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from difpipe_tui.core import events as ev
from difpipe_tui.screens.transfer_form import TransferForm
from tests.tui.helpers import T0, publish_fixed, type_text, wait_until

SIZES = [(120, 40), (80, 24)]
MiB = 1024 * 1024
RUNNING, FINISHED = "7e57a1b2c3d4", "f1a2b3c4d5e6"
LOGS, BACKUP = "cloud:/srv/logs/", "backup:/b/app.log"
DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _progress(ts: float, dest: str, done: int, rate: float) -> ev.TransferProgress:
    eta = (256 * MiB - done) / rate
    return ev.TransferProgress(
        ts=ts,
        transfer_id=RUNNING,
        destination=dest,
        bytes=done,
        total=256 * MiB,
        rate=rate,
        eta=round(eta, 1),
    )


TRANSFER_EVENTS: tuple[ev.Event, ...] = (
    ev.TransferStarted(
        ts=T0 + 1,
        transfer_id=FINISHED,
        source="cloud:/srv/db/dump.sql",
        destinations=("backup:/b/dump.sql",),
        total=64 * MiB,
        strategy="exec",
        codec="none",
        reason="asked for none",
    ),
    ev.TransferProgress(
        ts=T0 + 5,
        transfer_id=FINISHED,
        destination="backup:/b/dump.sql",
        bytes=32 * MiB,
        total=64 * MiB,
        rate=8.0 * MiB,
        eta=4.0,
    ),
    ev.TransferDestinationDone(
        ts=T0 + 9,
        transfer_id=FINISHED,
        destination="backup:/b/dump.sql",
        status="done",
        bytes=64 * MiB,
        digest=DIGEST,
    ),
    ev.TransferFinished(
        ts=T0 + 9, transfer_id=FINISHED, status="done", bytes=64 * MiB, seconds=8.0
    ),
    ev.TransferStarted(
        ts=T0 + 10,
        transfer_id=RUNNING,
        source="edge-pi:/var/log/app.log",
        destinations=(LOGS, BACKUP),
        total=256 * MiB,
        strategy="exec",
        codec="zstd",
        reason="a sample compresses to 23%",
    ),
    *(
        _progress(T0 + 10 + i, dest, (i * 12 + k * 4) * MiB, (10 + 2 * i - 3 * k) * MiB)
        for i in range(1, 8)
        for k, dest in enumerate((LOGS, BACKUP))
    ),
    ev.TransferCheckpoint(ts=T0 + 17, transfer_id=RUNNING, destination=LOGS, offset=64 * MiB),
)

PLAN = {
    "source": {
        "endpoint": "edge-pi:/var/log/app.log",
        "kind": "file",
        "size": 256 * MiB,
        "files": None,
        "is_dir": False,
        "tools": [],
        "sftp": False,
    },
    "destinations": [
        {
            "endpoint": LOGS,
            "target": "/srv/logs/app.log",
            "exists": False,
            "free_bytes": 40 * 1024 * MiB,
            "tools": ["sha256sum", "zstd"],
            "problem": None,
        },
        {
            "endpoint": "backup:/b/",
            "target": "/b/app.log",
            "exists": True,
            "free_bytes": 100 * MiB,
            "tools": ["sha256sum"],
            "problem": "backup:/b/app.log: 100.0 MiB free, 256.0 MiB needed",
        },
    ],
    "strategy": "exec",
    "strategy_reason": "every end has sh, cat, tail and head",
    "codec": {
        "codec": "zstd",
        "level": 3,
        "where": "local-compress",
        "reason": "a sample compresses to 23%",
    },
    "verify": "sha256",
    "sample_ratio": 0.23,
}


async def _shown(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.press("t")
    await publish_fixed(pilot.app, TRANSFER_EVENTS)
    screen = pilot.app.screen

    def drawn() -> bool:
        """the throttled table drew both transfers"""
        return len(screen.live.transfers) == 2 and not screen._dirty

    await wait_until(drawn)
    # A draw between two batches of the events leaves the cursor on the row shown first
    # (the table keeps its cursor on a row): the pictures start from the first row.
    screen.query_one("#transfers").move_cursor(row=0, animate=False)
    await pilot.pause()


async def _form(pilot) -> TransferForm:
    await _shown(pilot)
    await pilot.press("n")
    await pilot.pause()
    form = pilot.app.screen
    assert isinstance(form, TransferForm)
    for box in form.query(Input):
        box.cursor_blink = False
    await type_text(pilot, "/var/log/app.log")
    await pilot.press("tab", "tab")
    await type_text(pilot, "/srv/logs/")
    form.query_one("#rate", Input).value = "20M"
    await pilot.pause()
    return form


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_transfers(snap_compare, seeded_app, size):
    assert snap_compare(seeded_app, terminal_size=size, run_before=_shown)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_transfer_form(snap_compare, seeded_app, size):
    assert snap_compare(seeded_app, terminal_size=size, run_before=_form)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_transfer_form_with_plan(snap_compare, seeded_app, size):
    async def run_before(pilot) -> None:
        form = await _form(pilot)
        form.show_plan(PLAN)
        await pilot.pause()

    assert snap_compare(seeded_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_transfer_details(snap_compare, seeded_app, size):
    async def run_before(pilot) -> None:
        await _shown(pilot)
        await pilot.press("down", "down", "down", "enter")
        await pilot.pause()

    assert snap_compare(seeded_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_transfer_form_advanced(snap_compare, seeded_app, size):
    async def run_before(pilot) -> None:
        form = await _form(pilot)
        form.query_one("#advanced").collapsed = False
        form.query_one("#parallel", Input).value = "0"
        await pilot.press("ctrl+s")
        await pilot.pause()

    assert snap_compare(seeded_app, terminal_size=size, run_before=run_before)
