"""Every `invoke` process imports only what the task it runs needs (issues 21 and 22: a
CLI process's start is part of every command's time, and of the suite's ~450 processes).

Each test runs the real CLI as a process with ``PYTHONPROFILEIMPORTTIME=1`` (Python's own
``-X importtime``: one ``import time:`` line on stderr per module the process imported)
and reads which modules were imported. asyncio and ssl are not checked: Invoke 2.2 itself
imports them (invoke.context imports unittest.mock for its MockContext)."""

import re

import pytest

# what a process imports at its start is the point: every run a fresh `python -m invoke`
pytestmark = pytest.mark.fresh_process

# The flows a task imports when it runs, and Rich (the terminal output): none is needed to
# list the tasks, and a local backup needs none but Rich.
FLOWS = {"ops.restore", "ops.replica", "ops.replica_checks", "ops.deploy", "ops.fly",
         "ops.runbook", "ops.emergency", "ops.volume_restore", "ops.sample", "ops.drill",
         "ops.undo", "ops.targets.fly", "ops.targets.ssh", "ops.remote"}
RICH = {"rich", "rich.console", "ops.ui"}


def imported(result) -> set[str]:
    """The modules the process imported, from its ``import time:`` lines."""
    return {match.group(1) for match in
            re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", result.stderr, re.M)}


def run_profiled(run_invoke, *args, env=None):
    result = run_invoke(*args, env={**(env or {}), "PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result
    modules = imported(result)
    assert "ops.commands.backup" in modules, result  # the lines are there: tasks.py was read
    return modules


def test_listing_the_tasks_imports_no_flow_no_rich_and_no_engine(run_invoke):
    modules = run_profiled(run_invoke, "--list")
    assert modules & (FLOWS | RICH | {"ops.engine"}) == set()


@pytest.mark.parametrize("task", ["backup", "restore"])
def test_a_tasks_help_imports_no_flow(run_invoke, task):
    """--help wraps its text with ops.ui's ``wrapped`` (so Rich comes with it), but no
    task's flow is imported to describe it."""
    modules = run_profiled(run_invoke, "--help", task)
    assert modules & FLOWS == set()


def test_a_local_backup_imports_neither_restore_nor_fly_nor_ssh(run_invoke, wal_db, backup_dir):
    modules = run_profiled(run_invoke, "backup")
    assert {"ops.backups", "ops.targets.local", "rich.console"} <= modules  # what it uses
    assert modules & FLOWS == set()
    assert len(list(backup_dir.glob("*.db"))) == 1
