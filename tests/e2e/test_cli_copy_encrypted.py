"""`difpipe copy --encrypt` interrupted for real (kill -9, Ctrl-C), then resumed in place.

An encrypted copy that resumes continues the part file under the header already in it, so
the landed file keeps the header (the salt) the part file had before the resume; one that
starts over always writes a new salt. Every landed file is decrypted with `difpipe decrypt`
and compared with the source.

A kill -9 and a Ctrl-C stop the streams of each transport their own way (an asyncssh
connection drops; an ssh process is orphaned, or ends its leg): those tests run with both
transports. Whether a rerun may continue (the prefix's digest, the source's stamp, a compressed
stream) is decided before any stream opens: those run with asyncssh only.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from difpipe_tui.core.transfer.encrypt import HEADER_SIZE, MAGIC, cipher_offset
from difpipe_tui.core.transfer.openssh import ssh_available
from tests.e2e.runner import DIFPIPE, Difpipe

MiB = 1024 * 1024
CHUNK = 64 * 1024  # the chunk size difpipe encrypts with
TRANSPORTS = [
    "asyncssh",
    pytest.param(
        "openssh",
        marks=pytest.mark.skipif(ssh_available() is None, reason="needs the OpenSSH client"),
    ),
]


@pytest.fixture(params=TRANSPORTS)
def dp(lab, tmp_path, request):
    return Difpipe(
        tmp_path / "home", lab.write_config(tmp_path / "dp.toml", transport=request.param)
    )


@pytest.fixture
def dirs(lab):
    with lab.scratch_dirs("enc", ("edge", "cloud")) as made:
        yield made


@pytest.fixture
def key(dp, tmp_path) -> Path:
    path = tmp_path / "backup.key"
    made = dp("keygen", path)
    assert made.code == 0, str(made)
    return path


def start_slow(dp, src: str, dst: str, *extra: str) -> subprocess.Popen[str]:
    argv = [str(DIFPIPE), "--config", str(dp.config), "copy", src, dst]
    argv += ["--rate-limit", "4M", "--checkpoint-interval", "1M", "--progress", "json", *extra]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=dp.environment(),
        text=True,
        start_new_session=True,
    )


def until_checkpoint(
    proc: subprocess.Popen[str], at_least: int = 2 * MiB, kind: str = "transfer.checkpoint"
) -> list[dict]:
    """The events up to the first ``kind`` event whose offset (or bytes) reaches ``at_least``."""
    seen: list[dict] = []
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(json.loads(line))
        event = seen[-1]
        if event["kind"] == kind and event.get("offset", event.get("bytes", 0)) >= at_least:
            return seen
    proc.kill()
    raise AssertionError(f"no checkpoint seen: {seen[-5:]}")


def kill_9(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(10)


def events(run) -> list[dict]:
    return [json.loads(line) for line in run.stdout.splitlines()]


def decrypted(dp, key: Path, enc: Path, out: Path) -> bytes:
    run = dp("decrypt", "--key", key, enc, out)
    assert run.code == 0, str(run)
    return out.read_bytes()


def test_kill_9_of_an_encrypted_copy_then_resume_continues_the_part_file(dp, dirs, key, tmp_path):
    src = dirs["edge"] / "secret.bin"
    src.write_bytes(os.urandom(12 * MiB))  # --resume keeps the job's rate limit (4M)
    part = dirs["cloud"] / "secret.bin.difpipe-part"
    proc = start_slow(dp, f"edge:{src}", f"cloud:{dirs['cloud']}/", "--encrypt", str(key))
    seen = until_checkpoint(proc)
    kill_9(proc)
    transfer_id = next(e["transfer_id"] for e in seen if "transfer_id" in e)
    checkpoints = [e["offset"] for e in seen if e["kind"] == "transfer.checkpoint"]
    assert all(off % CHUNK == 0 for off in checkpoints), checkpoints  # on chunk boundaries
    assert not (dirs["cloud"] / "secret.bin").exists()
    header = part.read_bytes()[:HEADER_SIZE]
    assert header.startswith(MAGIC)

    resumed = dp("copy", "--resume", transfer_id, "--progress", "json", timeout=120)
    assert resumed.code == 0, str(resumed)
    lines = events(resumed)
    resume = [e for e in lines if e["kind"] == "transfer.resume"]
    assert len(resume) == 1 and 0 < resume[0]["offset"] <= max(checkpoints), resume
    offset = resume[0]["offset"]
    assert offset % CHUNK == 0
    assert f"byte {cipher_offset(offset, CHUNK)}" in resume[0]["note"]
    # it sends only the rest: no progress below the offset, and the summary says so
    progress = [e["bytes"] for e in lines if e["kind"] == "transfer.progress"]
    assert progress and min(progress) >= offset
    summary = lines[-1]
    assert summary["kind"] == "summary" and summary["resumed_from"] == offset

    landed = dirs["cloud"] / "secret.bin"
    stored = landed.read_bytes()
    assert stored[:HEADER_SIZE] == header  # the same salt: the part file was continued
    assert summary["destinations"][0]["digest"] == hashlib.sha256(stored).hexdigest()
    assert decrypted(dp, key, landed, tmp_path / "plain") == src.read_bytes()


@pytest.mark.parametrize("dp", ["asyncssh"], indirect=True)  # decided before any stream
def test_a_corrupted_byte_in_the_encrypted_prefix_starts_over_and_says_so(dp, dirs, key, tmp_path):
    src = dirs["edge"] / "secret.bin"
    src.write_bytes(os.urandom(16 * MiB))
    part = dirs["cloud"] / "secret.bin.difpipe-part"
    argv = (f"edge:{src}", f"cloud:{dirs['cloud']}/", "--encrypt", str(key))
    proc = start_slow(dp, *argv)
    until_checkpoint(proc)
    kill_9(proc)
    blob = bytearray(part.read_bytes())
    header = bytes(blob[:HEADER_SIZE])
    blob[HEADER_SIZE + 1000] ^= 0x01  # inside chunk 0, well before the checkpoint
    part.write_bytes(blob)

    rerun = dp("copy", *argv, "--progress", "json", timeout=120)  # the same command again
    assert rerun.code == 0, str(rerun)
    resume = [e for e in events(rerun) if e["kind"] == "transfer.resume"]
    assert len(resume) == 1 and resume[0]["offset"] == 0, resume
    assert "does not match" in resume[0]["note"] and "starting over" in resume[0]["note"]
    stored = (dirs["cloud"] / "secret.bin").read_bytes()
    assert stored[:HEADER_SIZE] != header  # started over: a new salt
    assert decrypted(dp, key, dirs["cloud"] / "secret.bin", tmp_path / "p") == src.read_bytes()


def test_ctrl_c_of_an_encrypted_copy_to_a_local_file_then_resume(dp, dirs, key, tmp_path):
    src = dirs["edge"] / "secret.bin"
    src.write_bytes(os.urandom(16 * MiB) + b"tail")  # not a whole number of chunks
    dst = tmp_path / "local.enc"
    proc = start_slow(dp, f"edge:{src}", str(dst), "--encrypt", str(key))
    until_checkpoint(proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    transfer_id = next(x for x in err.splitlines() if "resume with:" in x).rsplit(" ", 1)[-1]
    header = Path(f"{dst}.difpipe-part").read_bytes()[:HEADER_SIZE]

    resumed = dp("copy", "--resume", transfer_id, "--progress", "json", timeout=120)
    assert resumed.code == 0, str(resumed)
    resume = [e for e in events(resumed) if e["kind"] == "transfer.resume"]
    assert len(resume) == 1 and resume[0]["offset"] > 0, resume
    assert resume[0]["offset"] % CHUNK == 0
    assert dst.read_bytes()[:HEADER_SIZE] == header
    assert decrypted(dp, key, dst, tmp_path / "plain") == src.read_bytes()


@pytest.mark.parametrize("dp", ["asyncssh"], indirect=True)  # decided before any stream
def test_a_source_changed_since_the_checkpoint_starts_over(dp, dirs, key, tmp_path):
    src = dirs["edge"] / "secret.bin"
    src.write_bytes(os.urandom(16 * MiB))
    argv = (f"edge:{src}", f"cloud:{dirs['cloud']}/", "--encrypt", str(key))
    proc = start_slow(dp, *argv)
    until_checkpoint(proc)
    kill_9(proc)
    with src.open("r+b") as fh:  # same size, same prefix: only the tail changes
        fh.seek(15 * MiB)
        fh.write(os.urandom(4096))

    rerun = dp("copy", *argv, "--progress", "json", timeout=120)
    assert rerun.code == 0, str(rerun)
    resume = [e for e in events(rerun) if e["kind"] == "transfer.resume"]
    assert len(resume) == 1 and resume[0]["offset"] == 0, resume
    assert "source changed" in resume[0]["note"]
    assert decrypted(dp, key, dirs["cloud"] / "secret.bin", tmp_path / "p") == src.read_bytes()


@pytest.mark.parametrize("dp", ["asyncssh"], indirect=True)  # decided before any stream
def test_a_compressed_encrypted_copy_starts_over_and_says_why(dp, dirs, key, tmp_path):
    src = dirs["edge"] / "app.log"
    src.write_text("".join(f"2026-12-04T21:00:{i % 60:02d} INFO req {i} ok\n" for i in range(6**8)))
    argv = (f"edge:{src}", f"cloud:{dirs['cloud']}/", "--encrypt", str(key), "--compress", "zstd")
    proc = start_slow(dp, *argv, "--rate-limit", "1M")
    seen = until_checkpoint(proc, at_least=MiB, kind="transfer.progress")
    kill_9(proc)
    assert not [e for e in seen if e["kind"] == "transfer.checkpoint"]  # nothing to resume

    rerun = dp("copy", *argv, "--progress", "json", timeout=120)
    assert rerun.code == 0, str(rerun)
    resume = [e for e in events(rerun) if e["kind"] == "transfer.resume"]
    assert len(resume) == 1 and resume[0]["offset"] == 0, resume
    assert "compressed and encrypted" in resume[0]["note"]
    assert decrypted(dp, key, dirs["cloud"] / "app.log", tmp_path / "p") == src.read_bytes()
