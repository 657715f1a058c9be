"""Resuming an encrypted copy in the part file it already wrote.

An encrypted stream (:mod:`.encrypt`) can be continued at a chunk boundary under the header
already in the part file, and that re-uses the nonces of the chunks that follow. The engine
does it only when those chunks are bound to get the same plaintext as before:

- the checkpoint lies on a chunk boundary (the relay takes them there), and records the
  header, the chunk size, the ciphertext offset and the *stamp* of the source;
- the source's stamp is unchanged: size, inode, modification and status-change times
  (``stat``; the status-change time moves on every write and cannot be set back by ``touch``).
  Any difference, or a source whose stamp cannot be read, starts over under a new salt;
- uncompressed payloads only: a compressed stream cannot be continued mid-frame, and a
  recompressed tail would put other bytes under the same nonces.

The part file is checked against the checkpoint before a byte is sent: at least as long as
the ciphertext offset, the same header, and the same digests of its bytes. Digests are kept
per *segment*: each run hashes the ciphertext it sends from its start offset, so the prefix of
a stream resumed k times is covered by k + 1 digests of consecutive byte ranges, each one
computed by the destination itself on resume and again before the part file is renamed.
The checkpoint's ``prefix_digest`` is the digest of the current run's segment; the others,
with the rest of the resume state, are the checkpoint's ``hash_state`` (JSON,
:class:`ResumeState`).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field

from ..errors import DifpipeError
from ..remote import command
from ..ssh import SSHPool
from .encrypt import HEADER_SIZE, cipher_offset, parse_header
from .ends import Sink

#: Why a compressed and encrypted copy starts over (one line, for the resume event).
COMPRESSED = (
    "compressed and encrypted: a compressed stream cannot be continued mid-frame, and"
    " re-encrypting a different tail would reuse nonces; starting over (--compress none resumes)"
)
NO_DIGEST = "--verify none: no digest to check the encrypted part file against; starting over"
CHANGED = (
    "the source changed since the checkpoint (size or times); starting over under a new salt,"
    " so that no nonce seals different data"
)
NO_STAMP = "cannot stat the source to prove it unchanged; starting over under a new salt"
NO_STATE = "the checkpoint does not describe an encrypted stream; starting over"
OTHERS = "another destination must start over and all share one encrypted stream; starting over"
MISMATCH = "the encrypted data already there does not match the checkpoint; starting over"
NO_PART = "no part file left"
TOO_SHORT = "the part file holds no checkpoint's data; starting over"


#: How many recent checkpoints of the current run a checkpoint remembers. A checkpoint is
#: taken when the bytes are handed to the destination's stream, and what was still in flight
#: when difpipe died never reached the part file: the resume continues from the latest
#: checkpoint the part file holds, which is one of these.
MARKS = 16


@dataclass(frozen=True)
class ResumeState:
    """What a checkpoint of an encrypted stream records besides the plaintext offset.

    ``segments`` are ``(end, digest)`` of the ciphertext ranges the earlier runs wrote
    (consecutive from byte 0); ``marks`` are ``(plaintext offset, digest)`` of the current
    run's recent checkpoints, the digest covering its ciphertext from the last segment's end.
    """

    header: bytes
    chunk_size: int
    stamp: str
    segments: tuple[tuple[int, str], ...] = ()
    marks: tuple[tuple[int, str], ...] = ()

    def to_blob(self) -> bytes:
        return json.dumps(
            {
                "encrypted": 1,
                "header": self.header.hex(),
                "chunk_size": self.chunk_size,
                "stamp": self.stamp,
                "segments": [list(s) for s in self.segments],
                "marks": [list(m) for m in self.marks],
            }
        ).encode()

    @classmethod
    def from_blob(cls, blob: bytes | None) -> ResumeState | None:
        """The state in a checkpoint's ``hash_state``; None when there is none or it is not
        one of an encrypted stream."""
        if not blob:
            return None
        try:
            doc = json.loads(blob)
            if doc.get("encrypted") != 1:
                return None
            state = cls(
                header=bytes.fromhex(doc["header"]),
                chunk_size=int(doc["chunk_size"]),
                stamp=str(doc["stamp"]),
                segments=tuple((int(end), str(d)) for end, d in doc["segments"]),
                marks=tuple((int(off), str(d)) for off, d in doc["marks"]),
            )
            if state.chunk_size != parse_header(state.header)[1]:
                return None
            for off, _ in state.marks:
                cipher_offset(off, state.chunk_size)  # on a chunk boundary, or ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return state

    def usable(self, part_size: int, total: int | None) -> dict[int, str]:
        """The marks a part file of ``part_size`` bytes can continue from: past the earlier
        segments, within the file, before the source's end; by plaintext offset."""
        base = self.segments[-1][0] if self.segments else 0
        return {
            off: digest
            for off, digest in self.marks
            if off > 0
            and base <= cipher_offset(off, self.chunk_size) <= part_size
            and (total is None or off < total)
        }

    def spans(self, plain: int, digest: str) -> list[tuple[int, int, str]]:
        """``(start, end, digest)`` of every ciphertext range up to the mark at ``plain``."""
        out, start = [], 0
        for end, d in (*self.segments, (cipher_offset(plain, self.chunk_size), digest)):
            out.append((start, end, d))
            start = end
        return out


