"""Drive a program in a real terminal: a private tmux server, keys in, the screen's text out.

Each :class:`Terminal` runs its own tmux server (``tmux -L NAME``), so tests never touch the
tmux sessions of the person running them, and the server dies with the terminal. The pane stays
after the program exits (``remain-on-exit``), so a crash leaves its traceback to read.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

TMUX = shutil.which("tmux")


class Terminal:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | os.PathLike[str] | None = None,
        width: int = 120,
        height: int = 40,
    ) -> None:
        if TMUX is None:
            raise RuntimeError("tmux is not installed (scripts/install-test-deps installs it)")
        self.socket = f"difpipe-test-{uuid.uuid4().hex[:10]}"
        self.width, self.height = width, height
        env = {"TERM": "xterm-256color", **env}
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = f"exec env -i {exports} {shlex.join(map(str, argv))}"
        self._tmux(
            "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
            *(["-c", str(cwd)] if cwd else []), line,
        )  # fmt: skip
        self._tmux("set-option", "-t", "t", "remain-on-exit", "on")

    def _tmux(self, *args: str) -> str:
        assert TMUX is not None
        result = subprocess.run(
            [TMUX, "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def screen(self) -> str:
        """The visible text of the pane, one line per row."""
        return self._tmux("capture-pane", "-p", "-t", "t")

    def scrollback(self, lines: int = 2000) -> str:
        """The pane's text with up to ``lines`` lines of history above it."""
        return self._tmux("capture-pane", "-p", "-S", f"-{lines}", "-t", "t")

    def styled_screen(self) -> str:
        """The pane with its SGR escape sequences (colours, bold, reverse), one line per row."""
        return self._tmux("capture-pane", "-e", "-p", "-t", "t")

    def press(self, *keys: str) -> None:
        """Send keys by tmux name (``Enter``, ``Escape``, ``Down``, ``C-p``) or as literal text."""
        for key in keys:
            self._tmux("send-keys", "-t", "t", key)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "t", "-l", text)

    def dead(self) -> bool:
        """True once the program in the pane has exited."""
        return self._tmux("display-message", "-p", "-t", "t", "#{pane_dead}").strip() == "1"

    def wait_for(
        self,
        condition: str | Callable[[str], bool],
        timeout: float = 20.0,
        interval: float = 0.1,
    ) -> str:
        """Wait until the screen contains ``condition`` (or satisfies it); returns the screen."""
        check = condition if callable(condition) else (lambda text: condition in text)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if check(text):
                return text
            if self.dead():  # its last output may have landed after the capture above
                text = self.screen()
                if check(text):
                    return text
                break
            time.sleep(interval)
        what = condition if isinstance(condition, str) else "the condition"
        raise AssertionError(f"{what!r} not on screen after {timeout:.0f}s:\n{text}")

    def close(self) -> None:
        subprocess.run(
            [TMUX or "tmux", "-L", self.socket, "kill-server"],
            capture_output=True,
            timeout=10,
            check=False,
        )

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
