"""Issue 12 #4 and issue 9 #4: the backup's full check runs beside the deploy's snapshot,
and Ctrl-C during a check stops it at once, leaving nothing behind.

Through the CLI, on real SQLite files, against the flyctl double.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from ops import sample
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import VOL, label


def raw_labels(site) -> list[str]:
    """flyctl calls in the order the double saw them (no reordering of the concurrent one)."""
    return [label(argv) for argv in site.world.calls()]


def test_the_full_check_runs_while_the_snapshot_is_taken_and_both_pass(site):
    site.world.snapshot_behavior("progress", lists_before_created=20)

    result = site.run("deploy", "--json", timeout=60)

    assert result.returncode == 0, result
    calls = raw_labels(site)
    create, verify = calls.index("volumes snapshots create"), calls.index("ssh verify")
    last_poll = max(i for i, name in enumerate(calls) if name == "volumes snapshots list")
    # backup published (quick_check) -> snapshot requested -> full check beside the polls
    assert calls.index("ssh backup") < create < verify < last_poll < calls.index("deploy")
    assert calls.count("ssh verify") == 1
    verify_argv = site.world.calls()[verify]
    assert "--check integrity" in verify_argv[-1]
    backup_argv = next(a for a in site.world.calls() if label(a) == "ssh backup")
    assert "--check quick" in backup_argv[-1]
    record = result.json()
    steps = {s["step"]: s for s in record["steps"]}
    assert list(steps)[3:6] == ["backup", "snapshot", "full_check"]
    assert "quick_check ok" in steps["backup"]["detail"]
    assert steps["snapshot"]["detail"].startswith(f"{record['snapshot']['id']} created; "
                                                  "integrity_check ")
    assert steps["full_check"]["detail"].startswith("integrity_check ok, SHA-256 matches")
    assert "integrity_check ok, SHA-256 matches" in result.stderr  # people see it too


def test_a_failed_full_check_aborts_with_11_and_leaves_the_snapshot(site):
    helpers.break_an_index(site.db)
    # a snapshot that would take ~forever: the failed check must end the wait, not Fly
    site.world.snapshot_behavior("progress", lists_before_created=100000)
    before = len(site.world.snapshots(VOL))

    result = site.run("deploy", "--json", timeout=60)

    line = helpers.assert_one_line_error(result, ExitCode.DEPLOY_ABORTED_BACKUP, strict=False)
    assert "full_check failed" in line and "integrity_check" in line, result
    assert "probe_x" in line
    calls = raw_labels(site)
    assert "deploy" not in calls
    assert calls.index("volumes snapshots create") < calls.index("ssh verify")
    snapshots = site.world.snapshots(VOL)
    pending = [snap for snap in snapshots if snap["status"] != "created"]
    assert len(snapshots) == before + 1 and len(pending) == 1  # ours, left to finish
    assert "destroy" not in " ".join(" ".join(a) for a in site.world.calls())
    record = result.json() if result.stdout.strip() else site.audit()[-1]
    assert record["exit_code"] == 11 and record["outcome"] == "full_check failed"
    steps = {s["step"]: s for s in record["steps"]}
    assert steps["snapshot"]["outcome"] == "ok" and "left to finish" in steps["snapshot"]["detail"]
    assert steps["full_check"]["outcome"] == "failed"
    # the backup itself was published after quick_check: it is on the volume, not deleted
    assert any(site.backups.glob("steps-*.db"))


# ---------------------------------------------------------------- Ctrl-C during a check


@pytest.fixture(scope="session")
def slow_check_db(tmp_path_factory) -> Path:
    """A sample database whose integrity_check takes seconds here (built once)."""
    db = tmp_path_factory.mktemp("slowcheck") / "steps.db"
    sample.build_sample_database(db, target_mb=48)
    return db


def test_ctrl_c_during_the_check_stops_at_once_and_leaves_nothing(slow_check_db, tmp_path):
    db = tmp_path / "steps.db"
    shutil.copyfile(slow_check_db, db)
    backups = tmp_path / "backups"
    run = helpers.start_invoke("backup", cwd=tmp_path,  # the configured database: its folder
                               env={"INVOKE_BACKUP_DIR": str(backups), "INVOKE_DB_PATH": str(db)})
    size = db.stat().st_size

    def copied():  # the copy is done once the private file has every page
        return any(p.stat().st_size >= size for p in backups.glob(".tmp-*")
                   if not p.name.endswith("-journal"))

    helpers.wait_for(copied, 30, what="the copy to finish")
    os.kill(run.proc.pid, signal.SIGINT)
    result = run.finish(timeout=30)

    assert result.returncode == ExitCode.INTERRUPTED, result
    assert "Stopping: removing the unfinished backup" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in backups.iterdir()) == [".backup.lock"]  # nothing else
