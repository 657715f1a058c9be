"""The SFTP strategy: for hosts that offer SFTP but no shell (or with ``--strategy sftp``).

Nothing runs on the remote but its SFTP server. A destination cannot hash what it wrote, so
verification reads the written part back and hashes it here: it costs a second pass over the
link, and ``--verify none`` skips it. Resume works as with the exec strategy: the part file is
truncated to the checkpoint and written from there.
"""

from __future__ import annotations

import contextlib
import posixpath

import asyncssh

from ..errors import DifpipeError, LocalIOError, NetworkError, RemoteCommandError
from ..ssh import SSHPool, classify
from .ends import PathInfo, Sink, Source, part_path
from .verify import new_hasher

READ_BACK = 1024 * 1024


def _sftp_error(exc: BaseException, host: str, what: str) -> DifpipeError:
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return RemoteCommandError(f"{what}: no such file or directory", host=host)
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return RemoteCommandError(f"{what}: permission denied", host=host)
    if isinstance(exc, asyncssh.SFTPFailure) and "space" in str(exc).lower():
        return RemoteCommandError(f"{what}: no space left on the device", host=host)
    if isinstance(exc, asyncssh.SFTPError):
        return RemoteCommandError(f"{what}: {exc.reason}", host=host)
    return classify(exc, host)


async def sftp_inspect(pool: SSHPool, host: str, path: str) -> PathInfo:
    sftp = await pool.sftp(host)
    try:
        parent = posixpath.dirname(path) or "."
        pstate = "ok" if await sftp.isdir(parent) else "missing"
        try:
            attrs = await sftp.stat(path)
        except asyncssh.SFTPNoSuchFile:
            return PathInfo("missing", None, pstate)
        if attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
            return PathInfo("dir", None, pstate)
        if attrs.type == asyncssh.FILEXFER_TYPE_REGULAR:
            return PathInfo("file", attrs.size, pstate)
        return PathInfo("other", None, pstate)
    except (asyncssh.Error, OSError) as exc:
        raise _sftp_error(exc, host, path) from exc
    finally:
        sftp.exit()


async def sample_sftp(pool: SSHPool, host: str, path: str, n: int = 65536) -> bytes:
    sftp = await pool.sftp(host)
    try:
        async with sftp.open(path, "rb") as fh:
            return await fh.read(n, 0)
    except (asyncssh.Error, OSError) as exc:
        raise _sftp_error(exc, host, path) from exc
    finally:
        sftp.exit()


