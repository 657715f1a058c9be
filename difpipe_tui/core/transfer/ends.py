"""The two kinds of transfer end: sources that yield bytes, sinks that land them.

Remote ends run one shell pipeline each over the host's pooled SSH connection. Every stage of a
pipeline reports its own failure on stderr with a ``difpipe-fail STAGE STATUS`` line, so a
failure in the middle of a pipeline is never hidden by the status of its last command. Every
path is quoted (:mod:`difpipe_tui.core.remote`).

A sink writes ``NAME.difpipe-part`` and renames it over ``NAME`` only in :meth:`land`, after
the caller has compared digests, so a destination never holds a partial file under its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO

import asyncssh

from ..errors import (
    DifpipeError,
    LocalIOError,
    NetworkError,
    RemoteCommandError,
    UsageError,
    VerifyError,
)
from ..remote import command, quote_arg
from ..ssh import SSHPool, classify
from .hashwriter import writer_command
from .verify import DIGEST_MARK, digest_argv, new_hasher, parse_digest_output

PART_SUFFIX = ".difpipe-part"
FAIL_MARK = "difpipe-fail"
#: ``difpipe-sent POS``: a source that hashes what it sends says, on stderr, at which offset of
#: the file its reader ended (see :meth:`RemoteSource.read_line`).
SENT_MARK = "difpipe-sent"
#: Seconds a remote source's command may take to end after its stream (see
#: :meth:`RemoteSource.finish_timeout`).
FINISH_TIMEOUT = 60.0
#: Bytes per second: the slowest a source host is granted to hash the file it sends. Low on
#: purpose: a small board hashing from an SD card is not failed for being slow.
DIGEST_RATE = 4 * 1024 * 1024


#: ``$t``: GNU ``tee`` told to stop at its first failed write. By default it reports a write
#: error (a full disk) and goes on copying to its other outputs, so the stream would run to its
#: end into the digest before the destination failed. BusyBox ``tee`` has no such option.
TEE_MODE = (
    "t=tee; tee --output-error=exit < /dev/null > /dev/null 2>&1 && t='tee --output-error=exit'; "
)


def part_path(target: str) -> str:
    return target + PART_SUFFIX


def _guard(line: str, stage: str) -> str:
    """``{ LINE || echo 'difpipe-fail STAGE' $? >&2; }``: a stage that reports its failure."""
    return f"{{ {line} || echo {FAIL_MARK} {stage} $? >&2; }}"


def _must(line: str, stage: str) -> str:
    """Like :func:`_guard`, but the whole command stops there when ``LINE`` fails."""
    return f"{{ {line} || {{ echo {FAIL_MARK} {stage} $? >&2; exit 1; }}; }}"


def _failure(stderr: str) -> tuple[str | None, str]:
    """The failed stage (if any) and the most telling stderr line."""
    stage = None
    lines = []
    for line in stderr.splitlines():
        if line.startswith(FAIL_MARK + " "):
            stage = stage or line.split()[1]
        elif line.strip() and not line.startswith((DIGEST_MARK + " ", SENT_MARK + " ")):
            lines.append(line.strip())
    return stage, (lines[0] if lines else "")


def reader_end(stderr: str) -> int | None:
    """The offset at which a source's reader of the file ended (its :data:`SENT_MARK` line),
    or None when it said none (yet, or its host has no ``/proc``)."""
    for line in stderr.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == SENT_MARK and words[1].isdigit():
            return int(words[1])
    return None


def _remote_error(host: str, what: str, stderr: str, status: int | None) -> DifpipeError:
    stage, detail = _failure(stderr)
    text = detail or f"{stage or 'command'} failed with exit status {status}"
    low = text.lower()
    if "no space left" in low:
        return RemoteCommandError(f"{what}: no space left on the device", host=host, stderr=stderr)
    if "permission denied" in low:
        return RemoteCommandError(f"{what}: permission denied", host=host, stderr=stderr)
    if "no such file" in low:
        return RemoteCommandError(f"{what}: no such file or directory", host=host, stderr=stderr)
    return RemoteCommandError(f"{what}: {text}", host=host, exit_status=status, stderr=stderr)


# -- inspecting an end -------------------------------------------------------------------------

# insp PATH prints one line: "file SIZE", "dir", "other" or "missing"; then "parent ok|readonly|
# missing" and "free KIB" of the parent directory. A shell function, so the planner's survey of a
# host (plan.py) can call it for several paths in one command.
INSPECT_FUNCTION = (
    'insp() { p=$1; if [ -d "$p" ]; then echo dir; '
    'elif [ -f "$p" ]; then printf "file %s\\n" "$(wc -c < "$p" | tr -d " ")"; '
    'elif [ -e "$p" ]; then echo other; else echo missing; fi; '
    'd=$(dirname -- "$p"); if [ -d "$d" ] && [ -w "$d" ]; then echo "parent ok"; '
    'elif [ -d "$d" ]; then echo "parent readonly"; else echo "parent missing"; fi; '
    'df -Pk "$d" 2>/dev/null | awk \'NR > 1 { f = $4 } END { if (f != "") print "free", f }\'; }; '
)
_INSPECT = INSPECT_FUNCTION + 'insp "$1"'  # $1 = path


@dataclass(frozen=True)
class PathInfo:
    kind: str  # file | dir | other | missing
    size: int | None = None
    parent: str = "ok"  # ok | readonly | missing
    free_bytes: int | None = None


def parse_inspect(text: str) -> PathInfo:
    kind, size, parent, free = "missing", None, "missing", None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("dir", "other", "missing"):
            kind = words[0]
        elif words[0] == "file":
            kind = "file"
            size = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
        elif words[0] == "parent" and len(words) > 1:
            parent = words[1]
        elif words[0] == "free" and len(words) > 1 and words[1].isdigit():
            free = int(words[1]) * 1024
    return PathInfo(kind, size, parent, free)


async def inspect_remote(pool: SSHPool, host: str, path: str) -> PathInfo:
    res = await pool.run(host, command("sh", "-c", _INSPECT, "sh", path), check=False)
    return parse_inspect(res.text)


def inspect_local(path: str) -> PathInfo:
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        pstate = "missing"
    else:
        pstate = "ok" if os.access(parent, os.W_OK) else "readonly"
    free = None
    with contextlib.suppress(OSError):
        st = os.statvfs(parent)
        free = st.f_bavail * st.f_frsize
    if os.path.isdir(path):
        return PathInfo("dir", None, pstate, free)
    if os.path.isfile(path):
        return PathInfo("file", os.path.getsize(path), pstate, free)
    if os.path.exists(path):
        return PathInfo("other", None, pstate, free)
    return PathInfo("missing", None, pstate, free)


async def sample_remote(pool: SSHPool, host: str, path: str, n: int = 65536) -> bytes:
    res = await pool.run(host, command("head", "-c", n, "--", path), check=False)
    return res.stdout


def sample_local(path: str, n: int = 65536) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


# -- sources -----------------------------------------------------------------------------------


class Source:
    """Yields the bytes of the data from ``offset`` on, possibly compressed by the remote."""

    name = ""
    compressed = False  # the bytes read are compressed by the source's own tool
    digest: str | None = None  # what the source host computed of the bytes it sent, if asked
    watch_stall = True  # a read that receives nothing fails after the relay's stall timeout

    def received(self) -> int | None:
        """How many bytes the source has received so far, where that can be seen while a read
        is pending (None: progress shows only when a read returns)."""
        return None

    async def open(self) -> None: ...

    async def read(self, n: int) -> bytes:
        raise NotImplementedError

    async def finish(self) -> None:
        """After EOF: raise if the source side failed."""

    async def abort(self) -> None: ...


class RemoteSource(Source):
    """The stream of ``cat`` (or ``tail`` from ``offset``), compressed by ``compress_argv``.

    With ``digest_argv`` (a digest tool of the host, see :func:`.verify.digest_argv`) the host
    also hashes the same bytes of the file while they stream: a second reader of the file in
    the background, which prints ``difpipe-digest HEX`` on stderr. A second read costs the
    host less CPU than a ``tee`` of the stream into the tool, and the page cache usually serves
    one of the two. A file that changes while it is read gives a digest that does not match
    what was sent: the copy then fails verification.

    The channel's end then comes only once the hash is done: sshd holds a session's EOF while
    anything still holds its stderr, and the hash reports there. Waiting for it at the end of
    the stream would look like a stalled source, so a source given the stream's ``length``
    (the file's size less ``offset``) ends its stream when that many bytes have arrived;
    :meth:`finish` then waits for the hash (see :meth:`finish_timeout`), and fails when more
    bytes follow (the file grew).

    A file that shrinks below that length ends its reader early, and then no byte comes until
    the hash is done: with a slow hash that would end as a stall of the source (retryable:
    the copy would read the changed file again) instead of the change of size. So the reader
    says where it ended (:meth:`read_line`), on stderr at once, and a source whose reader
    ended short of its length fails with :meth:`shrunk` without waiting for the hash.
    """

    def __init__(
        self,
        pool: SSHPool,
        host: str,
        path: str,
        *,
        offset: int = 0,
        compress_argv: list[str] | None = None,
        digest_argv: list[str] | None = None,
        length: int | None = None,
    ):
        self.pool, self.host, self.path, self.offset = pool, host, path, offset
        self.length = length  # the bytes the stream carries, when known: it ends there
        self.compress_argv = compress_argv
        self.compressed = compress_argv is not None
        if digest_argv is not None and compress_argv is not None:
            raise ValueError("the source hashes the file it sends: it cannot also compress it")
        self.digest_argv = digest_argv
        self.name = f"{host}:{path}"
        self.window: int | None = None  # None: sized by the pool from the link's round trip
        self.stdin_data = b""  # what the command reads on its stdin
        self._proc: asyncssh.SSHClientProcess | None = None
        self._received = 0  # bytes of the stream received so far
        self._opened = 0.0  # when the command started (time.monotonic())
        self._stderr: asyncio.Task[bytes] | None = None  # reads stderr during the stream
        self._ended_at: int | None = None  # where the host's reader ended, short of the length

    def command_line(self) -> str:
        if self.digest_argv:
            return self._digest_line() + self.read_line() + "; wait"
        if self.offset:
            read = command("tail", "-c", f"+{self.offset + 1}", "--", self.path)
        else:
            read = command("cat", "--", self.path)
        line = _guard(read, "read")
        if self.compress_argv:
            line += " | " + _guard(command(*self.compress_argv), "compress")
        return line

    def read_line(self) -> str:
        """The reader of a source that hashes what it sends: ``cat`` (or ``tail``) of the file
        opened by the shell on fd 3, which then prints ``difpipe-sent POS`` on stderr, the
        file's offset where the reader stopped (fd 3 shares it), read from
        ``/proc/self/fdinfo/3`` by the shell's own ``read``: no process more. A host without
        ``/proc`` says nothing, and a file that shrinks there ends as before.
        """
        read = command("tail", "-c", f"+{self.offset + 1}") if self.offset else "cat"
        sent = (
            "if { read -r _ p < /proc/self/fdinfo/3; } 2>/dev/null; "
            f'then echo {SENT_MARK} "$p" >&2; fi'
        )
        group = "{ " + _guard(read + " <&3 3<&-", "read") + "; " + sent + "; }"
        return _guard(group + " 3< " + quote_arg(self.path), "read")

    def short_of_length(self, end: int | None) -> bool:
        """Whether a reader that ended at offset ``end`` sent less than the stream's length."""
        return end is not None and self.length is not None and end < self.offset + self.length

    def shrunk(self, end: int) -> VerifyError:
        """The error of a file whose reader ended at offset ``end``, short of the length."""
        assert self.length is not None
        return VerifyError(
            f"{self.name}: the source changed size while it was read"
            f" ({self.offset + self.length} bytes expected, its reader ended at {end})",
            hint="copy it again once it stops changing",
        )

    def _digest_line(self) -> str:
        """``trap 'kill 0' PIPE HUP; { d=$(TOOL < PATH) && printf ... || fail; } >&2 &``"""
        assert self.digest_argv is not None
        tool = command(*self.digest_argv)
        if self.offset:
            tail = command("tail", "-c", f"+{self.offset + 1}", "--", self.path)
            hashed = f"{tail} | {tool}"
        else:
            hashed = f"{tool} < {quote_arg(self.path)}"
        show = f"printf '%s %s\\n' {DIGEST_MARK} \"$d\""
        # A reader that goes away (a stop, a cut) leaves the stream with SIGPIPE: the trap then
        # ends the whole session's process group, so the hash does not read on to the end.
        return (
            "trap 'kill 0' PIPE HUP; "
            f"{{ d=$({hashed}) && {show} || echo {FAIL_MARK} digest $?; }} >&2 & "
        )

    async def open(self) -> None:
        self._opened = time.monotonic()
        await self.pool.connect(self.host)
        window = self.window or self.pool.window(self.host)
        try:
            self._proc = await self.pool.create_process(
                self.host, self.command_line(), encoding=None, window=window
            )
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, self.host) from exc
        if self.stdin_data:
            self._proc.stdin.write(self.stdin_data)
        self._proc.stdin.write_eof()
        if self.digest_argv is not None and self.length is not None:
            self._stderr = asyncio.create_task(self._watch_stderr(self._proc))

    async def _watch_stderr(self, proc: asyncssh.SSHClientProcess) -> bytes:
        """Read stderr while the stream runs (all of it, for :meth:`finish`). When the reader
        says it ended short of the length, the pending read is woken and fails with
        :meth:`shrunk`, instead of waiting for bytes that never come.

        The wake is the session's own end-of-file callback: closing the channel would not do,
        as sshd answers a close only once the session's command has ended (the hash).
        """
        got = bytearray()
        with contextlib.suppress(asyncssh.Error, OSError):
            while line := await proc.stderr.readline():
                got += line
                end = reader_end(line.decode(errors="replace"))
                if self.short_of_length(end):
                    self._ended_at = end
                    proc.eof_received()
        return bytes(got)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, fewer only at the end: whole chunks make fewer, larger writes
        downstream. Read in the pieces that arrive (not ``readexactly``), so that
        :meth:`received` shows a slow stream moving while the chunk fills."""
        assert self._proc is not None
        stdout = self._proc.stdout
        pieces: list[bytes] = []
        got = 0
        n = self.wanted(n)
        try:
            while got < n:
                piece = await stdout.read(n - got)
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
                self._received += len(piece)
        except (asyncssh.Error, OSError) as exc:
            if self._ended_at is not None:
                raise self.shrunk(self._ended_at) from None
            raise classify(exc, self.host) from exc
        if self._ended_at is not None:
            raise self.shrunk(self._ended_at)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def received(self) -> int | None:
        return self._received

    def wanted(self, n: int) -> int:
        """``n``, or what is left of the stream where its :attr:`length` ends it sooner."""
        if self.length is None:
            return n
        return max(0, min(n, self.length - (self.received() or 0)))

    def _check_rest(self, extra: int) -> None:
        """Fail when ``extra`` bytes followed the stream's :attr:`length`."""
        if extra:
            raise VerifyError(
                f"{self.name}: the source changed size while it was read"
                f" ({extra} bytes more than when the copy began)",
                hint="copy it again once it stops changing",
            )

    def finish_timeout(self) -> float:
        """How long :meth:`finish` waits, after the end of the stream, for the command to end.

        Without a digest the command ends with its stream: :data:`FINISH_TIMEOUT` is only a
        bound for a host that does not answer. With one, the host's hash of the file began
        with the stream and may still be reading: it gets until the stream's bytes could have
        been hashed at :data:`DIGEST_RATE` since the command started, and at least
        :data:`FINISH_TIMEOUT` after the end of the stream. A large file hashed on a slow host
        (a Raspberry Pi's SD card) is not failed for taking longer than a flat minute, and a
        hash that is stuck still fails, after a time that grows with the file only.
        """
        if self.digest_argv is None:
            return FINISH_TIMEOUT
        hashed_by = self._opened + (self.received() or 0) / DIGEST_RATE
        return max(FINISH_TIMEOUT, hashed_by - time.monotonic())

    async def _ended(self) -> tuple[bytes, bytes]:
        """Wait for the command's end: (the stdout that followed the stream, all stderr)."""
        assert self._proc is not None
        seen = await self._stderr if self._stderr is not None else b""
        done = await self._proc.wait()
        return done.stdout or b"", seen + (done.stderr or b"")

    async def finish(self) -> None:
        assert self._proc is not None
        try:
            rest, stderr = await asyncio.wait_for(self._ended(), self.finish_timeout())
            extra = len(rest)
        except TimeoutError as exc:
            raise NetworkError("the source did not finish", host=self.host) from exc
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, self.host) from exc
        text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        status = self._proc.exit_status
        if status is None:
            raise NetworkError(f"{self.path}: the connection closed mid-stream", host=self.host)
        if FAIL_MARK in text or status != 0:
            raise _remote_error(self.host, self.path, text, status)
        self._check_rest(extra)

    async def abort(self) -> None:
        if self._stderr is not None:
            self._stderr.cancel()
        if self._proc is not None:
            self._proc.close()


