"""SIGTERM in the restore phases the other signal tests do not reach (issue 22 "done
when"): a real signal to the real CLI, an honest audit line, and by-hand lines that say
what is true then.

Covered elsewhere: at the confirmation and during the local copy
(``test_backup_choice.py::test_sigterm_*``), during the machine's copy
(``test_restore_signals.py``). Here: before the first step (waiting for the backup lock)
and on Fly after the proven copy (the /health wait after the restart).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from ops import engine, restore
from tests import helpers
from tests.fake_production import changed_after_backup


def audit(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sigterm_while_waiting_for_the_backup_lock_says_nothing_changed(tmp_path, wal_db,
                                                                        backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    helpers.change(wal_db)
    before = helpers.content(wal_db)
    with helpers.lock_held_elsewhere(backup_dir, tmp_path / "holder"):
        run = helpers.start_invoke("restore", made.name, "--yes", "--lock-wait", "60",
                                   cwd=tmp_path)
        run.wait_for_stderr("waiting up to 60s for the backup lock")
        run.proc.send_signal(signal.SIGTERM)
        result = run.finish()
    assert result.returncode == 143, result
    assert "Traceback" not in result.stderr
    assert "The restore was terminated by SIGTERM before its first step." in result.stderr
    assert "The live database was not changed by this run." in result.stderr
    assert "Error: terminated by SIGTERM" in result.stderr
    assert helpers.content(wal_db) == before
    line = audit(tmp_path / "data" / "deploys.jsonl")[-1]
    assert (line["outcome"], line["exit_code"], line["steps"]) == (
        "terminated by SIGTERM", 143, [])
    assert "seconds" not in line  # only a restore that ended ok has a restore time


def test_sigterm_during_the_health_wait_says_the_restore_was_done(served_prod):
    prod = served_prod
    made = changed_after_backup(prod)
    prod.health_server.body = {"status": "starting"}  # no backup block: it keeps waiting
    run = helpers.start_invoke(
        "restore", made.name, "--production", "--yes", cwd=prod.cwd,
        env={**prod.env, "INVOKE_HEALTH_TIMEOUT": "60", "INVOKE_HEALTH_INTERVAL": "0.1"})
    run.wait_for_stderr("restart machine")  # the restart's line: the wait has begun
    helpers.wait_for(lambda: prod.health_server.requests > 0, what="a /health poll")
    run.proc.send_signal(signal.SIGTERM)
    result = run.finish()
    assert result.returncode == 143, result
    assert "Traceback" not in result.stderr
    line = audit(Path(prod.env["INVOKE_DEPLOY_AUDIT_LOG"]))[-1]
    assert (line["outcome"], line["exit_code"]) == ("terminated by SIGTERM", 143)
    assert [(s["step"], s["outcome"]) for s in line["steps"]][-3:] == [
        ("restore", "ok"), ("restart", "ok"), ("health", "interrupted")]
    assert line["proof"]["ok"] and "seconds" not in line
    assert engine.count_rows(prod.db, live=True) == made.tables  # it holds the backup
    safety = line["safety_backup"]["name"]
    assert (f"The restore itself was done and proven: the live database holds backup "
            f"{made.name}.") in result.stderr
    assert f"invoke restore {safety} --production --yes" in result.stderr
    assert "The machine was restarted: check the app's /health" in result.stderr
    assert "The live database holds either" not in result.stderr  # no more "either"


def test_by_hand_after_a_proven_copy_leaves_only_the_apps_side():
    record = {"outcome": "terminated by SIGTERM", "backup": {"name": "B.db"},
              "safety_backup": {"name": "S.db"}, "proof": {"ok": True},
              "steps": [{"step": "restore", "outcome": "ok"},
                        {"step": "restart", "outcome": "interrupted"}]}
    assert restore.by_hand(record, " --production", ("app", "m1")) == [
        "The restore was terminated by SIGTERM during step restart.",  # restart interrupted
        "The restore itself was done and proven: the live database holds backup B.db.",
        "To put back what it held before: `invoke restore S.db --production --yes`",
        "Restart the app so it reopens the database: `fly machine restart m1 -a app`, and "
        "check /health"]
    unproven = {**record, "proof": {"ok": False}}  # a failed proof: nothing is claimed
    assert not [line for line in restore.by_hand(unproven, " --production", ("app", "m1"))
                if "done and proven" in line]
    other = {**record, "holds": "other"}  # read after the proof: the app wrote since
    assert not [line for line in restore.by_hand(other, " --production", ("app", "m1"))
                if "done and proven" in line]


def test_stopped_before_its_upload_finished_a_from_restore_is_run_again_from_the_file():
    record = {"outcome": "terminated by SIGTERM", "from": "/tmp/my backup.db",
              "backup": {"name": "B.db"},
              "steps": [{"step": "resolve", "outcome": "ok"}, {"step": "verify", "outcome": "ok"},
                        {"step": "upload", "outcome": "interrupted"}]}
    assert restore.by_hand(record, " --production")[-1] == (
        "To restore, run again: `invoke restore --production --from '/tmp/my backup.db' "
        "--yes`")
    record["steps"][-1]["outcome"] = "ok"  # uploaded: the machine has it under its name
    assert restore.by_hand(record, " --production")[-1] == (
        "To restore, run again: `invoke restore B.db --production --yes`")
