import asyncio
import threading

import pytest

from difpipe_tui.core.errors import (
    EXIT_CODE_DOC,
    AuthError,
    ConfigError,
    DifpipeError,
    ExitCode,
    NetworkError,
)
from difpipe_tui.core.events import ConnectionLost, ConnectionOpened, EventBus


def test_every_exit_code_is_documented_and_distinct():
    assert set(EXIT_CODE_DOC) == set(ExitCode)
    assert len({int(c) for c in ExitCode}) == len(ExitCode)


def test_error_classes_have_distinct_codes():
    classes = [c for c in DifpipeError.__subclasses__()]
    codes = [c.exit_code for c in classes]
    assert len(codes) == len(set(codes))


def test_message_is_one_line_and_names_host():
    err = AuthError("authentication failed\nas root", host="edge", hint="check the key")
    assert str(err) == "edge: authentication failed as root (check the key)"
    assert "\n" not in str(err)
    assert err.to_dict()["exit_code"] == ExitCode.AUTH


def test_retryable_only_for_network():
    assert NetworkError("x").retryable
    assert not ConfigError("x").retryable


def test_bus_delivers_to_callbacks_and_survives_bad_subscriber():
    bus = EventBus()
    got = []

    def bad(_):
        raise RuntimeError("boom")

    bus.subscribe(bad)
    unsubscribe = bus.subscribe(got.append)
    bus.publish(ConnectionOpened(host_name="a"))
    unsubscribe()
    bus.publish(ConnectionOpened(host_name="b"))
    assert [e.host for e in got] == ["a"]


async def test_bus_queue_drops_oldest_and_never_blocks():
    bus = EventBus()
    q = bus.queue(maxsize=3)
    for i in range(10):
        bus.publish(ConnectionLost(host_name=f"h{i}"))
    assert q.qsize() == 3
    assert [q.get_nowait().host for _ in range(3)] == ["h7", "h8", "h9"]
    assert bus.dropped == 7


async def test_bus_publish_from_another_thread():
    bus = EventBus()
    q = bus.queue()
    t = threading.Thread(target=bus.publish, args=(ConnectionOpened(host_name="x"),))
    t.start()
    t.join()
    event = await asyncio.wait_for(q.get(), 2)
    assert event.to_dict()["kind"] == "connection.opened"


def test_event_to_dict_has_kind_and_ts():
    d = ConnectionOpened(host_name="a", via=("b",)).to_dict()
    assert d["kind"] == "connection.opened" and d["host_name"] == "a" and d["ts"] > 0


@pytest.mark.parametrize("code", list(ExitCode))
def test_exit_codes_fit_a_process_status(code):
    assert 0 <= int(code) <= 255
