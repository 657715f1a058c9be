"""The relay's memory does not grow with the compression ratio of what the source sends."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest

from difpipe_tui.core.transfer.codecs import make_compressor, make_decompressor
from difpipe_tui.core.transfer.ends import Sink, Source
from difpipe_tui.core.transfer.stream import CHUNK, Relay

ZEROS = 256 << 20


class CompressedSource(Source):
    """A source whose own tool compressed the data: ``ZEROS`` zero bytes, then ``b"end"``."""

    name = "edge:/zeros"
    compressed = True

    def __init__(self, codec: str):
        c = make_compressor(codec)
        block = bytes(8 << 20)
        self.data = b"".join(c.feed(block) for _ in range(ZEROS // len(block)))
        self.data += c.feed(b"end") + c.flush()
        self.pos = 0

    async def read(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


class Hashes(Sink):
    """Keeps the digest and sizes of what it is given, not the bytes."""

    def __init__(self, name: str, compressed: bool):
        self.name, self.compressed = name, compressed
        self.sha, self.total, self.largest = hashlib.sha256(), 0, 0

    async def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.total += len(data)
        self.largest = max(self.largest, len(data))

    async def abort(self) -> None:
        raise AssertionError(f"{self.name} failed")


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
async def test_a_gigantic_compression_ratio_stays_within_the_buffer(codec):
    source = CompressedSource(codec)
    assert len(source.data) < 2 * CHUNK  # the whole stream is one or two reads
    raw = Hashes("raw", compressed=False)  # this machine decompresses for it
    wire = Hashes("wire", compressed=True)  # its own tool decompresses
    relay = Relay(
        source,
        [raw, wire],
        start=0,
        algo="sha256",
        decompressor=make_decompressor(codec, what=source.name),
        buffer=4 * CHUNK,
    )
    tracemalloc.start()
    try:
        outcome = await relay.run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    expected = hashlib.sha256(bytes(ZEROS) + b"end").hexdigest()
    assert outcome.eof and outcome.offset == ZEROS + 3
    assert outcome.digest == expected
    assert raw.sha.hexdigest() == expected and raw.total == ZEROS + 3
    assert raw.largest <= CHUNK
    assert wire.sha.hexdigest() == hashlib.sha256(source.data).hexdigest()
    # a few pieces in the queue and in flight, not the 256 MiB one read turns into
    assert peak < 16 * CHUNK, f"peak {peak / CHUNK:.1f} MiB"
