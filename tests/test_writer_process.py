"""ops.sample.WriterProcess, the one launcher of the stand-in app (demo, tests, benchmarks),
against a real WAL database."""

from __future__ import annotations

import sqlite3
import subprocess

import pytest

from ops import sample


def test_it_starts_committing_and_stops_with_its_report(wal_db, tmp_path):
    writer = sample.WriterProcess(wal_db, tmp_path / "w", interval=0.002).start()
    assert writer.ready_file.exists()  # started: it has committed once at least
    report = writer.stop()
    assert report["stop_reason"] == "stop_file" and report["commits"] >= 1
    conn = sqlite3.connect(wal_db)
    try:
        rows = conn.execute("SELECT count(*) FROM writer_log").fetchone()[0]
    finally:
        conn.close()
    assert rows == report["commits"] and writer.proc is None
    assert not writer.stop_file.exists() and not writer.ready_file.exists()  # clean again
    assert writer.stop() == report  # stopping twice is harmless


def test_left_to_its_duration_it_ends_by_itself(wal_db, tmp_path):
    writer = sample.WriterProcess(wal_db, tmp_path / "w", duration=0.2).start()
    assert writer.stop(ask=False)["stop_reason"] == "duration"


def test_a_writer_that_cannot_start_says_why_in_one_error(tmp_path):
    missing = tmp_path / "nothing.db"
    writer = sample.WriterProcess(missing, tmp_path / "w", output=subprocess.PIPE)
    with pytest.raises(sample.WriterFailed) as caught:
        writer.start()
    message = str(caught.value)
    assert message.startswith("the writer ended (exit 1) writing to ") and "no database at" \
        in message, message
    assert writer.proc is None
