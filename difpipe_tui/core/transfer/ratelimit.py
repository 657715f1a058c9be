"""A token bucket that paces a byte stream to a rate, shared by every leg of a transfer."""

from __future__ import annotations

import asyncio
import re
import time

from ..errors import UsageError

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_rate(text: str) -> float:
    """``20M`` / ``20MB`` / ``1.5Gi`` / ``800k`` bytes per second (SI units; ``Mi`` binary)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmg]i?)?b?(?:/s)?\s*", text.lower())
    if not m:
        raise UsageError(f'--rate-limit: expected a rate like "20M" or "1.5Gi", got "{text}"')
    value = float(m.group(1)) * _UNITS[m.group(2) or ""]
    if value <= 0:
        raise UsageError(f'--rate-limit: must be more than 0, got "{text}"')
    return value


def parse_size(text: str, what: str) -> int:
    """``64M`` / ``64MiB`` / ``1G`` as bytes, binary units (sizes of buffers and intervals)."""
    m = re.fullmatch(r"\s*([0-9]+)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise UsageError(f'{what}: expected a size like "64M", got "{text}"')
    return int(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " ")


class TokenBucket:
    """Allows ``rate`` bytes per second on average, bursts up to ``burst`` bytes."""

    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate / 4, 256 * 1024))
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def delay_for(self, n: int) -> float:
        """Take ``n`` tokens (going into debt if needed); return how long to wait."""
        self._refill()
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def take(self, n: int) -> None:
        delay = self.delay_for(n)
        if delay > 0:
            await asyncio.sleep(delay)
