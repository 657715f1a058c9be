#!/usr/bin/env python3
"""How the console feels: launch time, idle cost with many hosts and transfers, key latency.

Run as root (it starts the real-sshd lab of the tests), with the project's virtualenv::

    .venv/bin/python bench/console.py [--hosts 50] [--transfers 10] [--runs 5] [--json OUT]
                                      [--only launch,idle,keys]

Three measurements, each against a target of issue 4:

* ``launch``: ``difpipe --config CFG`` (CFG with ``--hosts`` hosts) in a real terminal (tmux,
  120x40), from the process start until the overview shows the hosts panel and the footer.
  Median of ``--runs``, next to a bare Textual app's. Target: at most 1 s.
* ``idle``: the console in a real terminal with ``--hosts`` hosts and ``--transfers`` rate-limited
  transfers running between lab hosts, nobody typing. CPU of the UI thread and of the whole
  process (the engine thread moves the bytes) over 20 s, as a percentage of one core, and the
  process's RSS. The window opens 10 s after the screen shows all of them running; the UI
  thread's CPU while they start (connections, first draws) is printed apart. Targets: UI CPU
  at most 2 %, RSS at most 120 MB.
* ``keys``: keys go in through the terminal driver while transfers run at full speed (no rate
  limit, one after another) and each is timed until the first frame painted after it took
  effect: screen switches, and cursor moves in the Hosts table. Target: at most 100 ms (p95;
  median and max reported too), next to a bare Textual app timed the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import tomli_w  # noqa: E402

MiB = 1024 * 1024
MB = 1_000_000
TRANSFER_RATE = "1M"  # per transfer in the idle scenario: they must outlive the window
SETTLE = 10.0  # seconds from "N running" on screen until the idle window opens
SCENARIOS = ("launch", "idle", "keys")


def say(text: str = "") -> None:
    print(text, flush=True)


def many_hosts_config(lab_config: Path, out: Path, count: int) -> Path:
    """The lab's hosts, then aliases of edge, cloud and storage up to ``count`` hosts."""
    doc = tomllib.loads(lab_config.read_text())
    hosts = doc["hosts"]
    bases = [n for n in ("edge", "cloud", "storage") if n in hosts]
    i = 0
    while len(hosts) < count:
        base = bases[i % len(bases)]
        hosts[f"{base}-{i // len(bases) + 1:02d}"] = dict(hosts[base])
        i += 1
    out.write_text(tomli_w.dumps(doc))
    return out


def jobs(lab: Any, workdir: Path, count: int, size: int) -> list[dict[str, Any]]:
    """``count`` copy jobs edge -> cloud of ``size`` random bytes each."""
    src_dir = Path(lab.hosts["edge"].root) / workdir.name
    dst_dir = Path(lab.hosts["cloud"].root) / workdir.name
    src_dir.mkdir(parents=True, exist_ok=True)
    dst_dir.mkdir(parents=True, exist_ok=True)
    blob = os.urandom(size)
    out = []
    for n in range(count):
        (src_dir / f"f{n}.bin").write_bytes(blob)
        out.append(
            {
                "source": f"edge:{src_dir / f'f{n}.bin'}",
                "destinations": [f"cloud:{dst_dir}/"],
            }
        )
    return out


# -- the app in a real terminal (this script, run again inside tmux) --------------------------


def app_role(config: str, home: str, jobs_file: str) -> None:
    """Inside tmux: the console on ``config``, starting the jobs of ``jobs_file`` once shown."""
    from difpipe_tui.app import build_app
    from difpipe_tui.core.transfer.job import job_from_mapping

    wanted = json.loads(Path(jobs_file).read_text())
    app = build_app(config_path=config, home=home)

    async def start_all() -> None:
        for mapping in wanted:
            job = job_from_mapping(mapping)
            await app.bridge.call(app.bridge.engine.start, job)

    def on_ready() -> None:
        app.run_worker(start_all(), exit_on_error=False)

    app.call_after_refresh(on_ready)
    app.run()


def thread_cpu(proc: psutil.Process) -> tuple[float, float]:
    """(CPU seconds of the main thread, of the whole process)."""
    main = next((t for t in proc.threads() if t.id == proc.pid), None)
    times = proc.cpu_times()
    return (main.user_time + main.system_time if main else 0.0), times.user + times.system


