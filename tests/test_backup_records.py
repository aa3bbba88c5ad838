"""What a backup records, and what the drill and the restore's proof compute (issue 21).

A backup records its size, SHA-256 and row counts, never a content hash: a backup whose
SHA-256 matches its record has the content it had when it was made, so the drill and
the restore's proof hash the verified file when they run (the backup file and the
restored copy, in one format). A record from before, holding a content hash, still
counts: it is compared too.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from ops import engine


def record_of(made: engine.BackupResult) -> dict:
    return json.loads(Path(f"{made.path}.json").read_text())


def test_a_backup_records_counts_and_checksum_but_no_content_hash(wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir, check="quick", content_hash=True)
    record = record_of(made)
    assert record["tables"] == {"steps": 3000, "teams": 20, "users": 200}
    assert record["sha256"] == engine.sha256_file(made.path)
    assert record["content_sha256"] is None and record["content_format"] is None
    assert engine.verify_backup(made.path).ok


def test_the_drill_hashes_the_backup_file_and_the_restored_copy_in_one_format(
        wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    result = engine.drill_backup(made.path)
    digest = engine.describe_file(wal_db, live=True)[1]
    assert result["ok"] and result["differences"] == [] and not result["recorded_content"]
    assert result["content_sha256"] == result["backup_content_sha256"] == digest
    assert result["content_format"] == engine.CONTENT_FORMAT


def test_the_drill_names_a_restored_copy_that_differs_from_the_backup_file(
        wal_db, backup_dir, monkeypatch):
    made = engine.create_backup(wal_db, backup_dir)
    restore_into = engine.restore_into

    def lossy(backup, target):  # a restore that loses one value (same row counts)
        restore_into(backup, target)
        conn = sqlite3.connect(target)
        conn.execute("UPDATE users SET name = 'someone else' WHERE id = 7")
        conn.commit()
        conn.close()

    monkeypatch.setattr(engine, "restore_into", lossy)
    result = engine.drill_backup(made.path)
    assert result["restorable"] and not result["ok"]
    assert [d.split(":")[0] for d in result["differences"]] == ["content hash"]
    assert result["differences"][0].startswith("content hash: backup file ")


@pytest.mark.parametrize("right", [True, False])
def test_an_old_record_with_a_content_hash_is_still_compared(wal_db, backup_dir, right):
    made = engine.create_backup(wal_db, backup_dir)
    record = record_of(made)
    digest = engine.describe_file(made.path)[1]
    record.update(content_sha256=digest if right else "0" * 64,
                  content_format=engine.CONTENT_FORMAT)
    Path(f"{made.path}.json").write_text(json.dumps(record))
    result = engine.drill_backup(made.path)
    assert result["recorded_content"] and result["ok"] is right
    assert result["content_sha256"] == result["backup_content_sha256"] == digest
    if not right:
        assert result["differences"] == [
            f"content hash: recorded 000000000000…, restored {digest[:12]}…"]


def test_content_sha256_of_takes_an_old_records_hash_in_that_format_else_the_file(tmp_path):
    old = {"content_sha256": "a" * 64, "content_format": engine.CONTENT_FORMAT}
    missing = tmp_path / "gone.db"
    assert engine.content_sha256_of(missing, engine.CONTENT_FORMAT, old) == "a" * 64
    assert engine.content_sha256_of(missing, engine.JSON1_FORMAT, old) is None  # unreadable
    assert engine.content_sha256_of(missing, None, old) is None


def test_a_retried_restore_proves_itself_with_the_safety_backup_hashed_at_proof_time(
        wal_db, backup_dir):
    """The live database holds the backup's content already: the safety backup (which
    records no hash) is hashed when the proof runs, so the proof says so (review-op #1)."""
    made = engine.create_backup(wal_db, backup_dir)
    done = engine.restore_database(wal_db, backup_dir, made.name)
    assert done["ok"] and done["safety_backup"]["content_sha256"] is None
    assert done["proof"]["held_backup_before"] and done["proof"]["holds"] == "backup"


def test_the_local_restore_proof_hashes_the_safety_backup_too(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    result = run_invoke("restore", made.name, "--yes", "--json")
    assert result.returncode == 0, result
    proof = result.json()["proof"]
    assert proof["ok"] and proof["held_backup_before"]
    assert proof["content_sha256"] == engine.describe_file(made.path)[1]


def test_an_old_backup_folder_copied_in_drills_against_its_own_record(wal_db, tmp_path):
    """A backup and its record from before issue 21, moved to another folder."""
    made = engine.create_backup(wal_db, tmp_path / "a")
    other = tmp_path / "b"
    other.mkdir()
    for suffix in ("", ".sha256", ".json"):
        shutil.copyfile(f"{made.path}{suffix}", other / f"{made.name}{suffix}")
    record = json.loads((other / f"{made.name}.json").read_text())
    record.update(content_sha256=engine.describe_file(made.path, fmt=engine.LEGACY_FORMAT)[1])
    del record["content_format"]  # the first records had no format: quote-1
    (other / f"{made.name}.json").write_text(json.dumps(record))
    result = engine.drill_backup(other / made.name)
    assert result["ok"] and result["content_format"] == engine.LEGACY_FORMAT
