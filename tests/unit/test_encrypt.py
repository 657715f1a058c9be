import os
import re
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from difpipe_tui.core.errors import LocalIOError, VerifyError
from difpipe_tui.core.transfer.encrypt import (
    HEADER_SIZE,
    MAGIC,
    PART_SUFFIX,
    TAG_SIZE,
    Decryptor,
    Encryptor,
    chunk_floor,
    cipher_offset,
    ciphertext_size,
    decrypt_file,
    encrypt_file,
    generate_key,
    load_key,
    parse_header,
    plain_offset,
)

KEY = bytes(range(32))
CHUNK = 1024
SEALED = CHUNK + TAG_SIZE


def feed_in_pieces(obj, data: bytes, cuts: list[int]) -> bytes:
    out, pos = [], 0
    for cut in sorted(set(cuts)):
        out.append(obj.feed(data[pos:cut]))
        pos = cut
    out.append(obj.feed(data[pos:]))
    out.append(obj.finish())
    return b"".join(out)


def encrypt(data: bytes, chunk: int = CHUNK, codec_id: int = 0, cuts=()) -> bytes:
    e = Encryptor(KEY, codec_id, chunk)
    return e.header() + feed_in_pieces(e, data, [c for c in cuts if c <= len(data)])


def decrypt(blob: bytes, key: bytes = KEY, cuts=(), what: str = "backup.enc") -> bytes:
    return feed_in_pieces(Decryptor(key, what=what), blob, [c for c in cuts if c <= len(blob)])


sizes_near_boundaries = st.one_of(
    st.integers(0, 5 * CHUNK),
    st.sampled_from([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 1]),
    st.integers(0, 3)
    .flatmap(lambda k: st.integers(k * CHUNK - 2, k * CHUNK + 2))
    .filter(lambda n: n >= 0),
)


