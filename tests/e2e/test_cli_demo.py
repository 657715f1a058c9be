"""`difpipe demo --no-ui` end to end: the real binary serving its lab to other difpipe runs.

The user's own files (a home with ~/.ssh/known_hosts, an XDG config and state dir) are made in
the test's directory and must come out of every run byte for byte as they went in.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.runner import DIFPIPE, Difpipe

SIZE = "8M"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_files(root: Path) -> dict[str, Path]:
    """A user's own DifPipe and SSH files, with the environment that points at them."""
    ssh = root / "user" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "known_hosts").write_text("example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM\n")
    conf = root / "xdg-config" / "difpipe"
    conf.mkdir(parents=True)
    (conf / "difpipe.toml").write_text('[hosts.mine]\naddress = "192.0.2.1"\n')
    (root / "xdg-state" / "difpipe").mkdir(parents=True)
    return {
        "HOME": root / "user",
        "XDG_CONFIG_HOME": root / "xdg-config",
        "XDG_STATE_HOME": root / "xdg-state",
        "XDG_DATA_HOME": root / "xdg-data",
        "XDG_CACHE_HOME": root / "xdg-cache",
    }


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


class Demo:
    """``difpipe demo --no-ui -o json`` running in the background."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(DIFPIPE), "demo", "--no-ui", "-o", "json", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.started = time.monotonic()
        self.doc = self._ready(60)
        self.ready_seconds = time.monotonic() - self.started

    def _ready(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.proc.kill()
                raise AssertionError(f"no ready line within {timeout}s: {self.proc.communicate()}")
        line = self.proc.stdout.readline()
        assert line, f"exited before ready: {self.proc.wait()} {self.proc.communicate()}"
        return json.loads(line)

    @property
    def home(self) -> Path:
        return Path(self.doc["home"])

    @property
    def config(self) -> Path:
        return Path(self.doc["config"])

    def root(self, host: str) -> Path:
        return next(Path(h["root"]) for h in self.doc["hosts"] if h["name"] == host)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


def demo_env(files: dict[str, Path]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "DIFPIPE_")) and k != "SSH_AUTH_SOCK"
    }
    env.update({k: str(v) for k, v in files.items()})
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-user")
    running = Demo(demo_env(user_files(root)), "--size", SIZE, "--dir", str(root))
    yield running
    if running.proc.poll() is None:
        running.stop()


@pytest.fixture
def dp(demo, tmp_path):
    """difpipe with ``--config`` of the demo and a DIFPIPE_HOME of its own."""
    return Difpipe(tmp_path / "client", demo.config)


def test_the_ready_document(demo):
    doc = demo.doc
    assert [(h["name"], h["role"]) for h in doc["hosts"]] == [
        ("edge-pi", "edge"),
        ("cloud-vm", "cloud"),
        ("backup", "storage"),
    ]
    assert demo.config.parent == demo.home and demo.config.is_file()
    assert doc["env"] == {"DIFPIPE_HOME": str(demo.home)}
    fan_out = "difpipe copy edge-pi:data/big.bin cloud-vm:incoming/ backup:incoming/"
    assert fan_out in doc["examples"]
    assert "data/big.bin (8.0 MiB)" in doc["hosts"][0]["files"]
    assert demo.root("edge-pi").joinpath("data/big.bin").stat().st_size == 8 * 1024 * 1024
    assert demo.ready_seconds < 30


def test_the_printed_examples_work_as_printed(demo, tmp_path):
    """With DIFPIPE_HOME exported as the demo says, each example runs and exits 0."""
    dp = Difpipe(demo.home)
    for line in demo.doc["examples"]:
        argv = shlex.split(line)
        assert argv[0] == "difpipe"
        run = dp(*argv[1:], config=False, env={"HOME": str(tmp_path)}, timeout=120)
        assert run.code == 0, str(run)
    big = sha(demo.root("edge-pi") / "data/big.bin")
    assert sha(demo.root("cloud-vm") / "incoming/big.bin") == big
    assert sha(demo.root("backup") / "incoming/big.bin") == big


def test_hosts_check_shows_three_reachable_hosts_with_tools(dp):
    run = dp("hosts", "check", "-o", "json")
    assert run.code == 0, str(run)
    rows = run.json()
    assert [r["name"] for r in rows] == ["edge-pi", "cloud-vm", "backup"]
    for row in rows:
        assert row["reachable"] and row["auth_method"] == "publickey"
        assert {"tar", "sha256sum", "tee", "dd"} <= set(row["tools"])


def test_fan_out_copy_with_sha256(dp, demo):
    run = dp(
        "copy",
        "edge-pi:data/big.bin",
        "cloud-vm:incoming/fan.bin",
        "backup:incoming/fan.bin",
        "--verify",
        "sha256",
        "-o",
        "json",
    )
    assert run.code == 0, str(run)
    result = run.json()
    source = sha(demo.root("edge-pi") / "data/big.bin")
    assert result["digest"] == source
    assert [d["status"] for d in result["destinations"]] == ["done", "done"]
    for host in ("cloud-vm", "backup"):
        assert sha(demo.root(host) / "incoming/fan.bin") == source


def test_recursive_copy_of_the_readings(dp, demo):
    run = dp("copy", "-r", "edge-pi:data/readings", "backup:incoming/r", "-o", "json")
    assert run.code == 0, str(run)
    assert run.json()["strategy"] == "tar"
    src, dst = demo.root("edge-pi") / "data/readings", demo.root("backup") / "incoming/r"
    files = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())
    assert len(files) == 1500
    assert sorted(p.relative_to(dst) for p in dst.rglob("*") if p.is_file()) == files
    assert all((src / f).read_bytes() == (dst / f).read_bytes() for f in files)


def test_the_log_compresses_with_auto(dp, demo):
    run = dp("copy", "edge-pi:data/app.log", "cloud-vm:incoming/app.log", "--compress", "auto")
    assert run.code == 0, str(run)
    assert "compression zstd" in run.stderr + run.stdout
    assert sha(demo.root("cloud-vm") / "incoming/app.log") == sha(
        demo.root("edge-pi") / "data/app.log"
    )


def test_sftp_strategy(dp, demo):
    run = dp(
        "copy", "edge-pi:data/big.bin", "backup:incoming/sftp.bin", "--strategy", "sftp", "-o",
        "json",
    )  # fmt: skip
    assert run.code == 0, str(run)
    assert run.json()["strategy"] == "sftp"
    assert sha(demo.root("backup") / "incoming/sftp.bin") == sha(
        demo.root("edge-pi") / "data/big.bin"
    )


def test_a_changed_host_key_is_refused(dp, demo, tmp_path):
    port = next(h["port"] for h in demo.doc["hosts"] if h["name"] == "edge-pi")
    known = (demo.home / "state" / "known_hosts").read_text()
    other_port = next(h["port"] for h in demo.doc["hosts"] if h["name"] == "backup")
    other_key = next(
        line.split(" ", 1)[1] for line in known.splitlines() if f"]:{other_port} " in line
    )
    swapped = "".join(
        f"[127.0.0.1]:{port} {other_key}\n" if f"]:{port} " in line else line + "\n"
        for line in known.splitlines()
    )
    (tmp_path / "known_hosts").write_text(swapped)
    config = tmp_path / "difpipe.toml"
    config.write_text(
        demo.config.read_text().replace(
            str(demo.home / "state" / "known_hosts"), str(tmp_path / "known_hosts")
        )
    )
    run = dp("hosts", "check", "edge-pi", config=config)
    assert run.code == 5, str(run)
    assert "HOST KEY MISMATCH" in run.error
    run = dp("copy", "edge-pi:data/big.bin", "backup:incoming/never.bin", config=config)
    assert run.code == 5, str(run)
    assert not (demo.root("backup") / "incoming/never.bin").exists()


# -- runs of their own ------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_demo_cleanly_and_the_user_files_are_untouched(tmp_path, sig):
    files = user_files(tmp_path / "u")
    before = snapshot(tmp_path / "u")
    demo = Demo(demo_env(files), "--size", "1M", "--dir", str(tmp_path))
    env = {k: str(v) for k, v in files.items()}
    run = Difpipe(demo.home)(
        "copy", "edge-pi:data/app.log", "backup:incoming/", config=False, env=env
    )
    assert run.code == 0, str(run)
    assert (demo.root("backup") / "incoming/app.log").is_file()
    base = demo.home.parent
    code, err = demo.stop(sig)
    assert code == 0, err
    assert "demo lab stopped; removed its files" in err
    assert not base.exists()
    assert snapshot(tmp_path / "u") == before


def test_keep_keeps_the_lab_directory(tmp_path):
    files = user_files(tmp_path / "u")
    demo = Demo(demo_env(files), "--size", "1M", "--keep", "--dir", str(tmp_path))
    code, err = demo.stop()
    assert code == 0, err
    assert f"kept {demo.home.parent}" in err
    assert (demo.root("edge-pi") / "data/big.bin").stat().st_size == 1024 * 1024


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo"], "difpipe demo: the console needs a terminal (use --no-ui)"),
        (["demo", "--no-ui", "--size", "0"], '--size: expected 1 byte to 64G, got "0"'),
        (["demo", "--no-ui", "--size", "big"], '--size: expected a size like "64M", got "big"'),
        (
            ["demo", "--no-ui", "--dir", "/nonexistent/x"],
            "--dir: /nonexistent/x: no such directory",
        ),
        (["demo", "-o", "json"], "difpipe demo: -o json needs --no-ui"),
        (
            ["--config", "x.toml", "demo", "--no-ui"],
            "difpipe demo: --config cannot be used; the demo writes its own config (drop --config)",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    run = Difpipe(tmp_path)(*args, config=False)
    assert run.code == 2, str(run)
    assert run.error == message


@pytest.mark.parametrize("stop", ["q", "SIGTERM"])
def test_the_console_opens_on_the_lab_in_a_terminal(tmp_path, stop):
    """`difpipe demo` in a real terminal: the three hosts, a check that finds them up, then
    q (or a SIGTERM) closes the console and the lab."""
    from tests.e2e.tmux import TMUX, Terminal

    if TMUX is None:
        pytest.fail("tmux is not installed (scripts/test installs it)", pytrace=False)
    files = user_files(tmp_path / "u")
    before = snapshot(tmp_path / "u")
    labs = tmp_path / "labs"
    labs.mkdir()
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **{k: str(v) for k, v in files.items()}}
    line = f"{shlex.quote(str(DIFPIPE))} demo --size 1M --dir {shlex.quote(str(labs))}"
    with Terminal(["/bin/sh", "-c", f'{line}; echo "exit=$?"'], env=env, width=120) as term:
        screen = term.wait_for("backup", timeout=60)
        for name, role in (("edge-pi", "edge"), ("cloud-vm", "cloud"), ("backup", "storage")):
            assert any(name in row and role in row for row in screen.splitlines()), screen
        assert list(labs.glob("difpipe-demo-*/home/difpipe.toml"))
        term.press("c")
        term.wait_for("3 up", timeout=60)
        if stop == "q":
            term.press("q")
        else:
            (demo,) = [
                p
                for p in psutil.process_iter(["cmdline"])
                if "demo" in (p.info["cmdline"] or []) and str(labs) in p.info["cmdline"]
            ]
            demo.send_signal(signal.SIGTERM)
        try:
            screen = term.wait_for("exit=", timeout=60)
        except AssertionError:  # a hang: show where every thread of difpipe waits
            for p in psutil.process_iter(["cmdline"]):
                if "demo" in (p.info["cmdline"] or []) and str(labs) in p.info["cmdline"]:
                    p.send_signal(signal.SIGUSR1)
            time.sleep(1)
            raise AssertionError("difpipe demo did not exit:\n" + term.scrollback()) from None
    assert "exit=0" in screen, screen
    assert "demo lab stopped; removed its files" in screen
    assert not list(labs.iterdir())
    assert snapshot(tmp_path / "u") == before


def test_a_stop_while_the_lab_starts_removes_it(tmp_path):
    files = user_files(tmp_path / "u")
    proc = subprocess.Popen(
        [str(DIFPIPE), "demo", "--no-ui", "--size", "4G", "--dir", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env(files),
    )
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob("difpipe-demo-*/hosts/edge-pi/data/big.bin")):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "difpipe: interrupted"
    assert out == ""
    assert not list(tmp_path.glob("difpipe-demo-*"))
