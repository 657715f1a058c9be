"""The Transfers screen driven by keys over a real engine bridge and the real sshd lab: the form,
its plan preview, copies that land, fan-out, pause, stop, quitting, and errors as notifications.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
import threading
from pathlib import Path

from rich.console import Console
from textual.widgets import Input, Static

from difpipe_tui.app import build_app
from difpipe_tui.bridge import EngineBridge
from difpipe_tui.core.store import Store
from difpipe_tui.core.transfer.ends import PART_SUFFIX
from difpipe_tui.core.transfer.job import CopyJob
from difpipe_tui.screens.confirm import ConfirmScreen
from difpipe_tui.screens.transfer_details import TransferDetailsScreen
from difpipe_tui.screens.transfers import TransfersScreen
from tests.tui.helpers import (
    FIXED_SYS,
    palette_hits,
    publish_fixed,
    random_file,
    run_command,
    wait_until,
)
from tests.tui.test_transfers_snapshots import TRANSFER_EVENTS
from tests.tui.transfer_steps import (
    fill,
    open_form,
    row_state,
    start,
    transfers_screen,
    wait_state,
)

SIZE = (120, 40)
MiB = 1024 * 1024


def shown_text(static: Static) -> str:
    """What a Static shows, as plain text at its width."""
    console = Console(width=static.size.width, record=True, file=io.StringIO())
    console.print(static.content)
    return console.export_text()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_analyze_then_start_lands_the_file(lab_app, dirs):
    src = random_file(dirs["edge"] / "data.bin", 3 * MiB + 17)
    async with lab_app.run_test(size=SIZE, notifications=True) as pilot:
        app = lab_app
        form = await open_form(pilot)
        await fill(pilot, source=("edge", str(src)), destinations=[("cloud", f"{dirs['cloud']}/")])
        await pilot.press("ctrl+r")
        plan = form.query_one("#plan", Static)
        await wait_until(lambda: "strategy" in str(plan.render()), timeout=30)
        text = str(plan.render())
        assert f"edge:{src}" in text and "3.0 MiB" in text
        assert f"lands at {dirs['cloud']}/data.bin" in text and "free " in text
        assert "\nstrategy      exec" in text and "not compressing" in text
        assert plan.border_subtitle == "ready"
        transfer_id = await start(pilot)
        await wait_state(app, transfer_id, "DONE")
        landed = dirs["cloud"] / "data.bin"
        assert landed.read_bytes() == src.read_bytes()
        rows = transfers_screen(app).query_one("#transfers")
        dest_row = rows.get_row(f"{transfer_id}/cloud:{dirs['cloud']}/")
        assert str(dest_row[1]) == "DONE" and str(dest_row[9]) == sha(src)[:8] + "…"
        await pilot.press("enter")
        details = app.screen
        assert isinstance(details, TransferDetailsScreen)
        await wait_until(lambda: details.result is not None)
        await pilot.pause()
        shown = shown_text(details.query_one("#details-destinations", Static))
        assert sha(src) in shown.replace("\n", "").replace(" ", "")
        assert details.result.digest == sha(src)
        await pilot.press("escape")
        assert isinstance(app.screen, TransfersScreen)


async def test_fan_out_to_two_destinations(lab_app, dirs):
    src = random_file(dirs["edge"] / "fan.bin", 2 * MiB)
    async with lab_app.run_test(size=SIZE, notifications=True) as pilot:
        app = lab_app
        await open_form(pilot)
        await fill(
            pilot,
            source=("edge", str(src)),
            destinations=[("cloud", f"{dirs['cloud']}/"), ("storage", f"{dirs['storage']}/b.bin")],
        )
        transfer_id = await start(pilot)
        await wait_state(app, transfer_id, "DONE")
        assert (dirs["cloud"] / "fan.bin").read_bytes() == src.read_bytes()
        assert (dirs["storage"] / "b.bin").read_bytes() == src.read_bytes()
        table = transfers_screen(app).query_one("#transfers")
        dests = [k for k in table.shown_keys if k.startswith(f"{transfer_id}/")]
        assert [str(table.get_row(k)[1]) for k in dests] == ["DONE", "DONE"]


async def test_pause_stops_the_bytes_and_resume_finishes(lab_app, dirs):
    src = random_file(dirs["edge"] / "slow.bin", 4 * MiB)
    part = dirs["cloud"] / f"slow.bin{PART_SUFFIX}"
    async with lab_app.run_test(size=SIZE, notifications=True) as pilot:
        app = lab_app
        await open_form(pilot)
        await fill(
            pilot,
            source=("edge", str(src)),
            destinations=[("cloud", f"{dirs['cloud']}/")],
            rate="2M",
            compress="none",
        )
        transfer_id = await start(pilot)
        view = transfers_screen(app).live.transfers[transfer_id]
        await wait_until(lambda: view.done_bytes > 0, timeout=30)
        await pilot.press("p")
        await wait_state(app, transfer_id, "PAUSED")
        await asyncio.sleep(0.6)  # what was already in flight lands
        size, shown = part.stat().st_size, view.done_bytes
        await asyncio.sleep(1.5)
        assert part.stat().st_size == size and view.done_bytes == shown
        assert 0 < size < src.stat().st_size
        await pilot.press("p")
        await wait_state(app, transfer_id, "DONE")
        assert (dirs["cloud"] / "slow.bin").read_bytes() == src.read_bytes()


async def test_stop_asks_then_leaves_a_checkpoint(lab_app, dirs):
    src = random_file(dirs["edge"] / "stop.bin", 16 * MiB)
    async with lab_app.run_test(size=SIZE, notifications=True) as pilot:
        app = lab_app
        await open_form(pilot)
        await fill(
            pilot,
            source=("edge", str(src)),
            destinations=[("cloud", f"{dirs['cloud']}/")],
            rate="2M",
            compress="none",
        )
        transfer_id = await start(pilot)
        view = transfers_screen(app).live.transfers[transfer_id]
        await wait_until(lambda: view.done_bytes > 0, timeout=30)
        await pilot.press("x")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # no: it goes on
        assert row_state(app, transfer_id) == "RUNNING"
        await pilot.press("x")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_state(app, transfer_id, "INTERRUPTED")
        bridge = app.bridge

        async def saved():
            return bridge.store.get_transfer(transfer_id), bridge.store.get_checkpoints(transfer_id)

        record, checkpoints = await bridge.call(saved)
        assert record.status == "interrupted"
        assert len(checkpoints) == 1 and 0 < checkpoints[0].offset < src.stat().st_size
        assert not (dirs["cloud"] / "stop.bin").exists()


async def test_quitting_the_console_stops_with_a_resumable_checkpoint(lab_home, dirs):
    src = random_file(dirs["edge"] / "quit.bin", 5 * MiB)
    app = build_app(home=lab_home, sysinfo=FIXED_SYS)  # the app owns and closes its bridge
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot)
        await fill(
            pilot,
            source=("edge", str(src)),
            destinations=[("cloud", f"{dirs['cloud']}/")],
            rate="2M",
            compress="none",
        )
        transfer_id = await start(pilot)
        view = transfers_screen(app).live.transfers[transfer_id]
        await wait_until(lambda: view.done_bytes > MiB, timeout=30)
        await pilot.press("q")
    with Store.open(lab_home / "state" / "state.db") as store:
        assert store.get_transfer(transfer_id).status == "interrupted"
        offset = store.get_checkpoints(transfer_id)[0].offset
    assert offset > MiB
    bridge = EngineBridge(home=lab_home)  # a new console resumes it from the checkpoint
    try:

        async def resume():
            engine = bridge.engine
            handle = await engine.start(engine.job_for_resume(transfer_id), resume_id=transfer_id)
            return await handle.wait()

        result = bridge.submit(resume).result(60)
    finally:
        bridge.close()
    assert result.status == "done" and result.resumed_from == offset
    assert (dirs["cloud"] / "quit.bin").read_bytes() == src.read_bytes()


async def test_a_bad_path_is_a_notification_naming_the_host(lab_app, dirs):
    async with lab_app.run_test(size=SIZE, notifications=True) as pilot:
        app = lab_app
        form = await open_form(pilot)
        missing = f"{dirs['edge']}/no-such-file"
        await fill(pilot, source=("edge", missing), destinations=[("cloud", f"{dirs['cloud']}/")])
        await pilot.press("ctrl+s")
        await wait_until(lambda: app._notifications, timeout=30)
        note = list(app._notifications)[-1]
        assert note.title == "Could not start the transfer" and note.severity == "error"
        first = note.message.splitlines()[0]
        assert first.startswith(f"edge:{missing}") and "\n" not in first
        assert "Traceback" not in note.message
        assert app.screen is form  # the form stays, its fields kept, the error on it
        assert str(form.query_one("#form-error", Static).render()).startswith(f"edge:{missing}")
        assert form.ends()[0].path == missing


async def test_esc_cancels_an_analysis_that_hangs(home, write_config, make_bridge):
    """A host that accepts TCP but never speaks SSH: esc cancels the analysis on the engine
    thread, which closes the connection; a second esc closes the form."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    closed = threading.Event()

    def hold() -> None:
        conn, _ = listener.accept()
        conn.recv(1024)  # the client's banner; we never answer
        while conn.recv(1024):
            pass
        closed.set()
        conn.close()

    threading.Thread(target=hold, daemon=True).start()
    write_config(
        f'[defaults]\nconnect_timeout = 60.0\n[hosts.stuck]\naddress = "127.0.0.1"\nport = {port}\n'
    )
    app = build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
    try:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            form = await open_form(pilot)
            await fill(pilot, source=("stuck", "/a"), destinations=[("local", str(home / "a"))])
            await pilot.press("ctrl+r")
            plan = form.query_one("#plan", Static)
            assert str(plan.render()).startswith("Analyzing")
            await pilot.press("escape")
            await wait_until(lambda: str(plan.render()) == "Cancelled: analyze the transfer.")
            assert app.screen is form
            await asyncio.to_thread(closed.wait, 10)
            assert closed.is_set()
            await pilot.press("escape")
            assert isinstance(app.screen, TransfersScreen)
            assert not [n for n in app._notifications if n.severity == "error"]
    finally:
        listener.close()


