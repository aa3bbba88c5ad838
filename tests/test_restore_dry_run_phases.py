"""A local restore's dry run is the run's own read-only step (issue 22 #1, the runbook:
--dry-run is the same runner executing the read-only steps and rendering the rest): its
verify is the engine's one restore (``engine.restoring``) taken to its ``verified``
phase, as the run's verify step takes it, with no lock and nothing written. Before, the
dry run verified through a copy of its own beside the generator, which could drift (it
did not check the page sizes the run refuses on)."""

from __future__ import annotations

import re

import pytest

from ops import config, engine
from ops import restore as restores
from tests import helpers

pytestmark = pytest.mark.cli_in_process

# the engine's phase each plan step of a local restore ends at ("ready" takes the locks)
PHASE_OF = {"verify": "verified", "safety": "safety", "restore": "copied", "check": "proven"}


@pytest.fixture
def phases(monkeypatch) -> list[str]:
    """Every phase the engine's one restore reached in this process, in order."""
    reached: list[str] = []
    real = engine.restoring

    def spied(*args, **kwargs):
        for run in real(*args, **kwargs):
            reached.append(run.phase)
            yield run

    monkeypatch.setattr(engine, "restoring", spied)
    return reached


def local_plan(tmp_path) -> list:
    settings = config.load({"db": {"path": str(tmp_path / "data" / "steps.db")},
                            "backup": {"dir": str(tmp_path / "data" / "backups")}})
    return restores.plan_for(restores.RestoreOptions(), settings, remote=False)


def test_the_dry_run_runs_exactly_the_plans_read_only_steps(wal_db, backup_dir, tmp_path,
                                                             phases):
    made = engine.create_backup(wal_db, backup_dir)
    files = helpers.snapshot(backup_dir, set())
    plan = local_plan(tmp_path)
    dry = helpers.run_here("restore", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry
    assert phases == [PHASE_OF[s.key] for s in plan if s.reads_only] == ["verified"], phases
    assert helpers.snapshot(backup_dir, set()) == files  # no lock file, nothing written
    phases.clear()
    real = helpers.run_here("restore", "--yes", cwd=tmp_path)
    assert real.returncode == 0, real
    assert phases == ["locked", *[PHASE_OF[s.key] for s in plan if s.key in PHASE_OF]]
    assert verify_line(dry, made.name) == verify_line(real, made.name)  # the same line


def verify_line(result, name: str) -> str:
    """The verify step's line, without its time (which differs from run to run)."""
    (line,) = [line for line in result.stderr.splitlines()
               if line.startswith("✓ verify") and name in line]
    return re.sub(r" \([0-9.]+m?s\)$", "", line)


def test_the_dry_run_fails_where_the_runs_verify_fails(wal_db, backup_dir, tmp_path, phases):
    """A backup of another page size: the run's verify refuses it (SQLite cannot copy it
    into the WAL database); the dry run said nothing of it and exited 0."""
    made = helpers.backup_of_other_page_size(backup_dir, tmp_path)
    assert engine.read_page_size(made.path) == 8192 != engine.read_page_size(wal_db)
    dry = helpers.run_here("restore", made.name, "--dry-run", cwd=tmp_path)
    real = helpers.run_here("restore", made.name, "--yes", cwd=tmp_path)
    assert "page size" in real.error_lines[-1], real
    assert real.returncode != 0 and dry.returncode == real.returncode, (dry, real)
    assert dry.error_lines[-1] == real.error_lines[-1], (dry, real)
