"""The transfer commands of the CLI against a fake engine: how flags, job files and stored
transfers become a job, what is printed where, exit codes, Ctrl-C, and the checkpoints, keygen
and decrypt commands (which need no engine)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import stat
from pathlib import Path

import pytest
import yaml

from difpipe_tui import cli, cli_copy
from difpipe_tui.core.errors import UsageError
from difpipe_tui.core.events import (
    ConnectionLost,
    RemoteCommandFinished,
    TransferDestinationDone,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from difpipe_tui.core.store import Checkpoint, Store
from difpipe_tui.core.transfer.encrypt import encrypt_file, generate_key
from difpipe_tui.core.transfer.job import (
    CopyJob,
    CopyResult,
    DestinationResult,
    job_from_mapping,
    job_schema,
)

TID = "0123456789ab"
MiB = 1024 * 1024

CONFIG = """\
[hosts.edge]
address = "192.0.2.10"

[hosts.cloud]
address = "192.0.2.11"

[hosts.backup]
address = "192.0.2.12"
"""


def done_result(job: CopyJob, status: str = "done", **per_dest) -> CopyResult:
    dests = [
        DestinationResult(destination=d, status="done", bytes=10, digest="cd" * 32)
        for d in job.destinations
    ]
    for dest in dests:
        for key, value in per_dest.get(dest.destination, {}).items():
            setattr(dest, key, value)
    return CopyResult(
        transfer_id=TID,
        source=job.source,
        status=status,
        bytes=10,
        total=10,
        seconds=2.0,
        strategy="exec",
        codec="zstd",
        codec_reason="text compresses well",
        digest="cd" * 32,
        destinations=dests,
    )


class FakeHandle:
    def __init__(self, engine: FakeEngine, job: CopyJob):
        self.engine = engine
        self.job = job
        self.id = TID
        self.cancelled: list[str] = []
        self.future: asyncio.Future[CopyResult] = asyncio.get_running_loop().create_future()

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def finish(self, result: CopyResult) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def cancel(self, reason: str = "interrupted") -> None:
        self.cancelled.append(reason)
        if self.engine.honour_cancel:
            self.finish(done_result(self.job, "interrupted"))

    async def wait(self) -> CopyResult:
        return await self.future


class FakePlan:
    def __init__(self, data):
        self.data = data

    def to_dict(self):
        return self.data


PLAN = {
    "source": {
        "endpoint": "edge:/var/log/app.log",
        "kind": "remote",
        "size": 3 * MiB,
        "files": 1,
        "is_dir": False,
    },
    "destinations": [
        {
            "endpoint": "cloud:/srv/logs/",
            "target": "/srv/logs/app.log",
            "exists": True,
            "free_bytes": 20 * MiB,
            "tools": ["sha256sum", "zstd"],
            "problem": None,
        },
        {
            "endpoint": "backup:/b/app.log",
            "target": "/b/app.log",
            "exists": False,
            "free_bytes": None,
            "tools": [],
            "problem": "backup: /b: no such directory",
        },
    ],
    "strategy": "exec",
    "strategy_reason": "both ends have a shell and the tools",
    "codec": {"codec": "zstd", "level": 3, "where": "remote", "reason": "a sample shrinks to 31%"},
    "verify": "sha256",
    "sample_ratio": 0.31,
}


class FakeEngine:
    """Stands in for TransferEngine. ``scenario(engine, handle)`` runs after start()."""

    instances: list[FakeEngine] = []
    scenario = None
    stored: dict[str, CopyJob] = {}
    honour_cancel = True

    def __init__(self, config, *, pool, store, bus):
        self.config = config
        self.pool = pool
        self.store = store
        self.bus = bus
        self.started: list[dict] = []
        self.analyzed: list[CopyJob] = []
        self.handle: FakeHandle | None = None
        FakeEngine.instances.append(self)

    async def start(self, job, *, resume_id=None, stdin=None, stdout=None):
        self.started.append({"job": job, "resume_id": resume_id, "stdin": stdin, "stdout": stdout})
        handle = self.handle = FakeHandle(self, job)
        scenario = type(self).scenario or (lambda e, h: h.finish(done_result(h.job)))
        await asyncio.sleep(0)
        result = scenario(self, handle)
        if asyncio.iscoroutine(result):
            await result
        return handle

    async def analyze(self, job):
        self.analyzed.append(job)
        return FakePlan(PLAN)

    def job_for_resume(self, transfer_id):
        try:
            return self.stored[transfer_id]
        except KeyError:
            raise UsageError(f"no transfer with id {transfer_id}") from None


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "difpipe.toml").write_text(CONFIG)
    monkeypatch.setenv("DIFPIPE_HOME", str(home))
    monkeypatch.delenv("DIFPIPE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    FakeEngine.instances = []
    FakeEngine.scenario = None
    FakeEngine.stored = {}
    FakeEngine.honour_cancel = True
    monkeypatch.setattr(cli_copy, "make_engine", FakeEngine)
    return home


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def started(index: int = 0) -> dict:
    return FakeEngine.instances[-1].started[index]


# -- copy: building the job ----------------------------------------------------------------------


def test_copy_maps_every_flag_to_a_job_field(capsys, tmp_path):
    key = tmp_path / "k.key"
    generate_key(key)
    code, _out, err = run(
        capsys,
        "copy",
        "edge:/var/log/app.log",
        "cloud:/srv/logs/",
        "backup:/b/",
        "-r",
        "--strategy",
        "tar",
        "--compress",
        "zstd",
        "--level",
        "5",
        "--verify",
        "blake2b",
        "--checkpoint-interval",
        "128M",
        "--retries",
        "7",
        "--fail-fast",
        "--stall-timeout",
        "7.5",
        "--rate-limit",
        "20M",
        "--parallel",
        "4",
        "--buffer",
        "32M",
        "--encrypt",
        str(key),
        "--no-overwrite",
        "--progress",
        "none",
    )
    assert code == 0, err
    assert started()["job"] == CopyJob(
        source="edge:/var/log/app.log",
        destinations=("cloud:/srv/logs/", "backup:/b/"),
        recursive=True,
        strategy="tar",
        compress="zstd",
        level=5,
        verify="blake2b",
        checkpoint_interval=128 * MiB,
        retries=7,
        fail_fast=True,
        stall_timeout=7.5,
        rate_limit=20e6,
        parallel=4,
        buffer=32 * MiB,
        encrypt=str(key),
        overwrite=False,
    )
    assert started()["resume_id"] is None
    assert started()["stdin"] is None and started()["stdout"] is None


def test_copy_defaults_are_the_job_defaults(capsys):
    code, _, err = run(capsys, "copy", "edge:/a", "cloud:/b")
    assert code == 0, err
    assert started()["job"] == CopyJob(source="edge:/a", destinations=("cloud:/b",))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "give SRC and at least one DST, or --job FILE, or --resume ID"),
        (("edge:/a",), "edge:/a: a destination is missing"),
        (("edge:/a", "cloud:/b", "--rate-limit", "fast"), "--rate-limit: expected a rate"),
        (("edge:/a", "cloud:/b", "--buffer", "1k"), "--buffer: at least 1M"),
        (("edge:/a", "cloud:/b", "--checkpoint-interval", "x"), "--checkpoint-interval: expected"),
        (("edge:/a", "cloud:/b", "--parallel", "40"), "--parallel: expected 1..16"),
        (("edge:/a", "cloud:/b", "--stall-timeout", "-1"), "--stall-timeout: expected 0.."),
        (("edge:/a", "cloud:/b", "--level", "x"), "argument --level: invalid int value"),
        (("edge:/a", "cloud:/b", "cloud:/b"), "a destination is listed twice"),
        (("edge:/a", "cloud:/b", "--progress", "json", "-o", "yaml"), "--progress json"),
    ],
)
def test_copy_usage_errors(capsys, argv, message):
    code, _out, err = run(capsys, "copy", *argv)
    assert code == 2
    assert message in err
    assert FakeEngine.instances == []


def test_copy_usage_error_as_json(capsys):
    code, out, _err = run(capsys, "copy", "edge:/a", "-o", "json")
    assert code == 2
    assert json.loads(out)["error"] == "usage"


def test_schema(capsys):
    code, out, _ = run(capsys, "copy", "--schema")
    assert code == 0
    assert json.loads(out) == job_schema()
    assert FakeEngine.instances == []


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "job.toml",
            'source = "edge:/a"\ndestinations = ["cloud:/b", "backup:/c"]\n'
            'rate_limit = "5M"\nretries = 1\nbuffer = "32M"\n',
        ),
        (
            "job.yaml",
            "source: edge:/a\ndestinations: [cloud:/b, backup:/c]\n"
            "rate_limit: 5M\nretries: 1\nbuffer: 32M\n",
        ),
        (
            "job.json",
            '{"source": "edge:/a", "destinations": ["cloud:/b", "backup:/c"],'
            ' "rate_limit": 5000000, "retries": 1, "buffer": 33554432}',
        ),
    ],
)
def test_job_file_formats(capsys, tmp_path, name, text):
    (tmp_path / name).write_text(text)
    code, _, err = run(capsys, "copy", "--job", name)
    assert code == 0, err
    assert started()["job"] == CopyJob(
        source="edge:/a",
        destinations=("cloud:/b", "backup:/c"),
        rate_limit=5e6,
        retries=1,
        buffer=32 * MiB,
    )


@pytest.mark.parametrize("transport", ["auto", "asyncssh", "openssh", None])
def test_job_file_transport(capsys, tmp_path, transport):
    job = {"source": "edge:/a", "destinations": ["cloud:/b"], "transport": transport}
    (tmp_path / "job.json").write_text(json.dumps(job))
    code, _, err = run(capsys, "copy", "--job", "job.json")
    assert code == 0, err
    assert started()["job"] == CopyJob(
        source="edge:/a", destinations=("cloud:/b",), transport=transport
    )


def test_flags_and_ends_override_the_job_file(capsys, tmp_path):
    (tmp_path / "job.toml").write_text(
        'source = "edge:/a"\ndestinations = ["cloud:/b"]\nretries = 1\ncompress = "lz4"\n'
    )
    code, _, err = run(capsys, "copy", "--job", "job.toml", "--retries", "9")
    assert code == 0, err
    assert started()["job"].retries == 9
    assert started()["job"].compress == "lz4"
    code, _, err = run(capsys, "copy", "edge:/x", "backup:/y", "--job", "job.toml")
    assert code == 0, err
    job = started()["job"]
    assert (job.source, job.destinations, job.retries) == ("edge:/x", ("backup:/y",), 1)


@pytest.mark.parametrize(
    "text",
    [
        '{"source": "edge:/a", "destinations": ["cloud:/b"]}',
        'source = "edge:/a"\ndestinations = ["cloud:/b"]\n',
        "source: edge:/a\ndestinations:\n  - cloud:/b\n",
    ],
)
def test_job_from_stdin_is_sniffed(capsys, monkeypatch, text):
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, _, err = run(capsys, "copy", "--job", "-")
    assert code == 0, err
    assert started()["job"] == CopyJob(source="edge:/a", destinations=("cloud:/b",))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("job.toml", 'source = "edge:/a"\ndestinations = ["cloud:/b"]\nretry = 3\n', "retries"),
        ("job.toml", "source = [", "not valid TOML"),
        ("job.json", "[1, 2]", "expected a mapping of job fields"),
        ("job.yaml", "destinations: [cloud:/b]\n", "source is required"),
        (
            "job.toml",
            'source = "edge:/a"\ndestinations = ["cloud:/b"]\ntransport = "scp"\n',
            'transport: expected one of auto, asyncssh, openssh, got "scp"',
        ),
        (
            "job.json",
            '{"source": "edge:/a", "destinations": ["cloud:/b"], "transport": 1}',
            "transport: expected a string, got 1",
        ),
        ("job.txt", "just words", "expected a mapping of job fields"),
        (
            "job.toml",
            'source = "edge:/a"\ndestinations = ["cloud:/b"]\nstall_timeout = "1m"\n',
            'stall_timeout: expected a number of seconds, got "1m"',
        ),
    ],
)
def test_bad_job_files(capsys, tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    code, _, err = run(capsys, "copy", "--job", name)
    assert code == 2
    assert message in err


def test_missing_job_file_is_a_local_io_error(capsys):
    code, _, err = run(capsys, "copy", "--job", "nope.toml")
    assert code == 10
    assert "nope.toml: cannot read the job file" in err


def test_job_on_stdin_cannot_also_be_the_source(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO('{"source": "-", "destinations": ["cloud:/b"]}'))
    code, _, err = run(capsys, "copy", "--job", "-")
    assert code == 2
    assert "cannot also be the source" in err


def test_an_unusable_key_file_fails_before_connecting(capsys, tmp_path):
    code, _, err = run(capsys, "copy", "edge:/a", "cloud:/b", "--encrypt", "missing.key")
    assert code == 10
    assert "missing.key" in err
    assert FakeEngine.instances == []


# -- copy: output and exit codes -----------------------------------------------------------------


def test_table_summary(capsys):
    code, out, err = run(capsys, "copy", "edge:/a", "cloud:/b", "backup:/c")
    assert code == 0, err
    assert "DESTINATION" in out and "cloud:/b" in out and "backup:/c" in out
    assert "cdcdcdcdcdcdcdcd…" in out
    assert "ERROR" not in out
    assert f"{TID}: done, 10 B in 2.0 s (5 B/s)" in out
    assert "compression zstd (text compresses well)" in out
    assert err == ""


def test_json_and_yaml_summary_are_the_result(capsys):
    code, out, _ = run(capsys, "copy", "edge:/a", "cloud:/b", "-o", "json")
    assert code == 0
    expected = done_result(CopyJob(source="edge:/a", destinations=("cloud:/b",))).to_dict()
    assert json.loads(out) == expected
    code, out, _ = run(capsys, "copy", "edge:/a", "cloud:/b", "-o", "yaml")
    assert yaml.safe_load(out) == expected


def test_csv_summary_has_a_row_per_destination(capsys):
    code, out, _ = run(capsys, "copy", "edge:/a", "cloud:/b", "backup:/c", "-o", "csv")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "transfer_id,destination,status,bytes,digest,error,exit_code,resumed_from"
    assert lines[1].startswith(f"{TID},cloud:/b,done,10,")
    assert len(lines) == 3


def test_partial_exits_9_and_names_the_failed_destination(capsys):
    def scenario(engine, handle):
        handle.finish(
            done_result(
                handle.job,
                "partial",
                **{"backup:/c": {"status": "failed", "error": "network down", "exit_code": 6}},
            )
        )

    FakeEngine.scenario = scenario
    code, out, err = run(capsys, "copy", "edge:/a", "cloud:/b", "backup:/c")
    assert code == 9
    assert "ERROR" in out and "network down" in out
    assert err == "difpipe: error: backup:/c: network down\n"


def test_failed_exits_with_the_first_failed_destination_code(capsys):
    def scenario(engine, handle):
        handle.finish(
            done_result(
                handle.job,
                "failed",
                **{
                    "cloud:/b": {"status": "skipped", "exit_code": 0},
                    "backup:/c": {"status": "failed", "error": "backup: denied", "exit_code": 4},
                },
            )
        )

    FakeEngine.scenario = scenario
    code, _, err = run(capsys, "copy", "edge:/a", "cloud:/b", "backup:/c")
    assert code == 4
    assert err == "difpipe: error: backup:/c: backup: denied\n"


def test_failed_without_a_failed_destination_exits_1_with_the_engine_error(capsys):
    def scenario(engine, handle):
        engine.bus.publish(
            TransferFinished(
                transfer_id=TID, status="failed", bytes=0, seconds=0.1, error="edge:/a: gone"
            )
        )
        result = done_result(handle.job, "failed", **{"cloud:/b": {"status": "pending"}})
        handle.finish(result)

    FakeEngine.scenario = scenario
    code, _, err = run(capsys, "copy", "edge:/a", "cloud:/b")
    assert code == 1
    assert err == f"difpipe: error: transfer {TID} failed: edge:/a: gone\n"


def test_engine_errors_keep_their_exit_code(capsys):
    def scenario(engine, handle):
        from difpipe_tui.core.errors import AuthError

        raise AuthError("permission denied", host="edge")

    FakeEngine.scenario = scenario
    code, out, err = run(capsys, "copy", "edge:/a", "cloud:/b", "-o", "json")
    assert code == 4
    assert json.loads(out)["error"] == "auth"
    assert err == "difpipe: error: edge: permission denied\n"


def test_unknown_resume_id_is_a_usage_error(capsys):
    code, _, err = run(capsys, "copy", "--resume", "nope")
    assert code == 2
    assert "no transfer with id nope" in err
    code, out, _ = run(capsys, "copy", "--resume", "nope", "--progress", "json")
    assert code == 2
    (line,) = out.splitlines()
    assert json.loads(line)["kind"] == "error"


# -- copy: stdin and stdout ----------------------------------------------------------------------


class BinaryStdio(io.TextIOWrapper):
    def __init__(self, data: bytes = b""):
        super().__init__(io.BytesIO(data), encoding="utf-8")


def test_stdout_destination_moves_the_summary_to_stderr(capsys, monkeypatch):
    stdout = BinaryStdio()
    monkeypatch.setattr("sys.stdout", stdout)

    def scenario(engine, handle):
        handle.finish(done_result(handle.job))

    FakeEngine.scenario = scenario
    code = cli.main(["copy", "edge:/a", "-", "-o", "json"])
    _, err = capsys.readouterr()
    assert code == 0
    assert started()["stdout"] is stdout.buffer
    stdout.flush()
    assert stdout.buffer.getvalue() == b""
    assert json.loads(err)["destinations"][0]["destination"] == "-"


def test_stdin_source_is_passed_to_the_engine(capsys, monkeypatch):
    stdin = BinaryStdio(b"data")
    monkeypatch.setattr("sys.stdin", stdin)
    code, _, err = run(capsys, "copy", "-", "cloud:/b")
    assert code == 0, err
    assert started()["stdin"] is stdin.buffer


# -- copy: NDJSON progress -----------------------------------------------------------------------


def test_progress_json_streams_events_then_the_summary(capsys):
    def scenario(engine, handle):
        bus, job = engine.bus, handle.job
        bus.publish(
            TransferStarted(
                transfer_id=TID,
                source=job.source,
                destinations=job.destinations,
                total=10,
                strategy="exec",
                codec="zstd",
            )
        )
        bus.publish(
            RemoteCommandFinished(host_name="cloud", command="df", exit_status=0, duration_ms=1)
        )
        bus.publish(
            TransferProgress(
                transfer_id=TID, destination="cloud:/b", bytes=5, total=10, rate=5.0, eta=1.0
            )
        )
        bus.publish(ConnectionLost(host_name="cloud", reason="reset"))
        bus.publish(
            TransferDestinationDone(
                transfer_id=TID, destination="cloud:/b", status="done", bytes=10
            )
        )
        bus.publish(TransferFinished(transfer_id=TID, status="done", bytes=10, seconds=2.0))
        handle.finish(done_result(job))

    FakeEngine.scenario = scenario
    code, out, err = run(capsys, "copy", "edge:/a", "cloud:/b", "--progress", "json")
    assert code == 0, err
    objects = [json.loads(line) for line in out.splitlines()]
    assert [o["kind"] for o in objects] == [
        "transfer.start",
        "transfer.progress",
        "connection.lost",
        "transfer.destination",
        "transfer.done",
        "summary",
    ]
    summary = {k: v for k, v in objects[-1].items() if k != "kind"}
    assert summary == done_result(CopyJob(source="edge:/a", destinations=("cloud:/b",))).to_dict()
    code, out2, _ = run(capsys, "copy", "edge:/a", "cloud:/b", "--progress", "json", "-o", "json")
    assert [json.loads(line)["kind"] for line in out2.splitlines()] == [o["kind"] for o in objects]


def test_progress_json_ends_with_an_error_line(capsys):
    def scenario(engine, handle):
        from difpipe_tui.core.errors import NetworkError

        raise NetworkError("timed out", host="cloud")

    FakeEngine.scenario = scenario
    code, out, err = run(capsys, "copy", "edge:/a", "cloud:/b", "--progress", "json")
    assert code == 6
    (line,) = out.splitlines()
    assert json.loads(line) == {
        "kind": "error",
        "error": "network",
        "message": "cloud: timed out",
        "host": "cloud",
        "exit_code": 6,
        "retryable": True,
    }
    assert err == "difpipe: error: cloud: timed out\n"


def test_progress_defaults_to_none_when_stderr_is_not_a_terminal(capsys):
    code, _out, err = run(capsys, "copy", "edge:/a", "cloud:/b")
    assert code == 0
    assert err == ""


# -- copy: resume --------------------------------------------------------------------------------


def stored_job() -> CopyJob:
    return job_from_mapping(
        {"source": "edge:/a", "destinations": ["cloud:/b", "backup:/c"], "retries": 1}
    )


def test_resume_runs_the_stored_job_with_new_tuning_flags(capsys):
    FakeEngine.stored = {TID: stored_job()}
    code, _, err = run(capsys, "copy", "--resume", TID, "--rate-limit", "1M", "--retries", "4")
    assert code == 0, err
    assert started()["resume_id"] == TID
    job = started()["job"]
    assert (job.source, job.destinations) == ("edge:/a", ("cloud:/b", "backup:/c"))
    assert (job.rate_limit, job.retries) == (1e6, 4)


def test_resume_accepts_the_same_ends_and_refuses_others(capsys):
    FakeEngine.stored = {TID: stored_job()}
    code, _, err = run(capsys, "copy", "edge:/a", "cloud:/b", "backup:/c", "--resume", TID)
    assert code == 0, err
    code, _, err = run(capsys, "copy", "edge:/a", "cloud:/b", "--resume", TID, "--verify", "none")
    assert code == 2
    assert "DST, --verify differ from the stored transfer" in err
    assert len(FakeEngine.instances[-1].started) == 0


def test_resume_and_job_cannot_be_combined(capsys, tmp_path):
    (tmp_path / "job.toml").write_text('source = "edge:/a"\ndestinations = ["cloud:/b"]\n')
    code, _, err = run(capsys, "copy", "--resume", TID, "--job", "job.toml")
    assert code == 2
    assert "--job and --resume cannot be combined" in err


def test_checkpoints_resume_is_copy_resume(capsys):
    FakeEngine.stored = {TID: stored_job()}
    code, out, err = run(capsys, "checkpoints", "resume", TID, "--parallel", "2", "-o", "json")
    assert code == 0, err
    assert started()["resume_id"] == TID
    assert started()["job"].parallel == 2
    assert json.loads(out)["transfer_id"] == TID


# -- copy: Ctrl-C and SIGTERM --------------------------------------------------------------------


def send_soon(*signals: int):
    def scenario(engine, handle):
        loop = asyncio.get_running_loop()
        for i, sig in enumerate(signals):
            loop.call_later(0.01 * (i + 1), os.kill, os.getpid(), sig)

    return scenario


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_cancels_saves_and_tells_how_to_resume(capsys, sig):
    FakeEngine.scenario = send_soon(sig)
    code, out, err = run(capsys, "copy", "edge:/a", "cloud:/b")
    assert code == 130
    assert FakeEngine.instances[-1].handle.cancelled == ["interrupted"]
    assert err == f"difpipe: interrupted; resume with: difpipe copy --resume {TID}\n"
    assert "interrupted" in out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupted_json_summary(capsys):
    FakeEngine.scenario = send_soon(signal.SIGINT)
    code, out, err = run(capsys, "copy", "edge:/a", "cloud:/b", "-o", "json")
    assert code == 130
    assert json.loads(out)["status"] == "interrupted"
    assert err.endswith(f"resume with: difpipe copy --resume {TID}\n")


def test_a_second_signal_exits_at_once(capsys, monkeypatch):
    FakeEngine.honour_cancel = False  # the checkpoint takes forever
    exits: list[int] = []

    def hard_exit(code):
        exits.append(code)
        handle = FakeEngine.instances[-1].handle
        handle.finish(done_result(handle.job, "interrupted"))

    monkeypatch.setattr(cli_copy, "_hard_exit", hard_exit)
    FakeEngine.scenario = send_soon(signal.SIGINT, signal.SIGINT)
    code, _, err = run(capsys, "copy", "edge:/a", "cloud:/b", "--progress", "none")
    assert exits == [130]
    assert f"difpipe: interrupted; resume with: difpipe copy --resume {TID}\n" in err
    assert code == 130


def test_a_signal_before_the_transfer_started_exits_130(capsys):
    async def scenario(engine, handle):
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, os.kill, os.getpid(), signal.SIGINT)
        await asyncio.sleep(5)

    FakeEngine.scenario = scenario
    code, _, err = run(capsys, "copy", "edge:/a", "cloud:/b")
    assert code == 130
    assert err == "difpipe: interrupted\n"


# -- analyze -------------------------------------------------------------------------------------


def test_analyze_table_lists_the_plan_with_its_reasons(capsys):
    code, out, err = run(capsys, "analyze", "edge:/var/log/app.log", "cloud:/srv/logs/", "-r")
    assert code == 0, err
    assert FakeEngine.instances[-1].analyzed == [
        CopyJob(source="edge:/var/log/app.log", destinations=("cloud:/srv/logs/",), recursive=True)
    ]
    assert out.splitlines() == [
        "source        edge:/var/log/app.log  (remote, 3.0 MiB)",
        "destination   cloud:/srv/logs/  (lands at /srv/logs/app.log, replaces a file,"
        " free 20.0 MiB, tools sha256sum zstd)",
        "destination   backup:/b/app.log  (free unknown)",
        "              problem: backup: /b: no such directory",
        "strategy      exec: both ends have a shell and the tools",
        "compression   zstd level 3, runs remote: a sample shrinks to 31%",
        "verify        sha256",
        "sample ratio  0.31 (compressed size / original, of a sample)",
    ]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_analyze_json_yaml_is_the_plan(capsys, fmt):
    code, out, _ = run(capsys, "analyze", "edge:/a", "cloud:/b", "-o", fmt)
    assert code == 0
    assert (json.loads(out) if fmt == "json" else yaml.safe_load(out)) == PLAN


def test_analyze_needs_a_destination(capsys):
    code, _, err = run(capsys, "analyze", "edge:/a")
    assert code == 2
    assert "a destination is missing" in err


# -- checkpoints ---------------------------------------------------------------------------------


@pytest.fixture
def transfers(env):
    with Store.open() as store:
        a = store.create_transfer(
            source="edge:/a",
            destinations=["cloud:/b", "backup:/c"],
            spec={},
            spec_key="k1",
            total_bytes=100 * MiB,
        )
        store.save_checkpoint(
            Checkpoint(
                transfer_id=a.id,
                destination="cloud:/b",
                offset=64 * MiB,
                total=100 * MiB,
                prefix_digest="ef" * 32,
                digest_algo="sha256",
                hash_state=b"\x01\x02",
            )
        )
        store.update_transfer(a.id, status="interrupted")
        b = store.create_transfer(
            source="edge:/d", destinations=["cloud:/e"], spec={}, spec_key="k2"
        )
        store.update_transfer(b.id, status="done")
    return a.id, b.id


def test_checkpoints_list_shows_unfinished_transfers_per_destination(
    capsys, monkeypatch, transfers
):
    monkeypatch.setenv("COLUMNS", "200")
    a, _ = transfers
    code, out, _ = run(capsys, "checkpoints", "list", "-o", "json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["transfer_id"], r["destination"]) for r in rows] == [
        (a, "cloud:/b"),
        (a, "backup:/c"),
    ]
    assert rows[0]["status"] == "interrupted"
    assert (rows[0]["offset"], rows[0]["total"]) == (64 * MiB, 100 * MiB)
    assert rows[0]["prefix_digest"] == "ef" * 32
    assert (rows[1]["offset"], rows[1]["total"], rows[1]["prefix_digest"]) == (0, 100 * MiB, None)
    assert rows[0]["age_seconds"] >= 0
    code, out, _ = run(capsys, "checkpoints", "list")
    assert "64.0 MiB (64%)" in out and "100.0 MiB" in out
    assert "efefefefefef" in out
    assert "0s" in out


def test_checkpoints_list_empty(capsys):
    code, out, _ = run(capsys, "checkpoints", "list")
    assert (code, out) == (0, "no unfinished transfers\n")
    code, out, _ = run(capsys, "checkpoints", "list", "-o", "json")
    assert json.loads(out) == []


def test_checkpoints_show(capsys, transfers):
    a, _ = transfers
    code, out, _ = run(capsys, "checkpoints", "show", a, "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert data["transfer"]["id"] == a
    assert data["transfer"]["status"] == "interrupted"
    assert data["checkpoints"][0]["offset"] == 64 * MiB
    assert data["checkpoints"][0]["hash_state"] == "0102"
    code, out, _ = run(capsys, "checkpoints", "show", a, "-o", "yaml")
    assert yaml.safe_load(out)["transfer"]["status"] == "interrupted"
    code, out, _ = run(capsys, "checkpoints", "show", a)
    assert f"id            {a}" in out
    assert "CHECKPOINT" in out and "64.0 MiB (64%)" in out


def test_checkpoints_show_unknown_id(capsys):
    code, _, err = run(capsys, "checkpoints", "show", "nope")
    assert code == 2
    assert "no transfer with id nope" in err


def test_checkpoints_rm(capsys, transfers):
    a, b = transfers
    code, _, err = run(capsys, "checkpoints", "rm", a, "nope")
    assert code == 2
    assert "no transfer with id nope; nothing was removed" in err
    with Store.open() as store:
        assert store.get_transfer(a) is not None
    code, out, _ = run(capsys, "checkpoints", "rm", a, b)
    assert (code, out) == (0, f"removed {a}\nremoved {b}\n")
    with Store.open() as store:
        assert store.get_transfer(a) is None
        assert store.get_checkpoints(a) == []


def test_checkpoints_needs_an_action(capsys):
    code, _, err = run(capsys, "checkpoints")
    assert code == 2
    assert "an action is required" in err


# -- keygen and decrypt --------------------------------------------------------------------------


def test_keygen_writes_a_private_key_and_never_overwrites(capsys, tmp_path):
    code, out, _ = run(capsys, "keygen", "k.key")
    assert code == 0
    assert "k.key: new key" in out
    path = tmp_path / "k.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    code, _, err = run(capsys, "keygen", "k.key")
    assert code == 10
    assert "refusing to overwrite" in err
    assert path.read_bytes() == before


@pytest.fixture
def encrypted(tmp_path) -> tuple[Path, Path, bytes]:
    key_file = tmp_path / "k.key"
    generate_key(key_file)
    from difpipe_tui.core.transfer.encrypt import load_key

    plain = os.urandom(200_000) + b"text " * 50_000
    (tmp_path / "plain").write_bytes(plain)
    encrypt_file(tmp_path / "plain", tmp_path / "enc", load_key(key_file), codec="zstd")
    return key_file, tmp_path / "enc", plain


def test_decrypt_file_to_file(capsys, tmp_path, encrypted):
    key, enc, plain = encrypted
    code, _out, err = run(capsys, "decrypt", "--key", str(key), str(enc), "out")
    assert code == 0, err
    assert (tmp_path / "out").read_bytes() == plain
    code, _, err = run(capsys, "decrypt", "--key", str(key), str(enc), "out")
    assert code == 10
    code, _, err = run(capsys, "decrypt", "--key", str(key), str(enc), "out", "--overwrite")
    assert code == 0, err


def test_decrypt_stdin_to_file_and_file_to_stdout(capsys, monkeypatch, tmp_path, encrypted):
    key, enc, plain = encrypted
    monkeypatch.setattr("sys.stdin", BinaryStdio(enc.read_bytes()))
    code, _out, err = run(capsys, "decrypt", "--key", str(key), "-", "out")
    assert code == 0, err
    assert (tmp_path / "out").read_bytes() == plain
    assert not (tmp_path / "out.difpipe-part").exists()

    stdout = BinaryStdio()
    monkeypatch.setattr("sys.stdout", stdout)
    code = cli.main(["decrypt", "--key", str(key), str(enc), "-"])
    assert code == 0
    assert stdout.buffer.getvalue() == plain


def test_decrypt_refuses_altered_input(capsys, monkeypatch, tmp_path, encrypted):
    key, enc, _ = encrypted
    data = bytearray(enc.read_bytes())
    data[-5] ^= 1
    monkeypatch.setattr("sys.stdin", BinaryStdio(bytes(data[:-1])))
    code, _, err = run(capsys, "decrypt", "--key", str(key), "-", "out")
    assert code == 8
    assert "stdin: chunk" in err
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out.difpipe-part").exists()


def test_decrypt_with_the_wrong_key(capsys, tmp_path, encrypted):
    _, enc, _ = encrypted
    other = tmp_path / "other.key"
    generate_key(other)
    code, _, err = run(capsys, "decrypt", "--key", str(other), str(enc), "out")
    assert code == 8
    assert "failed authentication" in err


class _Exited(Exception):
    pass


def _fake_exit(code: int) -> None:
    raise _Exited(code)


def test_run_exits_at_once_after_a_copy(monkeypatch, capsys):
    """After a copy nothing is left to tear down: the process ends without Python's teardown,
    after flushing what it printed."""

    def fake_main() -> int:
        print("summary")
        cli._finished.append("copy")
        return 9

    monkeypatch.setattr(cli, "main", fake_main)
    monkeypatch.setattr(cli.os, "_exit", _fake_exit)
    with pytest.raises(_Exited) as info:
        cli.run()
    assert info.value.args == (9,)
    assert capsys.readouterr().out == "summary\n"


def test_run_exits_normally_after_other_commands(monkeypatch):
    def fake_main() -> int:
        cli._finished.append("hosts")
        return 0

    monkeypatch.setattr(cli, "main", fake_main)
    monkeypatch.setattr(cli.os, "_exit", _fake_exit)
    with pytest.raises(SystemExit) as info:
        cli.run()
    assert info.value.code == 0