class SftpSource(Source):
    """Reads the file in requests of the relay's chunk. asyncssh shows no progress of a read
    until it ends, so :meth:`received` stays None: each read (up to 1 MiB) must end within
    the stall timeout."""

    def __init__(self, pool: SSHPool, host: str, path: str, *, offset: int = 0):
        self.pool, self.host, self.path = pool, host, path
        self.pos = offset
        self.name = f"{host}:{path}"
        self._sftp: asyncssh.SFTPClient | None = None
        self._fh: asyncssh.SFTPClientFile | None = None

    async def open(self) -> None:
        self._sftp = await self.pool.sftp(self.host)
        try:
            self._fh = await self._sftp.open(self.path, "rb")
        except (asyncssh.Error, OSError) as exc:
            raise _sftp_error(exc, self.host, self.path) from exc

    async def read(self, n: int) -> bytes:
        assert self._fh is not None
        try:
            data = await self._fh.read(n, self.pos)
        except (asyncssh.Error, OSError) as exc:
            raise _sftp_error(exc, self.host, self.path) from exc
        self.pos += len(data)
        return data

    async def finish(self) -> None:
        await self.abort()

    async def abort(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(asyncssh.Error, OSError):
                await self._fh.close()
            self._fh = None
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None


class SftpSink(Sink):
    resumable = True

    def __init__(self, pool: SSHPool, host: str, target: str, *, algo: str):
        self.pool, self.host, self.target, self.algo = pool, host, target, algo
        self.part = part_path(target)
        self.name = f"{host}:{target}"
        self._sftp: asyncssh.SFTPClient | None = None
        self._fh: asyncssh.SFTPClientFile | None = None
        self._pos = self._start = 0

    async def _client(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            self._sftp = await self.pool.sftp(self.host)
        return self._sftp

    async def prepare(self, offset: int) -> None:
        sftp = await self._client()
        try:
            if offset:
                await sftp.truncate(self.part, offset)
                self._fh = await sftp.open(self.part, "r+b")
            else:
                self._fh = await sftp.open(self.part, "wb", asyncssh.SFTPAttrs(permissions=0o600))
        except (asyncssh.Error, OSError) as exc:
            raise _sftp_error(exc, self.host, self.target) from exc
        self._pos = self._start = offset

    async def write(self, data: bytes) -> None:
        assert self._fh is not None
        try:
            await self._fh.write(data, self._pos)
        except (asyncssh.Error, OSError) as exc:
            raise _sftp_error(exc, self.host, self.target) from exc
        self._pos += len(data)

    async def finish(self) -> str | None:
        if self._fh is not None:
            try:
                with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                    await self._fh.fsync()
                await self._fh.close()
            except (asyncssh.Error, OSError) as exc:
                raise _sftp_error(exc, self.host, self.target) from exc
            self._fh = None
        if self.algo == "none":
            return None
        return await self._read_back(None, self.algo, start=self._start)

    async def _read_back(self, n: int | None, algo: str, *, start: int = 0) -> str:
        """The digest of the part's bytes from ``start`` up to ``n`` (None: to the end)."""
        sftp = await self._client()
        hasher = new_hasher(algo)
        try:
            async with sftp.open(self.part, "rb") as fh:
                pos = start
                while n is None or pos < n:
                    want = READ_BACK if n is None else min(READ_BACK, n - pos)
                    data = await fh.read(want, pos)
                    if not data:
                        break
                    hasher.update(data)
                    pos += len(data)
        except (asyncssh.Error, OSError) as exc:
            raise _sftp_error(exc, self.host, self.target) from exc
        return hasher.hexdigest()

    async def full_digest(self, algo: str) -> str | None:
        return await self._read_back(None, algo)

    async def prefix_digest(self, n: int, algo: str) -> str | None:
        return await self._read_back(n, algo)

    async def head(self, n: int) -> bytes | None:
        sftp = await self._client()
        try:
            async with sftp.open(self.part, "rb") as fh:
                return await fh.read(n, 0)
        except (asyncssh.Error, OSError) as exc:
            raise _sftp_error(exc, self.host, self.target) from exc

    async def range_digest(self, start: int, end: int, algo: str) -> str | None:
        return await self._read_back(end, algo, start=start)

    async def part_size(self) -> int | None:
        sftp = await self._client()
        try:
            return (await sftp.stat(self.part)).size
        except asyncssh.SFTPNoSuchFile:
            return None
        except (asyncssh.Error, OSError) as exc:
            raise _sftp_error(exc, self.host, self.target) from exc

    async def land(self, overwrite: bool) -> None:
        sftp = await self._client()
        try:
            if overwrite:
                try:
                    await sftp.posix_rename(self.part, self.target)
                except asyncssh.SFTPOpUnsupported:
                    with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                        await sftp.remove(self.target)
                    await sftp.rename(self.part, self.target)
            else:
                if await sftp.exists(self.target):
                    raise LocalIOError(f"{self.name} exists (--no-overwrite)")
                await sftp.rename(self.part, self.target)
        except (asyncssh.Error, OSError) as exc:
            raise _sftp_error(exc, self.host, self.target) from exc
        finally:
            self._close()

    async def discard(self) -> None:
        with contextlib.suppress(DifpipeError, asyncssh.Error, OSError):
            sftp = await self._client()
            await sftp.remove(self.part)
        self._close()

    async def abort(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(asyncssh.Error, OSError, NetworkError):
                await self._fh.close()
            self._fh = None
        self._close()

    def _close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
