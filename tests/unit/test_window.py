"""Receive windows sized to the link: the default on a LAN, a share of WINDOW_MAX far away."""

from __future__ import annotations

from difpipe_tui.core.ssh import DEFAULT_WINDOW, MIN_WINDOW, WINDOW_MAX, WINDOW_RATE, window_for


def test_unknown_or_short_round_trips_keep_the_default():
    assert window_for(None) == DEFAULT_WINDOW
    assert window_for(0.3) == DEFAULT_WINDOW
    assert window_for(10.0) == DEFAULT_WINDOW  # 1.6 MB of bandwidth-delay product


def test_a_long_round_trip_opens_the_window_up_to_the_cap():
    assert window_for(100.0) == WINDOW_RATE // 10
    assert window_for(100.0) > DEFAULT_WINDOW
    assert window_for(250.0) == WINDOW_MAX
    assert window_for(5000.0) == WINDOW_MAX


def test_channels_of_one_transfer_share_the_window():
    assert window_for(100.0, streams=4) == WINDOW_RATE // 10 // 4
    assert window_for(250.0, streams=4) == WINDOW_MAX // 4
    assert window_for(100.0, streams=16) == WINDOW_RATE // 10 // 16
    assert window_for(100.0, streams=0) == window_for(100.0)


def test_channels_on_a_lan_share_the_default_down_to_a_floor():
    """Eight ranges from a near host hold the default window between them, not each."""
    assert window_for(0.3, streams=8) == DEFAULT_WINDOW // 8
    assert window_for(None, streams=4) == DEFAULT_WINDOW // 4
    assert window_for(0.3, streams=64) == MIN_WINDOW
