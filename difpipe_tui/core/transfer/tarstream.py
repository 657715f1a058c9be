"""Directories as one tar stream: no round trip per file.

The source runs ``tar -cf - .`` in the directory; the destination extracts into
``TARGET.difpipe-part`` (a directory) while hashing the very stream it extracts (``tee`` into a
FIFO read by ``sha256sum``), and the staging directory is renamed over ``TARGET`` only after
the digests match. A failed or interrupted copy never leaves a half-filled directory under
the target's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal

from ..errors import DifpipeError, LocalIOError
from ..remote import command, quote_arg
from ..ssh import SSHPool
from .ends import RemoteSink, RemoteSource, Sink, Source, _guard, _must
from .hashwriter import feeder_command
from .treeresume import Listing, list_local, list_remote, remove_remote
from .verify import hash_piece, new_hasher

# dsize DIR prints "bytes N" (apparent size, from du -k) and "files N", du and find walking the
# tree at once. The plan's survey of a host calls it; SIZE_SCRIPT runs it for $1.
SIZE_FUNCTION = (
    'dsize() { { du -sk -- "$1" 2>/dev/null | awk \'{print "bytes", $1 * 1024}\'; } & '
    'n=$(find "$1" -type f 2>/dev/null | wc -l); wait $!; printf "files %s\\n" $((n)); }; '
)
SIZE_SCRIPT = SIZE_FUNCTION + 'dsize "$1"'


async def remote_dir_size(pool: SSHPool, host: str, path: str) -> tuple[int | None, int | None]:
    res = await pool.run(host, command("sh", "-c", SIZE_SCRIPT, "sh", path), check=False)
    return parse_dir_size(res.text)


def parse_dir_size(text: str) -> tuple[int | None, int | None]:
    """(bytes, files) from the lines of :data:`SIZE_SCRIPT`."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[key] = int(value)
    return values.get("bytes"), values.get("files")


def local_dir_size(path: str) -> tuple[int, int]:
    total = files = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
                files += 1
    return total, files


def tar_create_argv(path: str, names: bytes | None) -> list[str]:
    """``tar -cf -`` of the whole of ``path``, or of the entries named on stdin
    (``names``: NUL-separated, see :meth:`.treeresume.TreeResume.stdin`)."""
    if names is None:
        return ["tar", "-C", path, "-cf", "-", "."]
    return ["tar", "-C", path, "--null", "--no-recursion", "-T", "-", "-cf", "-"]


#: Sets ``$b`` to tar's option for 128 KiB records where tar takes it (GNU tar and bsdtar; not
#: BusyBox). tar writes one record at a time, and sshd sends what one read of its pipe gives:
#: with the default 10 KiB records a stream arrives in ~13 KB packets, each costing difpipe's
#: SSH layer as much as a full 32 KiB one. The records' padding is part of the stream, which
#: is hashed as it is sent and extracted as it is.
TAR_RECORDS = "b=; tar -b 256 -cf - -T /dev/null >/dev/null 2>&1 && b='-b 256'"


#: After tar has extracted an archive: read the rest of the stream, the padding of the source's
#: last record (up to 128 KiB of zeros, see :data:`TAR_RECORDS`), which tar leaves unread;
#: whatever writes into the pipe would otherwise fail on a closed pipe.
DRAIN = "cat > /dev/null"


class RemoteTarSource(RemoteSource):
    """``tar -cf -`` on the host; with ``names``, only those entries (a resumed copy)."""

    names: bytes | None = None

    def command_line(self) -> str:
        tar, *args = tar_create_argv(self.path, self.names)
        line = TAR_RECORDS + "; " + _guard(f"{tar} $b {command(*args)}", "read")
        if self.compress_argv:
            line += " | " + _guard(command(*self.compress_argv), "compress")
        return line

    async def open(self) -> None:
        self.stdin_data = self.names or b""
        await super().open()


class RemoteTarSink(RemoteSink):
    """Extracts into ``TARGET.difpipe-part/`` and renames it over ``TARGET`` when verified."""

    keep = False  # a resumed copy: extract over what the staging directory holds

    def prepare_line(self) -> str:
        """A fresh, empty staging directory, made by the stream's own command."""
        if self.keep:
            return "umask 077; " + _must(command("mkdir", "-p", "--", self.part), "create")
        return (
            "umask 077; "
            + _must(command("rm", "-rf", "--", self.part), "create")
            + " && "
            + _must(command("mkdir", "--", self.part), "create")
        )

    def stream_line(self) -> str:
        part = quote_arg(self.part)
        fifo = quote_arg(self.part + ".fifo")
        extract = _guard(f"tar -C {part} -xf - && {DRAIN}", "write")
        drain = _guard(command(*self.decompress_argv), "decompress") if self.decompress_argv else ""
        if not self.digest_argv:
            return f"{drain} | {extract}" if drain else extract
        if "python3" in self.tools:
            # One process reads sshd's pipe, hashes it and feeds tar through descriptor 3, the
            # digest on the session's stdout (4): one pipe less than cat | tee, and no fifo.
            feed = _guard(feeder_command(self.algo) + " 3>&1 1>&4", "write")
            return "{ " + " | ".join(s for s in (drain, feed, extract) if s) + "; } 4>&1"
        # tee reads 8 KiB at a time: something in front drains sshd's pipe in large reads
        # (see RemoteSink.stream_line)
        head = (drain or _guard("cat", "receive")) + " | "
        digest = command(*self.digest_argv)
        return (
            f"{_guard('mkfifo -- ' + fifo, 'create')} && "
            f"{{ {digest} < {fifo} & }} && "
            f"{head}{_guard('tee -- ' + fifo, 'write')} | {extract}; "
            f"wait; rm -f -- {fifo}"
        )

    async def land(self, overwrite: bool) -> None:
        old = quote_arg(self.target + ".difpipe-old")
        target, part = quote_arg(self.target), quote_arg(self.part)
        if overwrite:
            line = (
                f"if [ -e {target} ]; then rm -rf -- {old} && mv -- {target} {old}; fi && "
                f"{_guard(f'mv -- {part} {target}', 'rename')} && rm -rf -- {old}"
            )
        else:
            line = f"[ ! -e {target} ] && {_guard(f'mv -- {part} {target}', 'rename')}"
        await self._run(line, self.target)

    async def discard(self) -> None:
        with contextlib.suppress(DifpipeError):
            await self.pool.run(self.host, command("rm", "-rf", "--", self.part), check=False)

    async def part_size(self) -> int | None:
        return None

    async def listing(self) -> Listing | None:
        return await list_remote(self.pool, self.host, self.part)

    async def remove(self, names: list[str]) -> None:
        await remove_remote(self.pool, self.host, self.part, names)


