"""Progress printers: the NDJSON stream line by line, the bars' content and their throttling."""

from __future__ import annotations

import io
import json
import threading

import pytest
from rich.console import Console

from difpipe_tui.core.events import (
    ConnectionLost,
    EventBus,
    HostChecked,
    RemoteCommandFinished,
    TransferCheckpoint,
    TransferDestinationDone,
    TransferFinished,
    TransferPaused,
    TransferProgress,
    TransferResumed,
    TransferRetry,
    TransferStarted,
)
from difpipe_tui.progress import (
    BarProgress,
    NdjsonProgress,
    NoProgress,
    format_eta,
    format_rate,
    make_progress,
)

TID = "0123456789ab"
MiB = 1024 * 1024


def transfer_events() -> list:
    """A two-destination copy in which one destination fails, with a lost link on the way."""
    return [
        TransferStarted(
            ts=1.0,
            transfer_id=TID,
            source="edge:/var/log/app.log",
            destinations=("cloud:/srv/logs/", "backup:/b/"),
            total=8 * MiB,
            strategy="exec",
            codec="zstd",
            reason="text compresses well",
        ),
        TransferResumed(
            ts=1.5, transfer_id=TID, destination="backup:/b/", offset=MiB, note="prefix matches"
        ),
        TransferProgress(
            ts=2.0,
            transfer_id=TID,
            destination="cloud:/srv/logs/",
            bytes=4 * MiB,
            total=8 * MiB,
            rate=2.0 * MiB,
            eta=2.0,
        ),
        RemoteCommandFinished(
            ts=2.1, host_name="cloud", command="df -P /srv", exit_status=0, duration_ms=3.0
        ),
        TransferCheckpoint(ts=2.2, transfer_id=TID, destination="cloud:/srv/logs/", offset=4 * MiB),
        ConnectionLost(ts=2.5, host_name="backup", reason="timed out"),
        TransferRetry(ts=2.6, transfer_id=TID, attempt=1, delay=0.5, reason="backup: link lost"),
        TransferDestinationDone(
            ts=3.0,
            transfer_id=TID,
            destination="cloud:/srv/logs/",
            status="done",
            bytes=8 * MiB,
            digest="ab" * 32,
        ),
        TransferDestinationDone(
            ts=3.1,
            transfer_id=TID,
            destination="backup:/b/",
            status="failed",
            bytes=2 * MiB,
            error="backup: network unreachable",
        ),
        TransferFinished(ts=3.2, transfer_id=TID, status="partial", bytes=8 * MiB, seconds=2.2),
    ]


# -- NDJSON -------------------------------------------------------------------------------------


def test_ndjson_writes_one_flushed_object_per_transfer_and_connection_event():
    out = io.StringIO()
    bus = EventBus()
    printer = NdjsonProgress(out)
    bus.subscribe(printer)
    for event in transfer_events():
        bus.publish(event)
    bus.publish(HostChecked(host_name="edge", reachable=True))
    printer.summary({"transfer_id": TID, "status": "partial"})

    lines = out.getvalue().splitlines()
    objects = [json.loads(line) for line in lines]
    assert [o["kind"] for o in objects] == [
        "transfer.start",
        "transfer.resume",
        "transfer.progress",
        "transfer.checkpoint",
        "connection.lost",
        "transfer.retry",
        "transfer.destination",
        "transfer.destination",
        "transfer.done",
        "summary",
    ]
    assert all(line == line.strip() and "\n" not in line for line in lines)
    assert objects[0] == {
        "kind": "transfer.start",
        "ts": 1.0,
        "transfer_id": TID,
        "source": "edge:/var/log/app.log",
        "destinations": ["cloud:/srv/logs/", "backup:/b/"],
        "total": 8 * MiB,
        "strategy": "exec",
        "codec": "zstd",
        "reason": "text compresses well",
    }
    assert lines[2] == (
        '{"kind":"transfer.progress","ts":2.0,"transfer_id":"0123456789ab",'
        '"destination":"cloud:/srv/logs/","bytes":4194304,"total":8388608,'
        '"rate":2097152.0,"eta":2.0}'
    )
    assert objects[-1] == {"kind": "summary", "transfer_id": TID, "status": "partial"}


