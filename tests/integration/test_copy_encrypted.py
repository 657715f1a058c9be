"""Encrypted copies that resume, through the engine against real sshd hosts.

A cut link retries from the last checkpoint by itself; a copy resumed twice keeps one
digest per run and still lands a file that decrypts to the source; a part file altered while
a resumed run writes its tail never lands.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from difpipe_tui.core.config import load_config
from difpipe_tui.core.errors import ExitCode
from difpipe_tui.core.transfer.encresume import ResumeState
from difpipe_tui.core.transfer.encrypt import HEADER_SIZE, decrypt_file, generate_key
from tests.integration.test_copy import random_file

MiB = 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture
def workdirs(lab):
    with lab.scratch_dirs("encr", ("edge", "cloud")) as made:
        yield made


@pytest.fixture
def key(tmp_path) -> tuple[Path, bytes]:
    path = tmp_path / "backup.key"
    return path, generate_key(path)


def plain_of(enc: Path, key: bytes, out: Path) -> bytes:
    decrypt_file(enc, out, key)
    return out.read_bytes()


async def test_a_cut_link_retries_the_encrypted_copy_from_its_checkpoint(
    lab, h, workdirs, key, tmp_path
):
    src = random_file(workdirs["edge"] / "cut.bin", 20 * MiB + 99)
    local = tmp_path / "cut.enc"
    h.config = load_config(
        h.write_config(
            "cut.toml", connect_timeout=2.0, keepalive_interval=0.5, keepalive_count_max=2
        )
    )
    async with h.pool() as pool:
        handle = await h.start(
            pool,
            source=f"edge:{src}",
            destinations=(f"cloud:{workdirs['cloud']}/", str(local)),
            rate_limit=6 * MiB,
            checkpoint_interval=MiB,
            retries=5,
            encrypt=str(key[0]),
        )
        while not h.kinds("transfer.checkpoint"):
            await asyncio.sleep(0.05)
        lab.cut("cloud")
        await asyncio.sleep(2.5)
        lab.heal("cloud")
        result = await asyncio.wait_for(handle.wait(), 120)
    assert result.status == "done", result
    assert h.kinds("transfer.retry")
    resumed = h.kinds("transfer.resume")
    assert resumed and all(e.offset > 0 and e.offset % CHUNK == 0 for e in resumed), resumed
    stored = (workdirs["cloud"] / "cut.bin").read_bytes()
    assert stored == local.read_bytes()  # both continued the one stream
    assert {d.digest for d in result.destinations} == {hashlib.sha256(stored).hexdigest()}
    assert plain_of(workdirs["cloud"] / "cut.bin", key[1], tmp_path / "p") == src.read_bytes()


async def test_an_encrypted_copy_resumed_twice_lands_a_whole_file(h, workdirs, key, tmp_path):
    src = random_file(workdirs["edge"] / "twice.bin", 12 * MiB + 5)
    part = workdirs["cloud"] / "twice.bin.difpipe-part"
    job = dict(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/",),
        rate_limit=8 * MiB,
        checkpoint_interval=MiB,
        retries=0,
        encrypt=str(key[0]),
    )
    first = await h.interrupted(**job)
    assert first.status == "interrupted"
    header = part.read_bytes()[:HEADER_SIZE]
    h.events.clear()
    second = await h.interrupted(**job)
    assert second.status == "interrupted"
    assert h.kinds("transfer.resume")[0].offset > 0
    (cp,) = h.store.get_checkpoints(first.transfer_id)
    state = ResumeState.from_blob(cp.hash_state)
    assert state is not None and len(state.segments) == 1  # the first run's range
    h.events.clear()
    third = await h.copy(**{**job, "rate_limit": None})
    assert third.status == "done", third
    assert h.kinds("transfer.resume")[0].offset > 0
    stored = (workdirs["cloud"] / "twice.bin").read_bytes()
    assert stored[:HEADER_SIZE] == header
    assert third.destinations[0].digest == hashlib.sha256(stored).hexdigest()
    assert plain_of(workdirs["cloud"] / "twice.bin", key[1], tmp_path / "p") == src.read_bytes()


async def test_a_part_file_altered_during_the_resumed_run_never_lands(h, workdirs, key):
    src = random_file(workdirs["edge"] / "alt.bin", 12 * MiB)
    part = workdirs["cloud"] / "alt.bin.difpipe-part"
    job = dict(
        source=f"edge:{src}",
        destinations=(f"cloud:{workdirs['cloud']}/",),
        rate_limit=8 * MiB,
        checkpoint_interval=MiB,
        retries=0,
        encrypt=str(key[0]),
    )
    first = await h.interrupted(**job)
    assert first.status == "interrupted"
    h.events.clear()
    async with h.pool() as pool:
        handle = await h.start(pool, **{**job, "rate_limit": 4 * MiB})
        while not h.kinds("transfer.progress"):
            await asyncio.sleep(0.05)
        assert h.kinds("transfer.resume")[0].offset > 0
        with part.open("r+b") as fh:  # the prefix the resume already checked
            fh.seek(HEADER_SIZE + 10)
            byte = fh.read(1)
            fh.seek(HEADER_SIZE + 10)
            fh.write(bytes([byte[0] ^ 0xFF]))
        result = await asyncio.wait_for(handle.wait(), 120)
    assert result.status == "failed", result
    assert result.destinations[0].exit_code == ExitCode.VERIFY
    assert "earlier ciphertext changed" in (result.destinations[0].error or "")
    assert not (workdirs["cloud"] / "alt.bin").exists()
    assert h.store.get_checkpoints(first.transfer_id) == []  # its data proved wrong
