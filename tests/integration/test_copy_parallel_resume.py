"""``--parallel`` copies that resume, on the real-sshd lab.

Each range of a ``--parallel`` copy is written in place into the part file; its checkpoints
say how far each range is known to be written, with the source's stamp. A cut link retries
from them, and so does the same command run again after a ``kill -9``; a source changed in
between starts over and says so; a part file altered in between is caught by the digest of
the whole file, and the copy starts over once, from byte 0, and lands the right bytes.

The ranges always move over asyncssh (:func:`~difpipe_tui.core.transfer.plan.make_plan`), so
these run once, with asyncssh. A range counts what it sent less what may still be on its way
(4 MiB at a remote destination), so the files are large enough for the ranges to get past
that before the copy is cut.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from difpipe_tui.core.config import load_config
from difpipe_tui.core.transfer.ends import PART_SUFFIX
from tests.e2e.runner import Difpipe
from tests.integration.test_copy import MiB, random_file, sha

ASYNCSSH = pytest.mark.parametrize("h", ["asyncssh"], indirect=True)  # --parallel: asyncssh
SIZE = 48 * MiB  # four ranges of 12 MiB (--parallel 2: two per connection)
RATE = 24 * MiB
WAIT = 30.0


@pytest.fixture
def workdirs(lab):
    with lab.scratch_dirs("parres", ("edge", "cloud")) as made:
        yield made


def job(src, workdirs, **kw):
    made = dict(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/",),
        parallel=2,
        rate_limit=RATE,
        checkpoint_interval=MiB,
    )
    return {**made, **kw}


async def until(check, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} after {timeout:g} s"
        await asyncio.sleep(0.05)


def checkpointed(h, at_least: int) -> bool:
    return any(e.offset >= at_least for e in h.kinds("transfer.checkpoint"))


async def interrupted(h, **kw):
    """Start a copy, stop it (as Ctrl-C does) once a checkpoint keeps 8 MiB; its result."""
    async with h.pool() as pool:
        handle = await h.start(pool, **kw)
        await until(lambda: checkpointed(h, 8 * MiB), "checkpoint of 8 MiB")
        handle.cancel()
        return await asyncio.wait_for(handle.wait(), WAIT)


def saved_ranges(h, transfer_id) -> list[tuple[int, int, int]]:
    """(offset, length, done) of each range in the destination's checkpoint."""
    (cp,) = h.store.get_checkpoints(transfer_id)
    return [tuple(r) for r in json.loads(cp.hash_state)["ranges"]]


@pytest.mark.netns
@ASYNCSSH
async def test_a_cut_link_retries_the_parallel_copy_from_its_checkpoint(lab, h, workdirs):
    src = random_file(workdirs["edge"] / "cut.bin", SIZE)
    h.config = load_config(
        h.write_config(
            "cut.toml", connect_timeout=2.0, keepalive_interval=0.5, keepalive_count_max=2
        )
    )
    async with h.pool() as pool:
        handle = await h.start(pool, **job(src, workdirs, retries=5))
        await until(lambda: checkpointed(h, 8 * MiB), "checkpoint of 8 MiB")
        lab.cut("cloud")
        await until(lambda: h.kinds("transfer.retry"), "retry", timeout=20)
        sent_before = lab.link_bytes("edge")[1]
        lab.heal("cloud")
        result = await asyncio.wait_for(handle.wait(), WAIT)
        moved = lab.link_bytes("edge")[1] - sent_before  # what the source sent after the cut
    assert result.status == "done", result
    resumed = h.kinds("transfer.resume")
    continued = [e.offset for e in resumed if e.offset > 0]
    # a count past what reached the part file (what the cut link lost) would leave a hole:
    # the digest would catch it and the copy would start over from byte 0
    assert continued and len(continued) == len(resumed), resumed
    assert result.resumed_from == continued[-1] >= 4 * MiB
    assert result.resumed_from % MiB == 0  # ranges continue on the blocks dd seeks to
    assert moved < SIZE - result.resumed_from + 2 * MiB, (moved, result.resumed_from)
    assert sha(workdirs["cloud"] / "cut.bin") == sha(src) == result.destinations[0].digest
    assert not (workdirs["cloud"] / f"cut.bin{PART_SUFFIX}").exists()
    assert h.store.get_checkpoints(result.transfer_id) == []


