"""Progress of a copy as the engine reports it on the event bus: bars, NDJSON, or nothing.

Each printer is a bus subscriber (``bus.subscribe(printer)``) with a :meth:`close` method:

* ``bar`` (:class:`BarProgress`): one rich progress bar per destination on stderr, with bytes
  done and total, the engine's smoothed rate and its ETA. Bars are redrawn at most
  ``max_refresh`` times a second (10 by default) however often the engine reports; the rarer
  events (start, resume, retry, a destination finishing) redraw at once and retries and lost
  connections are printed above the bars.
* ``json`` (:class:`NdjsonProgress`): one JSON object per line for every ``transfer.*`` and
  ``connection.*`` event (:meth:`Event.to_dict`, ``kind`` first), flushed line by line. The
  CLI ends the stream with one ``summary`` line (the result) or one ``error`` line.
* ``none`` (:class:`NoProgress`): prints nothing.

Callbacks run inline on the publisher's thread; every printer holds a lock, so events published
from another thread are safe too.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from .core.events import (
    ConnectionLost,
    ConnectionRestored,
    ConnectionRetry,
    Event,
    TransferDestinationDone,
    TransferFinished,
    TransferPaused,
    TransferProgress,
    TransferResumed,
    TransferRetry,
    TransferStarted,
)
from .render import human_bytes

if TYPE_CHECKING:  # rich is imported by the bars themselves: NDJSON and none never load it
    from rich.console import Console
    from rich.progress import TaskID

PROGRESS_MODES = ("bar", "json", "none")

#: Event kinds written by ``--progress json``, by prefix.
NDJSON_PREFIXES = ("transfer.", "connection.")


class NoProgress:
    """``--progress none``."""

    def __call__(self, event: Event) -> None:
        return None

    def close(self) -> None:
        return None


class NdjsonProgress:
    """One compact JSON object per line on ``out``, flushed after every line."""

    def __init__(self, out: TextIO | None = None, prefixes: tuple[str, ...] = NDJSON_PREFIXES):
        self.out = out if out is not None else sys.stdout
        self.prefixes = prefixes
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if event.kind.startswith(self.prefixes):
            self.write({"kind": event.kind, **event.to_dict()})

    def write(self, data: dict[str, Any]) -> None:
        line = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()

    def summary(self, result: dict[str, Any]) -> None:
        """The last line of a stream that ended with a result."""
        self.write({"kind": "summary", **result})

    def error(self, error: dict[str, Any]) -> None:
        """The last line of a stream that ended with an error (``DifpipeError.to_dict()``)."""
        self.write({"kind": "error", **error})

    def close(self) -> None:
        return None


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-:--"
    total = int(seconds + 0.5)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(rate: float | None) -> str:
    if rate is None or rate <= 0:
        return "-"
    return f"{human_bytes(int(rate))}/s"


def _amount(done: int, total: int | None) -> str:
    if total is None:
        return human_bytes(done)
    return f"{human_bytes(done)} / {human_bytes(total)}"


class BarProgress:
    """One bar per destination, drawn by rich on ``console`` (stderr by default)."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        max_refresh: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.console = console if console is not None else Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}"),
            TextColumn("{task.fields[rate]}", justify="right"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[state]}"),
            console=self.console,
            auto_refresh=False,
        )
        self._interval = 1.0 / max_refresh
        self._clock = clock
        self._last_refresh = -math.inf
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._lock = threading.RLock()
        self._started = False
        self._closed = False
        self.refreshes = 0

    # -- bus subscriber ------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._closed:
                return
            if isinstance(event, TransferProgress):
                self._on_progress(event)
            elif isinstance(event, TransferStarted):
                self._on_started(event)
            elif isinstance(event, TransferResumed):
                note = f" ({event.note})" if event.note else ""
                self._print(f"{event.destination}: resuming at {human_bytes(event.offset)}{note}")
                task = self._task(event.transfer_id, event.destination, None)
                self._progress.update(
                    task, completed=event.offset, amount=_amount(event.offset, None)
                )
                self._refresh()
            elif isinstance(event, TransferDestinationDone):
                task = self._task(event.transfer_id, event.destination, None)
                total = self._progress.tasks[self._index(task)].total
                self._progress.update(
                    task,
                    completed=event.bytes if event.status != "done" or total is None else total,
                    amount=_amount(event.bytes, total),
                    state="done" if event.status == "done" else event.status.upper(),
                    eta="-:--" if event.status != "done" else "0:00",
                )
                self._refresh()
            elif isinstance(event, TransferRetry):
                self._print(
                    f"retrying (attempt {event.attempt}) in {event.delay:.1f} s: {event.reason}"
                )
                self._set_state(event.transfer_id, "retrying")
            elif isinstance(event, TransferPaused):
                self._set_state(event.transfer_id, "paused" if event.paused else "")
            elif isinstance(event, TransferFinished):
                self._refresh()
            elif isinstance(event, ConnectionLost):
                reason = f": {event.reason}" if event.reason else ""
                self._print(f"{event.host_name}: connection lost{reason}")
            elif isinstance(event, ConnectionRetry):
                self._print(
                    f"{event.host_name}: reconnecting (attempt {event.attempt})"
                    f" in {event.delay:.1f} s"
                )
            elif isinstance(event, ConnectionRestored):
                self._print(f"{event.host_name}: reconnected")

    def close(self) -> None:
        """Draw the final state and give the terminal back. Closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._started:
                self._progress.stop()

    # -- internals -----------------------------------------------------------------------------

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._progress.start()

    def _print(self, text: str) -> None:
        self._start()
        self._progress.console.print(text, markup=False, highlight=False)

    def _on_started(self, event: TransferStarted) -> None:
        detail = f"strategy {event.strategy}, compression {event.codec}"
        if event.reason:
            detail += f" ({event.reason})"
        size = "" if event.total is None else f", {human_bytes(event.total)}"
        self._print(f"{event.source}{size} → {', '.join(event.destinations)}: {detail}")
        for destination in event.destinations:
            self._task(event.transfer_id, destination, event.total)
        self._refresh()

    def _on_progress(self, event: TransferProgress) -> None:
        task = self._task(event.transfer_id, event.destination, event.total)
        self._progress.update(
            task,
            completed=event.bytes,
            total=event.total,
            amount=_amount(event.bytes, event.total),
            rate=format_rate(event.rate),
            eta=format_eta(event.eta),
            state="" if self._state(task) in ("retrying", "") else self._state(task),
        )
        now = self._clock()
        if now - self._last_refresh >= self._interval:
            self._refresh(now)

    def _task(self, transfer_id: str, destination: str, total: int | None) -> TaskID:
        key = (transfer_id, destination)
        task = self._tasks.get(key)
        if task is None:
            self._start()
            task = self._progress.add_task(
                destination,
                total=total,
                amount=_amount(0, total),
                rate="-",
                eta="-:--",
                state="",
            )
            self._tasks[key] = task
        return task

    def _index(self, task: TaskID) -> int:
        return next(i for i, t in enumerate(self._progress.tasks) if t.id == task)

    def _state(self, task: TaskID) -> str:
        return str(self._progress.tasks[self._index(task)].fields.get("state", ""))

    def _set_state(self, transfer_id: str, state: str) -> None:
        for (tid, _), task in self._tasks.items():
            if tid == transfer_id and self._state(task) not in ("done", "FAILED", "SKIPPED"):
                self._progress.update(task, state=state)
        self._refresh()

    def _refresh(self, now: float | None = None) -> None:
        if not self._started:
            return
        self._last_refresh = self._clock() if now is None else now
        self.refreshes += 1
        self._progress.refresh()


Printer = NoProgress | NdjsonProgress | BarProgress


def make_progress(
    mode: str, *, out: TextIO | None = None, console: Console | None = None
) -> Printer:
    """The printer for ``--progress MODE``: NDJSON goes to ``out``, bars to ``console``."""
    if mode == "json":
        return NdjsonProgress(out)
    if mode == "bar":
        return BarProgress(console)
    if mode == "none":
        return NoProgress()
    raise ValueError(f"unknown progress mode {mode!r}")