@dataclass
class EncryptedStream:
    """The encrypted stream of one run: fresh (``start`` 0) or continuing a checkpoint."""

    header: bytes
    stamp: str
    start: int = 0  # plaintext offset this run starts from (a chunk boundary)
    segments: tuple[tuple[int, str], ...] = ()  # the ranges before this run's, verified
    chunk_size: int = field(init=False)
    marks: list[tuple[int, str]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.chunk_size = parse_header(self.header)[1]

    @property
    def cipher_start(self) -> int:
        """Where this run's ciphertext starts in the part file (0: it writes the header)."""
        return cipher_offset(self.start, self.chunk_size) if self.start else 0

    def checkpoint(self, plain: int, digest: str) -> ResumeState:
        """The resume state of a checkpoint at plaintext offset ``plain`` (a chunk boundary)
        whose digest covers this run's ciphertext up to there."""
        if digest and plain > self.start and (not self.marks or plain > self.marks[-1][0]):
            self.marks.append((plain, digest))
            del self.marks[:-MARKS]
        marks = tuple(m for m in self.marks if m[0] <= plain)
        return ResumeState(self.header, self.chunk_size, self.stamp, self.segments, marks)

    @classmethod
    def continuing(cls, state: ResumeState, plain: int, digest: str) -> EncryptedStream:
        """The stream that continues ``state`` from its mark at plaintext offset ``plain``."""
        end = cipher_offset(plain, state.chunk_size)
        return cls(state.header, state.stamp, plain, (*state.segments, (end, digest)))

    def spans(self) -> list[tuple[int, int, str]]:
        """``(start, end, digest)`` of the ranges before this run's."""
        out, start = [], 0
        for end, digest in self.segments:
            out.append((start, end, digest))
            start = end
        return out


# -- the source's stamp ------------------------------------------------------------------------


def stamp_local(path: str) -> str | None:
    """``size inode mtime_ns ctime_ns`` of a local file; None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size} {st.st_ino} {st.st_mtime_ns} {st.st_ctime_ns}"


#: ``stat`` of a remote stamp (its path follows): size, inode, modification and change times.
STAT_ARGV = ("stat", "-L", "-c", "%s %i %y %z")


def parse_stamp(text: str) -> str | None:
    """The stamp in ``stat``'s output (spaces made single); None when it printed nothing."""
    return " ".join(text.split()) or None


async def stamp_remote(pool: SSHPool, host: str, path: str, *, strict: bool = False) -> str | None:
    """The same, from ``stat`` on ``host`` (times as it prints them: nanoseconds where the
    filesystem keeps them); None if it cannot be read. ``strict``: a host that cannot be
    reached raises its error instead (the caller must not take it for a changed file)."""
    line = command(*STAT_ARGV, "--", path)
    try:
        res = await pool.run(host, line, check=False)
    except DifpipeError:
        if strict:
            raise
        return None
    return parse_stamp(res.text) if res.ok else None


# -- the part file -------------------------------------------------------------------------------


async def check_part(sink: Sink, spans: list[tuple[int, int, str]], header: bytes, algo: str):
    """Why the part file at ``sink`` cannot continue the stream (None: it can).

    It must hold at least the ciphertext of ``spans``, start with ``header``, and every
    span's digest, computed by the destination, must be the recorded one.
    """
    end = spans[-1][1] if spans else HEADER_SIZE
    try:
        size = await sink.part_size()
        if not size:
            return NO_PART
        if size < end:
            return f"the part file ({size} bytes) ends before the checkpoint ({end}); starting over"
        if await sink.head(HEADER_SIZE) != header:
            return "the part file's header is not the checkpoint's; starting over"
        digests = await asyncio.gather(*(sink.range_digest(a, b, algo) for a, b, _ in spans))
    except DifpipeError as err:
        return f"cannot read the part file back ({err}); starting over"
    if any(got is None or got != want for got, (_, _, want) in zip(digests, spans, strict=True)):
        return MISMATCH
    return None
