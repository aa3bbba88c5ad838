"""Restore written once (issue 22 item 3): the local restore runs the engine's one restore
(``engine.restoring``), the same phases the machine's python3 drains in
``engine.restore_database``, one phase per step of the local run.

Seen from outside: the phases in order with both locks held between them (another
restore or backup is refused at every pause), and a behaviour the machine's restore had
and the old local path lacked (a failed copy names the safety backup made first).
"""

from __future__ import annotations

import pytest

from ops import config, engine
from ops.targets.local import LocalTarget
from tests import helpers

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO teams (name) VALUES ('held')")
print("locked", flush=True)
time.sleep(60)
"""


def local_target(db, backup_dir) -> LocalTarget:
    return LocalTarget(config.load({}, db=str(db), dir=str(backup_dir)))


def locks_refused(backup_dir) -> list[str]:
    """Which of the two locks another run would be refused now (wait 0)."""
    refused = []
    for name in (engine.RESTORE_LOCK, engine.LOCK_NAME):
        try:
            with engine.file_lock(backup_dir / name):
                pass
        except engine.EngineError as exc:
            assert exc.kind == "locked", exc
            refused.append(name)
    return refused


def test_the_local_target_restores_through_the_engines_phases_under_both_locks(
        wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    helpers.change(wal_db)
    phases = local_target(wal_db, backup_dir).restore(made.name, when="2026-01-01T00:00:00Z")
    seen = []
    for run in phases:
        seen.append(run.phase)
        assert locks_refused(backup_dir) == [engine.RESTORE_LOCK, engine.LOCK_NAME], run.phase
    assert seen == ["locked", "verified", "safety", "copied", "proven"]
    assert run.proof["ok"] and run.chosen.name == made.name
    assert run.safety.restore == {"when": "2026-01-01T00:00:00Z", "backup": made.name}
    assert locks_refused(backup_dir) == []  # the generator ended: both released
    assert engine.count_rows(wal_db, live=True) == made.tables


def test_closing_the_local_restore_between_phases_releases_the_locks(wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    before = helpers.content(wal_db)
    phases = local_target(wal_db, backup_dir).restore(made.name)
    assert next(phases).phase == "locked" and next(phases).phase == "verified"
    assert locks_refused(backup_dir) == [engine.RESTORE_LOCK, engine.LOCK_NAME]
    phases.close()  # what the runner's closing step does after a refusal or a signal
    assert locks_refused(backup_dir) == []
    assert helpers.content(wal_db) == before
    assert [b.name for b in engine.list_backups(backup_dir)] == [made.name]  # no safety


def test_a_missing_live_database_takes_the_broken_phases(wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    for path in wal_db.parent.glob(wal_db.name + "*"):
        path.unlink()
    phases = local_target(wal_db, backup_dir).restore(made.name, app_stopped=True)
    seen = []
    for run in phases:  # one Restoring, yielded at each phase
        seen.append(run.phase)
    assert seen == ["locked", "verified", "broken", "placed", "proven"]
    assert run.state == "missing" and run.proof["ok"] and run.safety is None
    assert engine.count_rows(wal_db, live=True) == made.tables


def test_the_machines_restore_drains_the_same_phases(wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    helpers.change(wal_db)
    heard = []
    data = engine.restore_database(wal_db, backup_dir, made.name, on_safety=heard.append)
    assert data["ok"] and data["backup"] == made.name
    assert heard == [data["safety_backup"]["name"]]
    assert list(data) == ["backup", "backup_sha256", "created", "safety_backup",
                          "tables_before", "tables_after", "check", "problems", "ok",
                          "proof", "restore_seconds", "seconds"]


@pytest.fixture
def locked_live(wal_db):
    locker = helpers.python(LOCKER, str(wal_db))
    try:
        assert locker.stdout.readline().strip() == "locked"
        yield wal_db
    finally:
        locker.kill()
        locker.wait()
        locker.stdout.close()
        locker.stderr.close()


def test_a_failed_local_copy_names_the_safety_backup_as_the_machine_does(
        locked_live, backup_dir, run_invoke):
    """The machine's restore always said which safety backup it left when its copy
    failed; the old local path only printed the undo line. Now both, locally too."""
    made = engine.create_backup(locked_live, backup_dir)  # reads while the app writes
    before = helpers.content(locked_live)
    result = run_invoke("restore", made.name, "--yes", "--busy-timeout", "0.3")
    assert result.returncode == 6, result
    safety = [b.name for b in engine.list_backups(backup_dir) if b.name != made.name]
    assert len(safety) == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and f"(safety backup {safety[0]} was made first)" in error[0]
    assert f"invoke restore {safety[0]} --yes" in result.stderr  # the undo line too
    assert helpers.content(locked_live) == before