def measure_launch(config: Path, home: Path, runs: int) -> list[float]:
    from tests.e2e.tmux import Terminal

    out = []
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "DIFPIPE_HOME": str(home)}
    for _ in range(runs):
        started = time.monotonic()
        with Terminal([str(REPO / ".venv/bin/difpipe"), "--config", str(config)], env=env) as t:
            t.wait_for(lambda s: "Hosts ·" in s and "Quit" in s, timeout=30, interval=0.01)
            out.append(time.monotonic() - started)
            t.press("q")
    return out


BARE_APP = """
from textual.app import App
from textual.widgets import DataTable, Footer, Header

class Bare(App):
    def compose(self):
        yield Header()
        yield DataTable()
        yield Footer()

    def on_mount(self):
        table = self.query_one(DataTable)
        table.add_columns("HOST", "ROLE")
        for i in range(50):
            table.add_row(f"host-{i:02d}", "edge")

Bare().run()
"""


def measure_launch_bare(home: Path, runs: int) -> list[float]:
    """The floor: a bare Textual app (Header, a 50-row DataTable, Footer) timed the same way."""
    from tests.e2e.tmux import Terminal

    out = []
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    for _ in range(runs):
        started = time.monotonic()
        with Terminal([sys.executable, "-c", BARE_APP], env=env) as t:
            t.wait_for(lambda s: "host-00" in s and "palette" in s, timeout=30, interval=0.01)
            out.append(time.monotonic() - started)
            t.press("ctrl+q")
    return out


def measure_idle(
    config: Path, home: Path, jobs_file: Path, count: int, window: float
) -> dict[str, float]:
    from tests.e2e.tmux import Terminal

    env = {"PATH": os.environ["PATH"], "HOME": str(home), "DIFPIPE_HOME": str(home)}
    argv = [sys.executable, __file__, "--app", str(config), str(home), str(jobs_file)]
    with Terminal(argv, env=env) as t:
        t.wait_for(f"{count} running", timeout=60)
        pid = int(t._tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip())
        proc = psutil.Process(pid)
        settle0, _ = thread_cpu(proc)
        time.sleep(SETTLE)  # the start-up burst of connections and first draws ends
        settle1, _ = thread_cpu(proc)
        starting = 100 * (settle1 - settle0) / SETTLE
        ui0, all0 = thread_cpu(proc)
        t0 = time.monotonic()
        rss = 0
        while time.monotonic() - t0 < window:
            rss = max(rss, proc.memory_info().rss)
            time.sleep(0.5)
        ui1, all1 = thread_cpu(proc)
        wall = time.monotonic() - t0
        screen = t.screen()
        t.press("q")
    if os.environ.get("BENCH_SHOW_SCREEN"):
        say(screen)
    running = next((line for line in screen.splitlines() if "running" in line), "")
    return {
        "ui_cpu_pct": 100 * (ui1 - ui0) / wall,
        "ui_cpu_pct_starting": starting,
        "process_cpu_pct": 100 * (all1 - all0) / wall,
        "rss_mb": rss / MB,
        "transfers_line": running.strip(" │╭╮─"),
    }


