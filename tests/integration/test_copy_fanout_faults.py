"""Fan-out copies with one failing destination, on the real-sshd lab.

Without ``--fail-fast`` the healthy destination lands and the copy is partial (exit 9); with it
the copy stops, nothing lands under its final name anywhere, and the exit code is the failure's.
Each way a destination can fail is tried: a problem the plan finds (a missing directory), a
remote command that fails mid-stream (a full disk), a digest mismatch at the end, and a link
cut mid-stream, which the stall timeout turns into a retryable error after a few seconds.

A full disk and a cut link fail inside a destination's stream, which is the transport's own
code (an asyncssh channel, or an ssh process and its pipes): those run over both transports.
A destination the plan rejects never opens a stream, a digest mismatch is found once every
stream has ended, and ``--parallel`` always moves its ranges over asyncssh: what happens then
is the runner's alone, so those run once, over asyncssh.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from difpipe_tui.cli_copy import exit_code_for
from difpipe_tui.core.config import load_config
from difpipe_tui.core.errors import ExitCode
from difpipe_tui.core.remote import command
from difpipe_tui.core.transfer.ends import PART_SUFFIX, RemoteSink
from tests.integration.test_copy import MiB, random_file, sha


@pytest.fixture
def workdirs(lab):
    with lab.scratch_dirs("fanout", ("edge", "cloud", "storage")) as made:
        yield made


_PLAIN_STREAM_LINE = RemoteSink.stream_line


def corrupt_on(monkeypatch, host: str) -> None:
    """``host``'s destination stream turns every NUL byte into 0x01 before it writes and
    hashes, so its copy fails verification at the end; other hosts write what they get."""

    def stream_line(self):
        line = _PLAIN_STREAM_LINE(self)
        return command("tr", "\\000", "\\001") + " | " + line if self.host == host else line

    monkeypatch.setattr(RemoteSink, "stream_line", stream_line)


def landed(workdirs, name: str) -> list[str]:
    """The destination hosts where ``name`` exists under its final name."""
    return [host for host in ("cloud", "storage") if (workdirs[host] / name).exists()]


def check_outcome(result, *, fail_fast: bool, bad: int, code: ExitCode, says: str, good_file):
    """The result of a two-destination fan-out whose destination ``bad`` failed with ``code``."""
    failed, good = result.destinations[bad], result.destinations[1 - bad]
    assert failed.status == "failed" and says in failed.error, result
    assert failed.exit_code == code
    if not fail_fast:
        assert result.status == "partial", result
        assert exit_code_for(result) == ExitCode.PARTIAL
        assert good.status == "done" and good_file.exists()
        return
    assert result.status == "failed", result
    assert exit_code_for(result) == code
    assert good.status == "failed" and "--fail-fast" in good.error
    assert good.error.startswith("stopped: ") and failed.destination in good.error
    assert good.exit_code == code
    assert not good_file.exists()


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # no stream is opened
@pytest.mark.parametrize("fail_fast", [False, True], ids=["go-on", "fail-fast"])
async def test_a_destination_the_plan_rejects(h, workdirs, fail_fast):
    src = random_file(workdirs["edge"] / "f.bin", MiB)
    result = await h.copy(
        source=f"edge:{src}",
        destinations=(f"storage:{workdirs['storage']}/", f"cloud:{workdirs['cloud']}/no/f.bin"),
        fail_fast=fail_fast,
    )
    good_file = workdirs["storage"] / "f.bin"
    check_outcome(
        result,
        fail_fast=fail_fast,
        bad=1,
        code=ExitCode.REMOTE,
        says="no such directory",
        good_file=good_file,
    )
    if not fail_fast:
        assert sha(good_file) == sha(src)


@pytest.mark.parametrize("verify", ["none", "sha256"])
@pytest.mark.parametrize("fail_fast", [False, True], ids=["go-on", "fail-fast"])
async def test_a_destination_whose_disk_fills_mid_stream(
    h, workdirs, small_tmpfs, fail_fast, verify
):
    """cloud's disk fills after 1 MiB of 48: it fails while the stream runs, a plain ``cat``
    and a ``tee`` into the digest alike (GNU tee stops at its failed write)."""
    mnt, seen = small_tmpfs
    src = random_file(workdirs["edge"] / "f.bin", 48 * MiB)
    result = await h.copy(
        source=f"edge:{src}",
        destinations=(f"cloud:{mnt}/f.bin", f"storage:{workdirs['storage']}/"),
        fail_fast=fail_fast,
        retries=0,
        rate_limit=16 * MiB,  # the full disk shows while the healthy stream still runs
        verify=verify,
    )
    good_file = workdirs["storage"] / "f.bin"
    check_outcome(
        result,
        fail_fast=fail_fast,
        bad=0,
        code=ExitCode.REMOTE,
        says="no space left",
        good_file=good_file,
    )
    assert not (seen / "f.bin").exists()
    cloud = next(e for e in h.kinds("transfer.destination") if e.destination.startswith("cl"))
    assert cloud.status == "failed" and cloud.bytes < src.stat().st_size / 2
    if fail_fast:  # storage stopped mid-stream
        ended = next(e for e in h.kinds("transfer.destination") if e.destination.startswith("st"))
        assert ended.status == "failed" and ended.bytes < src.stat().st_size
    else:
        assert sha(good_file) == sha(src)


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # found after the streams
@pytest.mark.parametrize("fail_fast", [False, True], ids=["go-on", "fail-fast"])
async def test_a_destination_whose_copy_fails_verification(h, workdirs, monkeypatch, fail_fast):
    src = random_file(workdirs["edge"] / "v.bin", 4 * MiB)
    corrupt_on(monkeypatch, "cloud")
    result = await h.copy(
        source=f"edge:{src}",
        destinations=(f"storage:{workdirs['storage']}/", f"cloud:{workdirs['cloud']}/"),
        fail_fast=fail_fast,
        retries=0,
    )
    good_file = workdirs["storage"] / "v.bin"
    check_outcome(
        result,
        fail_fast=fail_fast,
        bad=1,
        code=ExitCode.VERIFY,
        says="mismatch",
        good_file=good_file,
    )
    assert landed(workdirs, "v.bin") == ([] if fail_fast else ["storage"])
    assert not (workdirs["cloud"] / f"v.bin{PART_SUFFIX}").exists()  # a bad copy is removed
    if not fail_fast:
        assert sha(good_file) == sha(src)


STALL = 2.0


@pytest.mark.netns
@pytest.mark.parametrize("fail_fast", [False, True], ids=["go-on", "fail-fast"])
async def test_a_cut_link_fails_that_destination_after_the_stall_timeout(
    lab, h, workdirs, fail_fast
):
    """cloud's link is cut mid-stream. SSH keepalives are off, so without the stall timeout
    its writes would wait for TCP to give up (a quarter of an hour); with ``stall_timeout=2``
    cloud fails after ~2 s with "no progress for 2 s", storage lands verified, and the copy is
    partial (or, with ``--fail-fast``, stops with the network error's code)."""
    h.config = load_config(h.write_config("stall.toml", connect_timeout=2.0, keepalive_interval=0))
    src = random_file(workdirs["edge"] / "s.bin", 32 * MiB)
    async with h.pool() as pool:
        handle = await h.start(
            pool,
            source=f"edge:{src}",
            destinations=(f"cloud:{workdirs['cloud']}/", f"storage:{workdirs['storage']}/"),
            stall_timeout=STALL,
            fail_fast=fail_fast,
            retries=0,
            rate_limit=8 * MiB,
        )
        while not any(e.bytes >= 4 * MiB for e in h.kinds("transfer.progress")):
            await asyncio.sleep(0.05)
        lab.cut("cloud")
        cut = time.monotonic()
        result = await asyncio.wait_for(handle.wait(), 60)
        waited = time.monotonic() - cut
        lab.heal("cloud")
    good_file = workdirs["storage"] / "s.bin"
    check_outcome(
        result,
        fail_fast=fail_fast,
        bad=0,
        code=ExitCode.NETWORK,
        says=f"no progress for {STALL:g} s",
        good_file=good_file,
    )
    assert result.destinations[0].error.startswith("cloud:")
    if fail_fast:
        assert waited < 15
    else:
        assert sha(good_file) == sha(src) and result.destinations[1].digest == sha(src)


@pytest.mark.netns
async def test_a_single_destination_behind_a_cut_link_fails_after_the_stall_timeout(
    lab, h, workdirs, monkeypatch
):
    """One destination: with OpenSSH legs and sha256 hashed on both hosts the bytes go by
    splice(2) from pipe to pipe, which has its own stall watch (the destination's pipe takes
    nothing while data waits for it); with asyncssh it is the relay's."""
    from difpipe_tui.core.transfer import splice

    spliced = []
    real = splice.splice_chunk
    monkeypatch.setattr(
        splice, "splice_chunk", lambda src, dst, n: spliced.append(n) or real(src, dst, n)
    )
    h.config = load_config(h.write_config("stall1.toml", connect_timeout=2.0, keepalive_interval=0))
    src = random_file(workdirs["edge"] / "one.bin", 32 * MiB)
    async with h.pool() as pool:
        handle = await h.start(
            pool,
            source=f"edge:{src}",
            destinations=(f"cloud:{workdirs['cloud']}/",),
            stall_timeout=STALL,
            retries=0,
            rate_limit=8 * MiB,
        )
        while not any(e.bytes >= 4 * MiB for e in h.kinds("transfer.progress")):
            await asyncio.sleep(0.05)
        lab.cut("cloud")
        result = await asyncio.wait_for(handle.wait(), 60)
        lab.heal("cloud")
    assert result.status == "failed"
    assert exit_code_for(result) == ExitCode.NETWORK
    assert result.destinations[0].error.startswith(f"cloud:{workdirs['cloud']}/one.bin: ")
    assert f"no progress for {STALL:g} s" in result.destinations[0].error
    assert not (workdirs["cloud"] / "one.bin").exists()
    assert bool(spliced) == (h.transport == "openssh")


@pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # --parallel: asyncssh
@pytest.mark.parametrize("fail_fast", [False, True], ids=["go-on", "fail-fast"])
async def test_parallel_ranges_with_a_destination_that_fails_verification(
    h, workdirs, monkeypatch, fail_fast
):
    """--parallel 2: each destination's ranges land in place, then the whole part file is
    hashed; cloud's ranges arrive with their NUL bytes changed, so its digest differs."""
    from difpipe_tui.core.transfer.parallel import RemoteRangeSink

    real = RemoteRangeSink.write

    async def write(self, data):
        await real(self, data.replace(b"\0", b"\1") if self.host == "cloud" else data)

    monkeypatch.setattr(RemoteRangeSink, "write", write)
    src = random_file(workdirs["edge"] / "p.bin", 8 * MiB)
    result = await h.copy(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/", f"storage:{workdirs['storage']}/"),
        parallel=2,
        fail_fast=fail_fast,
        retries=0,
    )
    good_file = workdirs["storage"] / "p.bin"
    check_outcome(
        result,
        fail_fast=fail_fast,
        bad=0,
        code=ExitCode.VERIFY,
        says="mismatch",
        good_file=good_file,
    )
    assert landed(workdirs, "p.bin") == ([] if fail_fast else ["storage"])
    if not fail_fast:
        assert sha(good_file) == sha(src)


@pytest.mark.netns
async def test_fail_fast_retries_every_destination_together_after_a_stall(lab, h, workdirs):
    """A stall is retryable: with --fail-fast the first attempt stops both destinations, and
    once the link is back they both retry from their checkpoints and land."""
    h.config = load_config(h.write_config("stall2.toml", connect_timeout=2.0, keepalive_interval=0))
    src = random_file(workdirs["edge"] / "r.bin", 24 * MiB)
    async with h.pool() as pool:
        handle = await h.start(
            pool,
            source=f"edge:{src}",
            destinations=(f"cloud:{workdirs['cloud']}/", f"storage:{workdirs['storage']}/"),
            stall_timeout=STALL,
            fail_fast=True,
            retries=3,
            rate_limit=8 * MiB,
            checkpoint_interval=MiB,
        )
        while not any(e.bytes >= 4 * MiB for e in h.kinds("transfer.progress")):
            await asyncio.sleep(0.05)
        lab.cut("cloud")
        while not h.kinds("transfer.retry"):
            await asyncio.sleep(0.05)
        lab.heal("cloud")
        result = await asyncio.wait_for(handle.wait(), 60)
    assert result.status == "done", result
    retry = h.kinds("transfer.retry")[0]
    assert "no progress for 2 s" in retry.reason
    stopped = [e for e in h.kinds("transfer.destination") if e.status == "failed"]
    assert stopped == []  # a retryable stop is no failure: both destinations went on
    resumed = {e.destination: e.offset for e in h.kinds("transfer.resume")}
    assert len(resumed) == 2 and all(offset > 0 for offset in resumed.values()), resumed
    assert {d.digest for d in result.destinations} == {sha(src)}
    for host in ("cloud", "storage"):
        assert sha(workdirs[host] / "r.bin") == sha(src)
