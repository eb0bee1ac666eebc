"""The job queue of ``impasto serve``: one SQLite database and one folder per job under the data folder.

Every job is a row (state, progress, losses, error, the files it owns) that outlives the processes working on
it: the web server inserts and cancels, worker processes claim and update. SQLite in WAL mode gives each
process its own connection, readers that never wait for a writer, and claims that are atomic (``BEGIN
IMMEDIATE``), so a job is never handed to two workers. A worker's updates name the worker that claimed the
job and change nothing once the job was cancelled or handed back to the queue, so a worker that lost its job
(cancelled, or re-queued after a crash) cannot overwrite it.

States: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``; ``running`` goes back to ``queued``
when its worker stops or dies, and the next worker continues from the job's last saved image.

Files are stored under ``jobs/<id>/`` with names the server chooses (``content.png``, ``style0.jpg``,
``preview.png``, ``result.png``); ids are 32 random hex digits, checked before any path is built from one.

A write that finds the disk full is rolled back whole and raises :class:`DiskFull`; a job is queued with its
client's count of active jobs checked in the same transaction. One server at a time uses a data folder
(:func:`data_lock`), and :meth:`JobStore.check` reads the whole database before a server relies on it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import ImpastoError

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
#: A job id: 128 random bits in hex. Anything else is refused before a path is built.
ID_PATTERN = re.compile(r"[0-9a-f]{32}")
#: Names of the files a job folder may hold (chosen by the server, never by the client).
FILE_PATTERN = re.compile(r"(content|style\d{1,2})\.(png|jpg|webp|tif|bmp|gif|img)|preview\.png|result\.png")
#: Most loss points kept per job (a long run keeps every k-th step).
MAX_LOSS_POINTS = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    finished REAL,
    client TEXT NOT NULL DEFAULT '',
    session TEXT NOT NULL DEFAULT '',
    options TEXT NOT NULL,
    inputs TEXT NOT NULL,
    method TEXT NOT NULL,
    iterative INTEGER NOT NULL DEFAULT 1,
    estimate TEXT NOT NULL DEFAULT '{}',
    step INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    loss REAL,
    losses TEXT NOT NULL DEFAULT '[]',
    eta REAL,
    error TEXT,
    worker TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    resumed_from INTEGER,
    preview_step INTEGER,
    has_result INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created);
CREATE TABLE IF NOT EXISTS workers (name TEXT PRIMARY KEY, pid INTEGER NOT NULL, ready REAL NOT NULL);
"""


class JobNotFound(LookupError):
    """No job with that id (or not a valid id)."""


class DiskFull(OSError):
    """A write to the data folder failed for want of space (the queue's database or a job's file); nothing of
    the write was kept. ``errno`` is ``ENOSPC``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC


class TooManyJobs(Exception):
    """A client already has its limit of queued and running jobs."""


class DataInUse(ImpastoError):
    """Another ``impasto serve`` holds the data folder."""


class DamagedDatabase(ImpastoError):
    """The queue's database cannot be read (overwritten or truncated): one line saying where it is and what to do."""


#: SQLite's result codes of a full disk, and of a file that is not (or no longer) a database.
_SQLITE_FULL, _SQLITE_CORRUPT, _SQLITE_NOTADB = 13, 11, 26


def is_disk_full(err: BaseException) -> bool:
    """True for a write that failed for want of space: :class:`DiskFull`, an ``OSError`` with ``ENOSPC`` or
    ``EDQUOT`` (also :class:`impasto.errors.OutputError`, which keeps its cause's errno), SQLite's ``SQLITE_FULL``."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(err, sqlite3.OperationalError):
        code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
        return (code & 0xFF) == _SQLITE_FULL if code is not None else "database or disk is full" in str(err)
    return False


def _is_damaged(err: sqlite3.DatabaseError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return not isinstance(err, sqlite3.OperationalError) or "malformed" in str(err)


def log(line: str) -> None:
    """One line on the server's standard error (problems the server lives through: no traceback)."""
    print(f"impasto: {line}", file=sys.stderr, flush=True)


_held_locks: dict[Path, list[Any]] = {}  # data folder -> [open lock file, holders in this process]
_held_guard = threading.Lock()


