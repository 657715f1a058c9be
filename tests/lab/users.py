"""Throwaway system users: one whose only way in is a password, one that logs in with the lab key.

Both have ``/bin/sh`` as login shell, so a remote command starts without any shell profile:
the cheapest a command can be (root's ``.bashrc`` on these machines costs ~0.3 s per command).
"""

from __future__ import annotations

import os
import pwd
import secrets
import time
from pathlib import Path

from .system import LabError, is_stale, run

_RETRIES = 10
"""useradd and friends fail rather than wait when another one holds /etc/passwd's lock."""


def _run_locked(argv: list[str], input: str | None = None) -> None:
    for attempt in range(_RETRIES):
        result = run(argv, input=input, check=False)
        if result.returncode == 0:
            return
        if "lock" not in result.stderr.lower() or attempt == _RETRIES - 1:
            raise LabError(f"{' '.join(argv[:1])} failed: {result.stderr.strip()}")
        time.sleep(0.1 * (attempt + 1))


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class PasswordUser:
    """Create ``name`` (unless it exists) with a fresh random password; remove it on close."""

    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        self.home = home
        self.password: str | None = secrets.token_urlsafe(18)
        self.created = False

    def create(self) -> PasswordUser:
        if not user_exists(self.name):
            _run_locked(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    str(self.home),
                    "--shell",
                    "/bin/sh",
                    "--comment",
                    "DifPipe test lab",
                    self.name,
                ]
            )
            self.created = True
        entry = pwd.getpwnam(self.name)
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(self.home, entry.pw_uid, entry.pw_gid)
        if self.password is not None:
            _run_locked(["chpasswd"], input=f"{self.name}:{self.password}\n")
        return self

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid

    @property
    def gid(self) -> int:
        return pwd.getpwnam(self.name).pw_gid

    def remove(self) -> None:
        if self.created and user_exists(self.name):
            _run_locked(["userdel", self.name])
        self.created = False


class KeyUser(PasswordUser):
    """A user without a password (locked): the lab's sshd lets it in with the lab client key."""

    def __init__(self, name: str, home: Path) -> None:
        super().__init__(name, home)
        self.password = None

    def create(self) -> KeyUser:
        super().create()
        # "*": no password can match, but the account is not locked ("!"), which sshd without
        # PAM would refuse even with a valid key
        _run_locked(["usermod", "-p", "*", self.name])
        return self


def remove_stale_users() -> list[str]:
    """Delete users named by the lab's scheme whose creating process is gone."""
    removed = []
    for entry in pwd.getpwall():
        if is_stale(entry.pw_name, "user"):
            _run_locked(["userdel", entry.pw_name])
            removed.append(entry.pw_name)
    return removed
