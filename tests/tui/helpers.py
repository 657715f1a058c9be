"""Fixed data and small helpers of the console tests (the fixtures are in conftest.py).

- ``FIXED_SYS``: a sysinfo source with constant numbers; ``FIXED_EVENTS``: events at fixed
  times (``T0`` = 2026-01-01 00:00 UTC); ``SEEDED_CONFIG``: three hosts.
- ``wait_until(predicate)``: polls until true, fails after a timeout.
- ``publish_fixed(app)``: publishes events on the engine bus, waits until the console has them.
- ``cell_texts(app, "#table")``: the text of every shown row.
- ``random_file(path, size)``: writes ``size`` random bytes.
- ``type_text(pilot, text)``: types ``text`` into the focused field, one key event per
  character, and waits once at the end (``pilot.press`` waits after every key).
- ``palette_hits(pilot, query)``: opens the command palette, types ``query``, returns the
  titles it offers (the palette stays open); ``run_command(pilot, title)`` runs the one
  titled so.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from textual import events
from textual.command import CommandList, CommandPalette
from textual.keys import _character_to_key

from difpipe_tui.app import DifpipeApp
from difpipe_tui.core import events as ev
from difpipe_tui.core.sysinfo import SysSample

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC

SEEDED_CONFIG = """
[hosts.edge-pi]
address = "192.0.2.10"
role = "edge"

[hosts.cloud]
address = "192.0.2.20"
role = "cloud"

[hosts.backup]
address = "192.0.2.30"
role = "storage"
"""

FIXED_EVENTS: tuple[ev.Event, ...] = (
    ev.ConnectionOpened(ts=T0 + 1, host_name="edge-pi", auth_method="publickey", latency_ms=2.0),
    ev.HostChecked(ts=T0 + 2, host_name="cloud", reachable=True, latency_ms=11.5),
    ev.ConnectionFailed(
        ts=T0 + 3,
        host_name="backup",
        error="backup: connection refused by ops@192.0.2.30:22 (is sshd running?)",
        exit_code=6,
        retryable=True,
    ),
    ev.TransferStarted(
        ts=T0 + 4,
        transfer_id="a1b2c3d4e5f6",
        source="edge-pi:/var/log/app.log",
        destinations=("cloud:/srv/logs/",),
        total=64 * 1024 * 1024,
        strategy="exec",
        codec="zstd",
    ),
    ev.TransferProgress(
        ts=T0 + 5,
        transfer_id="a1b2c3d4e5f6",
        destination="cloud:/srv/logs/",
        bytes=16 * 1024 * 1024,
        total=64 * 1024 * 1024,
        rate=4 * 1024 * 1024.0,
        eta=12.0,
    ),
)


class FixedSys:
    """A sysinfo source whose numbers never change."""

    def sample(self) -> SysSample:
        return SysSample(
            cpu_percent=12.5,
            mem_used=1536 * 1024 * 1024,
            mem_total=4096 * 1024 * 1024,
            rss=80 * 1024 * 1024,
            net_sent_rate=2048.0,
            net_recv_rate=1024.0,
        )


FIXED_SYS = FixedSys()


async def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``predicate`` on the app's loop until it is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate.__doc__ or predicate}")
        await asyncio.sleep(0.02)


async def publish_fixed(app: DifpipeApp, events=FIXED_EVENTS) -> None:
    """Publish ``events`` on the engine bus and wait until the console has them, in one batch:
    a screen drawn between two batches keeps its cursor on a row shown first, and the pictures
    would depend on where the batches split."""
    before = len(app.event_log)
    while True:  # the console quiet (no batch on its way), then hold the next one back
        await wait_until(lambda: not app._flush_posted)
        with app._pending_lock:
            if not app._flush_posted:
                app._flush_posted = True
                start = len(app._pending)
                break
    for event in events:
        app.bridge.publish(event)
    await wait_until(lambda: len(app._pending) >= start + len(events))
    app._deliver()
    await wait_until(lambda: len(app.event_log) >= before + len(events))


def table_keys(app: DifpipeApp, selector: str) -> list[str]:
    return app.screen.query_one(selector).shown_keys


def cell_texts(app: DifpipeApp, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


async def type_text(pilot, text: str) -> None:
    """Type ``text`` into the focused field as key events, one a character, the way a terminal
    delivers fast typing; then wait as ``pilot.press`` waits after its last key.

    The keys take the path a person's keys take (the app's priority bindings, then the focused
    widget, which takes the character before any screen binding sees it). What is skipped is
    ``pilot.press``'s wait for this whole process to go idle after every key: two 20 ms ticks at
    least, and up to two seconds a key while a transfer runs on the engine thread. Type only
    characters the focused field takes: a key that moves the focus would reach the new field
    only after the keys queued behind it.
    """
    app = pilot.app
    for char in text:
        key = events.Key(_character_to_key(char), char)
        key.set_sender(app)
        app.post_message(key)
    await pilot.pause()  # the app has handed every key on to the focused field
    await pilot.pause()  # and the field has taken them


async def palette_hits(pilot, query: str) -> list[str]:
    """Open the palette, type ``query``, and return the titles offered once the search is over
    (it runs in the palette's workers, results added in batches)."""
    await pilot.press("ctrl+p")
    palette = pilot.app.screen
    assert isinstance(palette, CommandPalette)
    await type_text(pilot, query)
    commands = palette.query_one(CommandList)
    await wait_until(lambda: commands.option_count > 0)
    await palette.workers.wait_for_complete()
    await pilot.pause(0.3)
    return [
        commands.get_option_at_index(i).hit.text
        for i in range(commands.option_count)
        if commands.get_option_at_index(i).id != "--no-matches"
    ]


async def run_command(pilot, title: str) -> None:
    """Run the palette command ``title`` (exactly so named), as a person would: type, pick."""
    hits = await palette_hits(pilot, title)
    assert title in hits, hits
    palette = pilot.app.screen
    commands = palette.query_one(CommandList)
    commands.highlighted = hits.index(title)
    await pilot.press("enter")
    await pilot.pause()
