"""The checkpoints of ``--parallel``: what a range may count as written, how a checkpoint is
stored and read back, and when a run may continue it."""

import json

import pytest

from difpipe_tui.core.transfer import parresume
from difpipe_tui.core.transfer.parallel import ALIGN, IN_FLIGHT, split_ranges
from difpipe_tui.core.transfer.parresume import (
    RangePlan,
    RangeProgress,
    RangeState,
    align_down,
    part_problem,
    plan_ranges,
    source_problem,
)

M = ALIGN
STAMP = "50331653 77 2026-11-22 10:00:00.123456789 +0000 2026-11-22 10:00:00.123456789 +0000"
SIZE = 48 * M - 5
LAYOUT = tuple(split_ranges(SIZE, 4))  # 12 MiB each, the last 5 bytes shorter


def fresh(in_flight: int = IN_FLIGHT) -> RangeProgress:
    return RangeProgress(RangePlan(LAYOUT, (0,) * len(LAYOUT)), in_flight)


def state(*done: int) -> RangeState:
    return RangeState(STAMP, SIZE, tuple((o, n, d) for (o, n), d in zip(LAYOUT, done, strict=True)))


def test_align_down_keeps_blocks_only():
    assert [align_down(n) for n in (0, 1, M - 1, M, 3 * M + 7)] == [0, 0, 0, M, 3 * M]


# -- what a range counts --------------------------------------------------------------------------


def test_a_running_range_counts_what_it_sent_less_what_may_be_in_flight():
    p = fresh()
    p.wrote(0, 10 * M + 123)
    p.wrote(1, 3 * M)  # not past what may still be in flight: nothing counts
    assert p.counts() == (align_down(10 * M + 123 - IN_FLIGHT), 0, 0, 0)
    assert p.moved == 13 * M + 123


def test_a_range_whose_writer_ended_counts_all_it_sent():
    p = fresh()
    p.wrote(0, 12 * M)
    p.ended(0, 12 * M)  # finished: its whole length
    p.wrote(1, 5 * M + 9)
    p.ended(1, 5 * M + 9)  # stopped: what it wrote, on a block boundary
    last = LAYOUT[3][1]
    p.ended(3, last)
    assert p.counts() == (12 * M, 5 * M, 0, last)
    assert last % M  # a finished range is kept whole, off a block boundary


def test_a_local_destination_counts_what_returned():
    p = fresh(in_flight=0)
    p.wrote(2, 7 * M + 1)
    assert p.counts() == (0, 0, 7 * M, 0)


def test_a_writer_that_failed_counts_only_what_was_known_before():
    plan = RangePlan(LAYOUT, (4 * M, 0, 0, 0))
    p = RangeProgress(plan, IN_FLIGHT)
    p.wrote(0, 6 * M)
    assert p.counts()[0] == 6 * M  # 10 MiB sent, 4 of them maybe in flight
    p.lost(0)
    assert p.counts()[0] == 4 * M  # where it began this run


def test_a_resumed_range_never_counts_less_than_it_began_with():
    p = RangeProgress(RangePlan(LAYOUT, (6 * M, 0, 0, 0)), IN_FLIGHT)
    p.wrote(0, M)
    assert p.counts()[0] == 6 * M


