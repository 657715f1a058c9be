"""`difpipe copy` end to end: the real binary, the real lab, kill -9 and Ctrl-C in the middle.

Every test of a file copy runs with the config's ``defaults.transport`` set to "asyncssh" and
to "openssh"; a directory streams over asyncssh whatever the setting, so its test runs once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from difpipe_tui.core.transfer.openssh import ssh_available
from tests.e2e.runner import DIFPIPE, Difpipe

MiB = 1024 * 1024
TRANSPORTS = [
    "asyncssh",
    pytest.param(
        "openssh",
        marks=pytest.mark.skipif(ssh_available() is None, reason="needs the OpenSSH client"),
    ),
]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    return request.param


@pytest.fixture
def dp(lab, tmp_path, transport):
    return Difpipe(tmp_path / "home", lab.write_config(tmp_path / "dp.toml", transport=transport))


def masters_of(home: Path) -> list[psutil.Process]:
    """Live ssh processes (legs or control masters) that a difpipe under ``home`` started."""
    found = []
    for p in psutil.process_iter(["name", "environ"]):
        try:
            if (
                p.info["name"] == "ssh"
                and p.status() != psutil.STATUS_ZOMBIE
                and (p.info["environ"] or {}).get("DIFPIPE_HOME") == str(home)
            ):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture
def dirs(lab):
    with lab.scratch_dirs("e2e", ("edge", "cloud", "storage")) as made:
        yield made


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_copy_fan_out_json_summary_and_ndjson(dp, dirs, transport):
    src = random_file(dirs["edge"] / "a.bin", 5 * MiB)
    run = dp(
        "copy",
        f"edge:{src}",
        f"cloud:{dirs['cloud']}/",
        f"storage:{dirs['storage']}/b.bin",
        "--progress",
        "json",
    )
    assert run.code == 0, str(run)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    kinds = [line["kind"] for line in lines]
    assert "transfer.start" in kinds and "transfer.done" in kinds
    assert kinds[-1] == "summary"
    summary = lines[-1]
    assert summary["status"] == "done"
    assert {d["digest"] for d in summary["destinations"]} == {sha(src)}
    assert sha(dirs["cloud"] / "a.bin") == sha(src) == sha(dirs["storage"] / "b.bin")

    assert {d["transport"] for d in summary["destinations"]} == {transport}
    assert summary["transport"] == transport

    table = dp("copy", f"edge:{src}", f"cloud:{dirs['cloud']}/c.bin")
    assert table.code == 0 and "done" in table.stdout
    assert masters_of(dp.home) == []  # legs and control masters end with the command


def test_stdin_to_remote_and_remote_to_stdout(dp, dirs, tmp_path):
    data = os.urandom(2 * MiB)
    up = subprocess.run(
        [str(DIFPIPE), "--config", str(dp.config), "copy", "-", f"cloud:{dirs['cloud']}/in.bin"],
        input=data,
        capture_output=True,
        env=dp.environment(),
        timeout=60,
    )
    assert up.returncode == 0, up.stderr
    assert (dirs["cloud"] / "in.bin").read_bytes() == data
    down = subprocess.run(
        [str(DIFPIPE), "--config", str(dp.config), "copy", f"cloud:{dirs['cloud']}/in.bin", "-"],
        capture_output=True,
        env=dp.environment(),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert down.returncode == 0, down.stderr
    assert down.stdout == data


def test_bad_input_exit_codes(dp, dirs):
    missing = dp("copy", f"edge:{dirs['edge']}/nope", f"cloud:{dirs['cloud']}/", "-o", "json")
    assert missing.code == 7, str(missing)
    assert "no such file" in missing.error and missing.error.startswith("edge:")
    directory = dp("copy", f"edge:{dirs['edge']}", f"cloud:{dirs['cloud']}/")
    assert directory.code == 2 and "-r" in directory.error
    unknown = dp("copy", "nohost:/x", f"cloud:{dirs['cloud']}/")
    assert unknown.code == 2 and 'no host named "nohost"' in unknown.error
    flag = dp("copy", f"edge:{dirs['edge']}/x", f"cloud:{dirs['cloud']}/", "--rate-limit", "fast")
    assert flag.code == 2 and "--rate-limit" in flag.error


def test_analyze_explains_the_plan(dp, dirs, transport):
    log = dirs["edge"] / "app.log"
    log.write_text("".join(f"line {i} INFO something happened\n" for i in range(50_000)))
    run = dp("analyze", f"edge:{log}", f"cloud:{dirs['cloud']}/", "-o", "json")
    assert run.code == 0, str(run)
    plan = run.json()
    assert plan["strategy"] == "exec"
    assert plan["codec"]["codec"] == "zstd" and "compresses to" in plan["codec"]["reason"]
    assert plan["source"]["size"] == log.stat().st_size
    assert plan["destinations"][0]["target"] == f"{dirs['cloud']}/app.log"
    assert plan["transport"] == transport
    for end in (plan["source"], plan["destinations"][0]):
        assert end["transport"] == transport
        assert f'transport = "{transport}"' in end["transport_reason"]
    assert not (dirs["cloud"] / "app.log").exists()  # analyze moves nothing
    assert masters_of(dp.home) == []
    local = dp("analyze", f"edge:{log}", str(dirs["cloud"] / "local.log"), "-o", "json").json()
    assert local["destinations"][0]["transport"] == "local"
    tree = dp("analyze", "-r", f"edge:{dirs['edge']}", f"cloud:{dirs['cloud']}/t", "-o", "json")
    source = tree.json()["source"]
    assert source["transport"] == "asyncssh" and "tar" in source["transport_reason"]
    other = "openssh" if transport == "asyncssh" else "asyncssh"
    text = dp("analyze", "--transport", other, f"edge:{log}", f"cloud:{dirs['cloud']}/")
    assert text.code == 0, str(text)
    lines = [line.split() for line in text.stdout.splitlines() if line.split()[:1] == ["transport"]]
    assert [words[1] for words in lines] == [f"{other}:", f"{other}:"], text.stdout


def _wait_for_checkpoint(proc: subprocess.Popen, timeout: float = 30) -> list[dict]:
    seen = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        seen.append(event)
        if event["kind"] == "transfer.checkpoint" and event["offset"] >= 2 * MiB:
            return seen
    raise AssertionError(f"no checkpoint seen: {seen[-5:]}")


def _start_slow_copy(dp, src, dst):
    argv = [
        str(DIFPIPE),
        "--config",
        str(dp.config),
        "copy",
        f"edge:{src}",
        dst,
        "--rate-limit",
        "4M",
        "--checkpoint-interval",
        "1M",
        "--progress",
        "json",
    ]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=dp.environment(),
        text=True,
    )


def test_kill_9_then_rerun_resumes_from_the_checkpoint(dp, dirs):
    src = random_file(dirs["edge"] / "big.bin", 24 * MiB)
    dst = f"cloud:{dirs['cloud']}/"
    proc = _start_slow_copy(dp, src, dst)
    events = _wait_for_checkpoint(proc)
    proc.kill()
    proc.wait(10)
    transfer_id = next(e["transfer_id"] for e in events if "transfer_id" in e)
    checkpoint = max(e["offset"] for e in events if e["kind"] == "transfer.checkpoint")
    assert not (dirs["cloud"] / "big.bin").exists()

    listed = dp("checkpoints", "list", "-o", "json")
    assert listed.code == 0, str(listed)
    assert transfer_id in listed.stdout

    rerun = dp("copy", f"edge:{src}", dst, "--progress", "json", timeout=120)
    assert rerun.code == 0, str(rerun)
    lines = [json.loads(line) for line in rerun.stdout.splitlines()]
    resume = [e for e in lines if e["kind"] == "transfer.resume"]
    # data still in flight when the process died is lost: it resumes at or below the checkpoint
    assert (
        resume and 0 < resume[0]["offset"] <= checkpoint and resume[0]["transfer_id"] == transfer_id
    )
    assert sha(dirs["cloud"] / "big.bin") == sha(src)


def test_ctrl_c_prints_the_resume_command_and_it_works(dp, dirs):
    src = random_file(dirs["edge"] / "int.bin", 12 * MiB)  # --resume keeps the rate limit (4M)
    proc = _start_slow_copy(dp, src, f"cloud:{dirs['cloud']}/")
    _wait_for_checkpoint(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    line = next(x for x in err.splitlines() if "resume with:" in x)
    transfer_id = line.rsplit(" ", 1)[-1]
    resumed = dp("copy", "--resume", transfer_id, "-o", "json", timeout=120)
    assert resumed.code == 0, str(resumed)
    summary = resumed.json()
    assert summary["status"] == "done" and summary["resumed_from"] > 0
    assert sha(dirs["cloud"] / "int.bin") == sha(src)


@pytest.mark.parametrize("transport", ["asyncssh"])  # a directory: tar over asyncssh
def test_ctrl_c_of_a_local_tree_then_a_rerun_sends_only_the_rest(dp, dirs, tmp_path):
    """Ctrl-C in a terminal reaches the whole foreground process group, tar too: the copy
    still stops cleanly, and the same command again resumes the tree."""
    src = tmp_path / "tree"
    src.mkdir()
    for i in range(24):
        (src / f"part {i}.bin").write_bytes(os.urandom(256 * 1024))
    argv = [str(DIFPIPE), "--config", str(dp.config), "copy", "-r", str(src)]
    argv += [f"cloud:{dirs['cloud']}/"]
    slow = ["--rate-limit", "2M", "--checkpoint-interval", "1M", "--progress", "json"]
    proc = subprocess.Popen(
        argv + slow,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=dp.environment(),
        text=True,
        start_new_session=True,
    )
    _wait_for_checkpoint(proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "resume with:" in err and "failed" not in err
    again = dp(*argv[3:], "--progress", "json", timeout=120)
    assert again.code == 0, str(again)
    events = [json.loads(line) for line in again.stdout.splitlines()]
    resumed = [e for e in events if e.get("kind") == "transfer.resume"]
    assert resumed and "already there" in resumed[0]["note"], resumed
    for i in range(24):
        name = f"part {i}.bin"
        assert sha(dirs["cloud"] / "tree" / name) == sha(src / name)


@pytest.mark.netns
@pytest.mark.parametrize(("fail_fast", "code"), [(False, 9), (True, 6)], ids=["go-on", "fail-fast"])
def test_a_destination_behind_a_cut_link_fails_after_the_stall_timeout(
    lab, dirs, tmp_path, transport, fail_fast, code
):
    """--stall-timeout 2 with SSH keepalives off: cloud's link is cut mid-stream; storage
    lands (exit 9), or with --fail-fast the copy stops with the network error's code (6)."""
    config = lab.write_config(tmp_path / "ka.toml", transport=transport, keepalive_interval=0)
    dp = Difpipe(tmp_path / "home", config)
    src = random_file(dirs["edge"] / "st.bin", 32 * MiB)
    argv = [str(DIFPIPE), "--config", str(config), "copy", f"edge:{src}"]
    argv += [f"cloud:{dirs['cloud']}/", f"storage:{dirs['storage']}/", "--progress", "json"]
    argv += ["--rate-limit", "8M", "--stall-timeout", "2", "--retries", "0"]
    argv += ["--fail-fast"] if fail_fast else []
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=dp.environment(),
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["kind"] == "transfer.progress" and event["bytes"] >= 4 * MiB:
            break
    lab.cut("cloud")
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        lab.heal("cloud")
    assert proc.returncode == code, err
    summary = json.loads(out.splitlines()[-1])
    cloud, storage = summary["destinations"]
    assert "no progress for 2 s" in cloud["error"] and cloud["exit_code"] == 6
    if fail_fast:
        assert storage["status"] == "failed" and "--fail-fast" in storage["error"]
        assert not (dirs["storage"] / "st.bin").exists()
    else:
        assert storage["status"] == "done" and sha(dirs["storage"] / "st.bin") == sha(src)
    assert not (dirs["cloud"] / "st.bin").exists()
