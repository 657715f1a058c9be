"""The SQLite store, on real database files: schema migrations, durability across a killed
process, two processes writing at once, and each table's API.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from difpipe_tui.core import store as store_module
from difpipe_tui.core.errors import LocalIOError
from difpipe_tui.core.store import (
    SCHEMA_VERSION,
    Checkpoint,
    StateConflictError,
    Store,
    TransferStatus,
    new_transfer_id,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

TABLES = {"transfers", "checkpoints", "app_states", "audit_log", "host_status"}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def store(db_path: Path):
    with Store.open(db_path) as opened:
        yield opened


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start a Python child that imports this checkout of difpipe_tui."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_line(child: subprocess.Popen[str]) -> str:
    """The child's next line of output; if it exited instead, fail with its stderr."""
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        _, err = child.communicate(timeout=10)
        pytest.fail(f"child exited with {child.returncode} before printing:\n{err}")
    return line


def make_transfer(store: Store, spec_key: str = "key-1", **kwargs):
    return store.create_transfer(
        source=kwargs.pop("source", "edge:/srv/data.img"),
        destinations=kwargs.pop("destinations", ["cloud:/backup/data.img"]),
        spec=kwargs.pop("spec", {"compress": "zstd", "verify": True}),
        spec_key=spec_key,
        **kwargs,
    )


def make_checkpoint(transfer_id: str, destination: str = "cloud:/backup/data.img", **kwargs):
    fields = {
        "offset": 4096,
        "total": 1 << 20,
        "prefix_digest": "ab" * 32,
        "digest_algo": "sha256",
        "hash_state": b"\x00\x01state",
    }
    fields.update(kwargs)
    return Checkpoint(transfer_id=transfer_id, destination=destination, **fields)


# -- opening, schema, files --------------------------------------------------------------------


def test_open_creates_the_schema_in_an_empty_file(db_path: Path) -> None:
    with Store.open(db_path):
        pass
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert names >= TABLES
    finally:
        conn.close()


def test_reopen_keeps_data_and_does_not_migrate_again(db_path: Path) -> None:
    with Store.open(db_path) as store:
        transfer = make_transfer(store)
        store.append_audit("cli", "transfer.start", subject=transfer.id)
    with Store.open(db_path) as store:
        assert store.get_transfer(transfer.id) == transfer
        assert [e.action for e in store.list_audit()] == ["transfer.start"]
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_newer_schema_is_refused_with_a_clear_message(db_path: Path) -> None:
    with Store.open(db_path):
        pass
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(LocalIOError) as excinfo:
        Store.open(db_path)
    message = str(excinfo.value)
    assert str(db_path) in message
    assert "schema version 99" in message
    assert "newer" in message
    assert "upgrade DifPipe" in message


def test_a_file_that_is_not_a_database_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not an SQLite database, just some text" * 100)
    with pytest.raises(LocalIOError, match="not a database"):
        Store.open(db_path)


