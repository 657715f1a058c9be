import bz2
import gzip
import io
import lzma
import os
import random
import shutil
import subprocess
import tarfile
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from difpipe_tui.core.errors import UsageError, VerifyError
from difpipe_tui.core.transfer.codecs import (
    CODEC_INFO,
    CODECS,
    choose_codec,
    detect_already_compressed,
    estimate_ratio,
    make_compressor,
    make_decompressor,
)


def text_like(n: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"host", b"transfer", b"INFO", b"GET /index.html 200", b"ok"]
    out = bytearray()
    while len(out) < n:
        out += b" ".join(rng.choice(words) for _ in range(10)) + b"\n"
    return bytes(out[:n])


TEXT = text_like(300_000)


def run_through(transformer, data: bytes, piece: int = 7_919) -> bytes:
    """``data`` fed in pieces through a compressor, or a decompressor (whose output comes in
    pieces of its own)."""
    out = []
    for i in range(0, len(data), piece):
        chunk = data[i : i + piece]
        if hasattr(transformer, "pieces"):
            out.extend(transformer.pieces(chunk))
        else:
            out.append(transformer.feed(chunk))
    out.append(transformer.flush())
    return b"".join(out)


def needs_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"the {name} command is not installed (apt-get install -y {name})")
    return path


def run_cli(argv: list[str], data: bytes) -> bytes:
    return subprocess.run(argv, input=data, capture_output=True, check=True).stdout