class LocalSource(Source):
    """A file on this machine.

    Its reads are not watched for stalls: a local read that hangs is stuck in the kernel (a
    failing disk, a hard NFS mount), where the worker thread that runs it cannot be cancelled
    and closing the file waits for that thread, so failing the read would free nothing, and
    a retry would read the same disk.
    """

    watch_stall = False

    def __init__(self, path: str, *, offset: int = 0):
        self.path, self.offset, self.name = path, offset, path
        self._fh: BinaryIO | None = None

    async def open(self) -> None:
        try:
            self._fh = open(self.path, "rb")  # noqa: ASYNC230, SIM115 - closed in finish/abort
            self._fh.seek(self.offset)
        except OSError as exc:
            raise LocalIOError(f"cannot read {self.path}: {exc.strerror}") from exc

    async def read(self, n: int) -> bytes:
        assert self._fh is not None
        try:
            return await asyncio.to_thread(self._fh.read, n)
        except OSError as exc:
            raise LocalIOError(f"cannot read {self.path}: {exc.strerror}") from exc

    async def finish(self) -> None:
        await self.abort()

    async def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class StdinSource(Source):
    name = "-"
    watch_stall = False  # the writer of a pipe may take as long as it likes

    def __init__(self, stream: BinaryIO | None = None):
        self.stream = stream or sys.stdin.buffer

    async def read(self, n: int) -> bytes:
        reader = getattr(self.stream, "read1", self.stream.read)
        return await asyncio.to_thread(reader, n)


