"""`backup --dry-run` looks at the backup lock its run takes (s21 review-op #3: it said
"would back up", exit 0, while its run exited 4 with the lock held; docs/flags.md: "a
dry run exits with the code its run would stop at"). Here and on the machine, the lock
held by a real process; the dry run gives the run's code and words and takes nothing."""

from __future__ import annotations

import json

import pytest

from ops import engine
from ops.errors import ExitCode
from tests import helpers

pytestmark = pytest.mark.cli_in_process


def test_a_local_backups_dry_run_refuses_a_held_lock_as_its_run_does(wal_db, backup_dir,
                                                                     run_invoke, tmp_path):
    backup_dir.mkdir(parents=True)
    lock = backup_dir / engine.LOCK_NAME
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        held = lock.read_text()
        dry = run_invoke.here("backup", "--dry-run")
        run = run_invoke.here("backup")
        waits = run_invoke.here("backup", "--dry-run", "--lock-wait", "30", "--json")
        assert lock.read_text() == held
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = f"holds the lock data/backups/{lock.name}: {held} (use --lock-wait SECONDS to wait"
    assert said in " ".join(dry.stderr.split()), dry.stderr
    assert said in " ".join(run.stderr.split()), run.stderr
    assert waits.returncode == 0, waits
    (line,) = json.loads(waits.stdout)["lock_waits"]
    assert "the run would wait up to 30s for it" in line, line


def test_a_production_backups_dry_run_refuses_a_lock_held_on_the_machine(served_prod,
                                                                         tmp_path):
    prod = served_prod
    lock = prod.remote_dir / engine.LOCK_NAME
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        dry = prod.run("backup", "--production", "--dry-run")
        run = prod.run("backup", "--production")
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = f"holds the lock {lock}"
    assert said in " ".join(dry.stderr.split()), dry.stderr
    assert said in " ".join(run.stderr.split()), run.stderr
