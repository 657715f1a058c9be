"""Full garbage collections while nobody is typing.

Python's collector runs a full collection after every ten of its middle generation, whatever
the program is doing then. In the console that was every 3-4 s with a transfer running, each a
pause of 20-170 ms (~70,000 objects to walk even after ``gc.freeze()``), and the screen being
drawn after a key waited for it. :class:`IdleCollector` turns the automatic full collections
off and runs them from a timer once no key or mouse event came for :data:`QUIET` seconds, or
after :data:`AT_MOST` seconds in any case. The younger collections (a few ms) stay automatic
and free most garbage: a full one only frees cycles that outlived them.
"""

from __future__ import annotations

import gc
import time

QUIET = 1.0
"""Seconds without input before a full collection may run."""
EVERY = 2.0
"""Seconds between two looks at whether one is due."""
DUE = 10.0
"""Seconds from one full collection until the next is due (when the user is quiet)."""
AT_MOST = 60.0
"""Seconds after which a full collection runs even while keys keep coming."""
NEVER = 1 << 30
"""A collector threshold that is never reached."""


class IdleCollector:
    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._last_input = self._last_full = clock()
        self._thresholds: tuple[int, int, int] | None = None

    def start(self) -> None:
        """Full collections from now on only through :meth:`tick`."""
        if self._thresholds is None:
            self._thresholds = gc.get_threshold()
            young, middle, _ = self._thresholds
            gc.set_threshold(young, middle, NEVER)

    def stop(self) -> None:
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None

    def input_seen(self) -> None:
        self._last_input = self._clock()

    def tick(self) -> bool:
        """Collect everything if one is due and the user is quiet, or if it is overdue."""
        now = self._clock()
        since_full = now - self._last_full
        quiet = now - self._last_input >= QUIET
        if not (since_full >= AT_MOST or (quiet and since_full >= DUE)):
            return False
        gc.collect()
        self._last_full = self._clock()
        return True