# -- sinks -------------------------------------------------------------------------------------


class Sink:
    """Lands the data at one destination."""

    name = ""
    compressed = False  # takes compressed bytes and decompresses them itself
    resumable = False
    watch_stall = True  # a write that makes no progress fails after the relay's stall timeout

    def taken(self) -> int | None:
        """How many bytes written so far the destination has taken, where that can be seen
        while a write is pending (None: progress shows only when a write returns)."""
        return None

    async def prepare(self, offset: int) -> None:
        """Create (offset 0) or truncate to ``offset`` the part file."""

    async def open(self) -> None: ...

    async def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def finish(self) -> str | None:
        """Close the stream; the digest the destination computed of what it wrote, if any."""
        return None

    async def full_digest(self, algo: str) -> str | None:
        """The digest of the whole part file, computed by the destination."""
        return None

    async def prefix_digest(self, n: int, algo: str) -> str | None:
        return None

    async def part_size(self) -> int | None:
        return None

    async def head(self, n: int) -> bytes | None:
        """The first ``n`` bytes of the part file (an encrypted stream's header)."""
        return None

    async def range_digest(self, start: int, end: int, algo: str) -> str | None:
        """The digest of the part file's bytes ``start`` .. ``end``, computed by the destination."""
        return None

    async def land(self, overwrite: bool) -> None: ...

    async def land_with_digest(self, overwrite: bool, algo: str) -> str | None:
        """:meth:`land`, and the digest of the whole file computed by the destination."""
        digest = await self.full_digest(algo)
        await self.land(overwrite)
        return digest

    async def discard(self) -> None:
        """Remove the part file (a transfer that starts over, or one that failed verification)."""

    async def abort(self) -> None: ...