def test_checkpoints_fall_due_over_the_sum_of_the_ranges():
    p = fresh()
    for i in range(4):
        p.wrote(i, M // 2)
    assert not p.due(4 * M) and p.due(2 * M)
    assert not p.due(2 * M)  # it restarts from there
    for i in range(4):
        p.wrote(i, M)
    assert p.due(2 * M)
    assert not p.due(0)  # no interval: never


def test_a_checkpoint_is_made_only_when_the_counts_moved():
    p = fresh()
    p.wrote(0, M)
    assert p.checkpoint(STAMP, SIZE) is None  # all of it may be in flight
    p.wrote(0, IN_FLIGHT + 2 * M + 5)
    cp = p.checkpoint(STAMP, SIZE)
    assert cp is not None and cp.done == 2 * M and cp.layout() == LAYOUT
    assert p.checkpoint(STAMP, SIZE) is None
    assert p.kept == 2 * M


# -- the stored state -----------------------------------------------------------------------------


def test_a_state_round_trips_through_its_blob():
    s = state(5 * M, 12 * M, 0, LAYOUT[3][1])
    again = RangeState.from_blob(s.to_blob())
    assert again == s
    assert again.done == 5 * M + 12 * M + LAYOUT[3][1]
    assert json.loads(s.to_blob())["parallel"] == 1


@pytest.mark.parametrize(
    "blob",
    [
        None,
        b"",
        b"\x00binary",
        b'{"encrypted": 1, "header": ""}',  # an encrypted stream's state
        b'{"parallel": 1, "stamp": "x", "size": 10}',
        b'{"parallel": 1, "stamp": "x", "size": 10, "ranges": []}',
        b'{"parallel": 1, "stamp": "x", "size": 10, "ranges": [[0, 10, 11]]}',  # past its end
        b'{"parallel": 1, "stamp": "x", "size": 10, "ranges": [[0, 9, 0]]}',  # short of the file
        b'{"parallel": 1, "stamp": "x", "size": 20, "ranges": [[0, 10, 0], [10, 10, 0]]}',
    ],
)
def test_a_blob_that_is_not_a_range_state_is_none(blob):
    assert RangeState.from_blob(blob) is None  # the last: a range off a block boundary


def test_a_blocks_start_is_where_dd_can_seek_and_a_finished_range_is_skipped():
    s = state(5 * M + 77, 12 * M, 0, LAYOUT[3][1])
    assert s.starts() == [5 * M, 12 * M, 0, LAYOUT[3][1]]


def test_the_prefix_is_what_a_stream_can_continue():
    assert state(12 * M, 3 * M, 9 * M, 0).prefix() == 15 * M
    assert state(5 * M, 12 * M, 0, 0).prefix() == 5 * M
    assert state(0, 12 * M, 0, 0).prefix() == 0
    assert state(12 * M, 12 * M, 12 * M, LAYOUT[3][1]).prefix() == SIZE


# -- what is safe to continue ---------------------------------------------------------------------


def test_only_the_same_source_is_continued():
    s = state(5 * M, 0, 0, 0)
    assert source_problem(s, STAMP, SIZE, "sha256") is None
    touched = STAMP.replace("10:00:00", "10:00:01")
    assert source_problem(s, touched, SIZE, "sha256") == parresume.CHANGED
    assert source_problem(s, STAMP, SIZE + 1, "sha256") == parresume.CHANGED
    assert source_problem(s, None, SIZE, "sha256") == parresume.NO_STAMP
    unstamped = RangeState("", SIZE, s.ranges)
    assert source_problem(unstamped, STAMP, SIZE, "sha256") == parresume.NO_STAMP
    assert source_problem(None, STAMP, SIZE, "sha256") == parresume.NOT_RANGES


def test_nothing_is_continued_without_a_digest_to_guard_it():
    assert source_problem(state(5 * M, 0, 0, 0), STAMP, SIZE, "none") == parresume.NO_DIGEST


def test_only_a_part_file_at_the_full_size_is_continued():
    assert part_problem(SIZE, SIZE) is None
    assert part_problem(None, SIZE) == parresume.NO_PART
    assert part_problem(0, SIZE) == parresume.NO_PART
    assert part_problem(5 * M, SIZE) == (
        f"the part file has {5 * M} bytes, not the source's {SIZE}; starting over"
    )
    assert part_problem(0, 0) is None


def test_ranges_continue_from_the_lowest_count_of_the_destinations():
    a = state(5 * M, 12 * M, 2 * M + 9, 0)
    b = state(7 * M, 3 * M, 0, LAYOUT[3][1])
    plan = plan_ranges(LAYOUT, [a, b])
    assert plan.starts == (5 * M, 3 * M, 0, 0)
    assert plan.continued == 8 * M
    assert plan.pieces() == [
        (0, 5 * M, 7 * M),
        (1, 15 * M, 9 * M),
        (2, 24 * M, 12 * M),
        (3, 36 * M, LAYOUT[3][1]),
    ]


def test_a_finished_range_is_not_sent_again():
    plan = plan_ranges(LAYOUT, [state(12 * M, 12 * M, 4 * M, LAYOUT[3][1])])
    assert [i for i, _, _ in plan.pieces()] == [2]


def test_one_destination_that_starts_over_starts_them_all_over():
    other = tuple(split_ranges(SIZE, 8))
    assert plan_ranges(other, [state(5 * M, 0, 0, 0), None]) == RangePlan(other, (0,) * 8)
    assert plan_ranges(other, []).starts == (0,) * 8
    mixed = RangeState(STAMP, SIZE, tuple((o, n, 0) for o, n in other))
    assert plan_ranges(LAYOUT, [state(5 * M, 0, 0, 0), mixed]).continued == 0


def test_an_empty_file_still_sends_its_one_range():
    plan = plan_ranges(split_ranges(0, 4), [None])
    assert plan.pieces() == [(0, 0, 0)]
