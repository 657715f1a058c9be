"""The remote tar source's command line, run here by ``sh`` as a host would run it."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import subprocess
import tarfile

import pytest

from difpipe_tui.core.transfer.ends import FAIL_MARK
from difpipe_tui.core.transfer.tarstream import LocalTarSink, RemoteTarSource

TAR = shutil.which("tar")
pytestmark = pytest.mark.skipif(TAR is None, reason="needs tar")


def run_source(tree, env_path: str) -> subprocess.CompletedProcess[bytes]:
    line = RemoteTarSource(None, "host", str(tree)).command_line()
    return subprocess.run(
        ["sh", "-c", line], capture_output=True, env={**os.environ, "PATH": env_path}
    )


def members(stream: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(stream)) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "my tree"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(3000))
    return root


def test_tar_writes_128_kib_records_where_it_can(tree):
    out = run_source(tree, os.environ["PATH"])
    assert out.returncode == 0 and FAIL_MARK.encode() not in out.stderr
    assert len(out.stdout) % (128 * 1024) == 0  # the default record is 10 KiB
    assert members(out.stdout) == {
        "./a.txt": b"alpha\n",
        "./sub/b.bin": (tree / "sub" / "b.bin").read_bytes(),
    }


def test_a_tar_without_the_record_option_streams_with_its_own(tree, tmp_path):
    """A BusyBox-like tar that refuses ``-b``: the stream still comes, in its own records."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tar"
    fake.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = -b ] && { echo "tar: invalid option -- b" >&2; exit 1; }; '
        "done\n"
        f'exec {TAR} "$@"\n'
    )
    fake.chmod(0o755)
    out = run_source(tree, f"{bin_dir}:{os.environ['PATH']}")
    assert out.returncode == 0 and out.stderr == b""
    assert len(out.stdout) % (128 * 1024) != 0
    assert set(members(out.stdout)) == {"./a.txt", "./sub/b.bin"}


async def test_a_local_destination_reads_the_last_records_padding(tree, tmp_path):
    """tar stops reading at the end-of-archive blocks; the rest of a 128 KiB record (zeros)
    must not fail the copy with a closed pipe."""
    stream = subprocess.run(
        [TAR, "-C", str(tree), "-b", "256", "-cf", "-", "."], capture_output=True, check=True
    ).stdout
    assert len(stream) == 128 * 1024  # mostly padding: more than a pipe holds
    sink = LocalTarSink(str(tmp_path / "landed"), algo="sha256")
    await sink.prepare(0)
    await sink.open()
    for i in range(0, len(stream), 8192):  # as a remote stream comes: a piece at a time
        await sink.write(stream[i : i + 8192])
        await asyncio.sleep(0.001)
    assert await sink.finish() == hashlib.sha256(stream).hexdigest()
    await sink.land(overwrite=False)
    assert (tmp_path / "landed" / "a.txt").read_bytes() == b"alpha\n"
