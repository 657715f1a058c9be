"""Real OpenSSH ``sshd`` processes with lab-owned configuration."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .system import SSHD, LabError, descendants, is_root, kill_all, run, tail


@functools.cache
def sshd_version() -> tuple[int, int]:
    """The OpenSSH version of the installed sshd, e.g. ``(9, 2)``."""
    result = run([SSHD, "-V"], check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stderr + result.stdout)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _quote(path: Path | str) -> str:
    return '"' + str(path) + '"'


@dataclass(frozen=True)
class SshdConfig:
    listen_address: str
    port: int
    host_key: Path
    pid_file: Path
    authorized_keys: Path
    """A directory: ``authorized_keys/<user>`` holds the keys accepted for that user."""
    max_sessions: int | None = 100
    """Channels per connection; None leaves sshd's default (10). Tests open many at once."""
    path: str | None = None
    """The PATH of every session (sshd's ``SetEnv``, which wins over its default PATH);
    None leaves sshd's default."""
    env: tuple[tuple[str, str], ...] = ()
    """More variables of every session (``SetEnv``)."""
    home: Path | None = None
    """The HOME of every session, the host's own: bash, the login shell of the user running
    the tests, sources ``~/.bashrc`` for each command run over ssh, and that user's (root's
    ``pyenv init`` on these machines) cost ~0.15 s a command. None leaves the user's home."""

    def render(self) -> str:
        lines = [
            f"ListenAddress {self.listen_address}",
            f"Port {self.port}",
            f"HostKey {_quote(self.host_key)}",
            f"PidFile {_quote(self.pid_file)}",
            f"AuthorizedKeysFile {_quote(self.authorized_keys / '%u')}",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin yes",
            "PubkeyAuthentication yes",
            "PasswordAuthentication yes",
            "PermitEmptyPasswords no",
            "KbdInteractiveAuthentication no",
            "AllowTcpForwarding yes",
            "X11Forwarding no",
            "PrintMotd no",
            "UseDNS no",
            "LogLevel VERBOSE",
            # Tests open many connections at once; the default (10:30:100) refuses some.
            "MaxStartups 100",
            # A client behind a cut link is dropped after ~6 s of silence, not when TCP gives
            # up (a quarter of an hour), so its sessions do not linger on the host.
            "ClientAliveInterval 2",
            "ClientAliveCountMax 3",
            "Subsystem sftp internal-sftp",
        ]
        if self.max_sessions is not None:
            lines.append(f"MaxSessions {self.max_sessions}")
        env = [("PATH", self.path)] if self.path is not None else []
        env += [("HOME", str(self.home))] if self.home is not None else []
        env += list(self.env)
        if env:  # one line: sshd takes the first SetEnv it reads
            lines.append("SetEnv " + " ".join(_quote(f"{k}={v}") for k, v in env))
        if sshd_version() >= (9, 8):
            # Newer sshd throttles source addresses after failed logins, which tests provoke.
            lines.append("PerSourcePenalties no")
        return "\n".join(lines) + "\n"


class Sshd:
    """One ``sshd -D`` process, optionally inside a network namespace."""

    def __init__(
        self,
        name: str,
        config: SshdConfig,
        config_path: Path,
        log_path: Path,
        namespace: str | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.config_path = config_path
        self.log_path = log_path
        self.namespace = namespace
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        """Launch sshd; call :meth:`wait_ready` before connecting."""
        self.config_path.write_text(self.config.render())
        self.config.pid_file.unlink(missing_ok=True)
        argv = [SSHD, "-D", "-e", "-f", str(self.config_path), "-E", str(self.log_path)]
        if self.namespace:
            argv = ["ip", "netns", "exec", self.namespace, *argv]
        with self.log_path.open("ab") as log:
            # A session of its own: Ctrl-C in the terminal reaches pytest, which tears down.
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    def wait_ready(self, deadline: float) -> None:
        """Wait until sshd has bound its socket, which it signals by writing its PidFile."""
        assert self.process is not None
        while True:
            if self.config.pid_file.exists() and self.config.pid_file.read_text().strip():
                return
            if self.process.poll() is not None:
                raise LabError(
                    f"sshd for {self.name} exited with {self.process.returncode}:\n"
                    f"{tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise LabError(f"sshd for {self.name} did not start:\n{tail(self.log_path)}")
            time.sleep(0.005)

    def stop(self) -> None:
        """Kill sshd and every session it spawned (each connection runs in its own session)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            kill_all([*descendants(self.process.pid), self.process.pid])
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.config.pid_file.unlink(missing_ok=True)


def ensure_privsep_dir() -> None:
    """sshd running as root refuses to start without its privilege separation directory."""
    if is_root():
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