def test_ndjson_flushes_every_line():
    class Recorder(io.StringIO):
        def __init__(self):
            super().__init__()
            self.flushed: list[int] = []

        def flush(self):
            self.flushed.append(self.getvalue().count("\n"))

    out = Recorder()
    printer = NdjsonProgress(out)
    for event in transfer_events()[:3]:
        printer(event)
    assert out.flushed == [1, 2, 3]


def test_ndjson_error_line():
    out = io.StringIO()
    NdjsonProgress(out).error({"error": "auth", "message": "edge: denied", "exit_code": 4})
    assert json.loads(out.getvalue()) == {
        "kind": "error",
        "error": "auth",
        "message": "edge: denied",
        "exit_code": 4,
    }


def test_ndjson_lines_stay_whole_across_threads():
    out = io.StringIO()
    printer = NdjsonProgress(out)
    event = transfer_events()[2]

    def publish():
        for _ in range(200):
            printer(event)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 800
    assert all(json.loads(line)["kind"] == "transfer.progress" for line in lines)


# -- bars ---------------------------------------------------------------------------------------


def console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=160, force_terminal=False, color_system=None), buf


def test_bars_show_each_destination_and_how_it_ended():
    con, buf = console()
    printer = BarProgress(con)
    for event in transfer_events():
        printer(event)
    printer.close()
    printer.close()
    text = buf.getvalue()
    assert "edge:/var/log/app.log, 8.0 MiB → cloud:/srv/logs/, backup:/b/" in text
    assert "strategy exec, compression zstd (text compresses well)" in text
    assert "backup:/b/: resuming at 1.0 MiB (prefix matches)" in text
    assert "backup: connection lost: timed out" in text
    assert "retrying (attempt 1) in 0.5 s: backup: link lost" in text
    cloud = next(line for line in text.splitlines() if line.startswith("cloud:/srv/logs/"))
    assert "8.0 MiB / 8.0 MiB" in cloud and "done" in cloud
    backup = next(line for line in text.splitlines() if line.startswith("backup:/b/ "))
    assert "2.0 MiB / 8.0 MiB" in backup and "FAILED" in backup


def test_bars_ignore_events_after_close_and_unknown_destinations_get_a_bar():
    con, buf = console()
    printer = BarProgress(con)
    printer(
        TransferProgress(
            transfer_id=TID, destination="-", bytes=MiB, total=None, rate=MiB, eta=None
        )
    )
    printer.close()
    printer(transfer_events()[0])
    text = buf.getvalue()
    assert "1.0 MiB/s" in text
    assert "edge:/var/log/app.log" not in text


def test_bars_refresh_at_most_ten_times_a_second():
    now = [100.0]
    con, _ = console()
    printer = BarProgress(con, clock=lambda: now[0])
    printer(transfer_events()[0])  # draws at once
    after_start = printer.refreshes
    for i in range(1000):
        printer(
            TransferProgress(
                transfer_id=TID,
                destination="cloud:/srv/logs/",
                bytes=i,
                total=8 * MiB,
                rate=1.0,
                eta=None,
            )
        )
    assert printer.refreshes == after_start  # same instant as the start: nothing redrawn
    for _ in range(30):  # three seconds of progress events every 10 ms
        for _ in range(10):
            now[0] += 0.01
            printer(
                TransferProgress(
                    transfer_id=TID,
                    destination="cloud:/srv/logs/",
                    bytes=1,
                    total=8 * MiB,
                    rate=1.0,
                    eta=None,
                )
            )
    assert 25 <= printer.refreshes - after_start <= 31
    printer.close()


def test_bars_show_pause():
    con, buf = console()
    printer = BarProgress(con)
    printer(transfer_events()[0])
    printer(TransferPaused(transfer_id=TID, paused=True))
    printer.close()
    assert "paused" in buf.getvalue()


# -- the rest -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-:--"),
        (float("inf"), "-:--"),
        (-1, "-:--"),
        (0, "0:00"),
        (61.4, "1:01"),
        (3725, "1:02:05"),
    ],
)
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


def test_format_rate():
    assert format_rate(0) == "-"
    assert format_rate(3 * MiB) == "3.0 MiB/s"


def test_make_progress():
    assert isinstance(make_progress("none"), NoProgress)
    out = io.StringIO()
    printer = make_progress("json", out=out)
    assert isinstance(printer, NdjsonProgress) and printer.out is out
    assert isinstance(make_progress("bar", console=console()[0]), BarProgress)
    with pytest.raises(ValueError):
        make_progress("fancy")
    NoProgress()(transfer_events()[0])
