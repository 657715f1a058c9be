"""Remote command lines, built safely, and what a remote host has.

Every remote command DifPipe runs is built here. Arguments are always quoted with
:func:`shlex.quote`; only the operators of :func:`pipeline` (``|``, ``>``, ``>>``, ``<``,
``&&``) are written literally, and those never come from user data.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Arg = str | int | os.PathLike[str]


class Raw(str):
    """A fixed shell fragment written by DifPipe itself (never from user data)."""

    __slots__ = ()


def quote_arg(arg: Arg) -> str:
    if isinstance(arg, Raw):
        return str(arg)
    if isinstance(arg, bool):
        raise TypeError("booleans are not shell arguments")
    if isinstance(arg, int):
        return str(arg)
    text = os.fspath(arg)
    if "\x00" in text:
        raise ValueError("a NUL byte cannot be passed in a remote command")
    return shlex.quote(text)


def command(*argv: Arg) -> str:
    """One simple command: every argument quoted."""
    if not argv:
        raise ValueError("empty command")
    return " ".join(quote_arg(a) for a in argv)


def pipeline(
    *commands: Sequence[Arg],
    stdin_from: Arg | None = None,
    stdout_to: Arg | None = None,
    append: bool = False,
    and_then: Sequence[Arg] | None = None,
) -> str:
    """``cmd1 | cmd2 ... [< in] [> out] [&& next]`` with every argument quoted."""
    if not commands:
        raise ValueError("empty pipeline")
    parts = [command(*c) for c in commands]
    if stdin_from is not None:
        parts[0] = f"{parts[0]} < {quote_arg(stdin_from)}"
    line = " | ".join(parts)
    if stdout_to is not None:
        line = f"{line} {'>>' if append else '>'} {quote_arg(stdout_to)}"
    if and_then:
        line = f"{line} && {command(*and_then)}"
    return line


# Tools the transfer planner cares about, probed once per connection.
PROBED_TOOLS: tuple[str, ...] = (
    "sh", "cat", "dd", "head", "tail", "tee", "stat", "mkdir", "mv", "rm", "df",
    "sha256sum", "shasum", "b2sum", "openssl", "zstd", "lz4", "gzip", "tar", "rsync", "python3",
)  # fmt: skip

# What every POSIX host is expected to have; the rest decide the transfer strategy.
BASIC_TOOLS: tuple[str, ...] = (
    "sh", "cat", "dd", "head", "tail", "tee", "stat", "mkdir", "mv", "rm", "df",
)  # fmt: skip

# A constant script: no user data is ever interpolated into it. It forks little (a fork and
# exec cost a small host a millisecond or more): ``command -v`` is a builtin and runs in the
# loop's own shell. python3 counts only if it starts (a pyenv shim is found even where it has
# no Python to run): 10-20 ms here, far more on a small board, spent in the background (``$py``)
# while the rest runs. TOOL_PROBE_START leaves it running: a longer script (the transfer
# planner's survey of a host) goes on with its own work and prints PYTHON_LINE later.
TOOL_PROBE_START = Raw(
    "command -v python3 >/dev/null 2>&1 && python3 -E -S -c 'import hashlib, os; os.readv' "
    "</dev/null >/dev/null 2>&1 & py=$!; "
    "for t in "
    + " ".join(t for t in PROBED_TOOLS if t != "python3")
    + '; do printf \'tool %s \' "$t"; command -v "$t" 2>/dev/null || echo; done; '
    "printf 'os %s\\n' \"$(uname -s 2>/dev/null)\"; "
    "printf 'arch %s\\n' \"$(uname -m 2>/dev/null)\"; "
    "printf 'kernel %s\\n' \"$(uname -r 2>/dev/null)\"; "
    "printf 'home %s\\n' \"$HOME\"; "
    'c=$(command -v cat 2>/dev/null) && [ -L "$c" ] && '
    'printf \'busybox %s\\n\' "$(readlink "$c" | grep -c busybox)"; '
    "df -Pk . 2>/dev/null | "
    'awk \'NR > 1 { t = $2; f = $4 } END { if (f != "") print "disk", t, f }\'; '
)
#: The probe's python3 line, once the background start has ended.
PYTHON_LINE = Raw("wait $py && printf 'tool python3 %s\\n' \"$(command -v python3)\"; ")
TOOL_PROBE = Raw(TOOL_PROBE_START + PYTHON_LINE + "exit 0")


@dataclass(frozen=True)
class RemoteInfo:
    """What a host has: found once per connection and cached."""

    shell: bool = True
    sftp: bool | None = None
    tools: dict[str, str] = field(default_factory=dict)
    os: str | None = None
    arch: str | None = None
    kernel: str | None = None
    home: str | None = None
    busybox: bool = False
    disk_total_bytes: int | None = None
    disk_free_bytes: int | None = None

    def has(self, tool: str) -> bool:
        return tool in self.tools

    def first(self, *tools: str) -> str | None:
        """The first of ``tools`` the host has (e.g. ``first("sha256sum", "shasum")``)."""
        return next((t for t in tools if t in self.tools), None)

    @property
    def tool_names(self) -> list[str]:
        return [t for t in PROBED_TOOLS if t in self.tools]

    def to_dict(self) -> dict[str, object]:
        return {
            "shell": self.shell,
            "sftp": self.sftp,
            "tools": self.tool_names,
            "os": self.os,
            "arch": self.arch,
            "kernel": self.kernel,
            "busybox": self.busybox,
            "disk_total_bytes": self.disk_total_bytes,
            "disk_free_bytes": self.disk_free_bytes,
        }


def parse_tool_probe(output: str, *, sftp: bool | None = None) -> RemoteInfo:
    tools: dict[str, str] = {}
    values: dict[str, str] = {}
    total = free = None
    busybox = False
    for line in output.splitlines():
        key, _, rest = line.partition(" ")
        if key == "tool":
            name, _, path = rest.partition(" ")
            if name in PROBED_TOOLS and path:
                tools[name] = path
        elif key in ("os", "arch", "kernel", "home"):
            values[key] = rest.strip()
        elif key == "busybox":
            busybox = rest.strip() not in ("", "0")
        elif key == "disk":
            fields = rest.split()
            if len(fields) == 2 and all(f.isdigit() for f in fields):
                total, free = int(fields[0]) * 1024, int(fields[1]) * 1024
    return RemoteInfo(  # noqa: S604 - a dataclass field, not a subprocess call
        shell=True,
        sftp=sftp,
        tools=tools,
        os=values.get("os") or None,
        arch=values.get("arch") or None,
        kernel=values.get("kernel") or None,
        home=values.get("home") or None,
        busybox=busybox,
        disk_total_bytes=total,
        disk_free_bytes=free,
    )


def join_lines(lines: Iterable[str]) -> str:
    """Join independent command lines so that each runs even if an earlier one fails."""
    return "; ".join(lines)
