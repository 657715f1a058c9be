"""The resume state of an encrypted stream: what a checkpoint records and which mark a part
file of a given size can continue from."""

from difpipe_tui.core.transfer.encresume import MARKS, EncryptedStream, ResumeState
from difpipe_tui.core.transfer.encrypt import Encryptor, cipher_offset

KEY = bytes(range(32))
C = 1024


def stream() -> EncryptedStream:
    return EncryptedStream(Encryptor(KEY, 0, C).header(), "100 7 a b")


def test_a_checkpoint_round_trips_through_its_blob():
    s = stream()
    s.checkpoint(2 * C, "d2")
    state = s.checkpoint(5 * C, "d5")
    again = ResumeState.from_blob(state.to_blob())
    assert again == state
    assert again.marks == ((2 * C, "d2"), (5 * C, "d5"))
    assert again.chunk_size == C


def test_a_blob_that_is_not_an_encrypted_state_is_none():
    assert ResumeState.from_blob(None) is None
    assert ResumeState.from_blob(b"") is None
    assert ResumeState.from_blob(b"\x00\x01state") is None
    assert ResumeState.from_blob(b'{"encrypted": 2}') is None
    s = stream()
    blob = s.checkpoint(C, "d").to_blob().replace(b'"marks": [[1024', b'"marks": [[1000')
    assert ResumeState.from_blob(blob) is None  # a mark off a chunk boundary


def test_the_latest_mark_within_the_part_file_is_usable():
    s = stream()
    for k in (1, 2, 3, 4):
        state = s.checkpoint(k * C, f"d{k}")
    # the part file got chunk 3 but not all of chunk 4: data in flight was lost
    size = cipher_offset(4 * C, C) - 1
    assert state.usable(size, total=10 * C) == {C: "d1", 2 * C: "d2", 3 * C: "d3"}
    assert state.usable(cipher_offset(4 * C, C), total=4 * C) == {C: "d1", 2 * C: "d2", 3 * C: "d3"}
    assert state.usable(10, total=None) == {}


def test_a_destination_behind_the_others_gets_only_its_own_marks():
    s = stream()
    s.checkpoint(C, "d1")
    s.checkpoint(3 * C, "d3")
    assert s.checkpoint(C, "d1").marks == ((C, "d1"),)  # a slower destination's checkpoint


def test_marks_are_kept_for_the_last_checkpoints_only():
    s = stream()
    for k in range(1, MARKS + 10):
        state = s.checkpoint(k * C, f"d{k}")
    assert len(state.marks) == MARKS and state.marks[-1] == ((MARKS + 9) * C, f"d{MARKS + 9}")


def test_a_continued_stream_adds_one_segment_and_spans_cover_the_file():
    first = stream().checkpoint(3 * C, "d3")
    second = EncryptedStream.continuing(first, 3 * C, "d3")
    assert second.start == 3 * C and second.cipher_start == cipher_offset(3 * C, C)
    assert second.spans() == [(0, cipher_offset(3 * C, C), "d3")]
    state = second.checkpoint(5 * C, "e5")
    assert state.segments == ((cipher_offset(3 * C, C), "d3"),)
    assert state.usable(cipher_offset(3 * C, C), total=None) == {}  # nothing of the second run
    assert state.spans(5 * C, "e5") == [
        (0, cipher_offset(3 * C, C), "d3"),
        (cipher_offset(3 * C, C), cipher_offset(5 * C, C), "e5"),
    ]
