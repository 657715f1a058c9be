"""Compression: which codec to use, where it runs, and the local streaming codecs.

Two codecs are supported, ``zstd`` and ``lz4``, plus ``none``. A codec can run in two places:

* on a remote end, with the host's own ``zstd`` / ``lz4`` command (:attr:`Codec.tool`), fed
  through stdin and stdout (:meth:`Codec.compress_argv`, :meth:`Codec.decompress_argv`);
* on this machine (the orchestrator), with the Python bindings, through the small
  :class:`Transformer` interface returned by :func:`make_compressor` and the
  :class:`Decompressor` one returned by :func:`make_decompressor`.

Both produce standard frames, so one end may compress with the command line tool and the other
decompress locally, or the other way round. The decompressors accept any number of
concatenated frames (a resumed transfer appends a second compressed stream to the first),
report a stream that ends in the middle of a frame, and hand their output out in bounded
pieces (:meth:`Decompressor.pieces`): a megabyte of zstd can hold gigabytes of zeros.

:func:`choose_codec` turns ``--compress auto|zstd|lz4|none`` and ``--level`` into a
:class:`CodecChoice`: the codec, its level, where each side runs and a one-line reason that can
be shown to the user.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import lz4.frame
import zstandard

try:  # Python 3.14 on; the same module is backports.zstd before it
    from compression import zstd as zstd_stream
except ImportError:  # pragma: no cover - depends on the interpreter
    from backports import zstd as zstd_stream

from ..errors import UsageError, VerifyError

CODECS: tuple[str, ...] = ("zstd", "lz4", "none")

#: Values accepted by ``--compress``.
COMPRESS_CHOICES: tuple[str, ...] = ("auto", *CODECS)

#: Below this many bytes of data, compression is not worth starting a codec for.
MIN_SAMPLE_BYTES = 4 * 1024

#: ``auto`` sends data uncompressed when a sample shrinks to more than this fraction: saving
#: less than a fifth of the bytes does not pay for compressing and decompressing every byte
#: (a tar stream of random files shrinks to ~89%, only its headers' padding compresses).
SKIP_RATIO = 0.8

Where = Literal["remote", "local-compress", "local-decompress", "local", "none"]


@dataclass(frozen=True)
class Codec:
    """A codec: the remote tool it needs, its command lines and its level range."""

    name: str
    tool: str | None
    default_level: int
    min_level: int
    max_level: int

    def compress_argv(self, level: int | None = None) -> list[str]:
        """The remote command that compresses stdin to stdout."""
        level = self.check_level(level)
        if self.name == "zstd":
            return ["zstd", "-q", "-c", f"-{level}", "-T0"]
        if self.name == "lz4":
            return ["lz4", "-q", "-c", f"-{level}"]
        return ["cat"]

    def decompress_argv(self) -> list[str]:
        """The remote command that decompresses stdin (any number of frames) to stdout."""
        if self.tool is None:
            return ["cat"]
        return [self.tool, "-q", "-d", "-c"]

    def check_level(self, level: int | None) -> int:
        """``level``, or the default when None; a :class:`UsageError` when out of range."""
        if level is None:
            return self.default_level
        if isinstance(level, bool) or not self.min_level <= level <= self.max_level:
            raise UsageError(
                f"--level: {self.name} takes {self.min_level}..{self.max_level}, got {level}"
            )
        return level

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# zstd -1 is the default: on text it comes within a few percent of -3's ratio at about 1.7x
# the speed, and a transfer, unlike an archive, is paid for in time.
CODEC_INFO: dict[str, Codec] = {
    "zstd": Codec("zstd", tool="zstd", default_level=1, min_level=1, max_level=19),
    "lz4": Codec("lz4", tool="lz4", default_level=1, min_level=1, max_level=12),
    "none": Codec("none", tool=None, default_level=0, min_level=0, max_level=0),
}


def get_codec(name: str) -> Codec:
    try:
        return CODEC_INFO[name]
    except KeyError:
        raise UsageError(
            f'--compress: expected one of {", ".join(COMPRESS_CHOICES)}, got "{name}"'
        ) from None


# --- local streaming codecs ---------------------------------------------------------------


class Transformer(Protocol):
    """A streaming byte transformation. Single use: ``flush()`` ends the stream."""

    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def feed(self, data: bytes) -> bytes:
        return bytes(data)

    def flush(self) -> bytes:
        return b""


class _ZstdCompressor:
    def __init__(self, level: int, threads: int):
        cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
        self._obj = cctx.compressobj()

    def feed(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


class _Lz4Compressor:
    def __init__(self, level: int):
        self._obj = lz4.frame.LZ4FrameCompressor(
            compression_level=level, block_size=lz4.frame.BLOCKSIZE_MAX1MB, content_checksum=True
        )
        self._header = self._obj.begin()

    def _take_header(self) -> bytes:
        header, self._header = self._header, b""
        return header

    def feed(self, data: bytes) -> bytes:
        return self._take_header() + self._obj.compress(data)

    def flush(self) -> bytes:
        return self._take_header() + self._obj.flush()


#: The most bytes one :meth:`Decompressor.pieces` piece holds.
MAX_PIECE = 1024 * 1024


class Decompressor(Protocol):
    """A streaming decompressor whose output comes in bounded pieces. Single use."""

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """The output ``data`` completes, in pieces of at most the decompressor's ``limit``."""
        ...

    def flush(self) -> bytes: ...