@settings(max_examples=150, deadline=None)
@given(
    n=sizes_near_boundaries,
    enc_cuts=st.lists(st.integers(0, 6 * CHUNK), max_size=8),
    dec_cuts=st.lists(st.integers(0, 6 * CHUNK), max_size=8),
    seed=st.binary(min_size=8, max_size=8),
)
def test_round_trip_any_size_any_split(n, enc_cuts, dec_cuts, seed):
    data = (seed * (n // 8 + 1))[:n]
    blob = encrypt(data, cuts=enc_cuts)
    assert len(blob) == ciphertext_size(n, CHUNK)
    assert decrypt(blob, cuts=dec_cuts) == data


def test_size_formula_and_layout():
    assert ciphertext_size(0, CHUNK) == HEADER_SIZE + TAG_SIZE == 62
    assert ciphertext_size(CHUNK, CHUNK) == HEADER_SIZE + CHUNK + TAG_SIZE
    assert ciphertext_size(CHUNK + 1, CHUNK) == HEADER_SIZE + CHUNK + 1 + 2 * TAG_SIZE
    assert ciphertext_size(10 * 2**20) == HEADER_SIZE + 10 * 2**20 + 160 * TAG_SIZE
    blob = encrypt(b"x" * 10, codec_id=2)
    assert blob[:8] == MAGIC and blob[8] == 1 and blob[9] == 2
    assert int.from_bytes(blob[10:14], "big") == CHUNK
    assert encrypt(b"")[14:46] != encrypt(b"")[14:46]  # a fresh salt every time
    d = Decryptor(KEY)
    d.feed(blob)
    assert (d.codec_id, d.codec, d.chunk_size) == (2, "lz4", CHUNK)


def test_large_feed_emits_whole_chunks_and_holds_back_the_last():
    e = Encryptor(KEY, chunk_size=CHUNK)
    assert e.feed(b"a" * CHUNK) == b""  # might be the final chunk
    assert len(e.feed(b"a")) == SEALED
    assert len(e.feed(b"a" * (5 * CHUNK))) == 5 * SEALED
    assert len(e.finish()) == TAG_SIZE + 1


# --- tampering ---------------------------------------------------------------------------------

DATA = os.urandom(4 * CHUNK + 100)  # chunks 0..3 full, chunk 4 (final) holds 100 bytes
BLOB = encrypt(DATA)


def chunk_at(i: int) -> slice:
    start = HEADER_SIZE + i * SEALED
    return slice(start, start + SEALED)


def flip(blob: bytes, pos: int) -> bytes:
    out = bytearray(blob)
    out[pos] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (flip(BLOB, 3), "backup.enc: not a DifPipe encrypted file"),
        (flip(BLOB, 8), "format version 0 is not supported"),
        (flip(BLOB, 9), "chunk 0 failed authentication"),  # codec id 0 -> 1: still valid
        (flip(BLOB, 12), "chunk 0 failed authentication"),  # chunk size, still in range
        (flip(BLOB, 30), "chunk 0 failed authentication"),  # salt
        (flip(BLOB, HEADER_SIZE + 2 * SEALED + 500), "chunk 2 failed authentication"),
        (flip(BLOB, HEADER_SIZE + 3 * SEALED - 1), "chunk 2 failed authentication"),  # its tag
        (flip(BLOB, len(BLOB) - 1), "chunk 4 (the last one) failed authentication"),
        (BLOB[: chunk_at(4).start], "chunk 3 (the last one) failed authentication"),
        (BLOB[:-1], "chunk 4 (the last one) failed authentication"),
        (BLOB[: chunk_at(4).start + 10], "chunk 4 is shorter than its tag"),
        (BLOB[: chunk_at(2).start + 500], "chunk 2 (the last one) failed authentication"),
        (BLOB + b"junk", "chunk 4 (the last one) failed authentication"),
        (BLOB + BLOB[chunk_at(1)], "chunk 4 failed authentication"),
        (BLOB[:HEADER_SIZE], "chunk 0, the final one, is missing"),
        (BLOB[:20], "the 46-byte header is incomplete"),
        (b"", "the 46-byte header is incomplete"),
        (
            BLOB[: chunk_at(1).start]
            + BLOB[chunk_at(2)]
            + BLOB[chunk_at(1)]
            + BLOB[chunk_at(3).start :],
            "chunk 1 failed authentication",
        ),
        (BLOB[: chunk_at(1).start] + BLOB[chunk_at(2).start :], "chunk 1 failed authentication"),
        (BLOB[: chunk_at(2).start] + BLOB[chunk_at(1).start :], "chunk 2 failed authentication"),
    ],
    ids=[
        "magic",
        "version",
        "codec-id",
        "chunk-size",
        "salt",
        "middle-chunk",
        "middle-tag",
        "final-tag",
        "final-chunk-dropped",
        "cut-in-final-chunk",
        "cut-in-final-tag-region",
        "cut-mid-file",
        "junk-appended",
        "chunk-appended",
        "header-only",
        "short-header",
        "empty",
        "chunks-swapped",
        "chunk-dropped",
        "chunk-repeated",
    ],
)
def test_tampering_is_detected_with_the_chunk_index(blob, message):
    for cuts in ((), (HEADER_SIZE + 7, 2000, 2001)):
        with pytest.raises(VerifyError, match=re.escape(message)) as err:
            decrypt(blob, cuts=cuts)
        assert str(err.value).startswith("backup.enc: ")
        assert "\n" not in str(err.value)


def test_wrong_key():
    with pytest.raises(VerifyError, match=r"chunk 0 failed authentication.*key is wrong"):
        decrypt(BLOB, key=bytes(32))


def test_a_header_from_another_file_does_not_fit():
    other = encrypt(DATA)
    with pytest.raises(VerifyError, match="chunk 0 failed authentication"):
        decrypt(other[:HEADER_SIZE] + BLOB[HEADER_SIZE:])


