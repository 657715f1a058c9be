"""Encrypted payloads: a chunked AES-256-GCM format for backups on hosts you don't fully trust.

With ``--encrypt KEYFILE`` the destination only ever receives ciphertext in this format;
``difpipe decrypt`` restores the original bytes with :func:`decrypt_file`.

Key file
--------

32 random bytes written as 64 hex characters and a newline, mode 0600 (:func:`generate_key`).
:func:`load_key` also accepts the 32 raw bytes, and refuses a file that group or others can
read, as ssh does for private keys.

File format, version 1
----------------------

::

    offset  size  field
    0       8     magic b"DIFPIPE\\x00"
    8       1     format version: 1
    9       1     codec of the plaintext payload: 0 none, 1 zstd, 2 lz4
    10      4     chunk size C in bytes, big-endian (1 KiB .. 16 MiB; 64 KiB by default)
    14      32    salt, random for every file
    46      ...   chunk 0, chunk 1, ..., chunk k (the final chunk)

    file key  = HKDF-SHA256(key=master key, salt=salt, info=b"difpipe v1 aes-256-gcm"), 32 bytes
    nonce(i)  = i as 11 bytes big-endian || 0x01 for the final chunk, 0x00 for the others
    chunk(i)  = AES-256-GCM(file key, nonce(i), plaintext(i), aad=the 46 header bytes)
              = ciphertext(i) (as long as plaintext(i)) || 16-byte tag

Every chunk but the final one holds exactly C plaintext bytes; the final chunk holds 1..C bytes,
or 0 bytes when the payload is empty. A payload whose length is a multiple of C therefore ends
with a full final chunk, never with an extra empty one, and n bytes take exactly
:func:`ciphertext_size` = 46 + n + 16 * max(1, ceil(n / C)) bytes.

This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, 2015), also used by age
and Tink. The counter in the nonce makes a reordered, repeated or dropped chunk fail
authentication; the final-chunk flag makes a file cut at a chunk boundary fail (its last chunk
was sealed as a middle one) and makes anything after the final chunk fail (the final chunk is
then opened as a middle one); the header is authenticated as the associated data of every
chunk; the salt gives every file its own key, so counters can safely start at 0 for each file.

Resuming a stream
-----------------

Only the position of a chunk enters its nonce, so a cut stream can be continued in the same
file: a stream interrupted after k middle chunks holds ``k * C`` plaintext bytes in the first
:func:`cipher_offset` ``(k * C, C)`` = 46 + k * (C + 16) bytes, and
:meth:`Encryptor.resume` seals chunk k onward under the header already there. That re-uses the
file key and the nonces of chunks k, k+1, ...: it is safe only when those chunks get the same
plaintext as before (the same source bytes at the same offsets). Then every resealed chunk is
the very ciphertext a destination may already have seen, never a second message under a
nonce. The caller must make sure of that (:mod:`.encresume` starts over when the source may
have changed); anything else must start a new file under a new salt.

The payload's codec is recorded so that :func:`decrypt_file` can restore the original bytes
when the data was compressed before it was encrypted. A streaming :class:`Decryptor` releases
the plaintext of each chunk once that chunk is authenticated; only :meth:`Decryptor.finish`
proves that the stream was complete, so :func:`decrypt_file` writes ``DST.difpipe-part`` and
renames it to ``DST`` only after that.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import stat
import struct
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import LocalIOError, VerifyError
from .codecs import Decompressor, make_compressor, make_decompressor

MAGIC = b"DIFPIPE\x00"
VERSION = 1
KEY_SIZE = 32
SALT_SIZE = 32
TAG_SIZE = 16
DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
HKDF_INFO = b"difpipe v1 aes-256-gcm"

_HEADER = struct.Struct(">8sBBI32s")
HEADER_SIZE = _HEADER.size  # 46

#: Codec ids stored in the header, by codec name.
CODEC_IDS: dict[str, int] = {"none": 0, "zstd": 1, "lz4": 2}
CODEC_NAMES: dict[int, str] = {v: k for k, v in CODEC_IDS.items()}

PART_SUFFIX = ".difpipe-part"
_READ_SIZE = 1024 * 1024
_NONCE_MIDDLE = b"\x00"
_NONCE_FINAL = b"\x01"


def ciphertext_size(n: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """The exact size of the encrypted form of ``n`` plaintext bytes."""
    chunks = max(1, -(-n // chunk_size))
    return HEADER_SIZE + n + chunks * TAG_SIZE


def cipher_offset(plain_offset: int, chunk_size: int) -> int:
    """Where the ciphertext of the first ``plain_offset`` plaintext bytes ends.

    Defined on chunk boundaries only (``plain_offset`` a multiple of ``chunk_size``): that is
    where a stream of middle chunks can be cut and continued.
    """
    if plain_offset < 0 or plain_offset % chunk_size:
        raise ValueError(f"{plain_offset} is not on a boundary of {chunk_size}-byte chunks")
    return HEADER_SIZE + plain_offset // chunk_size * (chunk_size + TAG_SIZE)


def plain_offset(cipher_end: int, chunk_size: int) -> int:
    """The inverse of :func:`cipher_offset`: the plaintext bytes held by the first
    ``cipher_end`` bytes of a stream, which must end on a chunk boundary."""
    sealed = chunk_size + TAG_SIZE
    body = cipher_end - HEADER_SIZE
    if body < 0 or body % sealed:
        raise ValueError(f"{cipher_end} is not on a boundary of {chunk_size}-byte chunks")
    return body // sealed * chunk_size


def chunk_floor(offset: int, chunk_size: int) -> int:
    """The last chunk boundary at or before plaintext ``offset``."""
    return offset - offset % chunk_size


def parse_header(header: bytes) -> tuple[int, int, bytes]:
    """``(codec_id, chunk_size, salt)`` of a version 1 header; ValueError if it is not one."""
    if len(header) < HEADER_SIZE:
        raise ValueError(f"a header is {HEADER_SIZE} bytes, got {len(header)}")
    magic, version, codec_id, chunk_size, salt = _HEADER.unpack_from(header)
    if magic != MAGIC:
        raise ValueError("not a DifPipe encrypted file (bad magic bytes)")
    if version != VERSION:
        raise ValueError(f"format version {version} is not supported (this DifPipe reads 1)")
    if codec_id not in CODEC_NAMES:
        raise ValueError(f"unknown payload codec id {codec_id}")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"invalid chunk size {chunk_size}")
    return codec_id, chunk_size, salt


def _file_key(master: bytes, salt: bytes) -> AESGCM:
    kdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=HKDF_INFO)
    return AESGCM(kdf.derive(master))


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (_NONCE_FINAL if final else _NONCE_MIDDLE)


def _check_key(key: bytes) -> bytes:
    if len(key) != KEY_SIZE:
        raise ValueError(f"an encryption key is {KEY_SIZE} bytes, got {len(key)}")
    return bytes(key)


class Encryptor:
    """Encrypts one stream: write :meth:`header`, then every :meth:`feed`, then :meth:`finish`."""

    def __init__(self, key: bytes, codec_id: int = 0, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if codec_id not in CODEC_NAMES:
            raise ValueError(f"unknown codec id {codec_id}")
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(
                f"chunk size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes, got {chunk_size}"
            )
        salt = secrets.token_bytes(SALT_SIZE)
        self._setup(key, _HEADER.pack(MAGIC, VERSION, codec_id, chunk_size, salt), 0)

    def _setup(self, key: bytes, header: bytes, index: int) -> None:
        self.codec_id, self.chunk_size, salt = parse_header(header)
        self._header = bytes(header[:HEADER_SIZE])
        self._aead = _file_key(_check_key(key), salt)
        self._buf = bytearray()
        self._index = index
        self._finished = False

    @classmethod
    def resume(cls, key: bytes, header: bytes, index: int) -> Encryptor:
        """Continue a stream under its existing ``header`` with chunk ``index``.

        The chunks from ``index`` on must get the plaintext they had when the stream was first
        written (see "Resuming a stream" above): this re-uses their nonces.
        """
        if index < 0:
            raise ValueError(f"a chunk index is not negative, got {index}")
        enc = cls.__new__(cls)
        enc._setup(key, header, index)
        return enc

    @property
    def sealed(self) -> int:
        """Plaintext bytes in the middle chunks sealed so far, counted from the file's start:
        the stream's last chunk boundary, where a checkpoint may fall."""
        return self._index * self.chunk_size

    def header(self) -> bytes:
        """The 46 header bytes that start the encrypted stream."""
        return self._header

    def _seal(self, plaintext, final: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._index, final), plaintext, self._header)
        self._index += 1
        return sealed

    def feed(self, data: bytes) -> bytes:
        """Take plaintext; return the chunks it completed (possibly nothing)."""
        if self._finished:
            raise ValueError("feed() after finish()")
        buf, size = self._buf, self.chunk_size
        buf += data
        # A full chunk is sealed only once more data follows it: it is not the final one.
        if len(buf) <= size:
            return b""
        out = []
        pos = 0
        with memoryview(buf) as view:
            while len(buf) - pos > size:
                out.append(self._seal(view[pos : pos + size], final=False))
                pos += size
        del buf[:pos]
        return b"".join(out)

    def finish(self) -> bytes:
        """Seal the final chunk (empty when there was no data at all)."""
        if self._finished:
            raise ValueError("finish() called twice")
        self._finished = True
        final = self._seal(bytes(self._buf), final=True)
        self._buf.clear()
        return final


