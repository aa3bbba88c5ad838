"""A restore's dry run runs its plan's read-only steps as the run does (issue 22 #2, #3).

A backup name that does not exist failed only the real run: the dry run printed a plan
and exited 0. Now the dry run runs the step that resolves the name (locally ``verify``,
on Fly and on a host ``choose``), so it fails the same way, with the same exit code and
one-line error, and changes nothing. On an 80-column terminal the production plan breaks
its commands between arguments with `` \\`` (``runbook.render``), never inside one.
"""

from __future__ import annotations

import re
import shlex

import pytest

from ops import engine, restore, runbook
from tests import helpers
from tests.fake_production import changed_after_backup
from tests.fake_production import restore_label as label
from tests.helpers import commands_in

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")


@pytest.fixture
def prod(served_prod):
    """Production whose /health answers (a restore restarts the machine and waits for it)."""
    return served_prod


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MISSING = "steps-2020-01-01T00-00-00.db"  # a well-formed name that no backup has


def error_line(result) -> str:
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    return line


@pytest.mark.parametrize("which", ["latst", MISSING])
def test_local_dry_run_of_a_missing_backup_fails_as_the_run_does(wal_db, backup_dir,
                                                                  run_invoke, which):
    engine.create_backup(wal_db, backup_dir)
    files = helpers.snapshot(backup_dir, set())
    dry = run_invoke("restore", which, "--dry-run")
    real = run_invoke("restore", which, "--yes")
    assert real.returncode in (2, 3), real
    assert dry.returncode == real.returncode, dry
    assert error_line(dry) == error_line(real)
    assert "Restore plan" not in dry.stderr and "Traceback" not in dry.stderr
    assert helpers.snapshot(backup_dir, set()) == files


def test_local_dry_run_without_the_backup_folder_fails_as_the_run_does(wal_db, tmp_path,
                                                                       run_invoke):
    env = {"INVOKE_BACKUP_DIR": str(tmp_path / "no-such-folder")}
    dry = run_invoke("restore", "--dry-run", env=env)
    real = run_invoke("restore", "--yes", env=env)
    assert real.returncode == 3, real
    assert dry.returncode == real.returncode, dry
    assert error_line(dry) == error_line(real)
    assert not (tmp_path / "no-such-folder").exists()


@pytest.mark.parametrize("which", ["latst", MISSING])
def test_production_dry_run_of_a_missing_backup_fails_as_the_run_does(prod, which):  # noqa: F811
    changed_after_backup(prod)
    dry = prod.run("restore", which, "--production", "--dry-run")
    dry_calls = [label(argv) for argv in prod.calls()]
    real = prod.run("restore", which, "--production", "--yes")
    assert real.returncode in (2, 3), real
    assert dry.returncode == real.returncode, dry
    assert error_line(dry) == error_line(real)
    assert "Restore plan" not in dry.stderr and "Traceback" not in dry.stderr
    # only reads: the machine, whether it is stopped, the listing
    assert all(call in ("version --json", "volumes list", "machine list", "ssh list")
               for call in dry_calls), dry_calls


def test_the_production_plan_breaks_commands_between_arguments_at_80_columns(prod):  # noqa: F811
    changed_after_backup(prod)
    code, shown = helpers.on_terminal(["restore", "--production", "--dry-run"], cwd=prod.cwd,
                                      env=prod.env, columns=80)
    assert code == 0, shown
    lines = ANSI.sub("", shown).replace("\r", "").split("\n")
    plan = lines[next(i for i, line in enumerate(lines) if line.startswith("Restore plan")):]
    # wider only where one word is itself wider (the test's tmp paths are long)
    assert [line for line in plan if len(line) > 80 and len(line.split()) > 1] == [], plan
    wide = prod.run("restore", "--production", "--dry-run", "--json")
    expected = [shlex.join(["fly", *argv]) for step in wide.json()["steps"]
                for argv in step["commands"]]
    assert commands_in(plan) == expected
    assert any(line.endswith(" \\") for line in plan)  # at least one was long enough


def test_a_local_restore_shows_its_plans_steps_with_what_it_learnt(wal_db, backup_dir,
                                                                    run_invoke):
    """The run takes its step lines from the plan (``restore.plan_for``): each one is the
    plan step's line with the backup it chose filled in, in the plan's order."""
    made = engine.create_backup(wal_db, backup_dir)
    result = run_invoke("restore", "--yes")
    assert result.returncode == 0, result
    shown = [line[2:] for line in result.stderr.splitlines() if line.startswith("✓ ")]
    steps = restore.plan(restore.RestoreOptions(), db="data/steps.db",
                         directory="data/backups")[:-1]  # the last, `record`, is the audit line
    expected = [runbook.fill(step.line, {"backup": made.name}) for step in steps]
    assert len(shown) == len(expected), shown
    for line, title in zip(shown, expected, strict=True):
        assert line.startswith(title + "  "), (line, title)


def test_emergency_stopped_the_dry_run_shows_restart_and_health_skipped_as_the_run_does(
        site):  # noqa: F811
    assert site.run("emergency.stop", "--yes").returncode == 0
    made = engine.create_backup(site.db, site.backups)
    plan = site.run("restore", "--production", "--dry-run", "--json")
    assert plan.returncode == 0, plan
    assert plan.json()["backup"] == made.name
    skipped = {s["key"]: s["skipped"] for s in plan.json()["steps"] if s["skipped"]}
    assert skipped == {"restart": "emergency-stopped", "health": "emergency-stopped"}
    assert "(skipped: emergency-stopped)" in plan.stderr
    run = site.run("restore", "--production", "--yes", "--json")
    assert run.returncode == 0, run
    assert {s["step"]: s["detail"] for s in run.json()["steps"]
            if s["outcome"] == "skipped"} == skipped