@contextmanager
def data_lock(root: str | Path) -> Iterator[None]:
    """Hold the data folder for one server: ``root/server.lock``, locked while the server runs (also by its
    command line, before the web server starts, and again by the app: nested holds in one process share the lock).
    Raises :class:`DataInUse` when another process holds it."""
    root = Path(root).resolve()
    with _held_guard:
        held = _held_locks.get(root)
        if held is None:
            handle: IO[str] = open(root / "server.lock", "a+")  # noqa: SIM115 - held until the last holder leaves
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                pid = handle.read().strip()[:12]
                handle.close()
                who = f"another impasto serve (pid {pid})" if pid.isdigit() else "another impasto serve"
                message = f"{who} is using --data {root}: stop it first, or give this one another --data"
                raise DataInUse(message) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            held = _held_locks[root] = [handle, 0]
        held[1] += 1
    try:
        yield
    finally:
        with _held_guard:
            held[1] -= 1
            if held[1] == 0:
                del _held_locks[root]
                held[0].close()


def new_id() -> str:
    """A fresh random job id."""
    return secrets.token_hex(16)


def valid_id(job_id: str) -> bool:
    return isinstance(job_id, str) and ID_PATTERN.fullmatch(job_id) is not None


@dataclass
class Job:
    """One row of the queue."""

    id: str
    state: str
    created: float
    updated: float
    started: float | None
    finished: float | None
    client: str
    session: str
    options: dict[str, Any]
    inputs: dict[str, Any]  # {"content": {"file", "name", "width", "height"}, "styles": [...]}
    method: str
    iterative: bool
    estimate: dict[str, Any]
    step: int
    total: int
    loss: float | None
    losses: list[list[float]]
    eta: float | None
    error: str | None
    worker: str | None
    attempts: int
    resumed_from: int | None
    preview_step: int | None
    has_result: bool
    bytes: int
    version: int
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        d = dict(row)
        for key in ("options", "inputs", "estimate", "losses"):
            d[key] = json.loads(d[key])
        d["iterative"] = bool(d["iterative"])
        d["has_result"] = bool(d["has_result"])
        return cls(**d)


