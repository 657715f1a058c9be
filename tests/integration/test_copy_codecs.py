"""Real copies with each digest and codec, and where the compression runs, on the sshd lab.

``--verify blake2b`` gives the digest ``b2sum`` prints; ``--compress lz4`` and ``--compress
zstd --level 9`` land identical bytes; a source host without zstd/lz4 on its PATH (the lab
hides them with :meth:`Lab.without_tools`) makes this machine compress. The kernel's byte
counters of the hosts' links show which links carried compressed bytes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from difpipe_tui.core.transfer.codecs import get_codec
from difpipe_tui.core.transfer.job import CopyJob
from tests.integration.test_copy import MiB, log_file, random_file


@pytest.fixture
def workdirs(lab):
    with lab.scratch_dirs("codec", ("edge", "cloud", "storage")) as made:
        yield made


def b2sum(path: Path) -> str:
    return subprocess.run(["b2sum", str(path)], capture_output=True, text=True, check=True).stdout[
        :128
    ]


async def test_blake2b_remote_to_remote_and_local_to_remote(h, workdirs, tmp_path):
    src = random_file(workdirs["edge"] / "b.bin", 5 * MiB + 17)
    relayed = await h.copy(
        source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",), verify="blake2b"
    )
    assert relayed.status == "done", relayed
    assert relayed.verify == "blake2b"
    assert relayed.destinations[0].digest == relayed.digest == b2sum(src)
    assert (workdirs["cloud"] / "b.bin").read_bytes() == src.read_bytes()

    local = random_file(tmp_path / "up.bin", 3 * MiB + 1)
    uploaded = await h.copy(
        source=str(local), destinations=(f"storage:{workdirs['storage']}/",), verify="blake2b"
    )
    assert uploaded.status == "done", uploaded
    assert uploaded.destinations[0].digest == b2sum(local)
    assert (workdirs["storage"] / "up.bin").read_bytes() == local.read_bytes()


@pytest.mark.parametrize(("codec", "level"), [("lz4", None), ("zstd", 9)])
async def test_remote_codecs_land_identical_bytes(h, workdirs, codec, level):
    src = log_file(workdirs["edge"] / "app.log")
    job = dict(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/",),
        compress=codec,
        level=level,
    )
    async with h.pool() as pool:
        plan = await h.engine(pool).analyze(CopyJob(**job))
    assert (plan.codec.codec, plan.codec.where) == (codec, "remote")
    if level is not None:
        assert plan.codec.level == level
        assert f"-{level}" in get_codec(codec).compress_argv(plan.codec.level)
    result = await h.copy(**job)
    assert result.status == "done", result
    assert result.codec == codec and f"both ends have {codec}" in result.codec_reason
    assert (workdirs["cloud"] / "app.log").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
async def test_a_source_without_the_tool_is_compressed_by_this_machine(lab, h, workdirs, codec):
    src = log_file(workdirs["edge"] / "app.log")
    with lab.without_tools("edge", ["zstd", "lz4"]):
        async with h.pool() as pool:
            tools = (await pool.info("edge")).tools
        assert "zstd" not in tools and "lz4" not in tools and "cat" in tools
        result = await h.copy(
            source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",), compress=codec
        )
    assert result.status == "done", result
    assert result.codec == codec
    assert f"the source has no {codec}, so this machine compresses" in result.codec_reason
    assert (workdirs["cloud"] / "app.log").read_bytes() == src.read_bytes()


def moved(lab, before: dict[str, tuple[int, int]], name: str, way: int) -> int:
    """Bytes received (way 0) or sent (way 1) on ``name``'s link since ``before``."""
    return lab.link_bytes(name)[way] - before[name][way]


@pytest.mark.netns
async def test_the_links_carry_compressed_bytes(lab, h, workdirs):
    """Which links carried compressed bytes, measured by the kernel's counters of every byte
    that crossed each host's veth (SSH framing and all), not by anything DifPipe reports.

    The same 7.7 MB log goes edge → cloud three ways (zstd made ~180 kB of it here).
    Uncompressed, each link carries at least the file's size: the counters see the stream.
    With zstd on both hosts, both links carry under a quarter of it. With zstd hidden from
    edge, edge's link carries the whole file and cloud's under a quarter: this machine
    compressed in between. A copy that sent raw bytes cannot stay under a quarter of the
    file's size on a link, so the test cannot pass unless that link's bytes were compressed.
    """
    src = log_file(workdirs["edge"] / "app.log")
    size = src.stat().st_size
    target = workdirs["cloud"] / "app.log"

    async def carried(compress: str) -> tuple[int, int]:
        """(bytes edge sent, bytes cloud received) during one copy."""
        target.unlink(missing_ok=True)
        before = {name: lab.link_bytes(name) for name in ("edge", "cloud")}
        result = await h.copy(
            source=f"edge:{src}", destinations=(f"cloud:{workdirs['cloud']}/",), compress=compress
        )
        assert result.status == "done", result
        assert target.read_bytes() == src.read_bytes()
        return moved(lab, before, "edge", 1), moved(lab, before, "cloud", 0)

    raw_out, raw_in = await carried("none")
    assert raw_out >= size and raw_in >= size
    out, into = await carried("zstd")
    assert out < size / 4 and into < size / 4, (out, into, size)
    with lab.without_tools("edge", ["zstd", "lz4"]):
        out, into = await carried("zstd")
    assert out >= size and into < size / 4, (out, into, size)
