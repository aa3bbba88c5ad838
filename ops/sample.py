"""Sample Step Challenge databases and a stand-in for the live app's writes.

Backup, verify and restore can only be trusted if they are exercised against something that
looks like production: a WAL-mode SQLite file of realistic size and shape, with a separate
process committing to it the whole time (the Node.js app never stops writing). This module
builds such a database deterministically and runs such a writer (``WriterProcess``: the one
launcher of the demo, the tests and the benchmarks).

Stdlib only, like the engine, so it can also be shipped to a machine that has just `python3`.

    python -m ops.sample build PATH [--mb N] [--seed S]
    python -m ops.sample write PATH [--interval S] [--duration S] [--stop-file F]
                                    [--report F] [--ready-file F]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

MIB = 1024 * 1024
PAGE_SIZE = 4096
FIRST_DAY = dt.date(2024, 1, 1)
# Used only to choose how many users a target size needs: each day adds about one row per
# active user, and a sample should span roughly a year of history.
EST_BYTES_PER_STEP_ROW = 105
EST_PARTICIPATION = 0.8
HISTORY_DAYS = 365

SCHEMA = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE teams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE team_members (
    team_id INTEGER NOT NULL REFERENCES teams(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    role TEXT NOT NULL DEFAULT 'member',
    joined_at TEXT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE TABLE challenges (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    starts_on TEXT NOT NULL,
    ends_on TEXT NOT NULL,
    is_active INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE steps (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    challenge_id INTEGER REFERENCES challenges(id),
    date TEXT NOT NULL,
    count INTEGER NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    note TEXT,
    UNIQUE (user_id, date)
);
CREATE TABLE sessions (
    token TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    expires_at TEXT NOT NULL
);
CREATE INDEX idx_steps_date ON steps(date);
CREATE INDEX idx_steps_user ON steps(user_id);
CREATE INDEX idx_team_members_user ON team_members(user_id);
CREATE INDEX idx_sessions_user ON sessions(user_id);
"""

# fmt: off
FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Femi", "Grace", "Hiro", "Ines", "Jon", "Kara", "Luis",
    "Maya", "Nico", "Olu", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor", "Wen", "Yara",
)
LAST_NAMES = (
    "Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jones",
    "Khan", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Walsh",
)
TEAM_WORDS = (
    "Striders", "Walkers", "Trekkers", "Pacers", "Hikers", "Roamers", "Wanderers", "Sprinters",
)
# fmt: on
TEAM_ADJECTIVES = ("Red", "Blue", "Green", "Golden", "Swift", "Mighty", "Happy", "Night")
DEVICE_SOURCES = ("apple_health", "google_fit", "fitbit", "garmin")
NOTES = (
    "Lunch walk with the team",
    "Hiked the ridge trail",
    "Treadmill, rainy day",
    "Forgot my phone for the morning walk",
    "Walked the dog twice",
    "Park run",
)
TIMES_OF_DAY = tuple(f"{m // 60:02d}:{m % 60:02d}:00" for m in range(18 * 60, 24 * 60))
# 1,024 evenly spaced standard-normal quantiles: a cheap, deterministic stand-in for gauss().
NORMAL_DEVIATES = tuple(NormalDist().inv_cdf((i + 0.5) / 1024) for i in range(1024))


@dataclass(frozen=True)
class _Walker:
    """One user's habits, fixed at build time so their daily rows look like one person's."""

    user_id: int
    first_day: int
    participation: float
    mean_steps: int
    spread: int
    source: str


# ---------------------------------------------------------------------------------------------
# Building a sample database
# ---------------------------------------------------------------------------------------------