class RemoteSink(Sink):
    """The stream's own command creates (or truncates) the part file before it writes.

    :meth:`prepare` runs nothing remote: it only says where the stream starts, and the
    pipeline of :meth:`command_line` begins with the step, so a copy costs one remote command
    less and a destination that cannot be written fails when its stream opens.
    """

    resumable = True

    def __init__(
        self,
        pool: SSHPool,
        host: str,
        target: str,
        *,
        algo: str,
        tools: set[str],
        decompress_argv: list[str] | None = None,
    ):
        self.pool, self.host, self.target = pool, host, target
        self.part = part_path(target)
        self.algo, self.tools = algo, tools
        self.decompress_argv = decompress_argv
        self.compressed = decompress_argv is not None
        self.digest_argv = digest_argv(algo, tools) if algo != "none" else None
        self.name = f"{host}:{target}"
        self._append = False
        self._offset = 0
        self._given = 0  # bytes handed to the channel
        self._proc: asyncssh.SSHClientProcess | None = None

    async def _run(self, line: str, what: str) -> str:
        res = await self.pool.run(self.host, line, check=False)
        if not res.ok or FAIL_MARK in res.stderr.decode(errors="replace"):
            raise _remote_error(
                self.host, what, res.stderr.decode(errors="replace"), res.exit_status
            )
        return res.text

    async def prepare(self, offset: int) -> None:
        self._offset = offset
        self._append = offset > 0

    def prepare_line(self) -> str:
        """Create the part file (offset 0) or cut it to the offset; stop the command if not."""
        if self._offset:
            dd = command(
                "dd", "if=/dev/null", f"of={self.part}", "bs=1", f"seek={self._offset}", "count=0"
            )
            return _must(dd + " 2>/dev/null", "truncate")
        return "umask 077; " + _must(": > " + quote_arg(self.part), "create")

    def command_line(self) -> str:
        return self.prepare_line() + " && " + self.stream_line()

    def stream_line(self) -> str:
        """Write the part file; with a digest, ``tee`` it into the digest tool (on stdout), or,
        where the host has ``python3``, write and hash in one process (:mod:`.hashwriter`).

        ``tee`` reads 8 KiB per call: reading the session's pipe that way makes sshd and the
        ssh client behind it move the stream in small pieces, which cost them more CPU than
        the digest itself. A ``cat`` (or the decompressor) in front drains the pipe in large
        reads and hands ``tee`` the same bytes.
        """
        stages = []
        if self.decompress_argv:
            stages.append(_guard(command(*self.decompress_argv), "decompress"))
        if self.digest_argv and "python3" in self.tools:
            writer = writer_command(self.algo, self.part, append=self._append)
            stages.append(_guard(writer, "write"))
            return " | ".join(stages)
        if self.digest_argv:
            if not self.decompress_argv:
                stages.append(_guard("cat", "receive"))
            args = ["-a", "--", self.part] if self._append else ["--", self.part]
            stages.append(_guard("$t " + command(*args), "write"))
            stages.append(command(*self.digest_argv))
            return "{ " + TEE_MODE + " | ".join(stages) + "; }"
        else:
            redirect = " >> " if self._append else " > "
            stages.append(_guard("cat" + redirect + quote_arg(self.part), "write"))
        return " | ".join(stages)

    async def open(self) -> None:
        try:
            self._proc = await self.pool.create_process(
                self.host, self.command_line(), encoding=None
            )
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, self.host) from exc

    async def write(self, data: bytes) -> None:
        assert self._proc is not None
        try:
            self._proc.stdin.write(data)
            self._given += len(data)
            await self._proc.stdin.drain()
        except (asyncssh.Error, OSError, BrokenPipeError) as exc:
            await self._raise_from_stderr(exc)

    def taken(self) -> int | None:
        """What left the channel's send buffer: SSH flow control holds the rest."""
        if self._proc is None:
            return None
        return self._given - self._proc.stdin.channel.get_write_buffer_size()

    async def _raise_from_stderr(self, exc: BaseException) -> None:
        text = ""
        if self._proc is not None:
            with contextlib.suppress(Exception):
                text = (await asyncio.wait_for(self._proc.stderr.read(), 5)).decode(
                    errors="replace"
                )
        if text.strip():
            raise _remote_error(self.host, self.target, text, None) from exc
        raise classify(exc, self.host) from exc

    async def finish(self) -> str | None:
        assert self._proc is not None
        try:
            self._proc.stdin.write_eof()
            done = await asyncio.wait_for(self._proc.wait(), 300)
            out = done.stdout or b""
            err = done.stderr or b""
        except TimeoutError as exc:
            raise NetworkError(
                f"{self.target}: the destination did not finish", host=self.host
            ) from exc
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, self.host) from exc
        text = err.decode(errors="replace")
        if self._proc.exit_status is None:
            raise NetworkError(f"{self.target}: the connection closed mid-stream", host=self.host)
        if FAIL_MARK in text or self._proc.exit_status != 0:
            raise _remote_error(self.host, self.target, text, self._proc.exit_status)
        if self.digest_argv:
            return parse_digest_output(out.decode(errors="replace"), self.algo)
        return None

    async def full_digest(self, algo: str) -> str | None:
        argv = digest_argv(algo, self.tools)
        if argv is None:
            return None
        text = await self._run(command(*argv) + " < " + quote_arg(self.part), self.target)
        return parse_digest_output(text, algo)

    async def prefix_digest(self, n: int, algo: str) -> str | None:
        argv = digest_argv(algo, self.tools)
        if argv is None:
            return None
        line = command("head", "-c", n, "--", self.part) + " | " + command(*argv)
        return parse_digest_output(await self._run(line, self.target), algo)

    async def part_size(self) -> int | None:
        info = await inspect_remote(self.pool, self.host, self.part)
        return info.size if info.kind == "file" else None

    async def head(self, n: int) -> bytes | None:
        res = await self.pool.run(self.host, command("head", "-c", n, "--", self.part), check=False)
        if not res.ok:
            raise _remote_error(
                self.host, self.target, res.stderr.decode(errors="replace"), res.exit_status
            )
        return res.stdout

    async def range_digest(self, start: int, end: int, algo: str) -> str | None:
        argv = digest_argv(algo, self.tools)
        if argv is None:
            return None
        if start:
            read = command("tail", "-c", f"+{start + 1}", "--", self.part)
            read += " | " + command("head", "-c", end - start)
        else:
            read = command("head", "-c", end, "--", self.part)
        line = _guard(read, "read") + " | " + command(*argv)
        return parse_digest_output(await self._run(line, self.target), algo)

    def _land_line(self, overwrite: bool) -> str:
        if overwrite:
            return _guard(command("mv", "-f", "--", self.part, self.target), "rename")
        # ln fails when the name exists: an atomic no-clobber rename
        link = command("ln", "--", self.part, self.target)
        return _guard(link + " && " + command("rm", "-f", "--", self.part), "rename")

    async def land(self, overwrite: bool) -> None:
        await self._run(self._land_line(overwrite), self.target)

    async def land_with_digest(self, overwrite: bool, algo: str) -> str | None:
        argv = digest_argv(algo, self.tools)
        if argv is None:
            await self.land(overwrite)
            return None
        digest = _must(command(*argv) + " < " + quote_arg(self.part), "digest")
        text = await self._run(digest + " && " + self._land_line(overwrite), self.target)
        return parse_digest_output(text, algo)

    async def discard(self) -> None:
        with contextlib.suppress(DifpipeError):
            await self.pool.run(self.host, command("rm", "-f", "--", self.part), check=False)

    async def abort(self) -> None:
        if self._proc is not None:
            self._proc.close()