class Decryptor:
    """Decrypts one stream, chunk by chunk; :meth:`finish` checks that it was complete.

    ``what`` names the data (a file, ``host:path``) in error messages. The header's fields are
    available as ``codec_id`` / ``codec`` / ``chunk_size`` once its 46 bytes were fed.
    """

    def __init__(self, key: bytes, *, what: str = "encrypted stream") -> None:
        self._key = _check_key(key)
        self.what = what
        self.codec_id: int | None = None
        self.chunk_size: int | None = None
        self._header = b""
        self._aead: AESGCM | None = None
        self._buf = bytearray()
        self._index = 0
        self._finished = False

    @property
    def codec(self) -> str | None:
        """The codec of the payload, known once the header was read."""
        return None if self.codec_id is None else CODEC_NAMES[self.codec_id]

    def _fail(self, problem: str) -> VerifyError:
        return VerifyError(f"{self.what}: {problem}")

    def _read_header(self) -> None:
        magic, version, codec_id, chunk_size, salt = _HEADER.unpack_from(self._buf)
        if magic != MAGIC:
            raise self._fail("not a DifPipe encrypted file (bad magic bytes)")
        if version != VERSION:
            raise self._fail(f"format version {version} is not supported (this DifPipe reads 1)")
        if codec_id not in CODEC_NAMES:
            raise self._fail(f"header names an unknown payload codec id {codec_id}")
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise self._fail(f"header names an invalid chunk size {chunk_size}")
        self._header = bytes(self._buf[:HEADER_SIZE])
        self.codec_id, self.chunk_size = codec_id, chunk_size
        self._aead = _file_key(self._key, salt)
        del self._buf[:HEADER_SIZE]

    def _open(self, sealed, final: bool) -> bytes:
        assert self._aead is not None
        try:
            plain = self._aead.decrypt(_nonce(self._index, final), sealed, self._header)
        except InvalidTag:
            if final:
                raise self._fail(
                    f"chunk {self._index} (the last one) failed authentication: the file is"
                    " truncated or was altered, or the key is wrong"
                ) from None
            raise self._fail(
                f"chunk {self._index} failed authentication: the data was altered,"
                " or the key is wrong"
            ) from None
        self._index += 1
        return plain

    def feed(self, data: bytes) -> bytes:
        """Take ciphertext; return the plaintext of the chunks it completed."""
        if self._finished:
            raise ValueError("feed() after finish()")
        buf = self._buf
        buf += data
        if self._aead is None:
            if len(buf) < HEADER_SIZE:
                return b""
            self._read_header()
        assert self.chunk_size is not None
        sealed_size = self.chunk_size + TAG_SIZE
        if len(buf) <= sealed_size:
            return b""
        out = []
        pos = 0
        with memoryview(buf) as view:
            while len(buf) - pos > sealed_size:
                out.append(self._open(view[pos : pos + sealed_size], final=False))
                pos += sealed_size
        del buf[:pos]
        return b"".join(out)

    def finish(self) -> bytes:
        """Open the final chunk; raise :class:`VerifyError` if the stream was cut short."""
        if self._finished:
            raise ValueError("finish() called twice")
        self._finished = True
        if self._aead is None:
            raise self._fail(f"truncated: the {HEADER_SIZE}-byte header is incomplete")
        if len(self._buf) < TAG_SIZE:
            if not self._buf:
                raise self._fail(f"truncated: chunk {self._index}, the final one, is missing")
            raise self._fail(f"truncated: chunk {self._index} is shorter than its tag")
        plain = self._open(bytes(self._buf), final=True)
        self._buf.clear()
        return plain


