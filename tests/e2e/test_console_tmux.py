"""The installed console in a real terminal (tmux): a transfer between two lab hosts, typed in.

The program runs the way a person starts it, ``difpipe --config CFG`` with a private
``DIFPIPE_HOME`` and ``HOME`` (tests/e2e/runner.py), at 120x40 and at 80x24. Keys go in through
tmux, the screen's text comes back; the file must land on the destination host byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.runner import DIFPIPE, Difpipe
from tests.e2e.tmux import TMUX, Terminal

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")

MiB = 1024 * 1024


@pytest.fixture
def dirs(lab):
    tag = uuid.uuid4().hex[:8]
    made = {}
    for name in ("edge", "cloud"):
        d = Path(lab.hosts[name].root) / f"tmux-{tag}"
        d.mkdir(parents=True)
        made[name] = d
    yield made
    for d in made.values():
        subprocess.run(["rm", "-rf", str(d)], check=False)


def show(term: Terminal, key: str, text: str, tries: int = 5) -> str:
    """Press ``key`` until ``text`` is on screen (keys typed while the console starts up are
    not all read)."""
    for _ in range(tries - 1):
        term.press(key)
        try:
            return term.wait_for(text, timeout=3)
        except AssertionError:
            continue
    term.press(key)
    return term.wait_for(text, timeout=5)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_transfer_typed_into_the_console_lands(tmp_path, lab_config, dirs, size):
    src = dirs["edge"] / "typed.bin"
    src.write_bytes(os.urandom(3 * MiB + 5))
    dp = Difpipe(tmp_path / "home", lab_config)
    argv = [str(DIFPIPE), "--config", str(lab_config)]
    width, height = size
    env = dp.environment({"COLUMNS": None, "LINES": None})  # the terminal's own size
    with Terminal(argv, env=env, cwd=dp.home, width=width, height=height) as term:
        term.wait_for("palette", timeout=30)
        show(term, "t", "— Transfers ·")
        show(term, "n", "New transfer")
        term.type(str(src))  # the source path has the focus; the source host is edge
        term.wait_for(src.name)
        for _ in range(2):  # past the destination's host picker (cloud) to its path
            term.press("Tab")
            time.sleep(0.3)
        term.type(f"{dirs['cloud']}/")
        term.wait_for(f"{dirs['cloud'].name}/")
        term.press("C-r")
        screen = term.wait_for("─ ready ─", timeout=30)  # the plan's verdict, scrolled into view
        assert "strategy" in screen and "problem" not in screen, screen
        term.press("C-s")
        screen = term.wait_for(lambda text: "DONE" in text and "New transfer" not in text, 60)
        assert "1 running" not in screen
        landed = dirs["cloud"] / "typed.bin"
        assert landed.read_bytes() == src.read_bytes()
        term.press("q")
        deadline = time.monotonic() + 15
        while not term.dead() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert term.dead(), term.screen()
        assert "Traceback" not in term.screen()