class JobStore:
    """The queue under ``root`` (``root/jobs.sqlite3`` and ``root/jobs/<id>/``); safe to use from many threads
    and processes (one SQLite connection per thread)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "jobs.sqlite3"
        self._local = threading.local()
        try:
            self._db().executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            self.close()
            if _is_damaged(err):
                raise self._damaged(str(err)) from None
            raise

    def check(self) -> None:
        """Read the whole database once (SQLite's quick check): raises :class:`DamagedDatabase` when part of it
        was overwritten, before a server relies on it."""
        try:
            rows = self._db().execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as err:
            if _is_damaged(err):
                raise self._damaged(str(err)) from None
            raise
        if [tuple(r) for r in rows] != [("ok",)]:
            raise self._damaged(str(rows[0][0]).splitlines()[0])

    def _damaged(self, reason: str) -> DamagedDatabase:
        path = self.db_path
        return DamagedDatabase(
            f"the job database {path} is damaged ({reason}); the images of its jobs are kept in {self.jobs_dir}. "
            f"To start afresh with an empty queue, move {path.name} and any {path.name}-wal and {path.name}-shm "
            f"beside it out of {self.root}, then start impasto serve again"
        )

    # -- connection ------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash; WAL keeps it consistent
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the database's write lock at once (no upgrade deadlock). It is committed
        whole or rolled back, also when the commit fails, so the connection is never left inside a transaction;
        a full disk raises :class:`DiskFull`."""
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException as err:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if is_disk_full(err) and not isinstance(err, DiskFull):
                raise DiskFull(f"the disk of the data folder {self.root} is full ({err})") from err
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- paths -----------------------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        """The folder of a job; raises :class:`JobNotFound` for anything that is not a job id."""
        if not valid_id(job_id):
            raise JobNotFound(job_id)
        return self.jobs_dir / job_id

    def file(self, job_id: str, name: str) -> Path:
        """A file of a job, by one of the names the server gives files (checked again here)."""
        if FILE_PATTERN.fullmatch(name) is None:
            raise JobNotFound(f"{job_id}/{name}")
        return self.folder(job_id) / name

    # -- the server's side -----------------------------------------------------------------------------
    def create(
        self,
        job_id: str,
        *,
        options: dict[str, Any],
        inputs: dict[str, Any],
        method: str,
        iterative: bool,
        total: int,
        estimate: dict[str, Any],
        client: str = "",
        session: str = "",
        max_active: int | None = None,
    ) -> Job:
        """Queue a job whose input files are already in its folder. With ``max_active``, raises
        :class:`TooManyJobs` when the client has that many queued or running jobs: counted and inserted in one
        transaction, so concurrent requests cannot pass the limit together."""
        now = time.time()
        size = folder_bytes(self.folder(job_id))
        with self._write() as db:
            if max_active is not None and self._active(db, client) >= max_active:
                raise TooManyJobs(client)
            db.execute(
                "INSERT INTO jobs (id, state, created, updated, client, session, options, inputs, method, iterative,"
                " estimate, total, bytes) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, now, now, client, session, json.dumps(options), json.dumps(inputs), method, int(iterative),
                 json.dumps(estimate), total, size),
            )  # fmt: skip
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        if not valid_id(job_id):
            raise JobNotFound(job_id)
        row = self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return Job.from_row(row)

    def version(self, job_id: str) -> tuple[int, str] | None:
        """(version, state) of a job: a cheap check for changes."""
        row = self._db().execute("SELECT version, state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def list(self, session: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs, newest first; only one session's with ``session``."""
        if session is None:
            rows = self._db().execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,))
        else:
            rows = self._db().execute(
                "SELECT * FROM jobs WHERE session = ? ORDER BY created DESC LIMIT ?", (session, limit)
            )
        return [Job.from_row(r) for r in rows.fetchall()]

    def active_count(self, client: str) -> int:
        """Jobs of a client that are queued or running."""
        return self._active(self._db(), client)

    @staticmethod
    def _active(db: sqlite3.Connection, client: str) -> int:
        sql = "SELECT COUNT(*) FROM jobs WHERE client = ? AND state IN ('queued', 'running')"
        return int(db.execute(sql, (client,)).fetchone()[0])

    def position(self, job: Job) -> int:
        """How many queued jobs are ahead of a queued job."""
        row = (
            self._db()
            .execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND created < ?", (job.created,))
            .fetchone()
        )
        return int(row[0])

    def counts(self) -> dict[str, int]:
        rows = self._db().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {state: 0 for state in STATES} | {r[0]: int(r[1]) for r in rows}

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (a running job's worker sees it at its next step)."""
        job = self.get(job_id)
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET state = 'cancelled', finished = ?, updated = ?, eta = NULL, version = version + 1 "
                "WHERE id = ? AND state IN ('queued', 'running')",
                (time.time(), time.time(), job.id),
            )
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        """Remove a job that is not running, with its files."""
        folder = self.folder(job_id)
        with self._write() as db:
            cur = db.execute("DELETE FROM jobs WHERE id = ? AND state != 'running'", (job_id,))
            if cur.rowcount == 0:
                raise JobNotFound(job_id)
        shutil.rmtree(folder, ignore_errors=True)

    def requeue_running(self, worker: str | None = None) -> int:
        """Put running jobs back in the queue: those of one ``worker`` (it died), or all (at start-up, when no
        worker of an earlier server can still be alive). They continue from their last saved image."""
        where, args = ("state = 'running' AND worker = ?", (worker,)) if worker else ("state = 'running'", ())
        with self._write() as db:
            cur = db.execute(
                f"UPDATE jobs SET state = 'queued', worker = NULL, eta = NULL, updated = ?, version = version + 1 "
                f"WHERE {where}",
                (time.time(), *args),
            )
            return cur.rowcount

    def expire(self, max_age_s: float, max_bytes: int, now: float | None = None) -> list[str]:
        """Delete finished jobs older than ``max_age_s``, then the oldest finished ones while all jobs together
        hold more than ``max_bytes``; queued and running jobs are never removed. Returns the ids removed."""
        now = time.time() if now is None else now
        rows = (
            self._db()
            .execute("SELECT id, state, COALESCE(finished, updated) AS t, bytes FROM jobs ORDER BY t")
            .fetchall()
        )
        total = sum(int(r["bytes"]) for r in rows)
        gone = []
        for r in rows:
            if r["state"] not in FINISHED:
                continue
            if now - r["t"] > max_age_s or total > max_bytes:
                try:
                    self.delete(r["id"])
                except JobNotFound:
                    continue
                total -= int(r["bytes"])
                gone.append(r["id"])
        return gone

    def worker_ready(self, name: str, pid: int) -> None:
        """A worker has loaded its networks and takes jobs."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO workers (name, pid, ready) VALUES (?, ?, ?)", (name, pid, time.time()))

    def ready_workers(self, names: list[str]) -> int:
        """How many of these workers said they were ready."""
        rows = self._db().execute("SELECT name FROM workers").fetchall()
        return len({r[0] for r in rows} & set(names))

    def forget_worker(self, name: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM workers WHERE name = ?", (name,))

    def total_bytes(self) -> int:
        return int(self._db().execute("SELECT COALESCE(SUM(bytes), 0) FROM jobs").fetchone()[0])

    # -- the worker's side -----------------------------------------------------------------------------
    def claim(self, worker: str) -> Job | None:
        """The oldest queued job, now running on ``worker``; None when the queue is empty."""
        with self._write() as db:
            row = db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created LIMIT 1").fetchone()
            if row is None:
                return None
            now = time.time()
            db.execute(
                "UPDATE jobs SET state = 'running', worker = ?, attempts = attempts + 1, "
                "started = COALESCE(started, ?), updated = ?, version = version + 1 WHERE id = ?",
                (worker, now, now, row[0]),
            )
        return self.get(row[0])

    def _update(self, job_id: str, worker: str, sets: str, args: tuple) -> bool:
        """Apply ``sets`` if ``worker`` still holds the running job; False when it lost it (cancelled, re-queued)."""
        with self._write() as db:
            cur = db.execute(
                f"UPDATE jobs SET {sets}, updated = ?, version = version + 1 "
                "WHERE id = ? AND worker = ? AND state = 'running'",
                (*args, time.time(), job_id, worker),
            )
            return cur.rowcount == 1

    def start(self, job_id: str, worker: str, total: int, step: int, eta: float | None) -> bool:
        """A worker begins (or resumes, from ``step``) a job of ``total`` steps."""
        resumed = step if step > 0 else None
        return self._update(job_id, worker, "total = ?, step = ?, eta = ?, resumed_from = COALESCE(?, resumed_from)",
                            (total, step, eta, resumed))  # fmt: skip

    def progress(self, job_id: str, worker: str, step: int, total: int, loss: float, eta: float | None) -> bool:
        """One step done: its loss joins the curve (every k-th step of a long run, and the last)."""
        stride = max(1, -(-total // MAX_LOSS_POINTS))
        keep = step % stride == 0 or step == total
        sets = "step = ?, total = ?, loss = ?, eta = ?"
        if keep:
            sets += ", losses = json_insert(losses, '$[#]', json_array(?, ?))"
            return self._update(job_id, worker, sets, (step, total, loss, eta, step, loss))
        return self._update(job_id, worker, sets, (step, total, loss, eta))

    def preview_saved(self, job_id: str, worker: str, step: int) -> bool:
        return self._update(job_id, worker, "preview_step = ?", (step,))

    def finish(self, job_id: str, worker: str, state: str, error: str | None = None, result: bool = False) -> bool:
        """The end of a job: ``done`` (with a result) or ``failed`` (an error, maybe a last good image)."""
        if state not in ("done", "failed"):
            raise ValueError(state)
        size = folder_bytes(self.folder(job_id))
        sets = "state = ?, error = ?, has_result = ?, finished = ?, eta = NULL, bytes = ?"
        with self._write() as db:
            cur = db.execute(
                f"UPDATE jobs SET {sets}, worker = NULL, updated = ?, version = version + 1 "
                "WHERE id = ? AND worker = ? AND state = 'running'",
                (state, error, int(result), time.time(), size, time.time(), job_id, worker),
            )
            return cur.rowcount == 1

    def release(self, job_id: str, worker: str) -> bool:
        """Hand a running job back to the queue (the worker is stopping); it continues from its last image."""
        return self._update(job_id, worker, "state = 'queued', worker = NULL, eta = NULL", ())


def folder_bytes(folder: Path) -> int:
    """Bytes of the files in a job folder."""
    try:
        return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    except OSError:
        return 0
