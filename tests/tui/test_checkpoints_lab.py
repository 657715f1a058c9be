"""The Checkpoints screen over a real interrupted transfer between real sshd hosts: it is
listed with its offset, ``r`` resumes it to a byte-identical file, a running transfer cannot
be deleted, and a transfer whose host is down fails with a notification naming the host.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from difpipe_tui.app import DifpipeApp, build_app
from difpipe_tui.core.config import load_config
from difpipe_tui.core.events import EventBus
from difpipe_tui.core.ssh import SSHPool
from difpipe_tui.core.store import Store
from difpipe_tui.core.transfer.engine import TransferEngine
from difpipe_tui.core.transfer.job import CopyJob
from difpipe_tui.screens.checkpoint_detail import done_text
from difpipe_tui.screens.checkpoints import CheckpointsScreen
from difpipe_tui.screens.confirm import ConfirmScreen
from tests.tui.helpers import FIXED_SYS, cell_texts, wait_until
from tests.tui.test_checkpoints import modal_text

MiB = 1024 * 1024
SIZE = (120, 40)


def sha(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@pytest.fixture
def dirs(lab):
    """A fresh directory on the edge and the cloud host, removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    made = {name: Path(lab.hosts[name].root) / f"cp-{tag}" for name in ("edge", "cloud")}
    for d in made.values():
        d.mkdir(parents=True)
    yield made
    for d in made.values():
        subprocess.run(["rm", "-rf", str(d)], check=False)


async def interrupted_copy(home: Path, job: CopyJob) -> tuple[str, int, str]:
    """Run ``job`` the way ``difpipe copy`` does and stop it after its first checkpoint, as
    Ctrl-C would: the transfer id, the offset saved and its prefix digest."""
    config = load_config(home / "difpipe.toml")
    bus = EventBus()
    saved = asyncio.Event()
    bus.subscribe(lambda e: saved.set() if e.kind == "transfer.checkpoint" else None)
    with Store.open(home / "state" / "state.db") as store:
        async with SSHPool(config, bus=bus, known_hosts_file=home / "known_hosts") as pool:
            engine = TransferEngine(config, pool=pool, store=store, bus=bus)
            handle = await engine.start(job)
            await asyncio.wait_for(saved.wait(), 20)
            handle.cancel()
            result = await handle.wait()
        assert result.status == "interrupted", result
        (cp,) = store.get_checkpoints(result.transfer_id)
    assert cp.offset > 0 and cp.prefix_digest
    return result.transfer_id, cp.offset, cp.prefix_digest


def errors(app: DifpipeApp) -> list:
    return [n for n in app._notifications if n.severity == "error"]


async def open_checkpoints(pilot, app: DifpipeApp) -> None:
    await pilot.press("k")
    await wait_until(lambda: app.screen.query_one("#checkpoints").row_count > 0)


async def test_resume_an_interrupted_transfer_to_identical_bytes(lab, home, dirs, make_bridge):
    lab.write_config(home / "difpipe.toml", ["edge", "cloud"])
    src = dirs["edge"] / "big.bin"
    src.write_bytes(os.urandom(12 * MiB + 321))
    job = CopyJob(
        source=f"edge:{src}",
        destinations=(f"cloud:{dirs['cloud']}/",),
        rate_limit=4 * MiB,
        checkpoint_interval=MiB,
    )
    tid, offset, digest = await interrupted_copy(home, job)
    landed = dirs["cloud"] / "big.bin"
    assert not landed.exists()

    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_checkpoints(pilot, app)
        (row,) = cell_texts(app, "#checkpoints")
        assert row[:3] == [tid, "INTERRUPTED", done_text(offset, 12 * MiB + 321)]
        assert row[4] == f"cloud:{dirs['cloud']}/"
        await pilot.press("enter")
        assert f"sha256 {digest}" in modal_text(app.screen)
        await pilot.press("escape")

        await pilot.press("r")
        await wait_until(lambda: cell_texts(app, "#checkpoints")[0][1] == "RUNNING")
        # the row can show RUNNING (the store) before the engine's answer reaches the screen
        await wait_until(lambda: any(n.title == f"Resumed {tid}" for n in app._notifications))

        await pilot.press("d", "y")  # a running transfer is not deleted
        await wait_until(lambda: any("running" in n.message for n in errors(app)))
        assert isinstance(app.screen, CheckpointsScreen)

        # each checkpoint the resumed run saves is shown as it is saved
        first = cell_texts(app, "#checkpoints")[0][2]
        await wait_until(lambda: cell_texts(app, "#checkpoints")[0][2] != first, timeout=10)
        await wait_until(lambda: landed.exists(), timeout=30)
        await wait_until(lambda: app.screen.query_one("#no-checkpoints").display)
    assert sha(landed) == sha(src)
    with Store.open(home / "state" / "state.db") as store:
        assert store.get_checkpoints(tid) == []
        assert store.get_transfer(tid).status == "done"


async def test_resume_with_the_source_host_down_names_it(lab, home, dirs, make_bridge):
    lab.write_config(home / "difpipe.toml", ["edge", "cloud"])
    src = dirs["edge"] / "small.bin"
    src.write_bytes(os.urandom(4 * MiB))
    job = CopyJob(
        source=f"edge:{src}",
        destinations=(f"cloud:{dirs['cloud']}/",),
        rate_limit=2 * MiB,
        checkpoint_interval=MiB,
        retries=1,  # one backoff: still connecting at the second r, failed soon after
    )
    tid, _, _ = await interrupted_copy(home, job)
    text = (home / "difpipe.toml").read_text()
    port = lab.hosts["edge"].port
    (home / "difpipe.toml").write_text(text.replace(f"port = {port}", "port = 9", 1))

    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_checkpoints(pilot, app)
        await pilot.press("r")
        await wait_until(lambda: tid in app.bridge._resuming)
        await pilot.press("r")  # while it is still connecting: refused, not started twice
        await wait_until(lambda: errors(app), 10)
        assert "starting or running" in errors(app)[0].message
        await wait_until(lambda: len(errors(app)) == 2, 30)
        note = errors(app)[1]
        assert note.title == f"Could not resume transfer {tid}"
        assert note.message.startswith("edge: ")  # the host at fault, then what went wrong
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_until(lambda: app.screen.query_one("#no-checkpoints").display)
    with Store.open(home / "state" / "state.db") as store:
        assert store.get_transfer(tid) is None