def test_kill_9_mid_parallel_copy_then_the_same_command_resumes(lab, workdirs, tmp_path):
    """The real ``difpipe`` is killed with 9 mid-copy; the same command then finds the
    unfinished transfer, continues its ranges and lands the file."""
    dp = Difpipe(tmp_path / "home", lab.write_config(tmp_path / "dp.toml"))
    src = random_file(workdirs["edge"] / "k.bin", SIZE)
    argv = ("copy", f"edge:{src}", f"cloud:{workdirs['cloud']}/", "--parallel", "2")
    argv += ("--rate-limit", "24M", "--checkpoint-interval", "1M", "--progress", "json")
    first = dp.start(*argv)
    proc = first.proc
    assert proc.stdout is not None
    seen: list[dict] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and (line := proc.stdout.readline()):
        seen.append(json.loads(line))
        if seen[-1]["kind"] == "transfer.checkpoint" and seen[-1]["offset"] >= 8 * MiB:
            break
    else:
        proc.kill()
        raise AssertionError(f"no checkpoint of 8 MiB: {seen[-5:]}")
    proc.kill()
    proc.wait(10)
    transfer_id = next(e["transfer_id"] for e in seen if "transfer_id" in e)
    last = max(e["offset"] for e in seen if e["kind"] == "transfer.checkpoint")
    assert not (workdirs["cloud"] / "k.bin").exists()

    # the checkpoint as a user sees it: four ranges and how far each got
    shown = dp("checkpoints", "show", transfer_id, "-o", "json", timeout=WAIT)
    assert shown.code == 0, str(shown)
    (cp,) = json.loads(shown.stdout)["checkpoints"]
    assert [r["offset"] for r in cp["ranges"]] == [i * SIZE // 4 for i in range(4)]
    assert sum(r["done"] for r in cp["ranges"]) == cp["offset"] == last
    table = dp("checkpoints", "show", transfer_id, timeout=WAIT)
    assert "- (4 ranges)" in table.stdout

    again = dp(*argv, timeout=WAIT)
    assert again.code == 0, str(again)
    lines = [json.loads(line) for line in again.stdout.splitlines()]
    (resume,) = [e for e in lines if e["kind"] == "transfer.resume"]
    assert resume["transfer_id"] == transfer_id
    assert f"found the unfinished transfer {transfer_id}" in resume["note"]
    assert 0 < resume["offset"] <= last  # what was in flight when it died is sent again
    progress = [e["bytes"] for e in lines if e["kind"] == "transfer.progress"]
    assert progress and min(progress) >= resume["offset"]  # only the rest is sent
    summary = lines[-1]
    assert summary["kind"] == "summary" and summary["status"] == "done"
    assert summary["resumed_from"] == resume["offset"]
    assert sha(workdirs["cloud"] / "k.bin") == sha(src) == summary["destinations"][0]["digest"]


@ASYNCSSH
async def test_a_source_changed_between_runs_starts_over_and_says_so(h, workdirs):
    src = random_file(workdirs["edge"] / "c.bin", SIZE)
    first = await interrupted(h, **job(src, workdirs))
    assert first.status == "interrupted", first
    assert sum(done for _, _, done in saved_ranges(h, first.transfer_id)) >= 8 * MiB
    with src.open("r+b") as fh:  # the same size, other bytes in a range already written
        fh.seek(MiB)
        fh.write(b"changed")
    h.events.clear()
    second = await h.copy(**job(src, workdirs, rate_limit=None))
    assert second.status == "done", second
    assert second.transfer_id == first.transfer_id
    (resume,) = h.kinds("transfer.resume")
    assert resume.offset == 0 and "the source changed since the checkpoint" in resume.note
    assert second.resumed_from == 0
    assert sha(workdirs["cloud"] / "c.bin") == sha(src) == second.destinations[0].digest


@ASYNCSSH
async def test_a_part_file_altered_between_runs_is_caught_and_copied_again_once(h, workdirs):
    src = random_file(workdirs["edge"] / "a.bin", SIZE)
    part = workdirs["cloud"] / f"a.bin{PART_SUFFIX}"
    first = await interrupted(h, **job(src, workdirs))
    assert first.status == "interrupted", first
    offset, _, done = max(saved_ranges(h, first.transfer_id), key=lambda r: r[2])
    assert done >= MiB
    at = offset + done // 2  # a byte the checkpoint counts as written
    with part.open("r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))
    h.events.clear()
    second = await h.copy(**job(src, workdirs, rate_limit=None))
    assert second.status == "done", second
    continued, again = h.kinds("transfer.resume")  # once continued, then once from byte 0
    assert continued.offset > 0
    assert again.offset == 0 and "digest" in again.note and "starts over" in again.note
    assert second.resumed_from == 0
    landed = workdirs["cloud"] / "a.bin"
    assert sha(landed) == sha(src) == second.destinations[0].digest
    assert [e.status for e in h.kinds("transfer.destination")] == ["done"]


@ASYNCSSH
async def test_a_fan_out_continues_only_where_every_destination_can(h, workdirs, tmp_path):
    """Each range is read once for every destination: it continues from the lowest count
    among them, and when one must start over, they all do, each saying why."""
    src = random_file(workdirs["edge"] / "f.bin", SIZE)
    local = tmp_path / "f.bin"
    cloud = f"cloud:{workdirs['cloud']}/"
    kw = job(src, workdirs, destinations=(cloud, str(local)))
    first = await interrupted(h, **kw)
    assert first.status == "interrupted", first
    h.events.clear()
    second = await interrupted(h, **kw)  # continued, then stopped again
    assert second.transfer_id == first.transfer_id
    resumed = h.kinds("transfer.resume")
    assert len(resumed) == 2 and resumed[0].offset == resumed[1].offset > 0, resumed
    saved = {cp.destination: cp.offset for cp in h.store.get_checkpoints(first.transfer_id)}
    assert len(saved) == 2 and min(saved.values()) > resumed[0].offset, saved

    local.with_name(f"f.bin{PART_SUFFIX}").unlink()
    h.events.clear()
    third = await h.copy(**{**kw, "rate_limit": None})
    assert third.status == "done", third
    notes = {e.destination: (e.offset, e.note) for e in h.kinds("transfer.resume")}
    assert notes == {str(local): (0, "no part file left"), cloud: (0, notes[cloud][1])}
    assert notes[cloud][1].startswith("another destination starts over")
    assert third.resumed_from == 0
    assert sha(workdirs["cloud"] / "f.bin") == sha(local) == sha(src)


@ASYNCSSH
async def test_a_streamed_rerun_continues_the_ranges_written_from_byte_0(h, workdirs):
    """Without --parallel the same transfer streams: it continues the bytes the ranges wrote
    from byte 0 without a gap, once their digest is the source's."""
    src = random_file(workdirs["edge"] / "s.bin", SIZE)
    first = await interrupted(h, **job(src, workdirs))
    assert first.status == "interrupted", first
    ranges = saved_ranges(h, first.transfer_id)
    prefix = ranges[0][2] if ranges[0][2] < ranges[0][1] else ranges[0][1] + ranges[1][2]
    assert prefix > 0, ranges
    h.events.clear()
    second = await h.copy(**job(src, workdirs, parallel=1, rate_limit=None))
    assert second.status == "done", second
    assert second.transfer_id == first.transfer_id
    (resume,) = h.kinds("transfer.resume")
    assert resume.offset == prefix == second.resumed_from
    assert sha(workdirs["cloud"] / "s.bin") == sha(src) == second.destinations[0].digest


@ASYNCSSH
async def test_pause_holds_every_range_and_resume_finishes(h, workdirs):
    src = random_file(workdirs["edge"] / "p.bin", 24 * MiB)
    async with h.pool() as pool:
        handle = await h.start(pool, **job(src, workdirs, rate_limit=8 * MiB))
        await until(lambda: h.kinds("transfer.progress"), "progress")
        handle.pause()
        await asyncio.sleep(0.5)
        before = h.kinds("transfer.progress")[-1].bytes
        await asyncio.sleep(1.0)
        assert h.kinds("transfer.progress")[-1].bytes - before <= 4 * MiB  # what was queued
        handle.resume()
        result = await asyncio.wait_for(handle.wait(), WAIT)
    assert result.status == "done", result
    assert sha(workdirs["cloud"] / "p.bin") == sha(src)