def test_a_failing_migration_step_leaves_the_previous_version_intact(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(db_path) as store:
        make_transfer(store)
    broken = (*store_module.MIGRATIONS, ("CREATE TABLE extra (x)", "NOT VALID SQL"))
    monkeypatch.setattr(store_module, "MIGRATIONS", broken)
    with pytest.raises(LocalIOError, match=f"schema version {SCHEMA_VERSION + 1} failed"):
        Store.open(db_path)

    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "extra" not in names
    finally:
        conn.close()

    fixed = (*store_module.MIGRATIONS[:-1], ("CREATE TABLE extra (x)",))
    monkeypatch.setattr(store_module, "MIGRATIONS", fixed)
    with Store.open(db_path) as store:
        assert len(store.list_transfers()) == 1
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    finally:
        conn.close()


def test_wal_mode_foreign_keys_and_synchronous_normal(store: Store, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    own = store._conn
    assert own.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert own.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_default_path_directory_and_file_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIFPIPE_HOME", str(tmp_path / "home"))
    with Store.open() as store:
        assert store.path == tmp_path / "home" / "state" / "state.db"
        store.append_audit("cli", "test")
        assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
        wal = store.path.with_name("state.db-wal")
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_close_is_idempotent_and_a_closed_store_refuses_work(db_path: Path) -> None:
    store = Store.open(db_path)
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.list_transfers()


# -- processes and threads ---------------------------------------------------------------------

APPENDER = """
import sys
from difpipe_tui.core.store import Store

path, actor = sys.argv[1], sys.argv[2]
with Store.open(path) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(200):
        store.append_audit(actor, "test.append", detail={"i": i})
print("done", flush=True)
"""


def test_two_processes_append_at_once(db_path: Path) -> None:
    # Both children open the still-missing file at the same time, so they also race on
    # creating it and applying the migrations.
    children = [run_python(APPENDER, str(db_path), actor) for actor in ("one", "two")]
    try:
        for child in children:
            assert read_line(child) == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [child.communicate(timeout=30) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate(timeout=10)
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        assert out == "done\n"
        assert "locked" not in err

    with Store.open(db_path) as store:
        entries = store.list_audit(limit=1000)
    assert len(entries) == 400
    for actor in ("one", "two"):
        numbers = [e.detail["i"] for e in entries if e.actor == actor]
        assert numbers == list(range(200))


SAVE_THEN_WAIT = """
import sys
import time
from difpipe_tui.core.store import Checkpoint, Store

store = Store.open(sys.argv[1])
transfer = store.create_transfer(
    source="edge:/srv/data.img", destinations=["cloud:/data.img"], spec={}, spec_key="k"
)
store.save_checkpoint(
    Checkpoint(
        transfer_id=transfer.id,
        destination="cloud:/data.img",
        offset=123456789,
        prefix_digest="cafe",
        digest_algo="sha256",
        hash_state=b"state",
    )
)
print("saved", transfer.id, flush=True)
time.sleep(60)
"""


def test_a_saved_checkpoint_survives_kill_9(db_path: Path) -> None:
    child = run_python(SAVE_THEN_WAIT, str(db_path))
    try:
        line = read_line(child).split()
        assert line[0] == "saved"
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    transfer_id = line[1]

    with Store.open(db_path) as store:
        transfer = store.get_transfer(transfer_id)
        assert transfer is not None
        assert transfer.status is TransferStatus.RUNNING
        [checkpoint] = store.get_checkpoints(transfer_id)
        assert checkpoint.offset == 123456789
        assert checkpoint.prefix_digest == "cafe"
        assert checkpoint.hash_state == b"state"
        assert store.find_resumable("k") == transfer
        store.update_transfer(transfer_id, status="interrupted")  # the lock was released


async def test_one_store_shared_with_worker_threads(store: Store) -> None:
    transfer = make_transfer(store)

    def save(i: int) -> None:
        store.save_checkpoint(make_checkpoint(transfer.id, destination=f"d{i}", offset=i))
        store.append_audit("engine", "checkpoint", subject=transfer.id, detail={"i": i})

    await asyncio.gather(*(asyncio.to_thread(save, i) for i in range(20)))
    assert len(store.get_checkpoints(transfer.id)) == 20
    assert len(store.list_audit()) == 20


# -- transfers and checkpoints -----------------------------------------------------------------


def test_transfer_create_get_update_list(store: Store, db_path: Path) -> None:
    created = make_transfer(store, total_bytes=1000)
    assert len(created.id) == 12
    assert int(created.id, 16) >= 0
    assert created.status is TransferStatus.RUNNING
    assert created.destinations == ("cloud:/backup/data.img",)
    assert store.get_transfer(created.id) == created
    assert store.get_transfer("nope") is None

    updated = store.update_transfer(
        created.id, bytes_done=1000, status="done", digest="d1", result={"targets": 1}
    )
    assert updated.status is TransferStatus.DONE
    assert updated.updated_at >= created.updated_at
    assert store.get_transfer(created.id) == updated
    assert updated.result == {"targets": 1}

    other = make_transfer(store, spec_key="key-2")
    assert [t.id for t in store.list_transfers()] == [other.id, created.id]
    assert [t.id for t in store.list_transfers(limit=1)] == [other.id]
    assert [t.id for t in store.list_transfers(status="done")] == [created.id]
    assert {t.id for t in store.list_transfers(status=["done", "running"])} == {
        created.id,
        other.id,
    }

    conn = sqlite3.connect(db_path)
    try:
        raw = conn.execute("SELECT spec FROM transfers WHERE id = ?", (created.id,)).fetchone()
    finally:
        conn.close()
    assert raw[0] == '{"compress":"zstd","verify":true}'


def test_transfer_update_rejects_bad_input(store: Store) -> None:
    transfer = make_transfer(store)
    with pytest.raises(TypeError, match="source"):
        store.update_transfer(transfer.id, source="elsewhere")
    with pytest.raises(ValueError, match="stalled"):
        store.update_transfer(transfer.id, status="stalled")
    with pytest.raises(KeyError):
        store.update_transfer("missing", status="done")
    with pytest.raises(TypeError):
        make_transfer(store, destinations="cloud:/x")
    assert store.get_transfer(transfer.id) == transfer


def test_find_resumable_matches_the_spec_key_and_skips_done(store: Store) -> None:
    assert store.find_resumable("key-1") is None
    done = make_transfer(store)
    store.update_transfer(done.id, status="done")
    assert store.find_resumable("key-1") is None

    older = make_transfer(store)
    store.update_transfer(older.id, status="failed", error="link lost")
    newer = make_transfer(store)
    store.update_transfer(newer.id, status="interrupted")
    make_transfer(store, spec_key="other")

    found = store.find_resumable("key-1")
    assert found is not None
    assert found.id == newer.id
    assert found.status is TransferStatus.INTERRUPTED


def test_checkpoints_upsert_and_cascade_on_delete(store: Store, db_path: Path) -> None:
    transfer = make_transfer(store)
    first = store.save_checkpoint(make_checkpoint(transfer.id, offset=100))
    assert first.updated_at > 0
    store.save_checkpoint(make_checkpoint(transfer.id, destination="b:/x", offset=5))
    moved = store.save_checkpoint(make_checkpoint(transfer.id, offset=200, hash_state=None))

    assert store.get_checkpoint(transfer.id, first.destination) == moved
    assert [(c.destination, c.offset) for c in store.get_checkpoints(transfer.id)] == [
        ("b:/x", 5),
        ("cloud:/backup/data.img", 200),
    ]
    assert moved.hash_state is None

    with pytest.raises(KeyError):
        store.save_checkpoint(make_checkpoint("missing"))

    assert store.delete_transfer(transfer.id) is True
    assert store.delete_transfer(transfer.id) is False
    assert store.get_checkpoints(transfer.id) == []
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 0
    finally:
        conn.close()


def test_rows_convert_to_json_ready_dicts(store: Store) -> None:
    transfer = make_transfer(store)
    checkpoint = store.save_checkpoint(make_checkpoint(transfer.id))
    as_json = json.loads(json.dumps(transfer.to_dict()))
    assert as_json["status"] == "running"
    assert as_json["destinations"] == ["cloud:/backup/data.img"]
    assert checkpoint.to_dict()["hash_state"] == b"\x00\x01state".hex()


def test_new_transfer_ids_are_short_hex_and_distinct() -> None:
    ids = {new_transfer_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids)


# -- app states --------------------------------------------------------------------------------


def test_app_state_optimistic_concurrency(db_path: Path) -> None:
    with Store.open(db_path) as console, Store.open(db_path) as controller:
        first = console.set_app_state("shop", "edge-serving", {"edge": "pi"}, expected_version=0)
        assert first.version == 1

        seen = controller.get_app_state("shop")
        assert seen == first
        console.set_app_state("shop", "failing-over", {"reason": "ttl"}, expected_version=1)

        with pytest.raises(StateConflictError, match="expected version 1, found 2") as excinfo:
            controller.set_app_state("shop", "edge-serving", {}, expected_version=seen.version)
        assert excinfo.value.retryable

        current = controller.get_app_state("shop")
        assert current is not None
        assert (current.state, current.data, current.version) == (
            "failing-over",
            {"reason": "ttl"},
            2,
        )
        with pytest.raises(StateConflictError):
            controller.set_app_state("new-app", "edge-serving", expected_version=3)
        assert controller.get_app_state("new-app") is None

        forced = controller.set_app_state("shop", "cloud-serving")
        assert forced.version == 3
        assert forced.since >= current.since


def test_app_state_since_is_kept_while_the_state_stays(store: Store) -> None:
    start = store.set_app_state("shop", "edge-serving", {"beats": 1}, since=1000.0)
    same = store.set_app_state("shop", "edge-serving", {"beats": 2})
    assert same.since == start.since == 1000.0
    changed = store.set_app_state("shop", "failing-over")
    assert changed.since > 1000.0
    store.set_app_state("api", "cloud-serving")
    assert [s.app for s in store.list_app_states()] == ["api", "shop"]


# -- audit log and host status -----------------------------------------------------------------


def test_audit_log_filters_and_is_append_only(store: Store, db_path: Path) -> None:
    for i in range(10):
        store.append_audit(
            "failover",
            "heartbeat.missed" if i % 2 else "fence.lease",
            host="pi" if i % 2 else "cloud",
            subject="shop",
            detail={"i": i},
            evidence={"ttl": 30} if i == 9 else None,
            ts=1000.0 + i,
        )
    everything = store.list_audit()
    assert [e.detail["i"] for e in everything] == list(range(10))
    assert everything[9].evidence == {"ttl": 30}
    assert everything[0].evidence is None

    assert [e.detail["i"] for e in store.list_audit(since=1007.0)] == [7, 8, 9]
    assert [e.detail["i"] for e in store.list_audit(host="pi", limit=2)] == [7, 9]
    page = store.list_audit(after_id=everything[2].id, limit=3)
    assert [e.detail["i"] for e in page] == [3, 4, 5]
    assert store.list_audit(after_id=everything[-1].id) == []

    conn = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit_log SET action = 'forged'")
    finally:
        conn.close()


def test_host_status_keeps_last_seen_while_unreachable(store: Store) -> None:
    up = store.record_host_status(
        "pi",
        reachable=True,
        latency_ms=3.5,
        os="Linux",
        arch="aarch64",
        tools={"zstd": True, "rsync": False},
        free_bytes=10 << 30,
        checked_at=1000.0,
    )
    assert up.last_seen == 1000.0
    assert up.last_error is None

    down = store.record_host_status(
        "pi", reachable=False, error="connection refused", checked_at=1060.0
    )
    assert (down.reachable, down.last_seen, down.checked_at) == (False, 1000.0, 1060.0)
    assert (down.os, down.arch, down.tools) == ("Linux", "aarch64", {"zstd": True, "rsync": False})
    assert down.latency_ms is None
    assert down.last_error == "connection refused"
    assert store.get_host_status("pi") == down

    never = store.record_host_status("cloud", reachable=False, error="timed out")
    assert never.last_seen is None
    back = store.record_host_status("pi", reachable=True, latency_ms=4.0, checked_at=1120.0)
    assert (back.last_seen, back.last_error, back.os) == (1120.0, None, None)
    assert [h.host for h in store.list_host_status()] == ["cloud", "pi"]


def test_delete_host_status_forgets_only_that_host(db_path: Path):
    with Store.open(db_path) as store:
        store.record_host_status("edge", reachable=True, latency_ms=2.0)
        store.record_host_status("cloud", reachable=False, error="cloud: timed out")
        assert store.delete_host_status("cloud") is True
        assert store.delete_host_status("cloud") is False
        assert store.delete_host_status("never-checked") is False
    with Store.open(db_path) as reopened:  # committed to the file
        assert [s.host for s in reopened.list_host_status()] == ["edge"]
        assert reopened.get_host_status("cloud") is None
