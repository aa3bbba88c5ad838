"""The sample database and the stand-in writer that the backup tests and benchmarks rely on."""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.sample import MIB, build_sample_database, run_writer

REPO_ROOT = Path(__file__).resolve().parents[1]
TABLES = ("users", "teams", "team_members", "challenges", "steps", "sessions")


def _query(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _scalar(path: Path, sql: str):
    return _query(path, sql)[0][0]


def _steps_hash(path: Path) -> str:
    rows = _query(path, "SELECT * FROM steps ORDER BY id")
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _wait_for(condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict, list[tuple[int, int]]]:
    path = tmp_path_factory.mktemp("sample") / "nested" / "steps.db"
    calls: list[tuple[int, int]] = []
    stats = build_sample_database(
        path, target_mb=3, seed=7, progress=lambda done, target: calls.append((done, target))
    )
    return path, stats, calls


# --- build --------------------------------------------------------------------------------------


def test_build_creates_a_complete_wal_database_in_new_folders(built):
    path, stats, _ = built
    assert path.is_file()
    assert stats["path"] == str(path)
    assert _scalar(path, "PRAGMA journal_mode") == "wal"
    assert _scalar(path, "PRAGMA page_size") == 4096
    assert _scalar(path, "PRAGMA integrity_check") == "ok"
    assert _query(path, "PRAGMA foreign_key_check") == []


def test_build_leaves_no_temporary_or_sidecar_files(built):
    path, _, _ = built
    assert sorted(p.name for p in path.parent.iterdir()) == ["steps.db"]


def test_build_fills_every_table_and_reports_the_counts(built):
    path, stats, _ = built
    counts = {table: _scalar(path, f"SELECT count(*) FROM {table}") for table in TABLES}
    assert all(n > 0 for n in counts.values()), counts
    assert {k: stats[k] for k in ("users", "teams", "steps")} == {
        k: counts[k] for k in ("users", "teams", "steps")
    }
    assert counts["steps"] > 10 * counts["users"]
    assert _scalar(path, "SELECT count(*) FROM challenges WHERE is_active = 1") == 1


def test_build_has_the_app_schema_and_indexes(built):
    path, _, _ = built
    names = {row[0] for row in _query(path, "SELECT name FROM sqlite_schema")}
    assert {*TABLES, "idx_steps_date", "idx_steps_user"} <= names
    conn = sqlite3.connect(path)
    try:
        user_id, date = conn.execute("SELECT user_id, date FROM steps LIMIT 1").fetchone()
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            conn.execute(
                "INSERT INTO steps (user_id, date, count, source, updated_at) "
                "VALUES (?, ?, 1, 'manual', '2024-01-01 00:00:00')",
                (user_id, date),
            )
    finally:
        conn.rollback()
        conn.close()


def test_build_size_is_close_to_the_target(built):
    path, stats, _ = built
    size = path.stat().st_size
    assert stats["bytes"] == size
    assert 3 * MIB <= size <= 3.3 * MIB


def test_build_reports_progress_up_to_the_target(built):
    _, _, calls = built
    assert len(calls) > 10
    assert all(target == 3 * MIB for _, target in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert done[-1] == 3 * MIB


def test_build_is_deterministic_for_a_seed(tmp_path):
    first = build_sample_database(tmp_path / "a.db", target_mb=0.5, seed=42)
    second = build_sample_database(tmp_path / "b.db", target_mb=0.5, seed=42)
    build_sample_database(tmp_path / "c.db", target_mb=0.5, seed=43)
    for key in ("users", "teams", "steps", "bytes"):
        assert first[key] == second[key]
    assert _steps_hash(tmp_path / "a.db") == _steps_hash(tmp_path / "b.db")
    assert _steps_hash(tmp_path / "a.db") != _steps_hash(tmp_path / "c.db")


def test_build_refuses_to_overwrite_an_existing_file(tmp_path):
    path = tmp_path / "steps.db"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        build_sample_database(path, target_mb=0.2)
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["steps.db"]


def test_build_refuses_a_leftover_wal_that_sqlite_would_replay(tmp_path):
    (tmp_path / "steps.db-wal").write_bytes(b"stale")
    with pytest.raises(FileExistsError):
        build_sample_database(tmp_path / "steps.db", target_mb=0.2)
    assert not (tmp_path / "steps.db").exists()


def test_build_cli_prints_the_stats_as_json(tmp_path):
    path = tmp_path / "cli.db"
    result = subprocess.run(
        [sys.executable, "-m", "ops.sample", "build", str(path), "--mb", "0.3", "--seed", "5"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    stats = json.loads(result.stdout)
    assert stats["path"] == str(path)
    assert stats["steps"] == _scalar(path, "SELECT count(*) FROM steps")


# --- writer -------------------------------------------------------------------------------------


@pytest.fixture
def small_db(tmp_path) -> Path:
    path = tmp_path / "live.db"
    build_sample_database(path, target_mb=0.3, seed=1)
    return path


def _start_writer(small_db: Path, tmp_path: Path) -> tuple[subprocess.Popen, dict[str, Path]]:
    files = {name: tmp_path / name for name in ("stop", "report.json", "ready")}
    argv = [
        sys.executable, "-m", "ops.sample", "write", str(small_db), "--interval", "0.005",
        "--stop-file", str(files["stop"]), "--report", str(files["report.json"]),
        "--ready-file", str(files["ready"]), "--duration", "30",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(files["ready"].exists, what="the writer's ready file")
    except AssertionError:
        proc.kill()
        raise
    return proc, files


def _writer_rows(path: Path) -> int:
    return _scalar(path, "SELECT count(*) FROM writer_log")


def _check_report(report: dict, path: Path) -> None:
    assert report["errors"] == 0, report["last_error"]
    assert report["commits"] > 0
    assert report["max_id"] == _writer_rows(path) == report["commits"]
    assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    assert report["commits_per_s"] > 0


def test_writer_cli_commits_until_the_stop_file_appears(small_db, tmp_path):
    steps_before = _scalar(small_db, "SELECT sum(count) FROM steps")
    proc, files = _start_writer(small_db, tmp_path)
    try:
        seen = _writer_rows(small_db)
        assert seen >= 1
        _wait_for(lambda: _writer_rows(small_db) >= seen + 5, what="more committed rows")
        files["stop"].touch()
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    report = json.loads(files["report.json"].read_text())
    assert json.loads(stdout) == report
    assert report["stop_reason"] == "stop_file"
    _check_report(report, small_db)
    steps_after = _scalar(small_db, "SELECT sum(count) FROM steps")
    assert steps_after - steps_before == report["commits"]
    assert _scalar(small_db, "PRAGMA integrity_check") == "ok"


def test_writer_cli_stops_cleanly_on_sigterm(small_db, tmp_path):
    proc, files = _start_writer(small_db, tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    report = json.loads(files["report.json"].read_text())
    assert report["stop_reason"] == "signal"
    _check_report(report, small_db)


def test_run_writer_stops_after_its_duration_and_creates_its_log_table(tmp_path):
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    report = run_writer(path, interval=0, duration=0.2, report_path=tmp_path / "r.json")
    assert report["stop_reason"] == "duration"
    assert json.loads((tmp_path / "r.json").read_text()) == report
    _check_report(report, path)
