#!/usr/bin/env python3
"""DifPipe against OpenSSH, scp and rsync on the real-sshd lab, in one run, on the same data.

Run as root (the lab builds network namespaces), with the project's virtualenv::

    sudo .venv/bin/python bench/transfer.py [--quick] [--only SCENARIO ...] [--runs N] [--json OUT]

Every scenario prints a table (tool, rate as the median of ``--runs`` runs with the slowest and
fastest run in brackets, the ratio difpipe / tool, difpipe's peak RSS), its target with PASS or
MISS, and the summary ends with one line per scenario. Rates are wall-clock rates of the whole
command, connection setup included, in MB/s of 10^6 bytes. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MiB = 1024 * 1024
GiB = 1024 * MiB
MB = 1_000_000
OPENSSL_SHA256 = "openssl dgst -sha256 -r"  # prints "HEX *stdin" for its stdin
AES = "aes128-gcm@openssh.com"
TIME = "/usr/bin/time"
SCENARIOS = ("relay", "smallfiles", "compress", "fanout", "memory", "parallel")
RSS_LIMIT = 100 * MB

SIZES = {
    False: {
        "relay": GiB,
        "files": 10_000,
        "log": 256 * MiB,
        "fanout": 256 * MiB,
        "memory": GiB,
        "sparse": 8 * GiB,
        "parallel": 128 * MiB,
    },
    True: {
        "relay": 256 * MiB,
        "files": 2_000,
        "log": 64 * MiB,
        "fanout": 64 * MiB,
        "memory": 256 * MiB,
        "sparse": 2 * GiB,
        "parallel": 64 * MiB,
    },
}
FILE_SIZE = 4096
FILES_PER_DIR = 100


def say(text: str = "") -> None:
    print(text, flush=True)


def difpipe_argv() -> list[str]:
    script = REPO / ".venv" / "bin" / "difpipe"
    if script.exists():
        return [str(script)]
    found = shutil.which("difpipe")
    return [found] if found else [sys.executable, "-m", "difpipe_tui"]


def compile_checkout() -> None:
    """Write the bytecode of the checkout's difpipe_tui, as pip does when it installs.

    With PYTHONDONTWRITEBYTECODE set (as in many development shells) an editable checkout
    never gets it, and every difpipe run then compiles its ~30 modules again (~0.2 s of CPU
    here) that no installed copy pays. compileall writes the files whatever that variable says.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "difpipe_tui")],
        stdout=subprocess.DEVNULL,
        check=False,
    )


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n:g} B"


# -- running commands ----------------------------------------------------------------------------


@dataclass
class Outcome:
    rc: int
    seconds: float
    started: float  # Unix time just before the launch
    stdout: str
    stderr: str
    rss_kib: int | None = None


class Runner:
    """Runs commands in their own process group, so an interrupt can end them and only them."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir = workdir
        self.env = env
        self.current: subprocess.Popen[str] | None = None
        self.use_time = os.access(TIME, os.X_OK)

    def run(self, argv: list[str], *, rss: bool = False, timeout: float = 600) -> Outcome:
        rss_file = self.workdir / "rss"
        if rss and self.use_time:
            argv = [TIME, "-f", "%M", "-o", str(rss_file), *argv]
        started = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            start_new_session=True,
        )
        self.current = proc
        poller = None
        if rss and not self.use_time:
            poller = _RssPoller(proc.pid)
            poller.start()
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = proc.communicate()
            err += f"\n(bench: killed after the {timeout:.0f} s timeout)"
        except BaseException:
            self.kill()
            raise
        finally:
            self.current = None
            if poller is not None:
                poller.stop()
        seconds = time.perf_counter() - t0
        peak = None
        if rss and self.use_time:
            with contextlib.suppress(OSError, ValueError, IndexError):
                peak = int(rss_file.read_text().split()[-1])
        elif poller is not None:
            peak = poller.peak // 1024
        return Outcome(proc.returncode, seconds, started, out, err, peak)

    def kill(self) -> None:
        proc = self.current
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class _RssPoller(threading.Thread):
    """The largest summed RSS of a process and its descendants, sampled every 50 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self._done.wait(0.05)

    def stop(self) -> None:
        self._done.set()
        self.join(1)