def build_sample_database(
    path: str | os.PathLike[str],
    *,
    target_mb: float = 30,
    seed: int = 1234,
    progress: Callable[[int, int], object] | None = None,
) -> dict:
    """Create a realistic, deterministic Step Challenge database of about `target_mb` MiB.

    The file is built under a temporary name next to `path` and only appears under `path` once
    it is complete (WAL mode, checkpointed, closed), so an interrupted build never leaves
    something that looks like a sample. Existing files, including a stale `-wal`, are refused:
    SQLite would replay a leftover `-wal` onto the new file.
    """
    started = time.monotonic()
    final = Path(path)
    _refuse_existing(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    target_bytes = max(int(target_mb * MIB), PAGE_SIZE)
    building = final.with_name(f"{final.name}.building-{os.getpid()}")
    try:
        counts = _build_into(building, target_bytes, seed, progress)
        _publish(building, final)
    finally:
        for leftover in _with_sidecars(building):
            leftover.unlink(missing_ok=True)
    return {
        "path": str(final),
        "bytes": final.stat().st_size,
        **counts,
        "seconds": round(time.monotonic() - started, 3),
    }


def _refuse_existing(path: Path) -> None:
    """Never overwrite a database, nor create one next to a leftover `-wal`/`-shm`."""
    for candidate in _with_sidecars(path):
        if candidate.exists():
            raise FileExistsError(f"refusing to overwrite existing file: {candidate}")


def _with_sidecars(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _publish(built: Path, final: Path) -> None:
    """Give the finished file its real name without ever replacing something already there."""
    try:
        os.link(built, final)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this filesystem
        _refuse_existing(final)
        os.replace(built, final)
    else:
        built.unlink()


def _build_into(
    path: Path, target_bytes: int, seed: int, progress: Callable[[int, int], object] | None
) -> dict:
    """Fill a fresh file: people first, then day after day of steps until it is big enough."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _prepare_for_bulk_load(conn, target_bytes)
        walkers = _insert_people(conn, rng, _users_for(target_bytes))
        days = _grow_steps(conn, rng, walkers, target_bytes, progress)
        _finish_as_wal(conn)
        counts = {name: _count(conn, name) for name in ("users", "teams", "steps")}
    finally:
        conn.close()
    counts["days"] = days
    return counts


def _users_for(target_bytes: int) -> int:
    """Enough users that about a year of daily rows reaches the target size."""
    per_user = EST_BYTES_PER_STEP_ROW * HISTORY_DAYS * EST_PARTICIPATION
    return max(20, round(target_bytes / per_user))


def _prepare_for_bulk_load(conn: sqlite3.Connection, target_bytes: int) -> None:
    """No journal and no fsync while loading: a failed build is thrown away, never repaired."""
    cache_kib = min(256 * 1024, max(16 * 1024, target_bytes // 1024))
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute(f"PRAGMA cache_size = -{cache_kib}")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.executescript(SCHEMA)


def _finish_as_wal(conn: sqlite3.Connection) -> None:
    """Leave the file as the app has it: WAL mode, everything in the main file, no `-wal`."""
    conn.execute("PRAGMA synchronous = FULL")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise RuntimeError(f"could not switch the sample database to WAL mode (got {mode!r})")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _insert_people(conn: sqlite3.Connection, rng: random.Random, n_users: int) -> list[_Walker]:
    """Users, teams, memberships and sessions; returns each user's walking habits."""
    users = [_user_row(rng, user_id) for user_id in range(1, n_users + 1)]
    teams = [_team_row(rng, team_id) for team_id in range(1, max(2, n_users // 8) + 1)]
    members = _team_member_rows(rng, users, len(teams))
    sessions = [_session_row(rng, user) for user in users if rng.random() < 0.6]
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?)", users)
    conn.executemany("INSERT INTO teams VALUES (?, ?, ?)", teams)
    conn.executemany("INSERT INTO team_members VALUES (?, ?, ?, ?)", members)
    conn.executemany("INSERT INTO sessions VALUES (?, ?, ?)", sessions)
    conn.execute("COMMIT")
    return [_walker(rng, user_id) for user_id in range(1, n_users + 1)]


def _user_row(rng: random.Random, user_id: int) -> tuple:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{first}.{last}{user_id}@example.com".lower()
    return (user_id, email, f"{first} {last}", _timestamp_before(rng, FIRST_DAY), int(user_id <= 3))


def _team_row(rng: random.Random, team_id: int) -> tuple:
    name = f"{rng.choice(TEAM_ADJECTIVES)} {rng.choice(TEAM_WORDS)} {team_id}"
    return (team_id, name, _timestamp_before(rng, FIRST_DAY))


def _team_member_rows(rng: random.Random, users: list[tuple], n_teams: int) -> list[tuple]:
    """Most users are in one team; the first to join a team is its captain."""
    rows, captained = [], set()
    for user_id, _email, _name, created_at, _admin in users:
        if rng.random() < 0.85:
            team_id = rng.randint(1, n_teams)
            role = "member" if team_id in captained else "captain"
            captained.add(team_id)
            rows.append((team_id, user_id, role, created_at))
    return rows


def _session_row(rng: random.Random, user: tuple) -> tuple:
    expires = FIRST_DAY + dt.timedelta(days=rng.randint(300, 500))
    return (f"{rng.getrandbits(128):032x}", user[0], f"{expires} {rng.choice(TIMES_OF_DAY)}")


def _timestamp_before(rng: random.Random, day: dt.date) -> str:
    earlier = day - dt.timedelta(days=rng.randint(1, 365))
    return f"{earlier} {rng.choice(TIMES_OF_DAY)}"


def _walker(rng: random.Random, user_id: int) -> _Walker:
    """Some users join late, some log most days, each has their own usual step count."""
    joins_late = rng.random() < 0.3
    mean = rng.randint(4000, 12000)
    return _Walker(
        user_id=user_id,
        first_day=rng.randint(1, 200) if joins_late else 0,
        participation=rng.uniform(0.6, 0.99),
        mean_steps=mean,
        spread=mean // 3,
        source=rng.choice(DEVICE_SOURCES),
    )


def _grow_steps(
    conn: sqlite3.Connection,
    rng: random.Random,
    walkers: list[_Walker],
    target_bytes: int,
    progress: Callable[[int, int], object] | None,
) -> int:
    """Add days of steps, oldest first as the app would, until the file reaches the target.

    One transaction per month (per-day commits rewrite every index page daily and cost about a
    fifth more time); the size is still checked after every day.
    """
    insert = "INSERT INTO steps VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)"
    day_index, challenge_id = 0, 0
    while True:
        day = FIRST_DAY + dt.timedelta(days=day_index)
        if day_index == 0 or day.day == 1:
            if conn.in_transaction:
                conn.execute("COMMIT")
            conn.execute("BEGIN")
            challenge_id = _open_challenge(conn, day)
        conn.executemany(insert, _day_rows(rng, walkers, day_index, day, challenge_id))
        day_index += 1
        done = _database_bytes(conn)
        if progress is not None:
            progress(min(done, target_bytes), target_bytes)
        if done >= target_bytes:
            conn.execute("COMMIT")
            return day_index


def _open_challenge(conn: sqlite3.Connection, day: dt.date) -> int:
    """One challenge per calendar month; only the newest is active."""
    next_month = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    conn.execute("UPDATE challenges SET is_active = 0")
    cursor = conn.execute(
        "INSERT INTO challenges (name, starts_on, ends_on, is_active) VALUES (?, ?, ?, 1)",
        (f"{day:%B %Y} Step Challenge", str(day), str(next_month - dt.timedelta(days=1))),
    )
    return cursor.lastrowid


def _day_rows(
    rng: random.Random, walkers: list[_Walker], day_index: int, day: dt.date, challenge_id: int
) -> list[tuple]:
    """One day's synced step counts: weekends are quieter, a few rows carry a note.

    Row generation dominates the build time, so each row's choices come from one 32-bit draw.
    """
    date = str(day)
    weekend = 0.8 if day.weekday() >= 5 else 1.0
    updated = [f"{date} {time_of_day}" for time_of_day in TIMES_OF_DAY]
    rows = []
    for w in walkers:
        if day_index < w.first_day or rng.random() > w.participation:
            continue
        dice = rng.getrandbits(32)
        count = max(0, int((w.mean_steps + w.spread * NORMAL_DEVIATES[dice & 1023]) * weekend))
        updated_at = updated[(dice >> 10 & 511) % len(updated)]
        source = "manual" if dice >> 19 & 31 < 2 else w.source  # about 6 % typed in by hand
        note = NOTES[(dice >> 24 & 7) % len(NOTES)] if dice >> 27 == 0 else None  # about 3 %
        rows.append((w.user_id, challenge_id, date, count, source, updated_at, note))
    return rows


def _database_bytes(conn: sqlite3.Connection) -> int:
    """Size of the database as SQLite sees it (equal to the main file once checkpointed)."""
    return conn.execute("PRAGMA page_count").fetchone()[0] * PAGE_SIZE


def _count(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# ---------------------------------------------------------------------------------------------
# Simulating the live app's writes
# ---------------------------------------------------------------------------------------------


class _StopSignal:
    """Turns SIGTERM/SIGINT into a flag while installed, so the writer can finish its report."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: object) -> None:
        self.received = signum


@dataclass
class _Tally:
    """What the writer has committed so far, and how long each commit took."""

    latencies: list[float] = field(default_factory=list)
    max_id: int = 0
    errors: int = 0
    last_error: str | None = None

    def committed(self, row_id: int, seconds: float) -> None:
        self.latencies.append(seconds)
        self.max_id = max(self.max_id, row_id)

    def failed(self, exc: sqlite3.Error) -> None:
        self.errors += 1
        self.last_error = str(exc)

    def report(self, stop_reason: str, seconds: float) -> dict:
        """Latency percentiles in milliseconds (nearest rank), and throughput."""
        ordered = sorted(self.latencies)

        def percentile(p: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)] * 1000, 3)

        return {
            "commits": len(ordered),
            "max_id": self.max_id,
            "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99),
            "max_ms": percentile(1.0),
            "commits_per_s": round(len(ordered) / seconds, 2) if seconds > 0 else 0.0,
            "errors": self.errors,
            "last_error": self.last_error,
            "stop_reason": stop_reason,
            "seconds": round(seconds, 3),
        }


def run_writer(
    path: str | os.PathLike[str],
    *,
    interval: float = 0.01,
    duration: float | None = None,
    stop_file: str | os.PathLike[str] | None = None,
    report_path: str | os.PathLike[str] | None = None,
    ready_file: str | os.PathLike[str] | None = None,
    payload_bytes: int = 256,
) -> dict:
    """Commit small transactions like the app does, and measure how long each commit takes.

    Each commit inserts one `writer_log` row and bumps one `steps` row. Runs until `duration`
    seconds pass, `stop_file` appears, or SIGTERM/SIGINT arrives (handled only when called from
    the main thread). `ready_file` is created after the first successful commit. Failed
    transactions are counted, not fatal: a backup or restore under test may hold the lock.
    Returns the report, also written atomically as JSON to `report_path`.
    """
    conn = _open_writer_connection(path)
    tally = _Tally()
    payload = b"\x5a" * payload_bytes
    started = time.monotonic()
    try:
        steps_ids = _steps_id_range(conn)
        with _StopSignal() as stop:
            while not (reason := _stop_reason(started, duration, stop_file, stop)):
                began = time.perf_counter()
                try:
                    row_id = _commit_once(
                        conn, payload, _pick_step(steps_ids, len(tally.latencies))
                    )
                except sqlite3.Error as exc:
                    tally.failed(exc)
                else:
                    tally.committed(row_id, time.perf_counter() - began)
                    if ready_file is not None and len(tally.latencies) == 1:
                        _write_atomically(ready_file, f"{os.getpid()}\n")
                _sleep_unless_stopped(interval, stop)
    finally:
        conn.close()
    report = tally.report(reason, time.monotonic() - started)
    if report_path is not None:
        _write_atomically(report_path, json.dumps(report, indent=2) + "\n")
    return report


def _open_writer_connection(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Its own connection, as a separate app process would have; transactions are explicit."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no database at {path}")
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS writer_log "
        "(id INTEGER PRIMARY KEY, written_at TEXT NOT NULL, payload BLOB)"
    )
    return conn


def _steps_id_range(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """Which steps rows exist to update (None when the database has no steps)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'steps'"
    ).fetchone()
    if not exists:
        return None
    low, high = conn.execute("SELECT min(id), max(id) FROM steps").fetchone()
    return None if low is None else (low, high)


def _pick_step(steps_ids: tuple[int, int] | None, n: int) -> int | None:
    """Walk through the steps rows in order, one per commit, wrapping around."""
    if steps_ids is None:
        return None
    low, high = steps_ids
    return low + n % (high - low + 1)


def _stop_reason(
    started: float,
    duration: float | None,
    stop_file: str | os.PathLike[str] | None,
    stop: _StopSignal,
) -> str | None:
    if stop.received is not None:
        return "signal"
    if stop_file is not None and os.path.exists(stop_file):
        return "stop_file"
    if duration is not None and time.monotonic() - started >= duration:
        return "duration"
    return None


def _commit_once(conn: sqlite3.Connection, payload: bytes, step_id: int | None) -> int:
    """One app-sized write transaction (taking the write lock up front); returns the log id."""
    now = dt.datetime.now(dt.UTC)
    try:
        conn.execute("BEGIN IMMEDIATE")
        row_id = conn.execute(
            "INSERT INTO writer_log (written_at, payload) VALUES (?, ?)",
            (now.isoformat(timespec="milliseconds"), payload),
        ).lastrowid
        if step_id is not None:
            conn.execute(
                "UPDATE steps SET count = count + 1, updated_at = ? WHERE id = ?",
                (f"{now:%Y-%m-%d %H:%M:%S}", step_id),
            )
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return row_id


def _sleep_unless_stopped(interval: float, stop: _StopSignal) -> None:
    """Sleep in short slices so a signal ends even a slow writer promptly."""
    deadline = time.monotonic() + interval
    while stop.received is None:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def _write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Readers polling for the file see nothing or all of it, never a half-written file."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)


class WriterFailed(RuntimeError):
    """The stand-in app did not start committing, or left no report."""


class WriterProcess:
    """``python -m ops.sample write`` in a process of its own, as the app would be: the one
    way the demo, the tests and the benchmarks start the stand-in app.

    ``start()`` returns once it has committed (its ready file); ``stop()`` asks it to end
    through its stop file (a kill only if it does not end within ``stop_timeout``) and
    returns its report. ``workdir`` holds the stop, ready and report files.
    """

    def __init__(self, db: str | os.PathLike[str], workdir: str | os.PathLike[str], *,
                 interval: float = 0.005, duration: float | None = None,
                 python: str = sys.executable, env: dict | None = None,
                 output: int | None = subprocess.DEVNULL):
        self.db = Path(db).resolve()
        self.workdir = Path(workdir).resolve()
        self.interval, self.duration = interval, duration
        self.python, self.env, self.output = python, env, output
        self.proc: subprocess.Popen | None = None
        self.report: dict = {}

    @property
    def stop_file(self) -> Path:
        return self.workdir / "writer.stop"

    @property
    def ready_file(self) -> Path:
        return self.workdir / "writer.ready"

    @property
    def report_file(self) -> Path:
        return self.workdir / "writer.json"

    def argv(self) -> list[str]:
        return [self.python, "-m", "ops.sample", "write", str(self.db),
                "--interval", str(self.interval),
                *(["--duration", str(self.duration)] if self.duration is not None else []),
                "--stop-file", str(self.stop_file), "--report", str(self.report_file),
                "--ready-file", str(self.ready_file)]

    def start(self, timeout: float = 10.0) -> WriterProcess:
        from ops import poll  # stdlib only, like this module

        self.workdir.mkdir(parents=True, exist_ok=True)
        for path in (self.stop_file, self.ready_file, self.report_file):
            path.unlink(missing_ok=True)
        self.proc = subprocess.Popen(self.argv(), cwd=Path(__file__).resolve().parents[1],
                                     env=self.env, stdout=self.output, stderr=self.output,
                                     text=True)

        def ready() -> bool | None:
            if self.ready_file.exists():
                return True
            if self.proc.poll() is not None:
                raise self._failed(f"the writer ended (exit {self.proc.returncode})")
            return None

        def expired(_polls: int, waited: float) -> WriterFailed:
            self.proc.kill()
            return self._failed(f"the writer made no commit within {waited:.1f}s")

        poll.until(ready, timeout=timeout, interval=0.01, expired=expired)
        return self

    def _failed(self, why: str) -> WriterFailed:
        out, err = self.proc.communicate()  # reaped; its words when they were kept
        said = f": {(out or '').strip()} {(err or '').strip()}".rstrip(": ")
        self.proc = None
        return WriterFailed(f"{why} writing to {self.db}{said}")

    def stop(self, stop_timeout: float = 15.0, *, ask: bool = True) -> dict:
        """End it (``ask=False``: let it end by itself, at its ``duration``), and its
        report (also kept as ``report``)."""
        if self.proc is None:
            return self.report
        if ask:
            self.stop_file.touch()
        try:
            out, err = self.proc.communicate(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        self.proc = None
        for path in (self.stop_file, self.ready_file):  # the next start begins clean
            path.unlink(missing_ok=True)
        try:
            self.report = json.loads(self.report_file.read_text())
        except (OSError, ValueError):
            raise WriterFailed(f"the writer left no report: {out or ''} {err or ''}".strip()) \
                from None
        return self.report

    def __enter__(self) -> WriterProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ops.sample", description="Sample databases and a stand-in app writer."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="create a sample database (refuses to overwrite)")
    build.add_argument("path")
    build.add_argument("--mb", type=float, default=30, help="target size in MiB (default 30)")
    build.add_argument("--seed", type=int, default=1234)
    write = commands.add_parser("write", help="commit like the live app until told to stop")
    write.add_argument("path")
    write.add_argument("--interval", type=float, default=0.01, help="seconds between commits")
    write.add_argument("--duration", type=float, help="stop after this many seconds")
    write.add_argument("--stop-file", help="stop once this file exists")
    write.add_argument("--report", help="write the JSON report here (atomically) at the end")
    write.add_argument("--ready-file", help="created once the first commit has succeeded")
    write.add_argument("--payload-bytes", type=int, default=256)
    return parser.parse_args(argv)


def _print_build_progress() -> Callable[[int, int], None]:
    """A progress callback that prints a line to stderr at every further tenth of the target."""
    printed = [0]

    def show(done: int, target: int) -> None:
        tenth = done * 10 // target
        if tenth > printed[0]:
            printed[0] = tenth
            print(f"  {done / MIB:7.1f} / {target / MIB:.1f} MiB", file=sys.stderr, flush=True)

    return show


def main(argv: list[str] | None = None) -> int:
    """Print a JSON result on stdout; exit 0 on success, 1 when the writer never committed."""
    args = _parse_args(argv)
    if args.command == "build":
        stats = build_sample_database(
            args.path, target_mb=args.mb, seed=args.seed, progress=_print_build_progress()
        )
        print(json.dumps(stats))
        return 0
    report = run_writer(
        args.path,
        interval=args.interval,
        duration=args.duration,
        stop_file=args.stop_file,
        report_path=args.report,
        ready_file=args.ready_file,
        payload_bytes=args.payload_bytes,
    )
    print(json.dumps(report))
    return 0 if report["commits"] else 1


if __name__ == "__main__":
    sys.exit(main())
