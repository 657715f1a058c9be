"""The orchestrator's own CPU, memory and network use, sampled with psutil.

:class:`SysInfo` keeps the previous network counters so that each :meth:`SysInfo.sample`
returns rates over the time since the last one. Sampling never blocks: CPU use is measured
between calls, as ``psutil.cpu_percent(interval=None)`` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import psutil


@dataclass(frozen=True, slots=True)
class SysSample:
    """One reading. Rates are bytes per second since the previous sample (0 for the first)."""

    cpu_percent: float
    mem_used: int
    mem_total: int
    rss: int
    net_sent_rate: float
    net_recv_rate: float

    @property
    def mem_percent(self) -> float:
        return 100.0 * self.mem_used / self.mem_total if self.mem_total else 0.0


class SysSource(Protocol):
    def sample(self) -> SysSample: ...


class SysInfo:
    """Samples of this machine and of the current process."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        psutil.cpu_percent(None)
        self._net = psutil.net_io_counters()
        self._at = time.monotonic()

    def sample(self) -> SysSample:
        now = time.monotonic()
        net = psutil.net_io_counters()
        elapsed = max(now - self._at, 1e-6)
        sent = (net.bytes_sent - self._net.bytes_sent) / elapsed
        recv = (net.bytes_recv - self._net.bytes_recv) / elapsed
        self._net, self._at = net, now
        mem = psutil.virtual_memory()
        return SysSample(
            cpu_percent=psutil.cpu_percent(None),
            mem_used=mem.total - mem.available,
            mem_total=mem.total,
            rss=self._process.memory_info().rss,
            net_sent_rate=max(sent, 0.0),
            net_recv_rate=max(recv, 0.0),
        )