class CpuMeter:
    """CPU time the rest of the machine used: all busy time minus the bench's own and its lab's.

    Other processes (another test run, say) share the cores with the tools measured; a run with
    more than :data:`BUSY` cores of such foreign load is flagged in the tables. The bench's own
    time is this process and every child it reaped (``os.times``) plus the children each lab
    sshd reaped (``cutime``/``cstime``), which covers the remote commands of every tool.
    """

    BUSY = 0.25
    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, sshd_pids: list[int]):
        self.sshd_pids = sshd_pids

    def snapshot(self) -> tuple[float, float, float]:
        with open("/proc/stat") as fh:
            cpu = fh.readline().split()[1:]
        busy = (int(cpu[0]) + int(cpu[1]) + int(cpu[2])) / self.TICK
        t = os.times()
        mine = t.user + t.system + t.children_user + t.children_system
        for pid in self.sshd_pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                mine += sum(int(x) for x in fields[11:15]) / self.TICK
        return time.monotonic(), busy, mine

    @staticmethod
    def foreign(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
        """Cores of foreign load between two snapshots."""
        wall = b[0] - a[0]
        return max(0.0, (b[1] - a[1]) - (b[2] - a[2])) / wall if wall > 0 else 0.0

    def wait_quiet(self, limit: float = 20.0) -> float:
        """Wait (up to ``limit`` s) until the foreign load over half a second is low; return it."""
        deadline = time.monotonic() + limit
        while True:
            a = self.snapshot()
            time.sleep(0.5)
            load = self.foreign(a, self.snapshot())
            if load < self.BUSY or time.monotonic() > deadline:
                return load


def in_mount_ns(pid: int) -> list[str]:
    """A command prefix that runs in the mount namespace of ``pid`` (a lab sshd)."""
    return ["nsenter", "-t", str(pid), "-m", "--"]


def shell(line: str) -> list[str]:
    return ["bash", "-c", "set -o pipefail; " + line]


def first_line(text: str) -> str:
    return next((s.strip() for s in text.splitlines() if s.strip()), "")


# -- results -------------------------------------------------------------------------------------


@dataclass
class Tool:
    label: str
    argv: list[str]
    difpipe: bool = False
    progress: bool = False  # stdout is NDJSON (--progress json) rather than one JSON object


@dataclass
class Row:
    tool: Tool
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    engine_seconds: list[float] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    events: list[list[dict[str, Any]]] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    sessions: dict[str, int] = field(default_factory=dict)
    foreign: list[float] = field(default_factory=list)  # cores of other load, per run
    amount: float | None = None  # this row's MB or files per run, when not the scenario's
    error: str | None = None
    skipped: str | None = None

    @property
    def label(self) -> str:
        return self.tool.label

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None and bool(self.seconds)

    def rate(self, amount: float) -> float | None:
        return amount / statistics.median(self.seconds) if self.ok else None

    def spread(self, amount: float) -> tuple[float, float] | None:
        if not self.ok:
            return None
        return amount / max(self.seconds), amount / min(self.seconds)

    @property
    def disturbed(self) -> float:
        return max(self.foreign, default=0.0)

    @property
    def peak_mb(self) -> float | None:
        return max(self.rss_kib) * 1024 / MB if self.rss_kib else None


@dataclass
class Result:
    name: str
    title: str
    unit: str
    amount: float  # MB or files per run
    rows: list[Row] = field(default_factory=list)
    target: str = ""
    verdict: str = "SKIP"
    summary: str = ""
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self, label: str) -> Row:
        return next(r for r in self.rows if r.label == label)

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            rate = r.rate(r.amount or self.amount)
            rows.append(
                {
                    "tool": r.label,
                    "argv": r.tool.argv,
                    "seconds": [round(s, 3) for s in r.seconds],
                    "rate": None if rate is None else round(rate, 2),
                    "unit": self.unit,
                    "peak_rss_mb": None if r.peak_mb is None else round(r.peak_mb, 1),
                    "engine_seconds": r.engine_seconds,
                    "foreign_load_cores": [round(f, 2) for f in r.foreign],
                    "error": r.error,
                    "skipped": r.skipped,
                }
            )
        return {
            "title": self.title,
            "amount": self.amount,
            "unit": self.unit,
            "target": self.target,
            "verdict": self.verdict,
            "summary": self.summary,
            "notes": self.notes,
            "rows": rows,
            **self.extra,
        }


def verdict(ok: bool | None) -> str:
    return "SKIP" if ok is None else ("PASS" if ok else "MISS")


def fmt_rate(value: float | None, spread: tuple[float, float] | None = None) -> str:
    if value is None:
        return "-"
    text = f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    if spread is not None and spread[0] != spread[1]:
        text += f" ({spread[0]:,.0f}-{spread[1]:,.0f})"
    return text


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def print_result(res: Result, main: str | None) -> None:
    ref = res.row(main).rate(res.amount) if main else None
    body = []
    for r in res.rows:
        rate = r.rate(res.amount)
        plain = r.tool.difpipe or ref is None or rate is None
        ratio = "-" if plain else f"{ref / rate:.2f}x"
        peak = f"{r.peak_mb:.0f} MB" if r.peak_mb is not None else "-"
        note = f"SKIP: {r.skipped}" if r.skipped else f"FAILED: {r.error}" if r.error else ""
        if r.engine_seconds and r.ok:
            engine = res.amount / statistics.median(r.engine_seconds)
            note = f"engine-only {fmt_rate(engine)} {res.unit}" + (f"; {note}" if note else "")
        if r.disturbed >= CpuMeter.BUSY:
            note += ("; " if note else "") + f"other load up to {r.disturbed:.1f} cores"
        body.append([r.label, fmt_rate(rate, r.spread(res.amount)), ratio, peak, note])
    say(table(["tool", res.unit, "difpipe / tool", "difpipe peak RSS", "notes"], body))
    for note in res.notes:
        say(f"  note: {note}")
    say(f"  target: {res.target} -> {res.verdict}")