class _Passthrough:
    def pieces(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield bytes(data)

    def flush(self) -> bytes:
        return b""


class _FrameDecompressor:
    """Decompresses concatenated frames; ``flush()`` fails when a frame was left unfinished.

    Each call to the library returns at most ``limit`` bytes and keeps the rest of its input,
    so the memory a piece takes does not grow with the compression ratio.
    """

    name = ""
    errors: tuple[type[Exception], ...] = ()

    def __init__(self, what: str | None, limit: int):
        self._what = what
        self._limit = limit
        self._obj = self._new()
        self._in_frame = False

    def _new(self):
        raise NotImplementedError

    def _error(self, problem: str) -> VerifyError:
        prefix = f"{self._what}: " if self._what else ""
        return VerifyError(f"{prefix}{self.name} data {problem}")

    def pieces(self, data: bytes) -> Iterator[bytes]:
        while True:
            if data:
                self._in_frame = True
            try:
                out = self._obj.decompress(data, self._limit)
            except self.errors as exc:
                raise self._error(f"is corrupt: {exc}") from None
            if out:
                yield out
            if self._obj.eof:
                data = self._obj.unused_data
                self._obj = self._new()
                self._in_frame = False
                if not data:
                    return
            elif self._obj.needs_input:
                return
            else:
                data = b""

    def flush(self) -> bytes:
        if self._in_frame:
            raise self._error("ends in the middle of a frame (truncated)")
        return b""


class _ZstdDecompressor(_FrameDecompressor):
    name = "zstd"
    errors = (zstd_stream.ZstdError,)

    def _new(self):
        return zstd_stream.ZstdDecompressor()


class _Lz4Decompressor(_FrameDecompressor):
    name = "lz4"
    errors = (RuntimeError,)

    def _new(self):
        return lz4.frame.LZ4FrameDecompressor()


def make_compressor(name: str, level: int | None = None, *, threads: int = 0) -> Transformer:
    """A local compressor writing one standard frame; ``threads=-1`` uses every core (zstd)."""
    codec = get_codec(name)
    level = codec.check_level(level)
    if name == "zstd":
        return _ZstdCompressor(level, threads)
    if name == "lz4":
        return _Lz4Compressor(level)
    return _Identity()


def make_decompressor(
    name: str, *, what: str | None = None, limit: int = MAX_PIECE
) -> Decompressor:
    """A local decompressor; corrupt or truncated input raises :class:`VerifyError`.

    ``what`` names the data in error messages (a file or ``host:path``); no piece of output is
    longer than ``limit`` bytes (``none`` passes its input on as it is).
    """
    get_codec(name)
    if name == "zstd":
        return _ZstdDecompressor(what, limit)
    if name == "lz4":
        return _Lz4Decompressor(what, limit)
    return _Passthrough()


# --- choosing a codec ------------------------------------------------------------------------


def estimate_ratio(sample: bytes) -> float:
    """Compressed size / original size of ``sample`` with zstd level 1 (1.0 for no data)."""
    if not sample:
        return 1.0
    compressed = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(sample)
    return len(compressed) / len(sample)


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PK\x07\x08", "zip"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x1a\x45\xdf\xa3", "matroska/webm"),
    (b"\x04\x22\x4d\x18", "lz4"),
)

