"""The "To undo this restore" line appears only when the run changed the live database
and its safety backup holds what the live database held before (review-op s19 #3,
review-break s19 #5): following it otherwise throws away the app's writes since.

Two cases had it wrong: the app's write lock outlasted --busy-timeout (exit 6, nothing
copied), and a restore over a live database that already held the backup (its safety
backup "holds the same"). Each is run locally and on the machine with every engine."""

from __future__ import annotations

import re
import sqlite3

import pytest

from ops import engine
from ops.restore import by_hand, nothing_to_undo
from tests import helpers
from tests.fake_production import changed_after_backup, site, use_engine  # noqa: F401
from tests.helpers import change, content

# ---------------------------------------------------------------- the decision, as data


@pytest.mark.parametrize(("record", "due"), [
    ({"outcome": "ok", "safety_backup": {"name": "S"}, "proof": {"ok": True}}, True),
    ({"outcome": "failed", "safety_backup": {"name": "S"}, "proof": {"ok": False}}, True),
    ({"outcome": "failed", "safety_backup": {"name": "S"}, "exit_code": 6}, False),
    ({"outcome": "failed", "safety_backup": {"name": "S"}, "restore_seconds": None}, False),
    ({"outcome": "ok", "safety_backup": {"name": "S"}, "undo": "S",
      "proof": {"ok": True, "held_backup_before": True}}, False),
    ({"outcome": "ok", "safety_backup": {"name": "S"}, "undo": "E",  # an earlier one
      "proof": {"ok": True, "held_backup_before": True}}, True),
])
def test_undo_is_due_only_when_the_run_changed_the_live_database(record, due):
    assert (nothing_to_undo(record) is None) is due


# ---------------------------------------------------------------- local


def test_a_local_busy_timeout_gives_no_undo_line(tmp_path, wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    change(wal_db)
    before = content(wal_db)
    holder = sqlite3.connect(wal_db, isolation_level=None)  # the app, writing
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = helpers.run_invoke("restore", made.name, "--yes", "--busy-timeout", "0.2",
                                    cwd=tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 6, result
    assert "To undo" not in result.stderr, result.stderr
    assert "the live database was not changed by this run" in result.stderr, result.stderr
    assert f"To restore, run again: `invoke restore {made.name} --yes`" in result.stderr
    assert content(wal_db) == before


def test_a_local_restore_over_the_same_content_gives_no_undo_line(tmp_path, wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)  # the live database holds it already
    result = helpers.run_invoke("restore", made.name, "--yes", cwd=tmp_path)
    assert result.returncode == 0, result
    assert "holds the same" in result.stderr, result.stderr
    assert "To undo" not in result.stderr, result.stderr
    assert "Nothing to undo." in result.stderr, result.stderr


def test_a_local_restore_that_changed_it_keeps_its_undo_line(tmp_path, wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    change(wal_db)
    result = helpers.run_invoke("restore", made.name, "--yes", cwd=tmp_path)
    assert result.returncode == 0, result
    assert "To undo this restore:" in result.stderr, result.stderr


# ---------------------------------------------------------------- on the machine


@pytest.mark.parametrize("name", ["python3", "sqlite3", "node"])
def test_a_machine_busy_timeout_gives_no_undo_line(site, name):  # noqa: F811
    use_engine(site, name)
    made = changed_after_backup(site)
    before = content(site.db)
    holder = sqlite3.connect(site.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = site.run("restore", made.name, "--production", "--yes", "--busy-timeout",
                          "1", timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 6, result
    assert "To undo" not in result.stderr, result.stderr
    assert "restore another backup" not in result.stderr, result.stderr
    assert content(site.db) == before


@pytest.mark.parametrize("name", ["python3", "sqlite3", "node"])
def test_a_machine_restore_over_the_same_content_gives_no_undo_line(site, name):  # noqa: F811
    use_engine(site, name)
    made = site.run("backup", "--production", "--json", timeout=60)
    assert made.returncode == 0, made
    again = site.run("restore", "latest", "--production", "--yes", timeout=60)
    assert again.returncode == 0, again
    assert "holds the same" in again.stderr, again.stderr
    assert "To undo" not in again.stderr, again.stderr
    assert "Nothing to undo." in again.stderr, again.stderr


@pytest.mark.parametrize("name", ["python3", "sqlite3", "node"])
def test_a_machine_retry_names_the_first_runs_safety_backup(site, name):  # noqa: F811
    use_engine(site, name)
    made = changed_after_backup(site)
    first = site.run("restore", made.name, "--production", "--yes", timeout=60)
    assert first.returncode == 0 and "To undo this restore:" in first.stderr, first
    again = site.run("restore", made.name, "--production", "--yes", timeout=60)
    assert again.returncode == 0, again
    # the retry's undo is the first run's safety backup (README), never its own; and the
    # line says which is which (it read "Safety backup: X. To undo: restore Y": s27 op #10)
    assert "holds the same" in again.stderr and "To undo this restore:" in again.stderr
    before = re.search(r"Safety backup: (steps-\S+\.db)\. To undo", first.stderr).group(1)
    (line,) = [ln for ln in again.stderr.splitlines() if ln.startswith("Safety backup: ")]
    assert line.endswith(f"(the backup's content, as the live database already held it); the "
                         f"data from before is in {before}, an earlier restore's safety "
                         "backup. To undo this restore:"), line


def test_a_run_stopped_after_its_proof_over_the_same_content_names_no_undo():
    record = {"outcome": "ok", "backup": {"name": "B"}, "safety_backup": {"name": "S"},
              "undo": "S", "holds": "backup", "interrupted": "SIGTERM",
              "proof": {"ok": True, "held_backup_before": True},
              "steps": [{"step": "restore", "outcome": "ok"}, {"step": "check", "outcome": "ok"}]}
    lines = by_hand(record, " --production", ("app", "m1"))
    assert not any("invoke restore S" in line for line in lines), lines
    assert any("nothing to undo" in line for line in lines), lines