class Frames:
    """Times a key from the moment the terminal driver hands it to the app until the first
    frame the app paints after the key has taken effect. Pilot's ``press`` is no clock for this:
    it waits until the whole process is idle, and a transfer at full speed keeps it busy."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.painted = asyncio.Event()
        paint = app._display  # every frame goes through here, headless too

        def display(screen: Any, update: Any) -> None:
            paint(screen, update)
            if update is not None and not app._batch_count:  # painted, not held back
                self.painted.set()

        app._display = display

    async def press(self, key: str, done: Any) -> float:
        from textual import events

        started = time.perf_counter()
        self.app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
        while True:
            self.painted.clear()
            await self.painted.wait()
            if done():
                took = time.perf_counter() - started
                break
        await asyncio.sleep(0.2)  # a person does not type faster; the screen settles
        return took


async def time_keys(pilot: Any, modes: tuple[str, str], presses: int) -> dict[str, list[float]]:
    """Switches between ``modes`` (keys ``e``/``o``), then cursor moves in the Hosts table (or
    the only table), each timed with :class:`Frames`."""
    from textual.widgets import DataTable

    times: dict[str, list[float]] = {"switch": [], "move": []}
    app = pilot.app
    frames = Frames(app)
    await pilot.press("e", "o")  # both screens exist: switches, not first mounts
    await asyncio.sleep(0.5)
    for n in range(presses):
        key, mode = ("e", modes[1]) if n % 2 == 0 else ("o", modes[0])
        times["switch"].append(await frames.press(key, lambda m=mode: app.current_mode == m))
    if "hosts" in app._modes:
        await pilot.press("h")
        await asyncio.sleep(0.5)
    table = app.screen.query_one(DataTable)
    for n in range(presses):
        row = table.cursor_row
        key = "down" if n % 2 == 0 else "up"
        times["move"].append(await frames.press(key, lambda r=row: table.cursor_row != r))
    return times


async def measure_keys(
    config: Path, home: Path, job: dict[str, Any], presses: int
) -> dict[str, list[float]]:
    """Seconds per key until its frame (:class:`Frames`): screen switches (``e``/``o``) and
    moves within the Hosts table, while ``job`` runs at full speed, restarted when it ends."""
    from difpipe_tui.app import build_app
    from difpipe_tui.core.transfer.job import job_from_mapping

    app = build_app(config_path=config, home=home)
    runs = {"count": 0, "done": 0}

    async def keep_running(stop: asyncio.Event) -> None:  # on the engine thread
        while not stop.is_set():
            handle = await app.bridge.engine.start(job_from_mapping(job))
            runs["count"] += 1
            waiting = asyncio.ensure_future(handle.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                handle.cancel()
                await waiting
            else:
                runs["done"] += 1
            stopping.cancel()

    app.tune_runtime()  # as app.run() does in a terminal
    async with app.run_test(size=(120, 40)) as pilot:
        stop = await app.bridge.call(_new_event)
        started = time.monotonic()
        moving = app.bridge.submit(keep_running, stop)
        await asyncio.sleep(1.0)  # the transfer is at full speed
        times = await time_keys(pilot, ("overview", "events"), presses)
        await app.bridge.call(_set, stop)
        await asyncio.wrap_future(moving)
        took = time.monotonic() - started
    size = Path(job["source"].partition(":")[2]).stat().st_size
    say(
        f"  ({runs['count']} full-speed transfers ran one after another while keys were timed,"
        f" {runs['done']} of them whole in {took:.0f} s: at least"
        f" {runs['done'] * size / took / MB:.0f} MB/s)"
    )
    return times


async def bare_textual_keys(presses: int) -> dict[str, list[float]]:
    """The floor, timed the same way: a bare Textual app with two modes, each a Header, a
    50-row DataTable and a Footer of 8 keys, nothing running."""
    from textual.app import App, ComposeResult
    from textual.binding import Binding
    from textual.screen import Screen
    from textual.widgets import DataTable, Footer, Header

    class Table(Screen):
        BINDINGS = [Binding(k, "app.bell", f"Key {k}") for k in "abcdfg"]

        def compose(self) -> ComposeResult:
            yield Header()
            yield DataTable(cursor_type="row")
            yield Footer()

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns("HOST", "ROLE", "ADDRESS")
            for i in range(50):
                table.add_row(f"host-{i:02d}", "edge", f"10.0.0.{i}")

    class Bare(App[None]):
        MODES = {"one": Table, "two": Table}
        DEFAULT_MODE = "one"
        BINDINGS = [
            Binding("e", "switch_mode('two')", "Two"),
            Binding("o", "switch_mode('one')", "One"),
        ]

    app = Bare()
    async with app.run_test(size=(120, 40)) as pilot:
        return await time_keys(pilot, ("one", "two"), presses)


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


async def _set(event: asyncio.Event) -> None:
    event.set()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def run_launch(args: argparse.Namespace, config: Path, home: Path, results: dict) -> None:
    launch = measure_launch(config, home, args.runs)
    med = statistics.median(launch)
    results["launch_s"] = launch
    say(
        f"launch to first screen: {med:.2f} s median "
        f"[{min(launch):.2f}-{max(launch):.2f}]  target <= 1 s  {verdict(med <= 1.0)}"
    )
    bare = measure_launch_bare(home, args.runs)
    results["bare_textual_launch_s"] = bare
    say(f"  floor: a bare Textual app, same terminal: {statistics.median(bare):.2f} s median")


def run_idle(
    args: argparse.Namespace, lab: Any, config: Path, home: Path, workdir: Path, results: dict
) -> None:
    slow = [
        {**j, "rate_limit": TRANSFER_RATE} for j in jobs(lab, workdir, args.transfers, 64 * MiB)
    ]
    jobs_file = home.parent / "jobs.json"
    jobs_file.write_text(json.dumps(slow))
    idle = measure_idle(config, home, jobs_file, args.transfers, args.window)
    results["idle"] = idle
    say(
        f"idle with {args.transfers} transfers ({idle['transfers_line']}): "
        f"UI thread {idle['ui_cpu_pct']:.1f} % of a core (target <= 2 %  "
        f"{verdict(idle['ui_cpu_pct'] <= 2.0)}), process {idle['process_cpu_pct']:.1f} %, "
        f"RSS {idle['rss_mb']:.0f} MB (target <= 120 MB  {verdict(idle['rss_mb'] <= 120)})"
    )
    say(
        f"  while the {args.transfers} transfers were starting ({SETTLE:.0f} s, not counted):"
        f" UI thread {idle['ui_cpu_pct_starting']:.1f} %"
    )


def run_keys(
    args: argparse.Namespace, lab: Any, config: Path, home: Path, workdir: Path, results: dict
) -> None:
    fast = jobs(lab, workdir / "fast", 1, 512 * MiB)[0]
    keys = asyncio.run(measure_keys(config, home, fast, args.presses))
    bare = asyncio.run(bare_textual_keys(args.presses))
    results["keys_ms"] = {}
    for kind, what in (("switch", "screen switch"), ("move", "cursor move in a table")):
        ms = sorted(1000 * k for k in keys[kind])
        floor = sorted(1000 * k for k in bare[kind])
        p95, floor_p95 = ms[int(0.95 * (len(ms) - 1))], floor[int(0.95 * (len(floor) - 1))]
        results["keys_ms"][kind] = ms
        results["keys_ms"][f"bare_textual_{kind}"] = floor
        say(
            f"{what} during a full-speed transfer, key to frame: median"
            f" {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms"
            f"  target <= 100 ms  {verdict(p95 <= 100)}"
        )
        say(
            f"  floor: a bare Textual app, nothing running: median"
            f" {statistics.median(floor):.1f} ms, p95 {floor_p95:.1f} ms,"
            f" max {floor[-1]:.1f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--transfers", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--window", type=float, default=20.0, help="idle window, seconds")
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=set(SCENARIOS),
        help=f"comma-separated scenarios to run (default: {','.join(SCENARIOS)})",
    )
    parser.add_argument("--app", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.app:
        app_role(*args.app)
        return 0
    if unknown := args.only - set(SCENARIOS):
        parser.error(f"--only: no scenario {', '.join(sorted(unknown))}")

    from tests.lab import Lab

    results: dict[str, Any] = {}
    with Lab.start() as lab, tempfile.TemporaryDirectory(prefix="difpipe-bench-") as tmp:
        base = Path(tmp)
        home = base / "home"
        home.mkdir()
        config = many_hosts_config(lab.write_config(base / "lab.toml"), base / "c.toml", args.hosts)
        say(f"console benchmark: {args.hosts} hosts, {args.transfers} transfers, 120x40")
        say(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
        workdir = base / f"bench-{os.getpid()}"
        if "launch" in args.only:
            run_launch(args, config, home, results)
        if "idle" in args.only:
            run_idle(args, lab, config, home, workdir, results)
        if "keys" in args.only:
            run_keys(args, lab, config, home, workdir, results)
        subprocess.run(["rm", "-rf", str(Path(lab.hosts["edge"].root) / workdir.name)], check=False)
        subprocess.run(
            ["rm", "-rf", str(Path(lab.hosts["cloud"].root) / workdir.name)], check=False
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
