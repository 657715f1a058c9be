"""One line of text per engine event, and the units the console shows."""

from __future__ import annotations

import time
from typing import Any

from ..core.events import Event
from ..render import human_bytes

# fields that are shown elsewhere in a row, or are too long for one line
_SKIP = {"ts", "kind", "host_name"}


def local_time(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))


def human_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{human_bytes(int(rate))}/s"


def _value(key: str, value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    if key in ("bytes", "total", "offset") and isinstance(value, int):
        return human_bytes(value)
    if key == "rate" and isinstance(value, float):
        return human_rate(value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def describe(event: Event) -> str:
    """``key=value`` pairs of the fields that matter, in the order the event declares them."""
    parts = []
    for key, value in event.to_dict().items():
        if key in _SKIP or value is None or value == "" or value == ():
            continue
        parts.append(f"{key}={_value(key, value)}")
    return " ".join(parts)
