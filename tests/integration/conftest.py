"""The copy harness of the engine's integration tests (once for each transport), and tmpfs
mounts on lab hosts (a small disk to fill). ``workdirs`` comes from each test module."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
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


@contextlib.contextmanager
def host_tmpfs(lab, name: str, directory: Path, size: str) -> Iterator[tuple[Path, Path]]:
    """A tmpfs of ``size`` at ``directory`` on lab host ``name``, mounted where its sshd sees
    it (its own mount namespace under ``ip netns exec``); yields (path on the host, the same
    path as seen from here). Enter it after anything that restarts that host's sshd."""
    directory.mkdir()
    host = lab.hosts[name]
    enter = ["nsenter", "-t", str(host.pid), "-m"] if host.namespace else []
    subprocess.run(
        [*enter, "mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        check=True,
    )
    try:
        yield directory, Path(f"/proc/{host.pid}/root{directory}") if host.namespace else directory
    finally:
        subprocess.run([*enter, "umount", "-l", str(directory)], check=False)


def tiny_tmpfs(lab, directory: Path) -> contextlib.AbstractContextManager[tuple[Path, Path]]:
    """A 1 MiB tmpfs at ``directory`` on cloud (:func:`host_tmpfs`): a disk that fills."""
    return host_tmpfs(lab, "cloud", directory, "1m")


@pytest.fixture
def small_tmpfs(lab, workdirs):
    """:func:`tiny_tmpfs` at ``tiny`` in cloud's work directory."""
    with tiny_tmpfs(lab, workdirs["cloud"] / "tiny") as made:
        yield made
