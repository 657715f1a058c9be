"""The installed console in a real terminal (tmux): a transfer between two lab hosts, typed in.

The program runs the way a person starts it, ``difpipe --config CFG`` with a private
``DIFPIPE_HOME`` and ``HOME`` (tests/e2e/runner.py), at 120x40 and at 80x24. Keys go in through
tmux, the screen's text comes back; the file must land on the destination host byte for byte.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.e2e.runner import DIFPIPE, Difpipe
from tests.e2e.tmux import TMUX, Terminal

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")

MiB = 1024 * 1024


@pytest.fixture
def dirs(lab):
    with lab.scratch_dirs("tmux", ("edge", "cloud")) as made:
        yield made


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


def _colours(styled: str) -> list[tuple[str, tuple[int, ...]]]:
    """Every colour an SGR sequence sets: ("fg" | "bg", its numbers)."""
    found = []
    for params in re.findall(r"\x1b\[([0-9;]*)m", styled):
        codes = [int(c) for c in params.split(";") if c] or [0]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code in (38, 48):
                size = 3 if codes[i + 1] == 5 else 5
                found.append(("fg" if code == 38 else "bg", tuple(codes[i + 1 : i + size])))
                i += size
                continue
            if 30 <= code <= 37 or 90 <= code <= 97:
                found.append(("fg", (code,)))
            elif 40 <= code <= 47 or 100 <= code <= 107:
                found.append(("bg", (code,)))
            i += 1
    return found


def _grey(colour: tuple[int, ...]) -> bool:
    if colour[0] == 5:  # 256 colours: black, white, the grey ramp
        return colour[1] in (0, 7, 8, 15, 16, 231) or 232 <= colour[1] <= 255
    if colour[0] == 2:
        return colour[1] == colour[2] == colour[3]
    return colour[0] in (30, 37, 90, 97, 40, 47, 100, 107)


@pytest.mark.parametrize(
    ("term", "no_color"),
    [("xterm-256color", "1"), ("xterm-16color", None)],
    ids=["NO_COLOR", "16-colours"],
)
def test_no_color_is_grey_only_and_16_colours_use_the_basic_palette(tmp_path, term, no_color):
    config = tmp_path / "difpipe.toml"
    config.write_text('[hosts.edge]\naddress = "192.0.2.10"\n')
    dp = Difpipe(tmp_path / "home", config)
    overrides = {"COLUMNS": None, "LINES": None, "COLORTERM": None, "NO_COLOR": no_color}
    env = dp.environment({**overrides, "TERM": term})
    with Terminal([str(DIFPIPE), "--config", str(config)], env=env, cwd=dp.home) as term_:
        term_.wait_for(lambda s: "Hosts ·" in s and "Quit" in s)
        colours = _colours(term_.styled_screen())
    assert colours  # the console is drawn with styles, not as bare text
    if no_color:
        assert [c for _, c in colours if not _grey(c)] == []
    else:
        assert [c for _, c in colours if c[0] in (2, 5)] == []  # no 256 or 24-bit colours
