"""The copy harness of the engine's integration tests (once for each transport), and a small
disk to fill. ``workdirs`` comes from each test module."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.test_copy import TRANSPORTS, Harness


@pytest.fixture(params=TRANSPORTS)
def h(lab, tmp_path, request):
    """A :class:`Harness` (config, pool, store, engine) over the lab, with asyncssh or OpenSSH
    legs; at the end no ssh process or private OpenSSH directory of its engine is left."""
    harness = Harness(lab, tmp_path, request.param)
    yield harness
    harness.check_nothing_left()
    harness.store.close()


@pytest.fixture
def small_tmpfs(lab, workdirs):
    """A 1 MiB tmpfs on cloud, mounted where cloud's sshd sees it (its own mount namespace
    under ``ip netns exec``); yields (path on the host, the same path as seen from here)."""
    mnt = workdirs["cloud"] / "tiny"
    mnt.mkdir()
    host = lab.hosts["cloud"]
    enter = ["nsenter", "-t", str(host.pid), "-m"] if host.namespace else []
    subprocess.run([*enter, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    seen = Path(f"/proc/{host.pid}/root{mnt}") if host.namespace else mnt
    yield mnt, seen
    subprocess.run([*enter, "umount", "-l", str(mnt)], check=False)
