"""A real ``ssh-agent`` holding the lab's client key."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

from .system import LabError, run


class SshAgent:
    """``ssh-agent -D -a SOCKET``; the socket is only handed out, never exported to os.environ."""

    def __init__(self, socket_path: Path) -> None:
        self.socket = socket_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> SshAgent:
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            ["ssh-agent", "-D", "-a", str(self.socket)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.process.poll() is not None:
                assert self.process.stderr is not None
                message = self.process.stderr.read().decode(errors="replace").strip()
                raise LabError(f"ssh-agent exited with {self.process.returncode}: {message}")
            if time.monotonic() > deadline:
                self.close()
                raise LabError("ssh-agent did not create its socket")
            time.sleep(0.005)
        return self

    def env(self) -> dict[str, str]:
        """A copy of os.environ pointing SSH clients at this agent, for one subprocess."""
        return {**os.environ, "SSH_AUTH_SOCK": str(self.socket)}

    def add(self, private_key: Path) -> None:
        run(["ssh-add", "-q", str(private_key)], env=self.env())

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None
        self.socket.unlink(missing_ok=True)