def test_misuse_raises():
    with pytest.raises(ValueError, match="32 bytes"):
        Encryptor(b"short")
    with pytest.raises(ValueError, match="chunk size"):
        Encryptor(KEY, chunk_size=100)
    with pytest.raises(ValueError, match="codec id"):
        Encryptor(KEY, codec_id=7)
    e = Encryptor(KEY)
    e.finish()
    with pytest.raises(ValueError, match="after finish"):
        e.feed(b"x")


# --- key files ---------------------------------------------------------------------------------


def test_generate_and_load_key(tmp_path):
    path = tmp_path / "backup.key"
    key = generate_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text == key.hex() + "\n" and len(text) == 65
    assert load_key(path) == key
    with pytest.raises(LocalIOError, match=r"backup\.key: already exists; refusing to overwrite"):
        generate_key(path)
    assert load_key(path) == key


def test_load_raw_key(tmp_path):
    path = tmp_path / "raw.key"
    path.write_bytes(KEY)
    path.chmod(0o600)
    assert load_key(path) == KEY


def test_load_key_refuses_open_permissions(tmp_path):
    path = tmp_path / "k"
    path.write_text(KEY.hex() + "\n")
    path.chmod(0o644)
    with pytest.raises(LocalIOError) as err:
        load_key(path)
    assert str(err.value) == (
        f"{path}: permissions 0644 are too open for a key file; chmod 600 {path}"
    )


@pytest.mark.parametrize(
    "content", [b"", b"abc\n", KEY.hex().encode()[:-1] + b"g\n", KEY + b"\x00", b"x" * 5000]
)
def test_load_key_refuses_other_content(tmp_path, content):
    path = tmp_path / "k"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(LocalIOError, match=r"k: not a DifPipe key \(expected 64 hex"):
        load_key(path)


def test_load_key_missing(tmp_path):
    with pytest.raises(LocalIOError, match=r"missing\.key: cannot read the key file"):
        load_key(tmp_path / "missing.key")


# --- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "zstd", "lz4"])
def test_file_round_trip_with_compressed_payload(tmp_path, codec):
    original = (b"log line 42 OK\n" * 20_000) + os.urandom(70_000)
    src, enc, out = tmp_path / "f", tmp_path / "f.enc", tmp_path / "f.out"
    src.write_bytes(original)
    size = encrypt_file(src, enc, KEY, codec=codec)
    assert enc.stat().st_size == size
    if codec != "none":
        assert size < len(original) // 2
    assert decrypt_file(enc, out, KEY) == len(original)
    assert out.read_bytes() == original
    assert not (tmp_path / ("f.out" + PART_SUFFIX)).exists()


