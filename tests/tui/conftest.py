"""Fixtures of the console tests: a real engine bridge over files in a temporary home, fixed
seeded data for snapshots (fixed data and helpers: tests/tui/helpers.py).

- ``home``: an empty DifPipe home (``difpipe.toml`` + ``state/``); ``write_config(text)``.
- ``make_bridge(config=None)``: a started :class:`EngineBridge` on ``home``, closed after.
- ``seeded_bridge``: three hosts, a store holding two of their last checks at fixed times.
- ``seeded_app``: the console over ``seeded_bridge`` with constant sysinfo numbers.
- ``lab_home`` / ``lab_app``: a home (and the console) whose config holds the sshd lab's edge,
  cloud and storage hosts; ``dirs``: a fresh directory under each of their roots, removed after.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from difpipe_tui.app import DifpipeApp, build_app
from difpipe_tui.bridge import EngineBridge
from difpipe_tui.core.store import Store
from tests.tui.helpers import FIXED_SYS, SEEDED_CONFIG, T0


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Times in UTC, no animations, no NO_COLOR from the caller, nothing read from $HOME."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("DIFPIPE_CONFIG", raising=False)
    monkeypatch.setenv("DIFPIPE_HOME", str(tmp_path / "unused-home"))
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    (path / "state").mkdir(parents=True)
    return path


@pytest.fixture
def write_config(home: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        target = home / "difpipe.toml"
        target.write_text(text)
        return target

    return write


@pytest.fixture
def make_bridge(home: Path) -> Iterator[Callable[..., EngineBridge]]:
    made: list[EngineBridge] = []

    def make(config: str | Path | None = None) -> EngineBridge:
        bridge = EngineBridge(config, home=home)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.close()


@pytest.fixture
def seeded_bridge(home: Path, write_config, make_bridge) -> EngineBridge:
    write_config(SEEDED_CONFIG)
    with Store.open(home / "state" / "state.db") as store:
        store.record_host_status("edge-pi", reachable=True, latency_ms=3.2, checked_at=T0 - 60)
        store.record_host_status(
            "backup", reachable=False, error="backup: timed out", checked_at=T0 - 30
        )
    return make_bridge()


@pytest.fixture
def seeded_app(seeded_bridge: EngineBridge) -> DifpipeApp:
    return build_app(bridge=seeded_bridge, sysinfo=FIXED_SYS)


@pytest.fixture
def dirs(lab):
    """A fresh directory under the edge, cloud and storage hosts' roots, removed afterwards."""
    with lab.scratch_dirs("tui", ("edge", "cloud", "storage")) as made:
        yield made


@pytest.fixture
def lab_home(lab, home):
    lab.write_config(home / "difpipe.toml", ["edge", "cloud", "storage"])
    return home


@pytest.fixture
def lab_app(lab_home, make_bridge):
    return build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)
