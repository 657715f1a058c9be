"""Stall detection: an end of a stream that moves no bytes for too long fails instead of hanging.

A relay reads the source once and writes every destination from bounded buffers, so either
end can stop the stream for all: a destination that stops taking data (its link is cut, its
disk hangs, its process is stopped), or a source that stops sending it (the same, on the
source's side). TCP alone may keep such a wait going for a quarter of an hour, and SSH
keepalives only help when they are on and the peer is gone.

:func:`watched` bounds one pending operation of one end: while it waits it samples how many
bytes that end has moved so far (a destination's :meth:`~.ends.Sink.taken`, a source's
:meth:`~.ends.Source.received`), and when that does not move for ``timeout`` seconds the
operation is cancelled and fails with a retryable :class:`~..errors.NetworkError` that names
the end (:func:`stall_error`). An end that is slow but still moves bytes, however few, never
trips it. Only the pending operation is watched: a write never counts the time spent waiting
for the source, and a read never counts the time spent waiting for the destinations
(backpressure), a pause or a rate limit.

A destination that stalls is dropped and the others go on; a source that stalls ends the
attempt, which the engine retries from the last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import NetworkError

DEFAULT_STALL_TIMEOUT = 60.0
MAX_POLL = 1.0  # seconds between two looks at a pending operation's progress

T = TypeVar("T")


class SourceStall(NetworkError):
    """A source sent nothing for the stall timeout: the whole attempt ends (and may retry)."""


def stall_error(
    name: str, timeout: float, host: str | None = None, *, source: bool = False
) -> NetworkError:
    """The error of the end ``name`` that moved nothing for ``timeout`` seconds: a destination
    that took no data, or (``source``) a source that sent none."""
    if source:
        return SourceStall(
            f"{name}: no data for {timeout:g} s (the source sent nothing)",
            host=host,
            hint="its process, disk or link may be stuck; the copy continues from its last"
            " checkpoint when it retries",
        )
    return NetworkError(
        f"{name}: no progress for {timeout:g} s (the destination took no data)",
        host=host,
        hint="its link or host may be down; the other destinations go on",
    )


async def watched(
    op: Awaitable[T],
    progress: Callable[[], object],
    timeout: float,
    on_stall: Callable[[], NetworkError],
) -> T:
    """Await ``op``; fail with ``on_stall()`` once ``progress()`` has not changed for ``timeout``
    seconds (0: no limit). ``progress()`` None means progress shows only when ``op`` ends."""
    if timeout <= 0:
        return await op
    task = asyncio.ensure_future(op)
    loop = asyncio.get_running_loop()
    poll = min(MAX_POLL, timeout / 4)
    mark, since = progress(), loop.time()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll)
            if done:
                return task.result()
            now, seen = loop.time(), progress()
            if seen is not None and seen != mark:
                mark, since = seen, now
            elif now - since >= timeout:
                break
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    raise on_stall()