# --- key files -----------------------------------------------------------------------------


def generate_key(path: str | os.PathLike[str]) -> bytes:
    """Write a new random key to ``path`` (mode 0600); never overwrites a file. Returns it."""
    key = secrets.token_bytes(KEY_SIZE)
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise LocalIOError(f"{name}: already exists; refusing to overwrite a key file") from None
    except OSError as exc:
        raise LocalIOError(f"{name}: cannot create the key file: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key.hex().encode("ascii") + b"\n")
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        os.unlink(name)
        raise LocalIOError(f"{name}: cannot write the key file: {exc.strerror}") from None
    os.close(fd)
    return key


def load_key(path: str | os.PathLike[str]) -> bytes:
    """Read a key file: 64 hex characters (and a newline) or 32 raw bytes."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            st_mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(st_mode):
                raise LocalIOError(f"{name}: a key file must be a regular file")
            mode = stat.S_IMODE(st_mode)
            if mode & 0o077:
                raise LocalIOError(
                    f"{name}: permissions {mode:04o} are too open for a key file;"
                    f" chmod 600 {shlex.quote(name)}"
                )
            data = f.read(256)
    except OSError as exc:
        raise LocalIOError(f"{name}: cannot read the key file: {exc.strerror}") from None
    if len(data) == KEY_SIZE:
        return data
    text = data.strip()
    if len(text) == 2 * KEY_SIZE:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise LocalIOError(f"{name}: not a DifPipe key (expected 64 hex characters or 32 raw bytes)")


# --- files ---------------------------------------------------------------------------------


class _Pipeline:
    """What :func:`_convert_file` runs the bytes through; the output comes in pieces."""

    def feed(self, data: bytes) -> Iterator[bytes]:
        raise NotImplementedError

    def finish(self) -> Iterator[bytes]:
        raise NotImplementedError


class _DecryptPipeline(_Pipeline):
    def __init__(self, key: bytes, what: str):
        self._decryptor = Decryptor(key, what=what)
        self._what = what
        self._decompressor: Decompressor | None = None

    def _decompress(self, plain: bytes) -> Iterator[bytes]:
        if self._decompressor is None:
            if self._decryptor.codec is None:  # the header is not complete yet
                yield plain
                return
            self._decompressor = make_decompressor(self._decryptor.codec, what=self._what)
        yield from self._decompressor.pieces(plain)

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._decompress(self._decryptor.feed(data))

    def finish(self) -> Iterator[bytes]:
        yield from self._decompress(self._decryptor.finish())
        assert self._decompressor is not None
        yield self._decompressor.flush()


class _EncryptPipeline(_Pipeline):
    def __init__(self, key: bytes, codec: str, level: int | None, chunk_size: int):
        self._compressor = make_compressor(codec, level)
        self._encryptor = Encryptor(key, CODEC_IDS[codec], chunk_size)
        self._header = self._encryptor.header()

    def _take_header(self) -> bytes:
        header, self._header = self._header, b""
        return header

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield self._take_header() + self._encryptor.feed(self._compressor.feed(data))

    def finish(self) -> Iterator[bytes]:
        tail = self._encryptor.feed(self._compressor.flush()) + self._encryptor.finish()
        yield self._take_header() + tail


def _convert_file(src: str, dst: str, overwrite: bool, pipeline: _Pipeline) -> int:
    """Run ``src`` through ``pipeline`` into ``DST.difpipe-part``, then rename it to ``dst``.

    Returns the bytes written. On any failure the part file is removed and ``dst`` untouched.
    """
    try:
        reader = open(src, "rb")  # noqa: SIM115 - closed by the with block below
    except OSError as exc:
        raise LocalIOError(f"{src}: cannot read: {exc.strerror}") from None
    with reader:
        return _convert_stream(reader, src, dst, overwrite, pipeline)


def _convert_stream(reader, src: str, dst: str, overwrite: bool, pipeline: _Pipeline) -> int:
    if not overwrite and os.path.lexists(dst):
        raise LocalIOError(f"{dst}: already exists; remove it or choose another name")
    part = dst + PART_SUFFIX
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise LocalIOError(f"{part}: cannot write: {exc.strerror}") from None
    try:
        with open(fd, "wb") as writer:

            def write(data: bytes) -> None:
                try:
                    writer.write(data)
                except OSError as exc:
                    raise LocalIOError(f"{part}: cannot write: {exc.strerror}") from None

            written = _pump(reader, write, pipeline, src)
            try:
                writer.flush()
                os.fsync(writer.fileno())
            except OSError as exc:
                raise LocalIOError(f"{part}: cannot write: {exc.strerror}") from None
        try:
            os.replace(part, dst)
        except OSError as exc:
            raise LocalIOError(f"{dst}: cannot write: {exc.strerror}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise
    return written


def _pump(reader, write, pipeline: _Pipeline, src: str) -> int:
    """Feed ``reader`` through ``pipeline`` into ``write``; returns the bytes written."""
    written = 0
    while True:
        try:
            data = reader.read(_READ_SIZE)
        except OSError as exc:
            raise LocalIOError(f"{src}: cannot read: {exc.strerror}") from None
        for out in pipeline.feed(data) if data else pipeline.finish():
            if out:
                write(out)
                written += len(out)
        if not data:
            return written


def decrypt_stream(reader, write, key: bytes, *, what: str) -> int:
    """Decrypt (and decompress) ``reader`` into ``write`` chunk by chunk, as each chunk is
    authenticated; a cut or altered stream raises :class:`VerifyError` after the good part."""
    return _pump(reader, write, _DecryptPipeline(key, what), what)


def decrypt_to_file(reader, dst: str, key: bytes, *, what: str, overwrite: bool = False) -> int:
    """:func:`decrypt_file` from an open binary stream (stdin, say) instead of a path."""
    return _convert_stream(reader, what, os.fspath(dst), overwrite, _DecryptPipeline(key, what))


def decrypt_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    key: bytes,
    *,
    overwrite: bool = False,
) -> int:
    """Restore the original bytes of an encrypted file, decompressing its payload.

    Writes ``DST.difpipe-part`` (mode 0600) and renames it to ``dst`` only once every chunk,
    the final one included, was authenticated. Returns the number of bytes written.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    return _convert_file(src, dst, overwrite, _DecryptPipeline(key, src))


def encrypt_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    key: bytes,
    *,
    codec: str = "none",
    level: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    overwrite: bool = False,
) -> int:
    """Compress ``src`` with ``codec`` (or not) and encrypt it to ``dst``. Returns its size."""
    src, dst = os.fspath(src), os.fspath(dst)
    return _convert_file(src, dst, overwrite, _EncryptPipeline(key, codec, level, chunk_size))
