"""End-to-end verification: digests of a stream, here and on a remote host.

The orchestrator hashes the stream as it passes (:func:`new_hasher`); the destination hashes
what it wrote with its own tool (:func:`digest_argv`, reading stdin), and :func:`compare` checks
the two. Resume compares digests of a file's first N bytes on both ends
(:func:`prefix_digest_argvs`, :func:`prefix_digest_local`); hashers are copyable so the stream
can snapshot the digest of the prefix at every checkpoint.

When the bytes of a relay do not pass through this process (:mod:`.splice`), the source host
hashes what it sends instead and prints ``difpipe-digest HEX`` on stderr
(:func:`source_digest_output`).

``blake2b`` is BLAKE2b-512, the digest ``b2sum`` prints.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re

from ..errors import LocalIOError, RemoteCommandError, UsageError, VerifyError

DIGESTS: tuple[str, ...] = ("sha256", "blake2b", "none")

#: Length in hex characters of each digest.
HEX_LENGTH: dict[str, int] = {"sha256": 64, "blake2b": 128}

#: ``openssl dgst`` options for each digest (``-r`` prints ``HEX *stdin``, like sha256sum).
OPENSSL_DIGEST: dict[str, str] = {"sha256": "-sha256", "blake2b": "-blake2b512"}

#: The stderr line of a source that hashed what it sent: ``difpipe-digest HEX ...``.
DIGEST_MARK = "difpipe-digest"

_READ_SIZE = 1024 * 1024
_HEX = re.compile(r"[0-9a-f]+")


class NullHasher:
    """The hasher of ``--verify none``: takes data, computes nothing."""

    name = "none"
    digest_size = 0

    def update(self, data: bytes) -> None:
        pass

    def copy(self) -> NullHasher:
        return self

    def digest(self) -> bytes:
        return b""

    def hexdigest(self) -> str:
        return ""


def check_digest_name(name: str) -> str:
    if name not in DIGESTS:
        raise UsageError(f'--verify: expected one of {", ".join(DIGESTS)}, got "{name}"')
    return name


def new_hasher(name: str):
    """A fresh hashlib object for ``name`` (``update``, ``copy``, ``hexdigest``)."""
    check_digest_name(name)
    if name == "sha256":
        return hashlib.sha256()
    if name == "blake2b":
        return hashlib.blake2b(digest_size=64)
    return NullHasher()


HASH_IN_THREAD = 256 * 1024  # a smaller piece costs less to hash than to hand to a thread


async def hash_piece(hasher, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """``hasher.update(data)``, a large piece in a worker thread.

    hashlib lets go of the GIL while it hashes a large buffer, so the event loop meanwhile
    moves the packets of the other legs: with asyncssh legs, hashing 1 MiB in the loop's
    thread (~0.6 ms) is time no packet moves. The caller awaits it, so pieces are hashed in
    order and a digest taken after the await holds exactly the bytes before it.
    """
    if len(data) >= HASH_IN_THREAD and not isinstance(hasher, NullHasher):
        await asyncio.to_thread(hasher.update, data)
    else:
        hasher.update(data)


def digest_argv(algo: str, tools: set[str]) -> list[str] | None:
    """The command that prints the digest of its stdin on a host with ``tools``.

    None when the host has no tool for ``algo`` (or ``algo`` is ``none``): hash the data on
    this machine instead.
    """
    check_digest_name(algo)
    if algo in OPENSSL_DIGEST and "openssl" in tools:
        # several times faster than coreutils where the CPU has SHA/AVX extensions
        return ["openssl", "dgst", OPENSSL_DIGEST[algo], "-r"]
    if algo == "sha256":
        if "sha256sum" in tools:
            return ["sha256sum"]
        if "shasum" in tools:
            return ["shasum", "-a", "256"]
    elif algo == "blake2b" and "b2sum" in tools:
        return ["b2sum"]
    return None


def prefix_digest_argvs(path: str, n: int, algo: str, tools: set[str]) -> list[list[str]] | None:
    """``head -c N -- PATH | <digest>``: the digest of a remote file's first ``n`` bytes.

    A list of argv lists for :func:`difpipe_tui.core.remote.pipeline`; None when the host has
    no tool for ``algo``. Like ``head``, a file shorter than ``n`` is hashed whole.
    """
    if n < 0:
        raise ValueError(f"prefix length must not be negative, got {n}")
    tool = digest_argv(algo, tools)
    if tool is None:
        return None
    return [["head", "-c", str(n), "--", os.fspath(path)], tool]


def parse_digest_output(text: str, algo: str) -> str:
    """The digest printed by ``sha256sum`` / ``shasum`` / ``b2sum``, lower-case hex.

    GNU tools prefix the line with a backslash when they escaped the file name; that is
    accepted. Anything but one hex digest of the right length raises
    :class:`RemoteCommandError`.
    """
    check_digest_name(algo)
    fields = text.split()
    field = fields[0].removeprefix("\\").lower() if fields else ""
    expected = HEX_LENGTH.get(algo, 0)
    if len(field) != expected or not _HEX.fullmatch(field):
        shown = " ".join(text.split())[:80] or "nothing"
        raise RemoteCommandError(
            f"expected a {algo} digest of {expected} hex characters, got: {shown}"
        )
    return field


def source_digest_output(stderr: str, algo: str) -> str | None:
    """The digest a source printed after :data:`DIGEST_MARK` on stderr; None when it printed none.

    More than one such line, or one that is not a digest, raises :class:`RemoteCommandError`.
    """
    lines = [ln for ln in stderr.splitlines() if ln.startswith(DIGEST_MARK + " ")]
    if not lines:
        return None
    if len(lines) > 1:
        raise RemoteCommandError(f"the source printed {len(lines)} digests instead of one")
    return parse_digest_output(lines[0][len(DIGEST_MARK) + 1 :], algo)


def _short_pair(a: str, b: str) -> tuple[str, str]:
    """Both digests cut to 16 hex characters, or further when that would not tell them apart."""
    keep = 16
    if a[:keep] == b[:keep]:
        diff = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
        keep = diff + 4

    def cut(digest: str) -> str:
        return digest if len(digest) <= keep else digest[:keep] + "…"

    return cut(a), cut(b)


def compare(expected: str, actual: str, *, what: str, algo: str | None = None) -> None:
    """Raise :class:`VerifyError` naming ``what`` unless the digests are equal.

    ``expected`` is the digest of the stream sent (the source), ``actual`` the one the
    destination computed. ``algo`` defaults to the one whose length matches.
    """
    expected, actual = expected.strip().lower(), actual.strip().lower()
    if expected == actual:
        return
    if algo is None:
        algo = next((a for a, n in HEX_LENGTH.items() if n == len(expected)), "digest")
    src, dst = _short_pair(expected or "(none)", actual or "(none)")
    raise VerifyError(f"{what}: {algo} mismatch: source {src}, destination {dst}")


def prefix_digest_local(
    path: str | os.PathLike[str], n: int | None, algo: str, *, start: int = 0
) -> str:
    """Hex digest of a local file's first ``n`` bytes (all of it when None or shorter);
    with ``start``, of the ``n`` bytes from there."""
    hasher = new_hasher(algo)
    buf = bytearray(_READ_SIZE)
    view = memoryview(buf)
    left = n
    try:
        with open(path, "rb") as f:
            f.seek(start)
            while left is None or left > 0:
                want = _READ_SIZE if left is None else min(_READ_SIZE, left)
                got = f.readinto(view[:want])
                if not got:
                    break
                hasher.update(view[:got])
                if left is not None:
                    left -= got
    except OSError as exc:
        raise LocalIOError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    return hasher.hexdigest()


def file_digest_local(path: str | os.PathLike[str], algo: str) -> str:
    """Hex digest of a whole local file."""
    return prefix_digest_local(path, None, algo)