def test_decrypt_file_leaves_nothing_on_failure(tmp_path):
    enc, out = tmp_path / "f.enc", tmp_path / "f.out"
    enc.write_bytes(BLOB[: chunk_at(4).start])  # final chunk lost
    with pytest.raises(VerifyError, match=rf"{enc}: chunk 3 \(the last one\)"):
        decrypt_file(enc, out, KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.enc"]


def test_decrypt_file_refuses_to_overwrite(tmp_path):
    enc, out = tmp_path / "f.enc", tmp_path / "f.out"
    enc.write_bytes(BLOB)
    out.write_bytes(b"keep me")
    with pytest.raises(LocalIOError, match=r"f\.out: already exists"):
        decrypt_file(enc, out, KEY)
    assert out.read_bytes() == b"keep me"
    decrypt_file(enc, out, KEY, overwrite=True)
    assert out.read_bytes() == DATA


def test_decrypt_file_corrupt_compressed_payload(tmp_path):
    enc, out = tmp_path / "f.enc", tmp_path / "f.out"
    enc.write_bytes(encrypt(b"not zstd at all", codec_id=1))  # authentic, but not zstd
    with pytest.raises(VerifyError, match=r"f\.enc: zstd data is corrupt"):
        decrypt_file(enc, out, KEY)
    assert not out.exists() and not (tmp_path / ("f.out" + PART_SUFFIX)).exists()


def test_decrypt_file_missing_source(tmp_path):
    with pytest.raises(LocalIOError, match=r"nope\.enc: cannot read"):
        decrypt_file(tmp_path / "nope.enc", tmp_path / "out", KEY)


# --- resuming a stream at a chunk boundary ------------------------------------------------


def test_cipher_offset_of_chunk_boundaries():
    assert cipher_offset(0, CHUNK) == HEADER_SIZE
    assert cipher_offset(CHUNK, CHUNK) == HEADER_SIZE + SEALED
    assert cipher_offset(5 * CHUNK, CHUNK) == HEADER_SIZE + 5 * SEALED
    assert cipher_offset(3 * 65536, 65536) == 46 + 3 * (65536 + 16)
    for bad in (1, CHUNK - 1, CHUNK + 1, -CHUNK):
        with pytest.raises(ValueError):
            cipher_offset(bad, CHUNK)


@given(k=st.integers(0, 10_000), size=st.sampled_from([1024, 4096, 65536, 16 * 1024 * 1024]))
def test_plain_and_cipher_offsets_invert_each_other(k, size):
    q = cipher_offset(k * size, size)
    assert plain_offset(q, size) == k * size
    assert chunk_floor(k * size + size - 1, size) == k * size
    for off in (q - 1, q + 1, HEADER_SIZE - 1):
        if off != HEADER_SIZE:
            with pytest.raises(ValueError):
                plain_offset(off, size)


@given(k=st.integers(0, 20), rest=st.integers(1, 3 * CHUNK))
def test_a_stream_cut_at_a_chunk_boundary_continues_in_the_same_file(k, rest):
    """The first run is cut after k middle chunks; the second continues from chunk k under the
    header read back from the file: the result is the ciphertext of one uninterrupted run,
    byte for byte, and it decrypts to the whole plaintext."""
    data = os.urandom(k * CHUNK + rest)
    first = Encryptor(KEY, 0, CHUNK)
    blob = first.header() + first.feed(data)  # sealed: every full chunk but the last
    assert first.sealed >= k * CHUNK
    cut = cipher_offset(k * CHUNK, CHUNK)
    part = blob[:cut]  # what a checkpoint at k chunks vouches for
    again = Encryptor.resume(KEY, part[:HEADER_SIZE], k)
    assert again.sealed == k * CHUNK
    whole = part + again.feed(data[k * CHUNK :]) + again.finish()
    assert whole[: len(blob)] == blob  # the chunks resealed are the very chunks sent before
    assert len(whole) == ciphertext_size(len(data), CHUNK)
    assert decrypt(whole) == data


def test_resume_refuses_a_header_that_is_not_one():
    header = Encryptor(KEY, 0, CHUNK).header()
    with pytest.raises(ValueError, match="magic"):
        Encryptor.resume(KEY, b"X" + header[1:], 1)
    with pytest.raises(ValueError, match="header is 46 bytes"):
        Encryptor.resume(KEY, header[:10], 1)
    with pytest.raises(ValueError):
        Encryptor.resume(KEY, header, -1)
    assert parse_header(header)[:2] == (0, CHUNK)


def test_a_resumed_stream_with_another_key_or_header_does_not_decrypt():
    data = os.urandom(4 * CHUNK + 5)
    first = Encryptor(KEY, 0, CHUNK)
    part = (first.header() + first.feed(data))[: cipher_offset(2 * CHUNK, CHUNK)]
    other = Encryptor(KEY, 0, CHUNK)  # a fresh salt: its chunks belong to another file key
    again = Encryptor.resume(KEY, other.header(), 2)
    with pytest.raises(VerifyError, match="chunk 2 failed authentication"):
        decrypt(part + again.feed(data[2 * CHUNK :]) + again.finish())