# -- the bench -----------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace):
        from tests.lab.lab import Lab

        self.args = args
        self.quick = args.quick
        self.sizes = SIZES[self.quick]
        self.runs = 1 if args.quick else args.runs
        self.plain = args.login == "plain"
        # --login root measures root's own .bashrc: sessions keep its home
        self.lab = Lab.start(netns=True, plain_user=self.plain, user_home=not self.plain)
        self.mounts: list[tuple[int, str]] = []
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        self.local = self.lab.workdir / "bench"
        self.local.mkdir()
        env = dict(os.environ, DIFPIPE_HOME=str(self.local / "home"), LC_ALL="C")
        env.pop("DIFPIPE_CONFIG", None)
        self.runner = Runner(self.local, env)
        self.cpu = CpuMeter([h.pid for h in self.lab.hosts.values() if h.pid])
        # every tool logs in as the same user: root (whose .bashrc is slow) or the plain user
        self.user = self.lab.plain_user if self.plain else self.lab.user
        assert self.user is not None
        ssh_config = self.lab.ssh_config.read_text()
        if self.plain:
            ssh_config = ssh_config.replace(f"  User {self.lab.user}\n", f"  User {self.user}\n")
            assert f"  User {self.user}\n" in ssh_config
        (self.local / "ssh_config").write_text(ssh_config)
        self.ssh_config = str(self.local / "ssh_config")
        self.config = self.lab.write_config(self.local / "difpipe.toml", user=self.user)
        # the same hosts with every stream inside difpipe's process (no OpenSSH legs)
        self.config_asyncssh = self.lab.write_config(
            self.local / "difpipe-asyncssh.toml", user=self.user, transport="asyncssh"
        )
        self.difpipe = difpipe_argv()
        self.rclone = self._rclone_config()
        compile_checkout()
        self.src = self.lab.hosts["edge"].root / "src"
        self.src.mkdir()
        for name in ("cloud", "storage", "bastion", "inner"):
            self._mount_tmpfs(name)
            (self.lab.hosts[name].root / "disk").mkdir()
            if self.plain:
                uid, gid = self.lab.plain_ids()
                os.chown(self.seen(name), uid, gid)
                os.chown(self.seen(name, disk=True), uid, gid)

    def _rclone_config(self) -> list[str] | None:
        """``rclone --config FILE`` with one sftp remote per lab host, or None without rclone.

        The remotes log in as the other tools do (same user, key and known_hosts) and keep
        rclone's defaults otherwise, as people run it: its own Go SSH client, a remote hash
        check after each file where the host has md5sum, 4 files at a time.
        """
        rclone = shutil.which("rclone")
        if rclone is None:
            return None
        lines = []
        for host in self.lab.hosts.values():
            if host.jump:
                continue
            lines += [
                f"[{host.name}]",
                "type = sftp",
                f"host = {host.address}",
                f"port = {host.port}",
                f"user = {self.user}",
                f"key_file = {self.lab.client_key}",
                f"known_hosts_file = {self.lab.known_hosts}",
                "shell_type = unix",
                "",
            ]
        conf = self.local / "rclone.conf"
        conf.write_text("\n".join(lines))
        return [rclone, "--config", str(conf)]

    # -- places ------------------------------------------------------------------------------

    def _mount_tmpfs(self, name: str) -> None:
        """A tmpfs in the mount namespace of the host's sshd, where its sessions write."""
        host = self.lab.hosts[name]
        path = host.root / "tmpfs"
        path.mkdir()
        assert host.pid is not None
        mount = ["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "difpipe-bench", str(path)]
        subprocess.run([*in_mount_ns(host.pid), *mount], check=True)
        self.mounts.append((host.pid, str(path)))

    def dst(self, name: str, disk: bool = False) -> str:
        """The destination directory on a host, as the host's commands see it."""
        return str(self.lab.hosts[name].root / ("disk" if disk else "tmpfs"))

    def seen(self, name: str, disk: bool = False) -> Path:
        """The same directory as seen from here (a tmpfs lives in the sshd's mount namespace)."""
        if disk:
            return Path(self.dst(name, disk=True))
        return Path(f"/proc/{self.lab.hosts[name].pid}/root{self.dst(name)}")

    def clear(self, *names: str, disk: bool = False) -> None:
        for name in names:
            for entry in self.seen(name, disk).iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()

    def sessions(self) -> dict[str, int]:
        return {
            name: host.log_path.read_text(errors="replace").count("Starting session")
            for name, host in self.lab.hosts.items()
        }

    def close(self) -> None:
        self.runner.kill()
        problems = []
        try:
            self.lab.heal_all()
        except Exception as exc:
            problems.append(f"heal: {exc}")
        for pid, path in reversed(self.mounts):
            done = subprocess.run(
                [*in_mount_ns(pid), "umount", path],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                problems.append(f"umount {path}: {first_line(done.stderr)}")
        self.mounts.clear()
        try:
            self.lab.close()
        except Exception as exc:
            problems.append(f"lab: {exc}")
        if problems:
            say("cleanup problems: " + "; ".join(problems))

    # -- commands ----------------------------------------------------------------------------

    def ssh(self, host: str, remote: str, cipher: str | None = None, extra: str = "") -> str:
        opts = f" -c {cipher}" if cipher else ""
        return f"ssh -F {shlex.quote(self.ssh_config)}{opts}{extra} {host} {shlex.quote(remote)}"

    def pipeline(
        self, src: str, host: str, dst: str, cipher: str | None = None, *, verify: str = ""
    ) -> list[str]:
        """``ssh edge cat SRC | ssh HOST 'cat > DST'``; with ``verify`` (a digest command),
        what a user types to check it as difpipe does: the source hashes the file while it is
        sent (a second read), the destination what it writes, and the two digests must match.
        ``sha256sum`` is what most type; coreutils' own SHA-256 uses no SHA instructions, so
        ``openssl dgst`` (as difpipe runs it) is the fast way, several times cheaper."""
        if not verify:
            read = self.ssh("edge", "cat " + shlex.quote(src), cipher)
            write = self.ssh(host, "cat > " + shlex.quote(dst), cipher)
            return shell(f"{read} | {write}")
        hash_src = self.ssh("edge", f"{verify} < " + shlex.quote(src), cipher)
        read = self.ssh("edge", "cat " + shlex.quote(src), cipher)
        write = self.ssh(host, f"tee {shlex.quote(dst)} | {verify}", cipher)
        sums = shlex.quote(str(self.local / "source.sha256"))
        return shell(
            f'{hash_src} > {sums} & b=$({read} | {write}) && wait $! && [ "$(cat {sums})" = "$b" ]'
        )

    def dp(self, *args: str, progress: bool = False, asyncssh: bool = False) -> list[str]:
        out = ["--progress", "json"] if progress else ["-o", "json"]
        config = self.config_asyncssh if asyncssh else self.config
        return [*self.difpipe, "--config", str(config), "copy", *args, *out]

    # -- data --------------------------------------------------------------------------------

    def data(self, name: str, size: int, kind: str = "random") -> Path:
        path = self.src / name
        if path.exists() and path.stat().st_size == size:
            return path
        t0 = time.perf_counter()
        if kind == "random":
            with open(path, "wb") as fh:
                left = size
                while left:
                    block = os.urandom(min(left, 4 * MiB))
                    fh.write(block)
                    left -= len(block)
        elif kind == "sparse":
            with open(path, "wb") as fh:
                fh.truncate(size)
        elif kind == "log":
            write_log_text(path, size)
        say(f"  made {path.name}: {human_bytes(size)} {kind} in {time.perf_counter() - t0:.1f} s")
        return path

    def small_files(self, count: int) -> Path:
        root = self.src / f"small{count}"
        if root.exists():
            return root
        t0 = time.perf_counter()
        for i in range(count):
            sub = root / f"d{i // FILES_PER_DIR:03d}"
            if i % FILES_PER_DIR == 0:
                sub.mkdir(parents=True)
            (sub / f"f{i:05d}.bin").write_bytes(os.urandom(FILE_SIZE))
        say(f"  made {count:,} files of {FILE_SIZE} B in {time.perf_counter() - t0:.1f} s")
        return root

    # -- measuring ---------------------------------------------------------------------------

    def measure(
        self,
        tools: list[Tool],
        *,
        before: Callable[[], None],
        check: Callable[[Tool], str | None],
        timeout: float,
        runs: int | None = None,
    ) -> list[Row]:
        """Each tool ``runs`` times, round-robin, ``before`` each run and ``check`` after it."""
        rows = [Row(t) for t in tools]
        runs = runs or self.runs
        for n in range(runs):
            for row in rows:
                if row.error or row.skipped:
                    continue
                before()
                counts = self.sessions() if row.tool.difpipe and n == 0 else None
                waited = self.cpu.wait_quiet()
                if waited >= CpuMeter.BUSY:
                    say(f"    (other processes use {waited:.1f} cores; measuring anyway)")
                a = self.cpu.snapshot()
                out = self.runner.run(row.tool.argv, rss=row.tool.difpipe, timeout=timeout)
                load = CpuMeter.foreign(a, self.cpu.snapshot())
                problem = self._parse(row, out)
                if row.skipped:
                    say(f"    run {n + 1}/{runs} {row.label}: SKIP ({row.skipped})")
                    continue
                if problem is None and out.rc != 0:
                    problem = f"exit {out.rc}: {first_line(out.stderr) or first_line(out.stdout)}"
                if problem is None:
                    problem = check(row.tool)
                if counts is not None:
                    after = self.sessions()
                    delta = {h: after[h] - counts[h] for h in after if after[h] != counts[h]}
                    row.sessions = delta
                extra = f", peak RSS {out.rss_kib * 1024 / MB:.0f} MB" if out.rss_kib else ""
                if load >= CpuMeter.BUSY:
                    extra += f", other load {load:.1f} cores"
                state = f"FAILED ({problem})" if problem else f"{out.seconds:.2f} s{extra}"
                say(f"    run {n + 1}/{runs} {row.label}: {state}")
                if problem:
                    row.error = problem
                    continue
                row.seconds.append(out.seconds)
                row.starts.append(out.started)
                row.foreign.append(load)
                if out.rss_kib:
                    row.rss_kib.append(out.rss_kib)
        return rows

    def _parse(self, row: Row, out: Outcome) -> str | None:
        """Read difpipe's JSON; a usage refusal skips the tool rather than failing it."""
        if not row.tool.difpipe:
            return None
        docs: list[dict[str, Any]] = []
        for line in out.stdout.splitlines() if row.tool.progress else [out.stdout]:
            with contextlib.suppress(json.JSONDecodeError):
                if line.strip():
                    docs.append(json.loads(line))
        last = docs[-1] if docs else {}
        if out.rc == 2 or last.get("error") == "usage":
            row.skipped = (
                last.get("message")
                or first_line(out.stderr).removeprefix("difpipe: error: ")
                or "refused"
            )
            return None
        if last.get("error"):
            return f"exit {out.rc}: {last.get('message')}"
        if last.get("kind", "summary") == "summary" and "seconds" in last:
            row.summaries.append(last)
            row.engine_seconds.append(float(last["seconds"]))
        if row.tool.progress:
            row.events.append([d for d in docs if d.get("kind") != "transfer.progress"])
        if last.get("status") not in (None, "done"):
            return f"status {last.get('status')}: {first_line(str(last.get('error') or ''))}"
        return None

    def check_file(self, *places: tuple[str, bool], name: str, size: int):
        def check(_tool: Tool) -> str | None:
            for host, disk in places:
                path = self.seen(host, disk) / name
                try:
                    got = path.stat().st_size
                except OSError:
                    return f"{host}: {name} missing"
                if got != size:
                    return f"{host}: {name} has {got} bytes, expected {size}"
            return None

        return check

    # -- scenarios ---------------------------------------------------------------------------

    def relay(self) -> Result:
        size = self.sizes["relay"]
        src = str(self.data("random.bin", size))
        out = f"{self.dst('cloud')}/relay.bin"
        res = Result(
            "relay", f"remote->remote relay, {human_bytes(size)} random", "MB/s", size / MB
        )
        scp = ["scp", "-q", "-F", self.ssh_config, "-3"]
        tools = [
            Tool("difpipe (verify sha256)", self.dp(f"edge:{src}", f"cloud:{out}"), True),
            Tool(
                "difpipe --verify none",
                self.dp(f"edge:{src}", f"cloud:{out}", "--verify", "none"),
                True,
            ),
            Tool(
                "difpipe (sha256), transport asyncssh",
                self.dp(f"edge:{src}", f"cloud:{out}", asyncssh=True),
                True,
            ),
            Tool(
                "difpipe --verify none, transport asyncssh",
                self.dp(f"edge:{src}", f"cloud:{out}", "--verify", "none", asyncssh=True),
                True,
            ),
            Tool("ssh | ssh (default cipher)", self.pipeline(src, "cloud", out)),
            Tool(f"ssh | ssh -c {AES}", self.pipeline(src, "cloud", out, AES)),
            Tool(
                f"ssh | ssh -c {AES}, sha256sum at both ends",
                self.pipeline(src, "cloud", out, AES, verify="sha256sum"),
            ),
            Tool(
                f"ssh | ssh -c {AES}, openssl dgst -sha256 at both ends",
                self.pipeline(src, "cloud", out, AES, verify=OPENSSL_SHA256),
            ),
            Tool("scp -3 (default cipher)", [*scp, f"edge:{src}", f"cloud:{out}"]),
            Tool(f"scp -3 -c {AES}", [*scp, "-c", AES, f"edge:{src}", f"cloud:{out}"]),
        ]
        if self.rclone:
            tools.append(
                Tool(
                    "rclone copyto (sftp relay)",
                    [*self.rclone, "copyto", f"edge:{src}", f"cloud:{out}"],
                )
            )
        res.rows = self.measure(
            tools,
            before=lambda: self.clear("cloud"),
            check=self.check_file(("cloud", False), name="relay.bin", size=size),
            timeout=120 + size / (2 * MB),
        )
        main, ref = res.rows[0], res.row(f"ssh | ssh -c {AES}")
        ratio = _ratio(main, ref, res.amount)
        res.target = f"difpipe (verify sha256) >= 1.0x ssh|ssh {AES}"
        res.verdict = verdict(None if ratio is None else ratio >= 1.0)
        checked = res.row(f"ssh | ssh -c {AES}, sha256sum at both ends")
        fast = res.row(f"ssh | ssh -c {AES}, openssl dgst -sha256 at both ends")
        res.summary = (
            f"difpipe {fmt_rate(main.rate(res.amount))} MB/s = {_x(ratio)} of ssh|ssh aes128-gcm "
            f"{fmt_rate(ref.rate(res.amount))} MB/s, {_x(_ratio(main, checked, res.amount))} of "
            f"it with sha256sum at both ends, {_x(_ratio(main, fast, res.amount))} with openssl "
            f"dgst at both ends; --verify none {fmt_rate(res.rows[1].rate(res.amount))} MB/s"
        )
        for row in res.rows[:2]:
            if row.sessions:
                total = sum(row.sessions.values())
                each = ", ".join(f"{h} {n}" for h, n in row.sessions.items())
                res.notes.append(f"{row.label} ran {total} remote commands ({each})")
        return res

    def smallfiles(self) -> Result:
        count = self.sizes["files"]
        root = self.small_files(count)
        dst = self.dst("cloud")
        res = Result(
            "smallfiles", f"{count:,} files x {FILE_SIZE} B, edge -> cloud", "files/s", count
        )
        q = shlex.quote
        ssh_e = f"ssh -F {q(self.ssh_config)}"
        tar_read = self.ssh("edge", f"tar -C {q(str(root))} -cf - .")
        tree = q(dst + "/tree")
        tar_write = self.ssh("cloud", f"mkdir -p {tree} && tar -C {tree} -xf -")
        tools = [
            Tool("difpipe copy -r", self.dp("-r", f"edge:{root}", f"cloud:{dst}/tree"), True),
            Tool(
                "difpipe copy -r --compress none",
                self.dp("-r", f"edge:{root}", f"cloud:{dst}/tree", "--compress", "none"),
                True,
            ),
            Tool(
                "rsync -a (local -> remote)",
                ["rsync", "-a", "-e", ssh_e, f"{root}/", f"cloud:{dst}/tree/"],
            ),
            Tool("ssh tar | ssh tar (relay)", shell(f"{tar_read} | {tar_write}")),
        ]
        if self.rclone:
            tools.append(
                Tool(
                    "rclone copy (sftp relay)",
                    [*self.rclone, "copy", f"edge:{root}", f"cloud:{dst}/tree"],
                )
            )

        def check(_tool: Tool) -> str | None:
            tree = self.seen("cloud") / "tree"
            files = [p for p in tree.rglob("*") if p.is_file()] if tree.is_dir() else []
            if len(files) != count:
                return f"{len(files)} files arrived, expected {count}"
            if sum(p.stat().st_size for p in files) != count * FILE_SIZE:
                return "the files arrived with the wrong sizes"
            return None

        res.rows = self.measure(tools, before=lambda: self.clear("cloud"), check=check, timeout=600)
        main, ref = res.rows[0], res.rows[2]
        ratio = _ratio(main, ref, res.amount)
        res.target = "difpipe files/s >= rsync -a files/s"
        res.verdict = verdict(None if ratio is None else ratio >= 1.0)
        if main.skipped:
            res.summary = f"SKIP, difpipe refused: {main.skipped}"
        else:
            res.summary = (
                f"difpipe {fmt_rate(main.rate(count))} files/s = {_x(ratio)} of rsync "
                f"{fmt_rate(ref.rate(count))} files/s; tar relay "
                f"{fmt_rate(res.rows[3].rate(count))} files/s"
            )
        for s in main.summaries[:1]:
            res.notes.append(
                f"difpipe chose strategy {s.get('strategy')}, codec {s.get('codec')}"
                f" ({s.get('codec_reason')})"
            )
        return res

    def compress(self) -> Result:
        size = self.sizes["log"]
        src = str(self.data("app.log", size, "log"))
        out = f"{self.dst('cloud')}/app.log"
        res = Result(
            "compress",
            f"{human_bytes(size)} log text to cloud over a 100mbit cap",
            "MB/s",
            size / MB,
        )
        q = shlex.quote
        zread = self.ssh("edge", f"zstd -1 -T0 -q -c {q(src)}", AES)
        zwrite = self.ssh("cloud", f"zstd -d -q -c > {q(out)}", AES)
        tools = [
            Tool(
                "difpipe --compress auto",
                self.dp(f"edge:{src}", f"cloud:{out}", "--compress", "auto"),
                True,
            ),
            Tool(
                "difpipe --compress none",
                self.dp(f"edge:{src}", f"cloud:{out}", "--compress", "none"),
                True,
            ),
            Tool(f"ssh | ssh -c {AES}", self.pipeline(src, "cloud", out, AES)),
            Tool("ssh zstd -1 | ssh zstd -d", shell(f"{zread} | {zwrite}")),
        ]
        ratio_zstd = zstd_ratio(src)
        self.lab.cap("cloud", "100mbit")
        try:
            res.rows = self.measure(
                tools,
                before=lambda: self.clear("cloud"),
                check=self.check_file(("cloud", False), name="app.log", size=size),
                timeout=120 + size / (MB / 2),
            )
        finally:
            self.lab.heal_all()
        auto, none = res.rows[0], res.rows[1]
        gain = _ratio(auto, none, res.amount)
        res.target = "difpipe --compress auto >= 3.0x difpipe --compress none"
        res.verdict = verdict(None if gain is None else gain >= 3.0)
        res.summary = (
            f"auto {fmt_rate(auto.rate(res.amount))} MB/s = {_x(gain)} of none "
            f"{fmt_rate(none.rate(res.amount))} MB/s (zstd -1 ratio {ratio_zstd:.1f}:1)"
        )
        if auto.ok and none.ok and gain is not None:
            res.extra["auto_over_none"] = round(gain, 2)
        res.notes.append(f"zstd -1 compresses this text {ratio_zstd:.1f}:1")
        for s in auto.summaries[:1]:
            res.notes.append(f"difpipe auto chose {s.get('codec')}: {s.get('codec_reason')}")
        return res

    def fanout(self) -> Result:
        size = self.sizes["fanout"]
        src = str(self.data("fanout.bin", size))
        dests = ("cloud", "storage", "bastion", "inner")
        res = Result(
            "fanout",
            f"{human_bytes(size)} random to 4 destinations, 100mbit each",
            "MB/s",
            size / MB,
        )
        name = "fan.bin"
        single = Tool(
            "difpipe -> cloud alone",
            self.dp(f"edge:{src}", f"cloud:{self.dst('cloud')}/{name}", progress=True),
            True,
            progress=True,
        )
        fan = Tool(
            "difpipe -> 4 destinations",
            self.dp(f"edge:{src}", *(f"{d}:{self.dst(d)}/{name}" for d in dests), progress=True),
            True,
            progress=True,
        )
        q = shlex.quote
        fifo = self.local / "fifo"
        legs = [
            f"{self.ssh(d, 'cat > ' + q(self.dst(d) + '/' + name), AES)} < {q(str(fifo))}{i}"
            for i, d in enumerate(dests[:3])
        ]
        tee_line = (
            f"rm -f {q(str(fifo))}?; mkfifo {' '.join(q(f'{fifo}{i}') for i in range(3))}; "
            + " ".join(f"{leg} & p{i}=$!;" for i, leg in enumerate(legs))
            + f" {self.ssh('edge', 'cat ' + q(src), AES)} | tee "
            + " ".join(q(f"{fifo}{i}") for i in range(3))
            + f" | {self.ssh('inner', 'cat > ' + q(self.dst('inner') + '/' + name), AES)};"
            + " rc=$?; wait $p0 && wait $p1 && wait $p2 || rc=1; exit $rc"
        )
        tee = Tool("ssh | tee to 4 x ssh (all 4)", shell(tee_line))
        for d, rate in (("cloud", "100mbit"), ("storage", "100mbit"), ("inner", "100mbit")):
            self.lab.cap(d, rate)
        self.lab.cap("bastion", "200mbit")
        try:
            rows = self.measure(
                [single],
                before=lambda: self.clear("cloud"),
                check=self.check_file(("cloud", False), name=name, size=size),
                timeout=120 + size / (MB / 2),
            )
            rows += self.measure(
                [fan, tee],
                before=lambda: self.clear(*dests),
                check=self.check_file(*((d, False) for d in dests), name=name, size=size),
                timeout=120 + size / (MB / 4),
            )
        finally:
            self.lab.heal_all()
        res.rows = rows
        res.notes.append(
            "caps: cloud, storage, inner (its private link behind bastion) 100mbit; bastion's "
            "link 200mbit, since it carries both bastion's and inner's data"
        )
        single_row, fan_row = rows[0], rows[1]
        base = _median_or_none(list(_per_destination(single_row, size).values()))
        per = _per_destination(fan_row, size)
        res.extra["single_mb_s"] = base
        res.extra["per_destination_mb_s"] = per
        if base and per:
            lines = []
            for label, rate in per.items():
                host = label.split(":")[0]
                lines.append([host, fmt_rate(rate), f"{rate / base:.1%}"])
            say(table(["destination (fan-out)", "MB/s (to its end)", "of single"], lines))
            worst = min(per.values()) / base
            res.verdict = verdict(worst >= 0.8)
            res.summary = (
                f"worst destination {min(per.values()):.1f} MB/s = {worst:.1%} of the single "
                f"destination's {base:.1f} MB/s"
            )
        else:
            res.summary = "no fan-out rate (see the table)"
            res.verdict = "SKIP" if fan_row.skipped else "MISS"
        res.target = "each fan-out destination >= 80% of the single-destination rate"
        res.notes.append(
            "per-destination rate: bytes / (time of its transfer.destination event - launch)"
        )
        return res

    def memory(self) -> Result:
        size, sparse = self.sizes["memory"], self.sizes["sparse"]
        same = size == self.sizes["relay"]
        src = str(self.data("random.bin" if same else "memory.bin", size))
        big = str(self.data("sparse.bin", sparse, "sparse"))
        res = Result("memory", "peak RSS of difpipe", "MB/s", size / MB)
        disk = self.dst("cloud", disk=True)
        slow = Tool(
            f"difpipe {human_bytes(size)} -> cloud capped 200mbit",
            self.dp(f"edge:{src}", f"cloud:{disk}/mem.bin", "--compress", "none"),
            True,
        )
        self.lab.cap("cloud", "200mbit")
        try:
            rows = self.measure(
                [slow],
                before=lambda: self.clear("cloud", disk=True),
                check=self.check_file(("cloud", True), name="mem.bin", size=size),
                timeout=120 + size / (MB / 2),
                runs=1,
            )
        finally:
            self.lab.heal_all()
        self.clear("cloud", disk=True)
        # uncompressed, then zstd: this machine decompresses every chunk to hash it, and a
        # megabyte of zstd holds gigabytes of zeros
        for label, codec in (("(uncapped)", "none"), ("--compress zstd", "zstd")):
            tool = Tool(
                f"difpipe {human_bytes(sparse)} sparse {label} -> cloud",
                self.dp(f"edge:{big}", f"cloud:{disk}/sparse.bin", "--compress", codec),
                True,
            )
            rows += self.measure(
                [tool],
                before=lambda: self.clear("cloud", disk=True),
                check=self.check_file(("cloud", True), name="sparse.bin", size=sparse),
                timeout=300 + sparse / (MB / 2),
                runs=1,
            )
            self.clear("cloud", disk=True)
        res.rows = rows
        lines = []
        for r, n in zip(rows, (size, sparse, sparse), strict=True):
            r.amount = n / MB
            rate = r.rate(r.amount)
            peak = f"{r.peak_mb:.0f} MB" if r.peak_mb is not None else "-"
            note = f"FAILED: {r.error}" if r.error else r.skipped or ""
            lines.append([r.label, fmt_rate(rate), peak, note])
        say(table(["run", "MB/s", "peak RSS", "notes"], lines))
        res.notes.append(
            "one run each (a peak, not a rate); destination on the host's disk; "
            f"the {human_bytes(sparse)} sparse file streams uncapped so that it stays short; "
            "with --compress zstd this machine decompresses every chunk to hash it, and each "
            "megabyte of zstd holds gigabytes of zeros"
        )
        peaks = [r.peak_mb for r in rows if r.peak_mb is not None]
        res.target = f"peak RSS <= {RSS_LIMIT // MB} MB"
        if len(peaks) == len(rows):
            res.verdict = verdict(max(peaks) <= RSS_LIMIT / MB)
            res.summary = ", ".join(f"{r.label}: {r.peak_mb:.0f} MB" for r in rows)
        else:
            res.verdict = "MISS"
            res.summary = "; ".join(f"{r.label}: {r.error or r.skipped}" for r in rows)
        return res

    def parallel(self) -> Result:
        size = self.sizes["parallel"]
        src = str(self.data("parallel.bin", size))
        out = f"{self.dst('cloud')}/par.bin"
        res = Result(
            "parallel",
            f"{human_bytes(size)} random to cloud through a 50 ms proxy",
            "MB/s",
            size / MB,
        )
        host, port = self.lab.delay_proxy("cloud", 50)
        config = self.local / "difpipe-far.toml"
        doc = tomllib.loads(self.config.read_text())
        doc["hosts"]["cloud-far"] = dict(doc["hosts"]["cloud"], address=host, port=port)
        import tomli_w

        config.write_text(tomli_w.dumps(doc))
        far = [*self.difpipe, "--config", str(config), "copy", f"edge:{src}", f"cloud-far:{out}"]
        read = self.ssh("edge", "cat " + shlex.quote(src), AES)
        via = f" -o HostName={host} -p {port}"
        write = self.ssh("cloud", "cat > " + shlex.quote(out), AES, via)
        tools = [
            Tool("difpipe --parallel 4", [*far, "--parallel", "4", "-o", "json"], True),
            Tool("difpipe (1 stream)", [*far, "-o", "json"], True),
            Tool(f"ssh | ssh -c {AES} (via proxy)", shell(f"{read} | {write}")),
        ]
        try:
            res.rows = self.measure(
                tools,
                before=lambda: self.clear("cloud"),
                check=self.check_file(("cloud", False), name="par.bin", size=size),
                timeout=120 + size / (MB / 2),
            )
        finally:
            self.lab.heal_all()
        par, one = res.rows[0], res.rows[1]
        res.target = "--parallel 4 >= 2.5x a single stream"
        if par.skipped:
            res.verdict = "SKIP"
            res.summary = (
                f"SKIP, difpipe refused: {par.skipped}; 1 stream {fmt_rate(one.rate(size / MB))}"
                " MB/s"
            )
        else:
            gain = _ratio(par, one, res.amount)
            res.verdict = verdict(None if gain is None else gain >= 2.5)
            res.summary = f"--parallel 4 = {_x(gain)} of 1 stream"
        res.notes.append("the delay proxy adds 50 ms each way (about 100 ms round trip)")
        return res


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _ratio(a: Row, b: Row, amount: float) -> float | None:
    ra, rb = a.rate(amount), b.rate(amount)
    return None if ra is None or rb is None or rb == 0 else ra / rb


def _median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _per_destination(row: Row, size: int) -> dict[str, float]:
    """Each destination's median rate: bytes over the time from launch to its done event."""
    times: dict[str, list[float]] = {}
    for started, events in zip(row.starts, row.events, strict=False):
        for e in events:
            if e.get("kind") == "transfer.destination" and e.get("status") == "done":
                times.setdefault(e["destination"], []).append(e["ts"] - started)
    return {d: size / MB / statistics.median(t) for d, t in times.items()}


# -- data ----------------------------------------------------------------------------------------

_PATHS = [
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/users/{id}",
    "/api/v1/cart",
    "/static/app.{id}.js",
    "/healthz",
    "/login",
    "/api/v2/search?q={id}",
]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.4.0",
    "kube-probe/1.28",
    "python-requests/2.31.0",
]
_LEVELS = ["INFO"] * 12 + ["WARN"] * 2 + ["ERROR", "DEBUG"]
_STATUS = [200] * 20 + [201, 204, 301, 304, 400, 401, 404, 404, 500, 503]


def write_log_text(path: Path, size: int, seed: int = 7) -> None:
    """Application log lines: timestamps, addresses, request ids, paths, statuses, agents."""
    rng = random.Random(seed)
    t = 1_767_225_600.0
    second, stamp = -1, ""
    written = 0
    n = 4096
    with open(path, "w", encoding="ascii") as fh:
        while written < size:
            levels = rng.choices(_LEVELS, k=n)
            statuses = rng.choices(_STATUS, k=n)
            agents = rng.choices(_AGENTS, k=n)
            routes = rng.choices(_PATHS, k=n)
            lines = []
            for i in range(n):
                bits = rng.getrandbits(128)
                t += (bits & 0xFFF) / 1_000_000
                if int(t) != second:
                    second = int(t)
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
                ip = f"10.{bits >> 12 & 3}.{bits >> 14 & 255}.{bits >> 22 & 255}"
                route = routes[i].replace("{id}", str(bits >> 30 & 0xFFFF))
                method = "POST" if bits >> 46 & 7 == 0 else "GET"
                lines.append(
                    f"{stamp}.{int(t * 1000) % 1000:03d}Z {levels[i]} web-{bits >> 49 & 7} "
                    f"req={bits >> 64:016x} ip={ip} {method} {route} status={statuses[i]} "
                    f"bytes={120 + (bits >> 52 & 0xFFFF)} dur_ms={1 + (bits >> 30 & 0x3FF)} "
                    f'ua="{agents[i]}"\n'
                )
            chunk = "".join(lines)
            fh.write(chunk)
            written += len(chunk)
        fh.truncate(size)


def zstd_ratio(path: str) -> float:
    if not shutil.which("zstd"):
        return float("nan")
    done = subprocess.run(
        f"zstd -1 -T0 -q -c {shlex.quote(path)} | wc -c",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    return os.path.getsize(path) / max(1, int(done.stdout.strip()))


# -- machine -------------------------------------------------------------------------------------


def machine(bench: Bench) -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(argv: list[str], pattern: str = r".+") -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=20)
            text = (done.stdout + done.stderr).strip()
            found = re.search(pattern, text)
            return found.group(0) if found else first_line(text)
        return "?"

    trips = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(["ssh", "-F", bench.ssh_config, "edge", "true"], check=True)
        trips.append(time.perf_counter() - t0)
    mem = "?"
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.0f} GiB"
    try:
        import asyncssh

        asyncssh_version = asyncssh.__version__
    except ImportError:
        asyncssh_version = "?"
    commit = version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = version(["git", "-C", str(REPO), "status", "--porcelain", "--", "difpipe_tui"])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit + (" + uncommitted changes in difpipe_tui" if dirty else ""),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "openssh": version(["ssh", "-V"], r"OpenSSH_\S+"),
        "rsync": version(["rsync", "--version"], r"rsync\s+version\s+\S+"),
        "zstd": version(["zstd", "--version"], r"v\d+\.\d+\.\d+"),
        "rclone": version(["rclone", "version"], r"rclone v\S+")
        if bench.rclone
        else "not installed",
        "difpipe": version([*bench.difpipe, "--version"]),
        "asyncssh": asyncssh_version,
        "rss_by": TIME + " -f %M" if bench.runner.use_time else "psutil, every 50 ms",
        "ssh_true_seconds": round(statistics.median(trips), 3),
        "login": f"{bench.user} ({'/bin/sh, no profile' if bench.plain else 'bash with .bashrc'})",
        "runs": bench.runs,
        "quick": bench.quick,
    }


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 run and smaller sizes")
    p.add_argument(
        "--only",
        nargs="+",
        choices=SCENARIOS,
        metavar="SCENARIO",
        help=f"run only these scenarios ({', '.join(SCENARIOS)})",
    )
    p.add_argument("--runs", type=int, default=3, help="runs per tool; the median is shown")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    p.add_argument(
        "--login",
        choices=("plain", "root"),
        default="plain",
        help="the user every tool logs in as: a key user with /bin/sh (default), or root,"
        " whose .bashrc adds ~0.3 s to every remote command",
    )
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        say("bench/transfer.py must run as root: the lab builds network namespaces")
        return 2
    try:
        import pytest  # noqa: F401  (the lab needs it)
        import tomli_w  # noqa: F401
    except ImportError:
        say("run it with the project's virtualenv: .venv/bin/python bench/transfer.py")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    wanted = [s for s in SCENARIOS if not args.only or s in args.only]
    results: list[Result] = []
    bench = None
    started = time.perf_counter()
    try:
        bench = Bench(args)
        info = machine(bench)
        say(f"machine: {info['nproc']} x {info['cpu']}, {info['memory']}, kernel {info['kernel']}")
        say(
            f"tools: {info['openssh']}, {info['rsync']}, zstd {info['zstd']}, {info['rclone']}, "
            f"{info['difpipe']}"
            f" (asyncssh {info['asyncssh']}, Python {info['python']})"
        )
        say(
            f"every tool logs in as {info['login']}; ssh edge true:"
            f" {info['ssh_true_seconds']:.2f} s (a fixed cost per remote command, in every"
            " tool's numbers)"
        )
        say(f"difpipe at commit {info['commit']}")
        say(f"{info['date']}; runs per tool: {bench.runs}; peak RSS by {info['rss_by']}")
        for name in wanted:
            say()
            say(f"== {name} ==")
            t0 = time.perf_counter()
            try:
                res = getattr(bench, name)()
            finally:
                bench.lab.heal_all()
            say(f"-- {name}: {res.title} ({time.perf_counter() - t0:.0f} s)")
            if name not in ("memory", "fanout"):
                print_result(res, res.rows[0].label)
            elif name == "fanout":
                print_result(res, res.rows[1].label)
            else:
                for note in res.notes:
                    say(f"  note: {note}")
                say(f"  target: {res.target} -> {res.verdict}")
            results.append(res)
        say()
        say(f"== summary ({time.perf_counter() - started:.0f} s) ==")
        for res in results:
            say(f"{res.name:<10} {res.verdict:<4}  {res.summary}  [target: {res.target}]")
        if args.json:
            doc = {"machine": info, "scenarios": {r.name: r.to_dict() for r in results}}
            Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
            say(f"wrote {args.json}")
        return 0
    except KeyboardInterrupt:
        say("\ninterrupted; cleaning up")
        return 130
    finally:
        if bench is not None:
            bench.close()


if __name__ == "__main__":
    sys.exit(main())
