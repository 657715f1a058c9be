"""Sample data for the demo hosts, made in a few seconds even on a Raspberry Pi.

The edge gets what an edge has: a large file of incompressible bytes (a camera recording, a
disk image), an application log that compresses well, and a directory of many small files
(sensor readings). The cloud and backup hosts get a little data of their own and empty
``incoming/`` directories to copy into.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

MiB = 1024 * 1024
DEFAULT_BIG_SIZE = 64 * MiB
DEFAULT_LOG_SIZE = 24 * MiB
DEFAULT_SMALL_FILES = 1500

_CHUNK = 1 * MiB
_SERVICES = ("sensord", "uploader", "camera", "modbus-gw", "nginx", "watchdog", "ntpd")
_LEVELS = ("INFO",) * 12 + ("DEBUG",) * 6 + ("WARN",) * 2 + ("ERROR",)
_MESSAGES = (
    "reading ok sensor={s} temp={t}.{d}C humidity={h}%",
    "uploaded batch id={i} files={n} bytes={b} in {ms}ms",
    "frame captured cam={s} seq={i} size={b}",
    "GET /api/v1/status 200 {ms}ms client=10.0.{n}.{h}",
    "POST /api/v1/readings 201 {ms}ms bytes={b}",
    "modbus poll unit={n} registers=16 latency={ms}ms",
    "retrying upload id={i} attempt={n} after {ms}ms: connection reset by peer",
    "disk usage /data {h}% ({b} bytes free)",
    "heartbeat sent seq={i} rtt={ms}ms",
    "clock offset {d}.{ms}ms from pool.ntp.org",
)


def write_random(path: Path, size: int) -> None:
    """``size`` bytes that no codec can shrink, written in 1 MiB chunks."""
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(_CHUNK, left)
            fh.write(os.urandom(n))
            left -= n


def _message_pool(rng: random.Random, count: int = 4096) -> list[str]:
    pool = []
    for _ in range(count):
        template = rng.choice(_MESSAGES)
        body = template.format(
            s=rng.randrange(1, 9),
            t=rng.randrange(15, 40),
            d=rng.randrange(10),
            h=rng.randrange(20, 95),
            i=rng.randrange(10**5, 10**6),
            n=rng.randrange(1, 64),
            b=rng.randrange(10**3, 10**7),
            ms=rng.randrange(1, 900),
        )
        service = rng.choice(_SERVICES)
        pool.append(f"{rng.choice(_LEVELS):<5} {service}[{rng.randrange(300, 4000)}]: {body}\n")
    return pool


def _hour_block(rng: random.Random, pool: list[str]) -> list[str]:
    """One hour of lines without their ``YYYY-MM-DDTHH:`` prefix, a line every 0-3 seconds."""
    lines = []
    second = rng.randrange(3)
    while second < 3600:
        minute, sec = divmod(second, 60)
        lines.append(
            f"{minute:02d}:{sec:02d}.{rng.randrange(1000):03d}Z edge-pi {rng.choice(pool)}"
        )
        second += rng.randrange(4)
    return lines


def write_log(path: Path, size: int, *, seed: int = 7) -> None:
    """About ``size`` bytes of timestamped log lines (stopping at the first hour past it).

    A handful of distinct hours are made line by line and then laid end to end under
    successive timestamps, which keeps the cost per megabyte low on slow machines.
    """
    rng = random.Random(seed)  # noqa: S311 - sample data, not a secret
    pool = _message_pool(rng)
    hours = [_hour_block(rng, pool) for _ in range(8)]
    written = 0
    hour = 0
    with open(path, "w", encoding="ascii") as fh:
        while written < size:
            day, hh = divmod(hour, 24)
            prefix = f"2026-11-{day % 28 + 1:02d}T{hh:02d}:"
            text = prefix + prefix.join(hours[hour % len(hours)])
            fh.write(text)
            written += len(text)
            hour += 1


def write_small_files(root: Path, count: int, *, seed: int = 11) -> None:
    """``count`` small CSV files of sensor readings, spread over one directory per day."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not a secret
    rows = [
        f"s{rng.randrange(1, 9)},{rng.randrange(150, 400) / 10},{rng.randrange(20, 95)}\n"
        for _ in range(4096)
    ]
    per_day = max(1, -(-count // 7))
    for i in range(count):
        day = root / f"2026-11-{i // per_day + 1:02d}"
        if i % per_day == 0:
            day.mkdir(parents=True, exist_ok=True)
        start = rng.randrange(len(rows) - 120)
        body = "".join(rows[start : start + rng.randrange(4, 120)])
        (day / f"reading-{i:05d}.csv").write_text(
            f"# reading {i} of sensor batch\nsensor,temp_c,humidity_pct\n{body}",
            encoding="ascii",
        )
