"""Stall detection: a destination that takes no bytes for too long fails instead of hanging.

A relay reads the source once and writes every destination from bounded buffers, so a
destination that stops taking data (its link is cut, its disk hangs, its process is stopped)
stops the stream for all of them. TCP alone may keep such a write waiting for a quarter of an
hour, and SSH keepalives only help when they are on and the peer is gone. :func:`watched`
bounds the wait: while a write is pending it samples how many bytes the destination has taken
(:meth:`~.ends.Sink.taken`), and when that does not move for ``timeout`` seconds the write is
cancelled and fails with a retryable :class:`~..errors.NetworkError` that names the
destination. A slow destination that still takes bytes, however few, never trips it; time
spent waiting for data from the source is never counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import NetworkError

DEFAULT_STALL_TIMEOUT = 60.0
MAX_POLL = 1.0  # seconds between two looks at a pending write's progress

T = TypeVar("T")


def stall_error(name: str, timeout: float, host: str | None = None) -> NetworkError:
    return NetworkError(
        f"{name}: no progress for {timeout:g} s (the destination took no data)",
        host=host,
        hint="its link or host may be down; the other destinations go on",
    )


async def watched(
    write: Awaitable[T],
    taken: Callable[[], object],
    timeout: float,
    on_stall: Callable[[], NetworkError],
) -> T:
    """Await ``write``; fail with ``on_stall()`` once ``taken()`` has not changed for ``timeout``
    seconds (0: no limit). ``taken()`` None means progress shows only when the write ends."""
    if timeout <= 0:
        return await write
    task = asyncio.ensure_future(write)
    loop = asyncio.get_running_loop()
    poll = min(MAX_POLL, timeout / 4)
    mark, since = taken(), loop.time()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll)
            if done:
                return task.result()
            now, seen = loop.time(), taken()
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
