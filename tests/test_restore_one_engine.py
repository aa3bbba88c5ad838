"""Restore written once (issue 22 item 3): the local restore runs the engine's one restore
(``engine.restoring``), the same phases the machine's python3 drains in
``engine.restore_database``, one phase per step of the local run.

Seen from outside: the phases in order with both locks held between them (another
restore or backup is refused at every pause), and a behaviour the machine's restore had
and the old local path lacked (a failed copy names the safety backup made first).
"""

from __future__ import annotations

import json
import signal

import pytest

from ops import config, engine
from ops.targets.local import LocalTarget
from tests import helpers


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


@pytest.mark.parametrize("stop_after", ["locked", "verified", "safety", "copied", "proven"])
def test_stopped_at_any_phase_the_live_database_is_untouched_or_restored_with_a_safety(
        wal_db, backup_dir, stop_after):
    """What a signal between two steps of the local run does (the runner's closing step
    closes the restore): the locks are released, and the live database holds either its
    content from before (no copy yet) or the backup's, with a verified safety backup."""
    made = engine.create_backup(wal_db, backup_dir)
    helpers.change(wal_db)
    before, backup = helpers.content(wal_db), helpers.content(made.path)
    phases = local_target(wal_db, backup_dir).restore(made.name)
    while next(phases).phase != stop_after:
        pass
    phases.close()
    assert locks_refused(backup_dir) == []
    safety = [b for b in engine.list_backups(backup_dir) if b.kind == "safety"]
    if stop_after in ("copied", "proven"):
        assert helpers.content(wal_db) == backup and len(safety) == 1
        assert engine.verify_backup(safety[0].path).ok
        assert helpers.content(safety[0].path) == before
    else:
        assert helpers.content(wal_db) == before
        assert len(safety) == (1 if stop_after == "safety" else 0)


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
    with helpers.app_holds_write_lock(wal_db):
        yield wal_db


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
    # no undo line: nothing was copied, so following it would lose the app's writes
    # since (review-op s19 #3; this test asserted that line before)
    assert "To undo" not in result.stderr and f"invoke restore {made.name} --yes" in result.stderr
    assert helpers.content(locked_live) == before


class Heard:
    """A reporter that keeps the lines a target says while it waits."""

    def __init__(self):
        self.waits: list[str] = []

    def waiting(self, message: str) -> None:
        self.waits.append(message)


def test_a_safety_backup_into_another_folder_waits_for_its_lock_saying_so(tmp_path, wal_db):
    """Another database's backup in its source folder (``safety_folder``): the safety
    backup goes to the parent folder, whose lock is another run's; the wait is told, as
    for backup.dir's own lock, and when it runs out nothing was changed."""
    source = tmp_path / "data" / "backups" / "db-other-0123abcd"
    other = helpers.make_wal_db(tmp_path / "other.db")
    made = engine.create_backup(other, source)
    before = helpers.content(wal_db)
    heard = Heard()
    settings = config.load({"backup": {"lock_wait": "0.3"}}, db=str(wal_db), dir=str(source))
    phases = LocalTarget(settings, heard).restore(made.name)
    assert next(phases).phase == "locked"
    run = next(phases)
    assert run.phase == "verified"
    run.safety_dir = source.parent  # what the flow decides after verifying
    with helpers.lock_held_elsewhere(source.parent, tmp_path / "holder"), \
            pytest.raises(engine.EngineError, match="another backup holds the lock"):
        next(phases)
    lock = source.parent / engine.LOCK_NAME
    assert len(heard.waits) == 1 and f"for the backup lock {lock}, held by" in heard.waits[0]
    assert helpers.content(wal_db) == before
    assert locks_refused(source) == []


def test_sigterm_inside_the_safety_phase_ends_the_restore_with_nothing_changed(
        tmp_path, wal_db, backup_dir):
    """A real SIGTERM while the engine's restore is inside ``next()`` (its safety backup
    waits for the live database's own folder's lock): the generator ends through its
    ``finally``, exit 143, an honest audit line, nothing changed, no safety backup."""
    source = backup_dir / "db-other-0123abcd"
    made = engine.create_backup(helpers.make_wal_db(tmp_path / "other.db"), source)
    before = helpers.content(wal_db)
    with helpers.lock_held_elsewhere(backup_dir, tmp_path / "holder"):
        run = helpers.start_invoke("restore", made.name, "--yes", "--other-source",
                                   "--lock-wait", "60", cwd=tmp_path,
                                   env={"INVOKE_BACKUP_DIR": str(source)})
        run.wait_for_stderr(f"for the backup lock {backup_dir / engine.LOCK_NAME}")
        run.proc.send_signal(signal.SIGTERM)
        result = run.finish()
    assert result.returncode == 143, result
    assert "Traceback" not in result.stderr
    assert "The live database was not changed by this run." in result.stderr
    assert helpers.content(wal_db) == before
    assert [b.kind for b in engine.list_backups(backup_dir)] == []  # no safety backup
    line = json.loads((tmp_path / "data" / "deploys.jsonl").read_text().splitlines()[-1])
    assert (line["outcome"], line["exit_code"]) == ("terminated by SIGTERM", 143)
    assert [(s["step"], s["outcome"]) for s in line["steps"]] == [
        ("verify", "ok"), ("safety", "interrupted")]
    assert locks_refused(source) == [] == locks_refused(backup_dir)  # the holder is gone too
