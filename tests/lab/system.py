"""Process and naming helpers shared by the lab modules.

Everything the lab creates outside its temporary directory is named from one prefix,
``dpl<pid><letter>``: the pid of the process that built the lab and a letter that tells apart
several labs of one process. Namespaces are ``<prefix>-<host>``, links ``<prefix>br`` and
``<prefix>v<i>``, the directory ``$TMPDIR/<prefix>-XXXXXXXX`` and the password user
``difpipe-lab-<pid><letter>``. A name of that shape whose pid is no longer alive is a leftover
of a crashed run and may be removed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shlex
import signal
import socket
import string
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

SSHD = "/usr/sbin/sshd"
REQUIRED_TOOLS = ("ssh", "ssh-keygen", "ssh-agent", "ssh-add")
INSTALL_HINT = "run scripts/install-test-deps to install OpenSSH, nftables and iproute2"

_PREFIX = r"dpl(?P<pid>\d+)[a-z]"
NAME_PATTERNS = {
    "namespace": re.compile(rf"^{_PREFIX}-[a-z]+$"),
    "link": re.compile(rf"^{_PREFIX}(?:br|v\d+)$"),
    "user": re.compile(r"^difpipe-(?:lab|sh)-(?P<pid>\d+)[a-z]$"),
    "workdir": re.compile(rf"^{_PREFIX}-\w{{8}}$"),
}
"""The names the lab gives, by kind; nothing else is ever treated as a leftover."""

_tags = itertools.cycle(string.ascii_lowercase)


class LabError(RuntimeError):
    """The lab could not be built, changed or torn down."""


class LabUnavailable(LabError):
    """The tools the lab needs are missing on this machine."""


def new_prefix() -> str:
    """A name prefix unique to this lab among the labs alive on the machine."""
    return f"dpl{os.getpid()}{next(_tags)}"


def user_name(prefix: str) -> str:
    """The lab's password user, e.g. ``difpipe-lab-1234a`` for the prefix ``dpl1234a``."""
    return f"difpipe-lab-{prefix.removeprefix('dpl')}"


def plain_user_name(prefix: str) -> str:
    """The lab's key user with a plain ``/bin/sh``, e.g. ``difpipe-sh-1234a``."""
    return f"difpipe-sh-{prefix.removeprefix('dpl')}"


def is_stale(name: str, kind: str) -> bool:
    """True when ``name`` is a lab name of ``kind`` (see NAME_PATTERNS) whose creator is gone."""
    match = NAME_PATTERNS[kind].match(name)
    if match is None:
        return False
    pid = int(match["pid"])
    return pid != os.getpid() and not pid_alive(pid)


def is_root() -> bool:
    return os.geteuid() == 0


def require_tools() -> None:
    """Raise :class:`LabUnavailable` unless sshd and the OpenSSH client tools are installed."""
    missing = [] if os.access(SSHD, os.X_OK) else [SSHD]
    missing += [tool for tool in REQUIRED_TOOLS if which(tool) is None]
    if missing:
        raise LabUnavailable(f"the sshd test lab needs {', '.join(missing)}: {INSTALL_HINT}")


def which(tool: str) -> str | None:
    """Find ``tool`` on PATH or in the sbin directories a non-root PATH often lacks."""
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    for directory in [*path, "/usr/sbin", "/sbin"]:
        candidate = os.path.join(directory, tool)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, raising :class:`LabError` with its stderr on failure."""
    try:
        result = subprocess.run(
            list(argv),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{shlex.join(argv)}: {exc}") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise LabError(f"{shlex.join(argv)} exited with {result.returncode}: {detail}")
    return result


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in field 2 may contain spaces and parentheses: split after it.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """The pids of every process below ``pid``, children first."""
    tree = _children_by_parent()
    found: list[int] = []
    pending = list(tree.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(tree.get(child, []))
    return found


def pids_referencing(text: str) -> list[int]:
    """The pids whose command line mentions ``text`` (used to find leftovers by their paths)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def kill_all(pids: Iterable[int], *, timeout: float = 3.0) -> None:
    """SIGTERM the processes, then SIGKILL whatever is still alive after ``timeout``."""
    signalled = []
    for pid in pids:
        if pid <= 1:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
        signalled.append(pid)
    pids = signalled
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid for pid in pids if _running(pid)]
        if not pids:
            return
        time.sleep(0.02)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie child of ours is reaped by its ``Popen`` later)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