_FTYP_BRANDS = {b"qt  ": "mov", b"heic": "heic", b"heix": "heic", b"mif1": "heif", b"avif": "avif"}


def detect_already_compressed(sample: bytes) -> str | None:
    """The format of ``sample`` when its magic number says it is compressed, else None."""
    head = bytes(sample[:16])
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0":
        return "bzip2"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "mp4")
    return None


@dataclass(frozen=True)
class CodecChoice:
    """What to compress with and where.

    ``where`` is one of:

    * ``remote``: the source compresses with its tool and the destination decompresses with
      its tool; both links carry compressed bytes;
    * ``local-compress``: the source lacks the tool, so this machine compresses and the
      destination decompresses with its tool;
    * ``local-decompress``: the source compresses with its tool and this machine decompresses
      because the destination lacks it;
    * ``local``: neither end has the tool and this machine does both sides (an explicit
      request only: it does not shrink what the links carry);
    * ``none``: no compression.
    """

    codec: str
    level: int | None
    where: Where
    reason: str

    @property
    def source_compresses(self) -> bool:
        return self.where in ("remote", "local-decompress")

    @property
    def destination_decompresses(self) -> bool:
        return self.where in ("remote", "local-compress")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _placement(codec: str, src_tools: set[str], dst_tools: set[str]) -> tuple[Where, str]:
    src, dst = codec in src_tools, codec in dst_tools
    if src and dst:
        return "remote", f"both ends have {codec}"
    if dst:
        return "local-compress", f"the source has no {codec}, so this machine compresses"
    if src:
        return "local-decompress", f"the destination has no {codec}, so this machine decompresses"
    return "local", f"neither end has {codec}, so this machine compresses and decompresses"


def choose_codec(
    requested: str,
    sample: bytes | None,
    src_tools: set[str],
    dst_tools: set[str],
    level: int | None = None,
) -> CodecChoice:
    """Decide the codec, its level and where it runs.

    ``sample`` is the start of the data (None when it cannot be read ahead, as with stdin); a
    sample shorter than :data:`MIN_SAMPLE_BYTES` means the whole data is that small.
    ``src_tools`` / ``dst_tools`` are the tools found on each end (see
    :data:`difpipe_tui.core.remote.PROBED_TOOLS`); an end that is this machine has none.
    """
    if requested not in COMPRESS_CHOICES:
        get_codec(requested)  # raises the usage error
    if requested == "none":
        return CodecChoice("none", None, "none", "compression is off (--compress none)")
    if requested != "auto":
        codec = get_codec(requested)
        level = codec.check_level(level)
        where, placed = _placement(requested, src_tools, dst_tools)
        return CodecChoice(requested, level, where, f"--compress {requested}; {placed}")

    if level is not None:
        CODEC_INFO["zstd"].check_level(level)  # the widest range; lz4 clamps below
    if sample is None:
        measured = "no sample of the data"
    else:
        if len(sample) < MIN_SAMPLE_BYTES:
            return CodecChoice(
                "none", None, "none", f"only {len(sample)} bytes; not worth compressing"
            )
        ratio = estimate_ratio(sample)
        kind = detect_already_compressed(sample)
        if ratio > SKIP_RATIO:
            what = f"sample is {kind} data" if kind else "sample is mostly incompressible"
            return CodecChoice(
                "none",
                None,
                "none",
                f"{what} (zstd shrinks it only to {ratio:.0%}); not compressing",
            )
        measured = f"sample compresses to {ratio:.0%} with zstd"

    on_both = [n for n in ("zstd", "lz4") if n in src_tools and n in dst_tools]
    on_one = [n for n in ("zstd", "lz4") if n in src_tools or n in dst_tools]
    name = (on_both or on_one or [""])[0]
    if not name:
        return CodecChoice(
            "none",
            None,
            "none",
            f"{measured}, but neither end has zstd or lz4; compressing only on this machine"
            " would not shrink what the links carry",
        )
    codec = CODEC_INFO[name]
    chosen_level = codec.default_level if level is None else min(level, codec.max_level)
    where, placed = _placement(name, src_tools, dst_tools)
    reason = f"{measured}; {placed}"
    if level is not None and chosen_level != level:
        reason += f"; --level {level} lowered to {chosen_level}, the most {name} takes"
    return CodecChoice(name, chosen_level, where, reason)
