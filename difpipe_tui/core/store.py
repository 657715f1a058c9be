"""The engine's SQLite store: transfers and their checkpoints, app states, the audit log and the
last known status of every host.

One file (:func:`~difpipe_tui.core.paths.state_db_path` by default) in WAL mode, so the console
and a CLI copy running at the same time can both use it: readers never wait, and a writer waits
up to ``busy_timeout`` seconds for another process's write to finish. The directory is created
``0700`` and the file ``0600`` (SQLite gives its ``-wal`` and ``-shm`` files the same mode).

Durability: every write method commits before it returns, so "persist before acting" holds —
when :meth:`Store.save_checkpoint` returns, the checkpoint is in the database. With
``synchronous=NORMAL`` in WAL mode a committed transaction survives the process being killed,
``kill -9`` included; only an OS crash or a power cut can lose the last few commits, and even
then the file stays consistent.

Schema: versioned with ``PRAGMA user_version``. :data:`MIGRATIONS` lists the SQL steps in
order; opening a store applies the missing ones, each in its own transaction (so two processes
opening a new file at once do not trip over each other), and refuses a database written by a
newer DifPipe rather than guess at it.

Threads and processes: a :class:`Store` owns one connection, guarded by a lock, so a single
instance may be shared by the engine's loop thread and ``asyncio.to_thread`` workers. Calls are
synchronous and take well under a millisecond. Each process opens its own :class:`Store`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difpipe_tui.core.errors import LocalIOError
from difpipe_tui.core.paths import state_db_path

log = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT = 10.0
"""Seconds a write waits for another process's write before giving up."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: transfers and checkpoints, app states, audit log, host status.
    (
        """
        CREATE TABLE transfers (
            id           TEXT PRIMARY KEY,
            spec_key     TEXT NOT NULL,
            created_at   REAL NOT NULL,
            updated_at   REAL NOT NULL,
            status       TEXT NOT NULL,
            source       TEXT NOT NULL,
            destinations TEXT NOT NULL,
            spec         TEXT NOT NULL,
            total_bytes  INTEGER,
            bytes_done   INTEGER NOT NULL DEFAULT 0,
            digest       TEXT,
            error        TEXT,
            result       TEXT
        )
        """,
        "CREATE INDEX transfers_by_spec_key ON transfers (spec_key, updated_at)",
        "CREATE INDEX transfers_by_created_at ON transfers (created_at)",
        """
        CREATE TABLE checkpoints (
            transfer_id   TEXT NOT NULL REFERENCES transfers (id) ON DELETE CASCADE,
            destination   TEXT NOT NULL,
            "offset"      INTEGER NOT NULL,
            total         INTEGER,
            prefix_digest TEXT NOT NULL,
            digest_algo   TEXT NOT NULL,
            hash_state    BLOB,
            updated_at    REAL NOT NULL,
            PRIMARY KEY (transfer_id, destination)
        )
        """,
        """
        CREATE TABLE app_states (
            app     TEXT PRIMARY KEY,
            state   TEXT NOT NULL,
            since   REAL NOT NULL,
            data    TEXT NOT NULL,
            version INTEGER NOT NULL
        )
        """,
        """
        CREATE TABLE audit_log (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            ts       REAL NOT NULL,
            actor    TEXT NOT NULL,
            action   TEXT NOT NULL,
            host     TEXT,
            subject  TEXT,
            detail   TEXT NOT NULL,
            evidence TEXT
        )
        """,
        "CREATE INDEX audit_log_by_ts ON audit_log (ts)",
        "CREATE INDEX audit_log_by_host ON audit_log (host, id)",
        # Entries are immutable; old ones may be pruned one day, so only UPDATE is refused.
        """
        CREATE TRIGGER audit_log_immutable BEFORE UPDATE ON audit_log
        BEGIN
            SELECT RAISE(ABORT, 'audit_log entries are append-only');
        END
        """,
        """
        CREATE TABLE host_status (
            host       TEXT PRIMARY KEY,
            reachable  INTEGER NOT NULL,
            latency_ms REAL,
            os         TEXT,
            arch       TEXT,
            tools      TEXT NOT NULL,
            free_bytes INTEGER,
            last_seen  REAL,
            last_error TEXT,
            checked_at REAL NOT NULL
        )
        """,
    ),
)
"""Schema migrations: step ``n`` (0-based) takes ``user_version`` from ``n`` to ``n + 1``.

Append new steps; never edit one that has shipped.
"""