async def test_form_errors_show_on_their_fields(seeded_app):
    async with seeded_app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        await pilot.press("ctrl+s")
        assert "a path on the source host is needed" in str(
            form.query_one("#source-error").render()
        )
        assert "missing: 1" in str(form.query_one("#destinations-error").render())
        form.query_one("#rate", Input).value = "20X"
        form.ends()[0].fill("local", "/srv/a")
        form.ends()[1].fill("local", "/srv/a")
        await pilot.press("ctrl+s")
        assert "20X" in str(form.query_one("#rate-error").render())
        assert not str(form.query_one("#source-error").render())
        form.query_one("#rate", Input).value = "20M"
        await pilot.press("ctrl+s")
        error = str(form.query_one("#form-error").render())
        assert error == "/srv/a: the source is also a destination"
        assert pilot.app.screen is form


async def test_readonly_offers_no_new_pause_or_stop(seeded_bridge):
    app = build_app(bridge=seeded_bridge, readonly=True, sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t", "n", "p", "x")
        assert isinstance(app.screen, TransfersScreen)
        shown = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert not shown & {"new", "pause", "cancel"}
        assert app.screen.sub_title.endswith("read-only")


async def test_at_80_columns_the_table_keeps_what_fits_and_the_cursor(seeded_app):
    async with seeded_app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        await publish_fixed(pilot.app, TRANSFER_EVENTS)
        await pilot.pause(0.4)
        table = transfers_screen(pilot.app).query_one("#transfers")
        assert len(table.columns) == 10
        await pilot.press("down", "down")
        chosen = table.selected.key
        await pilot.resize_terminal(80, 24)
        await wait_until(lambda: len(table.columns) == 5)
        labels = [str(c.label) for c in table.columns.values()]
        assert labels == ["STATE", "FROM → TO", "PROGRESS", "RATE", "ETA"]
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= 80 - 2
        assert table.selected.key == chosen
        panel = transfers_screen(pilot.app).query_one("#transfer-summary")
        assert panel.border_title.startswith("7e57a1b2c3d4 · ")  # the id the table leaves out
        await pilot.resize_terminal(*SIZE)
        await wait_until(lambda: len(table.columns) == 10)
        assert table.selected.key == chosen


async def test_pause_resume_and_stop_a_running_transfer_by_name(lab_app, dirs):
    src = random_file(dirs["edge"] / "named.bin", 48 * MiB)  # at 1 MiB/s: time for every step
    async with lab_app.run_test(size=SIZE, notifications=True) as pilot:
        app = lab_app
        await open_form(pilot)
        await fill(
            pilot,
            source=("edge", str(src)),
            destinations=[("cloud", f"{dirs['cloud']}/")],
            rate="1M",
            compress="none",
        )
        transfer_id = await start(pilot)
        view = transfers_screen(app).live.transfers[transfer_id]
        await wait_until(lambda: view.done_bytes > 0, timeout=30)
        await pilot.press("o")  # from another screen: each command shows the Transfers screen
        hits = await palette_hits(pilot, f"transfer {transfer_id}")
        route = f"edge:{src} → cloud:{dirs['cloud']}/"
        assert {f"Pause transfer {transfer_id}", f"Stop transfer {transfer_id}"} <= set(hits)
        await pilot.press("escape")
        await run_command(pilot, f"Pause transfer {transfer_id}")
        await wait_state(app, transfer_id, "PAUSED")
        assert app.current_mode == "transfers"
        await pilot.press("o")
        await run_command(pilot, f"Resume transfer {transfer_id}")  # paused: now offered so
        await wait_state(app, transfer_id, "RUNNING")
        await pilot.press("e")
        await run_command(pilot, f"Stop transfer {transfer_id}")
        await wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        assert route in app.screen.question
        await pilot.press("y")
        await wait_state(app, transfer_id, "INTERRUPTED")
        bridge = app.bridge

        async def saved():
            return bridge.store.get_checkpoints(transfer_id)

        checkpoints = await bridge.call(saved)
        assert len(checkpoints) == 1 and 0 < checkpoints[0].offset < src.stat().st_size


async def test_readonly_palette_shows_a_running_transfer_but_cannot_pause_or_stop_it(
    lab_home, dirs, make_bridge
):
    src = random_file(dirs["edge"] / "ro.bin", 8 * MiB)
    bridge = make_bridge()
    app = build_app(bridge=bridge, readonly=True, sysinfo=FIXED_SYS)
    async with app.run_test(size=SIZE) as pilot:
        job = CopyJob(
            source=f"edge:{src}",
            destinations=(f"cloud:{dirs['cloud']}/",),
            rate_limit=2 * MiB,
            compress="none",
        )
        transfer_id = await bridge.call(bridge.start_transfer, job)
        hits = await palette_hits(pilot, f"transfer {transfer_id}")
        assert f"Transfer {transfer_id}" in hits
        assert not [h for h in hits if h.startswith(("Pause", "Resume", "Stop"))]
        await bridge.call(bridge.cancel_transfer, transfer_id)
