"""How long a restore took, said honestly (issue 20 #7).

The drill times only its copy into a scratch database: its line says so. ``restore``
times itself end to end (less the wait for the operator's answer), shows it in its
summary and records it in the audit line beside the copy's own ``restore_seconds``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ops import engine
from ops.ui import human_seconds


def audit_lines(tmp_path: Path) -> list[dict]:
    log = tmp_path / "data" / "deploys.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_drill_says_it_timed_a_scratch_copy_not_a_restore(wal_db, backup_dir, run_invoke):
    engine.create_backup(wal_db, backup_dir)
    result = run_invoke("backup.drill")
    assert result.returncode == 0, result
    assert "restored into a scratch copy in" in result.stderr
    assert "the copy alone, not the recovery time objective" in result.stderr
    assert "`invoke restore` times and records the whole restore" in result.stderr


def test_restore_shows_and_records_its_own_end_to_end_time(wal_db, backup_dir, run_invoke,
                                                           tmp_path):
    made = engine.create_backup(wal_db, backup_dir)
    result = run_invoke("restore", "--yes", "--json")
    assert result.returncode == 0, result
    record = result.json()
    assert record["outcome"] == "ok" and record["backup"]["name"] == made.name
    # the whole restore (verify, safety backup, copy, proof) takes longer than its copy
    assert record["seconds"] >= record["restore_seconds"] > 0
    assert f"Restored {made.name} in {human_seconds(record['seconds'])} end to end" in result.stderr
    assert f"the copy itself took {record['restore_seconds']:.3f}s" in result.stderr
    logged = [r for r in audit_lines(tmp_path) if r["kind"] == "restore"][-1]
    assert logged["seconds"] == record["seconds"]
    assert logged["restore_seconds"] == record["restore_seconds"]


def test_a_refused_restore_records_no_restore_time(wal_db, backup_dir, run_invoke, tmp_path):
    engine.create_backup(wal_db, backup_dir)
    result = run_invoke("restore")  # no terminal, no --yes: refused before any change
    assert result.returncode == 2, result
    assert "end to end" not in result.stderr
    logged = [r for r in audit_lines(tmp_path) if r["kind"] == "restore"][-1]
    assert logged["outcome"] == "not confirmed" and "seconds" not in logged