SCHEMA_VERSION = len(MIGRATIONS)


class StateConflictError(LocalIOError):
    """An app state changed between reading it and writing it (optimistic concurrency)."""

    retryable = True
    kind = "state-conflict"


class TransferStatus(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    PARTIAL = "partial"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


def new_transfer_id() -> str:
    """A short random transfer id: 12 lowercase hex characters."""
    return secrets.token_hex(6)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class _Row:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the row (bytes as hex)."""
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: v.hex() if isinstance(v, bytes) else v for k, v in data.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferRecord(_Row):
    id: str
    spec_key: str
    status: TransferStatus
    source: str
    destinations: tuple[str, ...]
    spec: dict[str, Any]
    created_at: float
    updated_at: float
    total_bytes: int | None = None
    bytes_done: int = 0
    digest: str | None = None
    error: str | None = None
    result: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint(_Row):
    """How far one destination of a transfer got, and the hash of what it has so far.

    ``hash_state`` is the serialized state of the running hash, when the algorithm allows it,
    so that a resume can continue hashing instead of reading the prefix again; for an
    encrypted stream it is the state that resumes it (``transfer.encresume.ResumeState``),
    for the byte ranges of ``--parallel`` how far each got (``transfer.parresume.RangeState``).
    ``updated_at`` is set by :meth:`Store.save_checkpoint`.
    """

    transfer_id: str
    destination: str
    offset: int
    prefix_digest: str
    digest_algo: str
    total: int | None = None
    hash_state: bytes | None = None
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry(_Row):
    id: int
    ts: float
    actor: str
    action: str
    host: str | None = None
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    evidence: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppState(_Row):
    """The failover state of one app. ``version`` grows by one with every write."""

    app: str
    state: str
    since: float
    data: dict[str, Any]
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HostStatus(_Row):
    """The last ``hosts check`` result for a host. ``last_seen`` is when it last answered."""

    host: str
    reachable: bool
    checked_at: float
    latency_ms: float | None = None
    os: str | None = None
    arch: str | None = None
    tools: dict[str, Any] = field(default_factory=dict)
    free_bytes: int | None = None
    last_seen: float | None = None
    last_error: str | None = None


_UPDATABLE_TRANSFER_FIELDS = frozenset(
    {"status", "total_bytes", "bytes_done", "digest", "error", "result"}
)


def _transfer(row: sqlite3.Row) -> TransferRecord:
    return TransferRecord(
        id=row["id"],
        spec_key=row["spec_key"],
        status=TransferStatus(row["status"]),
        source=row["source"],
        destinations=tuple(_loads(row["destinations"])),
        spec=_loads(row["spec"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        total_bytes=row["total_bytes"],
        bytes_done=row["bytes_done"],
        digest=row["digest"],
        error=row["error"],
        result=_loads(row["result"]),
    )


def _checkpoint(row: sqlite3.Row) -> Checkpoint:
    return Checkpoint(
        transfer_id=row["transfer_id"],
        destination=row["destination"],
        offset=row["offset"],
        total=row["total"],
        prefix_digest=row["prefix_digest"],
        digest_algo=row["digest_algo"],
        hash_state=row["hash_state"],
        updated_at=row["updated_at"],
    )


def _audit(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        ts=row["ts"],
        actor=row["actor"],
        action=row["action"],
        host=row["host"],
        subject=row["subject"],
        detail=_loads(row["detail"]),
        evidence=_loads(row["evidence"]),
    )


def _app_state(row: sqlite3.Row) -> AppState:
    return AppState(
        app=row["app"],
        state=row["state"],
        since=row["since"],
        data=_loads(row["data"]),
        version=row["version"],
    )


def _host_status(row: sqlite3.Row) -> HostStatus:
    return HostStatus(
        host=row["host"],
        reachable=bool(row["reachable"]),
        latency_ms=row["latency_ms"],
        os=row["os"],
        arch=row["arch"],
        tools=_loads(row["tools"]),
        free_bytes=row["free_bytes"],
        last_seen=row["last_seen"],
        last_error=row["last_error"],
        checked_at=row["checked_at"],
    )


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _create_file(path: Path) -> None:
    """Create the state directory (0700) and an empty database file (0600) if missing."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        raise LocalIOError(
            f"cannot create the state database {path}: {exc.strerror or exc}",
            hint="check the directory's permissions, or set DIFPIPE_HOME",
        ) from exc


