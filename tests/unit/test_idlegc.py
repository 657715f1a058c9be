"""IdleCollector: full collections only while nobody types, never later than AT_MOST."""

from __future__ import annotations

import gc

import pytest

from difpipe_tui import idlegc
from difpipe_tui.idlegc import AT_MOST, DUE, NEVER, QUIET, IdleCollector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def collections(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    done: list[float] = []
    monkeypatch.setattr(idlegc.gc, "collect", lambda *a: done.append(1) or 0)
    return done


def test_start_turns_automatic_full_collections_off_and_stop_restores_them():
    before = gc.get_threshold()
    collector = IdleCollector()
    collector.start()
    try:
        assert gc.get_threshold() == (*before[:2], NEVER)
    finally:
        collector.stop()
    assert gc.get_threshold() == before


def test_a_full_collection_waits_for_a_quiet_moment(collections):
    clock = Clock()
    collector = IdleCollector(clock)
    clock.now += DUE
    collector.input_seen()
    assert not collector.tick()  # due, but a key just came
    clock.now += QUIET
    assert collector.tick()
    assert collections == [1]
    clock.now += QUIET
    assert not collector.tick()  # quiet, but one just ran


def test_keys_that_never_stop_delay_it_at_most_AT_MOST(collections):
    clock = Clock()
    collector = IdleCollector(clock)
    while clock.now < 1000.0 + AT_MOST - 1:
        clock.now += 0.5
        collector.input_seen()
        assert not collector.tick()
    clock.now += 1
    collector.input_seen()
    assert collector.tick()