class LocalTarSource(Source):
    """``tar -cf -`` of a local directory, run on this machine; with ``names``, only those
    entries (a resumed copy).

    Like :class:`~.ends.LocalSource`, not watched for stalls: a hang here is in this machine's
    own disk, where a tar stuck in uninterruptible I/O can outlive the kill that would end the
    attempt (and :meth:`abort` waits for it).
    """

    watch_stall = False

    def __init__(self, path: str, names: bytes | None = None):
        self.path, self.names = path, names
        self.name = path
        self._proc: asyncio.subprocess.Process | None = None
        self._feeding: asyncio.Task[None] | None = None

    async def open(self) -> None:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *tar_create_argv(self.path, self.names),
                stdin=asyncio.subprocess.DEVNULL if self.names is None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # Ctrl-C stops the copy, which then stops tar
            )
        except OSError as exc:
            raise LocalIOError(f"cannot run tar on {self.path}: {exc.strerror}") from exc
        if self.names is not None:  # tar reads the names while its output is read
            self._feeding = asyncio.create_task(self._feed(self.names))

    async def _feed(self, names: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._proc.stdin.write(names)
            await self._proc.stdin.drain()
            self._proc.stdin.close()

    async def read(self, n: int) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            return await self._proc.stdout.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    async def finish(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        if self._feeding is not None:
            await self._feeding
        err = (await self._proc.stderr.read()).decode(errors="replace").strip()
        if await self._proc.wait() != 0:
            raise LocalIOError(f"{self.path}: tar failed: {err.splitlines()[-1] if err else '?'}")

    async def abort(self) -> None:
        if self._feeding is not None:
            self._feeding.cancel()
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            # A stream stopped mid-way left its pipe paused with unread data: wait() returns
            # only once the pipes close, so read what is left to the end.
            await self._proc.communicate()


class LocalTarSink(Sink):
    """Extracts into ``TARGET.difpipe-part/`` on this machine, hashing what it extracts."""

    resumable = True
    keep = False  # a resumed copy: extract over what the staging directory holds

    def __init__(self, target: str, *, algo: str):
        self.target, self.part, self.algo = target, target + ".difpipe-part", algo
        self.name = target
        self._hasher = new_hasher(algo)
        self._proc: asyncio.subprocess.Process | None = None

    async def prepare(self, offset: int) -> None:
        try:
            if self.keep and os.path.isdir(self.part):
                return
            shutil.rmtree(self.part, ignore_errors=True)
            os.mkdir(self.part, 0o700)
        except OSError as exc:
            raise LocalIOError(f"cannot create {self.part}: {exc.strerror}") from exc

    async def open(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            "sh", "-c", f'tar -C "$1" -xf - && {DRAIN}', "sh", self.part,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C stops the copy, which then stops tar
        )  # fmt: skip

    async def write(self, data: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise LocalIOError(f"{self.target}: tar stopped extracting") from exc
        await hash_piece(self._hasher, data)

    async def finish(self) -> str | None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.close()
        err = (await self._proc.stderr.read()).decode(errors="replace").strip()  # type: ignore[union-attr]
        if await self._proc.wait() != 0:
            raise LocalIOError(f"{self.target}: tar failed: {err.splitlines()[-1] if err else '?'}")
        return None if self.algo == "none" else self._hasher.hexdigest()

    async def land(self, overwrite: bool) -> None:
        old = self.target + ".difpipe-old"
        try:
            if os.path.exists(self.target):
                if not overwrite:
                    raise LocalIOError(f"{self.target} exists (--no-overwrite)")
                shutil.rmtree(old, ignore_errors=True)
                os.rename(self.target, old)
            os.rename(self.part, self.target)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            raise LocalIOError(f"cannot rename into {self.target}: {exc.strerror}") from exc

    async def discard(self) -> None:
        shutil.rmtree(self.part, ignore_errors=True)

    async def listing(self) -> Listing | None:
        return await asyncio.to_thread(list_local, self.part) if os.path.isdir(self.part) else None

    async def remove(self, names: list[str]) -> None:
        def rm() -> None:
            for name in names:
                path = os.path.join(self.part, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)

        await asyncio.to_thread(rm)

    async def abort(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # the shell, tar and the drain
                os.killpg(self._proc.pid, signal.SIGKILL)
            await self._proc.wait()