class LocalSink(Sink):
    resumable = True

    def __init__(self, target: str, *, algo: str):
        self.target, self.part, self.algo = target, part_path(target), algo
        self.name = target
        self._fh: BinaryIO | None = None
        self._hasher = new_hasher(algo)

    async def prepare(self, offset: int) -> None:
        try:
            fd = os.open(self.part, os.O_WRONLY | os.O_CREAT, 0o600)
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
            self._fh = os.fdopen(fd, "wb")
        except OSError as exc:
            raise LocalIOError(f"cannot write {self.part}: {exc.strerror}") from exc

    async def write(self, data: bytes) -> None:
        assert self._fh is not None
        try:
            await asyncio.to_thread(self._write, data)
        except OSError as exc:
            raise LocalIOError(f"cannot write {self.target}: {exc.strerror}") from exc

    def _write(self, data: bytes) -> None:
        """Write and hash in the worker thread (both let go of the GIL)."""
        assert self._fh is not None
        self._fh.write(data)
        self._hasher.update(data)

    async def finish(self) -> str | None:
        assert self._fh is not None
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        except OSError as exc:
            raise LocalIOError(f"cannot write {self.target}: {exc.strerror}") from exc
        self._fh = None
        return None if self.algo == "none" else self._hasher.hexdigest()

    async def full_digest(self, algo: str) -> str | None:
        from .verify import file_digest_local

        return await asyncio.to_thread(file_digest_local, self.part, algo)

    async def prefix_digest(self, n: int, algo: str) -> str | None:
        from .verify import prefix_digest_local

        return await asyncio.to_thread(prefix_digest_local, self.part, n, algo)

    async def part_size(self) -> int | None:
        try:
            return os.path.getsize(self.part)
        except OSError:
            return None

    async def head(self, n: int) -> bytes | None:
        def read() -> bytes:
            with open(self.part, "rb") as fh:
                return fh.read(n)

        try:
            return await asyncio.to_thread(read)
        except OSError as exc:
            raise LocalIOError(f"cannot read {self.part}: {exc.strerror}") from exc

    async def range_digest(self, start: int, end: int, algo: str) -> str | None:
        from .verify import prefix_digest_local

        return await asyncio.to_thread(
            prefix_digest_local, self.part, end - start, algo, start=start
        )

    async def land(self, overwrite: bool) -> None:
        try:
            if overwrite:
                os.replace(self.part, self.target)
            else:
                os.link(self.part, self.target)
                os.unlink(self.part)
        except FileExistsError as exc:
            raise LocalIOError(f"{self.target} exists (--no-overwrite)") from exc
        except OSError as exc:
            raise LocalIOError(f"cannot rename into {self.target}: {exc.strerror}") from exc

    async def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.part)

    async def abort(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None


class StdoutSink(Sink):
    name = "-"
    watch_stall = False  # the reader of a pipe may wait as long as it likes

    def __init__(self, stream: BinaryIO | None = None):
        self.stream = stream or sys.stdout.buffer

    async def write(self, data: bytes) -> None:
        try:
            await asyncio.to_thread(self.stream.write, data)
        except BrokenPipeError as exc:
            raise LocalIOError("stdout closed before the end of the data") from exc

    async def finish(self) -> str | None:
        await asyncio.to_thread(self.stream.flush)
        return None


def resolve_target(dest_path: str, info: PathInfo, source_name: str, *, remote: bool) -> str:
    """``dest/`` or an existing directory receives the source's base name."""
    join = posixpath.join if remote else os.path.join
    if info.kind == "dir" or dest_path.endswith("/"):
        if not source_name:
            raise UsageError(f"{dest_path}: a directory needs a file name for data from stdin")
        return join(dest_path, source_name)
    return dest_path
