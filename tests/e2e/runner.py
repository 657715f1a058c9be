"""Run the installed ``difpipe`` command as a subprocess, the way a person or a script does.

Every run gets a private ``DIFPIPE_HOME`` and ``HOME`` (so the state database and accepted host
keys never touch the real home), ``COLUMNS=100``, no stdin and a timeout. :meth:`Difpipe.start`
returns at once, so that independent runs can overlap; :meth:`Pending.wait` collects one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DIFPIPE = Path(sys.executable).with_name("difpipe")
TIMEOUT = 60.0
COLUMNS = 100
ERROR_PREFIX = "difpipe: error: "
_CLEARED = ("DIFPIPE_CONFIG", "DIFPIPE_HOME", "SSH_AUTH_SOCK", "COLUMNS", "LINES")


@dataclass(repr=False)
class Run:
    argv: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float

    def __repr__(self) -> str:
        return f"<difpipe {' '.join(self.argv[1:])} -> {self.code}>"

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\n-> exit {self.code} in {self.seconds:.1f}s\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )

    def json(self) -> Any:
        return json.loads(self.stdout)

    def yaml(self) -> Any:
        return yaml.safe_load(self.stdout)

    def csv(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.stdout)))

    def table(self) -> list[dict[str, str]]:
        return parse_table(self.stdout)

    @property
    def errors(self) -> list[str]:
        """The ``difpipe: error: ...`` lines on stderr, without the prefix."""
        return [
            line.removeprefix(ERROR_PREFIX)
            for line in self.stderr.splitlines()
            if line.startswith(ERROR_PREFIX)
        ]

    @property
    def error(self) -> str:
        """The one error line on stderr (without the prefix); fails unless there is exactly one."""
        assert len(self.errors) == 1, f"expected one error line on stderr\n{self}"
        return self.errors[0]


class Pending:
    def __init__(self, argv: list[str], proc: subprocess.Popen[str], timeout: float) -> None:
        self.argv = argv
        self.proc = proc
        self.deadline = time.monotonic() + timeout
        self.started = time.monotonic()

    def wait(self) -> Run:
        try:
            out, err = self.proc.communicate(timeout=max(self.deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(
                f"timed out: {' '.join(self.argv)}\n--- stdout\n{out}--- stderr\n{err}"
            ) from None
        seconds = time.monotonic() - self.started
        return Run(self.argv, self.proc.returncode, out, err, seconds)


class Difpipe:
    """The ``difpipe`` command with a private home; ``config`` is passed as ``--config``."""

    def __init__(self, home: Path, config: Path | None = None) -> None:
        self.home = home
        self.config = config
        (home / "user").mkdir(parents=True, exist_ok=True)

    def environment(self, overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """The child's environment; an override of None removes the variable."""
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _CLEARED and not key.startswith("XDG_")
        }
        env.update(
            DIFPIPE_HOME=str(self.home),
            HOME=str(self.home / "user"),
            COLUMNS=str(COLUMNS),
        )
        for key, value in (overrides or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def start(
        self,
        *args: str | os.PathLike[str],
        config: Path | bool | None = True,
        env: Mapping[str, str | None] | None = None,
        command: Sequence[str] = (str(DIFPIPE),),
        cwd: Path | None = None,
        timeout: float = TIMEOUT,
    ) -> Pending:
        """Start ``difpipe ARGS``; ``config=True`` passes this runner's config, False none."""
        path = self.config if config is True else config or None
        argv = [*command, *(["--config", str(path)] if path else []), *map(str, args)]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environment(env),
            cwd=cwd or self.home,
        )
        return Pending(argv, proc, timeout)

    def __call__(self, *args: str | os.PathLike[str], **kw: Any) -> Run:
        return self.start(*args, **kw).wait()


def parse_table(text: str) -> list[dict[str, str]]:
    """The rows of a rich table as dicts by column title; wrapped cells are joined by spaces."""
    header: list[str] = []
    rows: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("┃"):
            cells = [c.strip() for c in line.strip("┃").split("┃")]
            if header:
                cells = [" ".join(filter(None, p)) for p in zip(header, cells, strict=True)]
            header = cells
        elif line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            if cells[0] or not rows:
                rows.append(cells)
            else:
                rows[-1] = [" ".join(filter(None, p)) for p in zip(rows[-1], cells, strict=True)]
    return [dict(zip(header, row, strict=True)) for row in rows]
