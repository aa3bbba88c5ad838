"""One honest dry-run header (review-op s20 #5): the flows' dry runs run their reading
steps, so "(dry run: nothing runs)" under the ✓ lines was false; every flow says the same
true words."""

from __future__ import annotations

import re

import pytest

from ops import runbook
from tests import helpers

pytestmark = pytest.mark.cli_in_process


def header(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if "(dry run" in line)


def test_a_local_restore_dry_run_says_its_reading_steps_ran(wal_db, backup_dir, run_invoke):
    run_invoke("backup")
    result = run_invoke("restore", "--dry-run")
    assert result.returncode == 0, result
    assert "✓ verify backup" in result.stderr  # a reading step ran, above the header
    assert header(result.stderr) == f"Restore plan ({runbook.DRY_RUN}):", result.stderr


@pytest.mark.parametrize("task", [("emergency.stop",),
                                  ("restore.volume", "--snapshot", "latest")])
def test_the_fly_flows_say_the_same_words(site, task):
    result = site.run(*task, "--dry-run")
    assert result.returncode == 0, result
    assert f"({runbook.DRY_RUN}):" in header(result.stderr), result.stderr


def test_no_flow_says_nothing_runs():
    said = re.compile(r"\(dry run: nothing (runs|changes)")
    sources = sorted((helpers.REPO_ROOT / "ops").rglob("*.py"))
    assert sources and not [p.name for p in sources if said.search(p.read_text())]


def test_every_local_dry_run_says_dry_run_in_its_json(wal_db, backup_dir, run_invoke, tmp_path):
    """docs/output.md: a --dry-run plan has "outcome": "dry run"; backup, backup.cleanup,
    backup.drill, backup.adopt and the replica tasks had none (s27 review-break3 #1). The
    Fly flows' plans are checked in tests/test_flow_plans_*.py, replica.restore's in
    tests/test_replica_restore.py."""
    assert run_invoke("backup").returncode == 0
    for args in (("backup",), ("backup.cleanup",), ("backup.drill", "latest"),
                 ("backup.adopt", "all"), ("restore", "latest"),
                 ("replica.config", "--output", str(tmp_path / "litestream.yml")),
                 ("replica.config",)):  # to stdout: nothing is written either way
        result = run_invoke(*args, "--dry-run", "--json")
        assert result.returncode == 0, result
        assert result.json()["outcome"] == "dry run", (args, result.json())
        assert result.json()["dry_run"] is True, (args, result.json())
    assert not (tmp_path / "litestream.yml").exists()

