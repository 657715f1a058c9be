"""Resuming a directory copy: send only what the staging directory does not hold yet.

A directory moves as one tar stream extracted into ``TARGET.difpipe-part/``. When that stream
stops (a cut link, kill -9, a full disk), the staging directory keeps every file tar finished.
tar sets a file's modification time when it has written the whole file, so a file there with
the source's size and modification time (to the second, as tar records it) is complete: the
quick check rsync makes by default. A resumed run lists both trees, sends the rest as a tar of
named entries (``--null --no-recursion -T -``) and removes from the staging directory what the
source no longer has. The stream's digest covers the entries sent in this run.

The listings need GNU find's ``-printf``; where it is missing the copy starts over.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ..errors import DifpipeError
from ..remote import command
from ..ssh import SSHPool

# $1 = directory. One NUL-terminated record per entry below it: TYPE SIZE MTIME PATH.
LIST_SCRIPT = "cd -- \"$1\" && find . -mindepth 1 -printf '%y %s %T@ %P\\0'"
# Removes the entries named on stdin (NUL-separated, relative to $1).
REMOVE_SCRIPT = 'cd -- "$1" && xargs -0 rm -rf --'


@dataclass(frozen=True)
class Entry:
    kind: str  # find's %y: f, d, l, ...
    size: int
    mtime: int  # whole seconds: what tar keeps


Listing = dict[str, Entry]


@dataclass
class TreeResume:
    """What a resumed directory copy sends, and what it removes first."""

    names: list[str]  # in the source's order: a directory before what it holds
    skipped_files: int
    skipped_bytes: int
    remaining_bytes: int
    extra: dict[str, list[str]]  # destination label -> entries the source no longer has

    @property
    def note(self) -> str:
        return (
            f"{self.skipped_files} files ({self.skipped_bytes} bytes) already there with the "
            f"source's size and time; sending the other {len(self.names)} entries"
        )

    def stdin(self) -> bytes:
        """The list for ``tar --null --no-recursion -T -``: ``./``, so no name reads as an
        option."""
        return b"".join(b"./" + os.fsencode(n) + b"\0" for n in self.names)


def parse_listing(data: bytes) -> Listing:
    """The records of :data:`LIST_SCRIPT` (malformed records are left out)."""
    out: Listing = {}
    for record in data.split(b"\0"):
        parts = record.split(b" ", 3)
        if len(parts) != 4 or not parts[3]:
            continue
        kind, size, mtime, path = parts
        try:
            # the whole seconds as written: a float would round .9999999999 up
            seconds = int(mtime.split(b".")[0])
            out[os.fsdecode(path)] = Entry(kind.decode(), int(size), seconds)
        except ValueError:
            continue
    return out


_KINDS = {
    stat.S_IFREG: "f",
    stat.S_IFDIR: "d",
    stat.S_IFLNK: "l",
    stat.S_IFIFO: "p",
    stat.S_IFSOCK: "s",
    stat.S_IFCHR: "c",
    stat.S_IFBLK: "b",
}


def list_local(root: str) -> Listing:
    """The same records as :data:`LIST_SCRIPT`, for a directory on this machine, in the order
    a walk from the top meets them."""
    out: Listing = {}
    for top, dirs, files in os.walk(root):
        rel = os.path.relpath(top, root)
        for name in dirs + files:
            path = name if rel == "." else os.path.join(rel, name)
            try:
                st = os.lstat(os.path.join(root, path))
            except OSError:
                continue
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "?")
            out[path] = Entry(kind, st.st_size, int(st.st_mtime))
    return out


async def list_remote(pool: SSHPool, host: str, path: str) -> Listing | None:
    """The listing of ``path`` on ``host``; None when it cannot be made (no GNU find, no
    directory)."""
    try:
        res = await pool.run(host, command("sh", "-c", LIST_SCRIPT, "sh", path), check=False)
    except DifpipeError:
        return None
    return parse_listing(res.stdout) if res.exit_status == 0 else None


async def remove_remote(pool: SSHPool, host: str, path: str, names: list[str]) -> None:
    data = b"".join(os.fsencode(n) + b"\0" for n in names)
    await pool.run(host, command("sh", "-c", REMOVE_SCRIPT, "sh", path), input=data)


def plan_resume(source: Listing, staged: dict[str, Listing]) -> TreeResume:
    """What to send so every staging directory in ``staged`` (by destination) ends up as the
    source: every directory and non-file entry, and each file some destination lacks."""
    names: list[str] = []
    skipped_files = skipped_bytes = remaining = 0
    for path, entry in source.items():
        if entry.kind != "f":
            names.append(path)
            continue
        if all(_same(entry, lst.get(path)) for lst in staged.values()):
            skipped_files += 1
            skipped_bytes += entry.size
        else:
            names.append(path)
            remaining += entry.size
    extra = {
        label: sorted(
            (p for p, e in lst.items() if p not in source or source[p].kind != e.kind),
            key=len,
        )
        for label, lst in staged.items()
    }
    return TreeResume(names, skipped_files, skipped_bytes, remaining, extra)


def _same(entry: Entry, staged: Entry | None) -> bool:
    return (
        staged is not None
        and staged.kind == "f"
        and staged.size == entry.size
        and staged.mtime == entry.mtime
    )