class Store:
    """The state database. Open it with :meth:`Store.open`; use it as a context manager or
    call :meth:`close`.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, busy_timeout: float):
        self._conn = connection
        self._lock = threading.RLock()
        self.path = path
        self.busy_timeout = busy_timeout

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> Store:
        """Open (creating and migrating as needed) the store at ``path``, by default
        :func:`~difpipe_tui.core.paths.state_db_path`.

        Raises :class:`LocalIOError` when the file cannot be created or opened, is not a
        DifPipe database, or was written by a newer DifPipe.
        """
        db_path = state_db_path() if path is None else Path(path).expanduser()
        _create_file(db_path)
        try:
            conn = sqlite3.connect(
                db_path,
                timeout=busy_timeout,
                isolation_level=None,  # transactions are explicit: see _transaction()
                check_same_thread=False,  # the lock in Store serializes access instead
            )
        except sqlite3.Error as exc:
            raise LocalIOError(f"cannot open the state database {db_path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        store = cls(conn, db_path, busy_timeout)
        try:
            store._configure()
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        """Close the connection. Closing twice is harmless."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def _io_error(self, exc: sqlite3.Error) -> LocalIOError:
        text = str(exc)
        if _is_busy(exc):
            err = LocalIOError(
                f"state database {self.path} is busy: {text}",
                hint=f"another difpipe process held it for more than {self.busy_timeout:g} s",
            )
            err.retryable = True
            return err
        return LocalIOError(f"state database {self.path}: {text}")

    @contextlib.contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        """Report SQLite's I/O-level failures as :class:`LocalIOError`.

        Constraint violations and misuse (``IntegrityError``, ``ProgrammingError``) are bugs
        in the caller and pass through unchanged.
        """
        try:
            yield
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise
        except sqlite3.Error as exc:
            raise self._io_error(exc) from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed on success and rolled back on any exception.

        ``BEGIN IMMEDIATE`` takes the write lock up front, so the busy timeout applies there
        and a transaction never fails halfway on a lock upgrade.
        """
        with self._lock, self._sqlite_errors():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self._sqlite_errors():
            return self._conn.execute(sql, params).fetchall()

    def _configure(self) -> None:
        with self._lock, self._sqlite_errors():
            mode = self._enable_wal()
            if mode.lower() != "wal":
                log.warning(
                    "state database %s: WAL mode unavailable (journal_mode=%s); "
                    "concurrent difpipe processes will wait on each other more",
                    self.path,
                    mode,
                )
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")

    def _enable_wal(self) -> str:
        """Switch to WAL mode and return the journal mode now in effect.

        Switching needs an exclusive lock. When two processes switch a new file at once,
        SQLite fails one of them at once instead of calling its busy handler (waiting could
        deadlock), so retry here until ``busy_timeout``.
        """
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.002
        while True:
            try:
                return str(self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _user_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _check_version(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise LocalIOError(
                f"state database {self.path} was written by a newer DifPipe (schema version "
                f"{version}; this one knows up to {len(MIGRATIONS)})",
                hint="upgrade DifPipe, or set DIFPIPE_HOME to use another state directory",
            )

    def _migrate(self) -> None:
        while True:
            with self._lock, self._sqlite_errors():
                version = self._user_version()
            self._check_version(version)
            if version == len(MIGRATIONS):
                return
            with self._transaction() as conn:
                # Re-read under the write lock: another process may have migrated meanwhile.
                if self._user_version() != version:
                    continue
                try:
                    for statement in MIGRATIONS[version]:
                        conn.execute(statement)
                except sqlite3.Error as exc:
                    raise LocalIOError(
                        f"state database {self.path}: migration to schema version "
                        f"{version + 1} failed: {exc}"
                    ) from exc
                conn.execute(f"PRAGMA user_version = {version + 1:d}")
            log.info("state database %s: migrated to schema version %d", self.path, version + 1)

    # -- transfers -----------------------------------------------------------------------------

    def create_transfer(
        self,
        *,
        source: str,
        destinations: Sequence[str],
        spec: Mapping[str, Any],
        spec_key: str,
        total_bytes: int | None = None,
        status: TransferStatus | str = TransferStatus.RUNNING,
        transfer_id: str | None = None,
    ) -> TransferRecord:
        """Record a new transfer. ``spec`` is the full job (source, destinations, flags) and
        ``spec_key`` its fingerprint, computed by the caller, which :meth:`find_resumable`
        matches on. The id is :func:`new_transfer_id` unless given.
        """
        if isinstance(destinations, str):
            raise TypeError("destinations must be a sequence of strings, not a string")
        now = time.time()
        record = TransferRecord(
            id=transfer_id or new_transfer_id(),
            spec_key=spec_key,
            status=TransferStatus(status),
            source=source,
            destinations=tuple(destinations),
            spec=dict(spec),
            created_at=now,
            updated_at=now,
            total_bytes=total_bytes,
        )
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO transfers (id, spec_key, created_at, updated_at, status, source, "
                "destinations, spec, total_bytes, bytes_done, digest, error, result) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.spec_key,
                    record.created_at,
                    record.updated_at,
                    record.status.value,
                    record.source,
                    _dumps(list(record.destinations)),
                    _dumps(record.spec),
                    record.total_bytes,
                    record.bytes_done,
                    None,
                    None,
                    None,
                ),
            )
        return record

    def update_transfer(self, transfer_id: str, **fields: Any) -> TransferRecord:
        """Change some of ``status``, ``total_bytes``, ``bytes_done``, ``digest``, ``error``,
        ``result`` and stamp ``updated_at``. Returns the updated record.

        Raises :class:`KeyError` for an unknown id, :class:`TypeError` for another field name
        and :class:`ValueError` for an unknown status.
        """
        unknown = set(fields) - _UPDATABLE_TRANSFER_FIELDS
        if unknown:
            raise TypeError(f"update_transfer() cannot set {', '.join(sorted(unknown))}")
        if "status" in fields:
            fields["status"] = TransferStatus(fields["status"])
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM transfers WHERE id = ?", (transfer_id,)).fetchone()
            if row is None:
                raise KeyError(f"no transfer with id {transfer_id!r}")
            record = dataclasses.replace(_transfer(row), **fields, updated_at=time.time())
            conn.execute(
                "UPDATE transfers SET status = ?, total_bytes = ?, bytes_done = ?, digest = ?, "
                "error = ?, result = ?, updated_at = ? WHERE id = ?",
                (
                    record.status.value,
                    record.total_bytes,
                    record.bytes_done,
                    record.digest,
                    record.error,
                    None if record.result is None else _dumps(record.result),
                    record.updated_at,
                    transfer_id,
                ),
            )
        return record

    def get_transfer(self, transfer_id: str) -> TransferRecord | None:
        rows = self._fetch("SELECT * FROM transfers WHERE id = ?", (transfer_id,))
        return _transfer(rows[0]) if rows else None

    def list_transfers(
        self,
        status: TransferStatus | str | Iterable[TransferStatus | str] | None = None,
        limit: int = 100,
    ) -> list[TransferRecord]:
        """The newest transfers first, optionally only those in ``status`` (one or several)."""
        params: list[Any] = []
        where = ""
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            values = [TransferStatus(s).value for s in statuses]
            where = f"WHERE status IN ({', '.join('?' * len(values))})"
            params.extend(values)
        params.append(limit)
        rows = self._fetch(
            f"SELECT * FROM transfers {where} "  # noqa: S608 (placeholders only)
            "ORDER BY created_at DESC, rowid DESC LIMIT ?",
            params,
        )
        return [_transfer(row) for row in rows]

    def find_resumable(self, spec_key: str) -> TransferRecord | None:
        """The most recently updated transfer with this spec fingerprint that is not done.

        A ``running`` one is included: after a crash it is left ``running``. Whether it is
        still alive in another process is for the caller to decide.
        """
        rows = self._fetch(
            "SELECT * FROM transfers WHERE spec_key = ? AND status != ? "
            "ORDER BY updated_at DESC, rowid DESC LIMIT 1",
            (spec_key, TransferStatus.DONE.value),
        )
        return _transfer(rows[0]) if rows else None

    def delete_transfer(self, transfer_id: str) -> bool:
        """Delete a transfer and its checkpoints. Returns whether it existed."""
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM transfers WHERE id = ?", (transfer_id,))
        return cursor.rowcount > 0

    # -- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self, cp: Checkpoint) -> Checkpoint:
        """Insert or replace the checkpoint of ``(cp.transfer_id, cp.destination)``.

        Committed before returning. Returns the checkpoint as stored (with ``updated_at``).
        Raises :class:`KeyError` if the transfer does not exist.
        """
        saved = dataclasses.replace(cp, updated_at=time.time())
        try:
            with self._transaction() as conn:
                conn.execute(
                    'INSERT INTO checkpoints (transfer_id, destination, "offset", total, '
                    "prefix_digest, digest_algo, hash_state, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (transfer_id, destination) DO UPDATE SET "
                    '"offset" = excluded."offset", '
                    "total = excluded.total, prefix_digest = excluded.prefix_digest, "
                    "digest_algo = excluded.digest_algo, hash_state = excluded.hash_state, "
                    "updated_at = excluded.updated_at",
                    (
                        saved.transfer_id,
                        saved.destination,
                        saved.offset,
                        saved.total,
                        saved.prefix_digest,
                        saved.digest_algo,
                        saved.hash_state,
                        saved.updated_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise KeyError(f"no transfer with id {cp.transfer_id!r}") from exc
        return saved

    def get_checkpoints(self, transfer_id: str) -> list[Checkpoint]:
        rows = self._fetch(
            "SELECT * FROM checkpoints WHERE transfer_id = ? ORDER BY destination",
            (transfer_id,),
        )
        return [_checkpoint(row) for row in rows]

    def delete_checkpoint(self, transfer_id: str, destination: str) -> bool:
        """Forget one destination's checkpoint (it landed, or its data proved wrong)."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM checkpoints WHERE transfer_id = ? AND destination = ?",
                (transfer_id, destination),
            )
        return cursor.rowcount > 0

    def get_checkpoint(self, transfer_id: str, destination: str) -> Checkpoint | None:
        rows = self._fetch(
            "SELECT * FROM checkpoints WHERE transfer_id = ? AND destination = ?",
            (transfer_id, destination),
        )
        return _checkpoint(rows[0]) if rows else None

    # -- audit log -----------------------------------------------------------------------------

    def append_audit(
        self,
        actor: str,
        action: str,
        *,
        host: str | None = None,
        subject: str | None = None,
        detail: Mapping[str, Any] | None = None,
        evidence: Any = None,
        ts: float | None = None,
    ) -> AuditEntry:
        """Append an entry to the audit log. Entries are never changed afterwards."""
        entry = AuditEntry(
            id=0,
            ts=time.time() if ts is None else ts,
            actor=actor,
            action=action,
            host=host,
            subject=subject,
            detail=dict(detail or {}),
            evidence=evidence,
        )
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO audit_log (ts, actor, action, host, subject, detail, evidence) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.ts,
                    entry.actor,
                    entry.action,
                    entry.host,
                    entry.subject,
                    _dumps(entry.detail),
                    None if evidence is None else _dumps(evidence),
                ),
            )
        return dataclasses.replace(entry, id=int(cursor.lastrowid or 0))

    def list_audit(
        self,
        since: float | None = None,
        host: str | None = None,
        limit: int = 1000,
        *,
        after_id: int | None = None,
    ) -> list[AuditEntry]:
        """Audit entries in the order they were appended.

        Without ``after_id`` these are the newest ``limit`` entries (with ``ts >= since`` and
        for ``host``, if given). With ``after_id`` they are the first ``limit`` entries after
        that id, which lets a reader follow the log page by page without gaps.
        """
        conditions: list[str] = []
        params: list[Any] = []
        if since is not None:
            conditions.append("ts >= ?")
            params.append(since)
        if host is not None:
            conditions.append("host = ?")
            params.append(host)
        if after_id is not None:
            conditions.append("id > ?")
            params.append(after_id)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "ASC" if after_id is not None else "DESC"
        params.append(limit)
        rows = self._fetch(
            f"SELECT * FROM audit_log {where} "  # noqa: S608 (placeholders only)
            f"ORDER BY id {order} LIMIT ?",
            params,
        )
        entries = [_audit(row) for row in rows]
        return entries if after_id is not None else entries[::-1]

    # -- app states ----------------------------------------------------------------------------

    def get_app_state(self, app: str) -> AppState | None:
        rows = self._fetch("SELECT * FROM app_states WHERE app = ?", (app,))
        return _app_state(rows[0]) if rows else None

    def set_app_state(
        self,
        app: str,
        state: str,
        data: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        *,
        since: float | None = None,
    ) -> AppState:
        """Write the state of ``app`` (``data`` replaces what was stored) and return it with
        its new ``version``.

        With ``expected_version`` the write happens only if the stored version is still that
        one (``0`` for an app not stored yet); otherwise :class:`StateConflictError` is raised
        and nothing changes. ``since`` defaults to now when the state changes and is kept when
        only ``data`` does.
        """
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM app_states WHERE app = ?", (app,)).fetchone()
            current = _app_state(row) if row is not None else None
            current_version = current.version if current is not None else 0
            if expected_version is not None and expected_version != current_version:
                raise StateConflictError(
                    f"app {app!r} state changed concurrently: expected version "
                    f"{expected_version}, found {current_version}",
                    hint="read the state again and retry",
                )
            if since is None:
                if current is not None and current.state == state:
                    since = current.since
                else:
                    since = time.time()
            new = AppState(
                app=app,
                state=state,
                since=since,
                data=dict(data or {}),
                version=current_version + 1,
            )
            conn.execute(
                "INSERT INTO app_states (app, state, since, data, version) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (app) DO UPDATE SET state = excluded.state, since = excluded.since, "
                "data = excluded.data, version = excluded.version",
                (new.app, new.state, new.since, _dumps(new.data), new.version),
            )
        return new

    def list_app_states(self) -> list[AppState]:
        rows = self._fetch("SELECT * FROM app_states ORDER BY app")
        return [_app_state(row) for row in rows]

    # -- host status ---------------------------------------------------------------------------

    def record_host_status(
        self,
        host: str,
        *,
        reachable: bool,
        latency_ms: float | None = None,
        os: str | None = None,
        arch: str | None = None,
        tools: Mapping[str, Any] | None = None,
        free_bytes: int | None = None,
        error: str | None = None,
        checked_at: float | None = None,
    ) -> HostStatus:
        """Record the result of checking ``host`` and return what is now stored.

        A reachable host replaces everything and sets ``last_seen`` to ``checked_at``. An
        unreachable one records ``error`` and keeps ``last_seen`` and what was last learned
        about the host (OS, architecture, tools, free space) unless new values are given.
        """
        checked_at = time.time() if checked_at is None else checked_at
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM host_status WHERE host = ?", (host,)).fetchone()
            previous = _host_status(row) if row is not None else None
            if reachable or previous is None:
                status = HostStatus(
                    host=host,
                    reachable=reachable,
                    checked_at=checked_at,
                    latency_ms=latency_ms,
                    os=os,
                    arch=arch,
                    tools=dict(tools or {}),
                    free_bytes=free_bytes,
                    last_seen=checked_at if reachable else None,
                    last_error=error,
                )
            else:
                status = dataclasses.replace(
                    previous,
                    reachable=False,
                    checked_at=checked_at,
                    latency_ms=latency_ms,
                    os=os if os is not None else previous.os,
                    arch=arch if arch is not None else previous.arch,
                    tools=dict(tools) if tools is not None else previous.tools,
                    free_bytes=free_bytes if free_bytes is not None else previous.free_bytes,
                    last_error=error,
                )
            conn.execute(
                "INSERT OR REPLACE INTO host_status (host, reachable, latency_ms, os, arch, tools, "
                "free_bytes, last_seen, last_error, checked_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    status.host,
                    int(status.reachable),
                    status.latency_ms,
                    status.os,
                    status.arch,
                    _dumps(status.tools),
                    status.free_bytes,
                    status.last_seen,
                    status.last_error,
                    status.checked_at,
                ),
            )
        return status

    def get_host_status(self, host: str) -> HostStatus | None:
        rows = self._fetch("SELECT * FROM host_status WHERE host = ?", (host,))
        return _host_status(rows[0]) if rows else None

    def delete_host_status(self, host: str) -> bool:
        """Forget the last check of ``host`` (it left the config). Returns whether there was one."""
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM host_status WHERE host = ?", (host,))
        return cursor.rowcount > 0

    def list_host_status(self) -> list[HostStatus]:
        rows = self._fetch("SELECT * FROM host_status ORDER BY host")
        return [_host_status(row) for row in rows]