# --- local codecs ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    codec=st.sampled_from(CODECS),
    data=st.binary(max_size=5000) | st.integers(0, 200_000).map(text_like),
    piece=st.integers(1, 70_000),
)
def test_local_round_trip_with_any_feed_split(codec, data, piece):
    compressed = run_through(make_compressor(codec), data, piece)
    assert run_through(make_decompressor(codec), compressed, max(1, piece // 3)) == data


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_decompressor_accepts_concatenated_frames(codec):
    first, second = TEXT[:100_000], os.urandom(5000) + TEXT[:1000]
    stream = run_through(make_compressor(codec, 1), first) + run_through(
        make_compressor(codec, 5), second
    )
    for piece in (1, 13, 4096, len(stream)):
        assert run_through(make_decompressor(codec), stream, piece) == first + second


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_truncated_stream_raises_verify_error(codec):
    stream = run_through(make_compressor(codec), TEXT)
    d = make_decompressor(codec, what="cloud:/data/f")
    list(d.pieces(stream[:-5]))
    with pytest.raises(VerifyError, match=rf"cloud:/data/f: {codec} data ends in the middle"):
        d.flush()


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_corrupt_stream_raises_verify_error(codec):
    with pytest.raises(VerifyError, match=f"{codec} data is corrupt"):
        list(make_decompressor(codec).pieces(b"this is not a compressed frame at all"))


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_a_highly_compressed_chunk_comes_out_in_bounded_pieces(codec):
    # 64 MiB of zeros shrinks to a few kilobytes: one call must not return all of it
    zeros = bytes(64 << 20)
    stream = run_through(make_compressor(codec), zeros, 8 << 20) + run_through(
        make_compressor(codec), b"tail"
    )
    assert len(stream) < 300_000
    d = make_decompressor(codec, limit=1 << 20)
    sizes = [len(p) for p in d.pieces(stream)]
    assert max(sizes) <= 1 << 20
    assert sum(sizes) == len(zeros) + 4
    assert len(sizes) >= 64
    d.flush()


def test_none_is_the_identity():
    assert run_through(make_compressor("none"), TEXT) == TEXT
    assert run_through(make_decompressor("none"), TEXT) == TEXT


def test_levels_are_validated():
    with pytest.raises(UsageError, match=r"^--level: zstd takes 1\.\.19, got 25$"):
        make_compressor("zstd", 25)
    with pytest.raises(UsageError, match=r"--level: lz4 takes 1\.\.12, got 13"):
        CODEC_INFO["lz4"].compress_argv(13)
    with pytest.raises(UsageError, match=r"--level: zstd takes 1\.\.19, got 0"):
        choose_codec("zstd", None, set(), set(), 0)
    with pytest.raises(
        UsageError, match='--compress: expected one of auto, zstd, lz4, none, got "gz"'
    ):
        choose_codec("gz", None, set(), set(), None)


def test_remote_command_lines():
    zstd, lz4 = CODEC_INFO["zstd"], CODEC_INFO["lz4"]
    assert zstd.compress_argv(6) == ["zstd", "-q", "-c", "-6", "-T0"]
    assert zstd.compress_argv() == ["zstd", "-q", "-c", "-1", "-T0"]
    assert zstd.decompress_argv() == ["zstd", "-q", "-d", "-c"]
    assert lz4.compress_argv(9) == ["lz4", "-q", "-c", "-9"]
    assert lz4.decompress_argv() == ["lz4", "-q", "-d", "-c"]
    assert zstd.to_dict()["max_level"] == 19


# --- compatibility with the real command line tools -------------------------------------------


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
@pytest.mark.parametrize("level", ["min", "max"])
def test_cli_compressed_bytes_decompress_locally(codec, level):
    needs_binary(codec)
    info = CODEC_INFO[codec]
    lvl = info.min_level if level == "min" else info.max_level
    data = TEXT[:120_000] + os.urandom(3000)
    compressed = run_cli(info.compress_argv(lvl), data)
    assert run_through(make_decompressor(codec), compressed, 4099) == data


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_locally_compressed_bytes_decompress_with_cli(codec):
    needs_binary(codec)
    data = TEXT[:120_000] + os.urandom(3000)
    compressed = run_through(make_compressor(codec, CODEC_INFO[codec].max_level), data)
    assert run_cli(CODEC_INFO[codec].decompress_argv(), compressed) == data


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_concatenated_streams_from_both_sides(codec):
    needs_binary(codec)
    info = CODEC_INFO[codec]
    a, b, c = TEXT[:50_000], b"", os.urandom(2000)
    stream = (
        run_cli(info.compress_argv(1), a)
        + run_through(make_compressor(codec), b)
        + run_cli(info.compress_argv(), c)
    )
    assert run_cli(info.decompress_argv(), stream) == a + b + c
    assert run_through(make_decompressor(codec), stream, 1000) == a + b + c


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_empty_stream_both_ways(codec):
    needs_binary(codec)
    info = CODEC_INFO[codec]
    assert run_through(make_decompressor(codec), run_cli(info.compress_argv(), b"")) == b""
    assert run_cli(info.decompress_argv(), run_through(make_compressor(codec), b"")) == b""


# --- detection and choice ----------------------------------------------------------------------


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.txt", TEXT[:1000])
    return buf.getvalue()


@pytest.mark.parametrize(
    ("sample", "kind"),
    [
        (gzip.compress(TEXT[:1000]), "gzip"),
        (bz2.compress(TEXT[:1000]), "bzip2"),
        (lzma.compress(TEXT[:1000]), "xz"),
        (run_through(make_compressor("zstd"), TEXT[:1000]), "zstd"),
        (run_through(make_compressor("lz4"), TEXT[:1000]), "lz4"),
        (_zip_bytes(), "zip"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04" + os.urandom(40), "7z"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "jpeg"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "matroska/webm"),
        (TEXT[:1000], None),
        (b"BZh0 not bzip2", None),
        (b"", None),
    ],
)
def test_detect_already_compressed(sample, kind):
    assert detect_already_compressed(sample) == kind


def test_estimate_ratio():
    assert estimate_ratio(TEXT[:65536]) < 0.3
    assert estimate_ratio(os.urandom(65536)) > 0.95
    assert estimate_ratio(b"") == 1.0


BOTH = {"zstd", "lz4", "sha256sum"}
ZSTD = {"zstd"}
LZ4 = {"lz4"}
NONE: set[str] = set()
SAMPLE = TEXT[:65536]


@pytest.mark.parametrize(
    ("requested", "sample", "src", "dst", "level", "expected"),
    [
        ("auto", SAMPLE, BOTH, BOTH, None, ("zstd", 1, "remote")),
        ("auto", SAMPLE, ZSTD, ZSTD, 7, ("zstd", 7, "remote")),
        ("auto", SAMPLE, LZ4, BOTH, None, ("lz4", 1, "remote")),
        ("auto", SAMPLE, BOTH, LZ4, 15, ("lz4", 12, "remote")),
        ("auto", SAMPLE, NONE, ZSTD, None, ("zstd", 1, "local-compress")),
        ("auto", SAMPLE, ZSTD, NONE, None, ("zstd", 1, "local-decompress")),
        ("auto", SAMPLE, LZ4, ZSTD, None, ("zstd", 1, "local-compress")),
        ("auto", SAMPLE, NONE, LZ4, None, ("lz4", 1, "local-compress")),
        ("auto", SAMPLE, NONE, NONE, None, ("none", None, "none")),
        ("auto", None, BOTH, BOTH, None, ("zstd", 1, "remote")),
        ("auto", os.urandom(65536), BOTH, BOTH, None, ("none", None, "none")),
        ("auto", gzip.compress(os.urandom(65536)), BOTH, BOTH, None, ("none", None, "none")),
        ("auto", SAMPLE[:4095], BOTH, BOTH, None, ("none", None, "none")),
        ("auto", SAMPLE[:4096], BOTH, BOTH, None, ("zstd", 1, "remote")),
        ("zstd", os.urandom(65536), BOTH, BOTH, 19, ("zstd", 19, "remote")),
        ("zstd", None, NONE, NONE, None, ("zstd", 1, "local")),
        ("lz4", SAMPLE, LZ4, NONE, None, ("lz4", 1, "local-decompress")),
        ("lz4", SAMPLE, NONE, LZ4, 12, ("lz4", 12, "local-compress")),
        ("none", SAMPLE, BOTH, BOTH, None, ("none", None, "none")),
        ("none", SAMPLE, BOTH, BOTH, 50, ("none", None, "none")),
    ],
)
def test_choose_codec_decision_table(requested, sample, src, dst, level, expected):
    choice = choose_codec(requested, sample, src, dst, level)
    assert (choice.codec, choice.level, choice.where) == expected
    assert choice.reason and "\n" not in choice.reason
    assert choice.to_dict()["where"] == expected[2]


def test_choose_codec_reasons():
    assert choose_codec("auto", SAMPLE, BOTH, BOTH).reason.endswith(
        "with zstd; both ends have zstd"
    )
    assert "compresses to " in choose_codec("auto", SAMPLE, BOTH, BOTH).reason
    gz = choose_codec("auto", gzip.compress(os.urandom(65536)), BOTH, BOTH)
    assert gz.reason.startswith("sample is gzip data") and gz.reason.endswith("not compressing")
    assert "source has no zstd, so this machine compresses" in (
        choose_codec("auto", SAMPLE, NONE, ZSTD).reason
    )
    assert "destination has no lz4, so this machine decompresses" in (
        choose_codec("lz4", SAMPLE, LZ4, NONE).reason
    )
    assert "neither end has zstd or lz4" in choose_codec("auto", SAMPLE, NONE, NONE).reason
    assert "lowered to 12" in choose_codec("auto", SAMPLE, LZ4, LZ4, 15).reason
    assert choose_codec("auto", b"x" * 100, BOTH, BOTH).reason.startswith("only 100 bytes")


def test_choice_sides():
    remote = choose_codec("zstd", None, BOTH, BOTH)
    assert remote.source_compresses and remote.destination_decompresses
    local_c = choose_codec("zstd", None, NONE, BOTH)
    assert not local_c.source_compresses and local_c.destination_decompresses


def test_auto_sends_a_tar_of_random_files_as_it_is():
    """Only a tar stream's header padding compresses: saving ~11% is not worth the CPU."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for i in range(64):
            data = os.urandom(4096)
            info = tarfile.TarInfo(f"d/f{i:03d}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sample = out.getvalue()
    assert 0.8 < estimate_ratio(sample) < 0.95
    choice = choose_codec("auto", sample, {"zstd"}, {"zstd"})
    assert choice.codec == "none" and "incompressible" in choice.reason
    text = b"2026-11-22 10:00:00 edge-pi GET /health 200 0.4ms\n" * 2000
    assert choose_codec("auto", text, {"zstd"}, {"zstd"}).codec == "zstd"
