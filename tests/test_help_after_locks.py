"""Help and plan words that are true now that dry runs look at the locks (s21 review-op
#11): a restore's dry run takes no lock but fails on a held one, as its run does; a
rollback takes no backup lock and runs no backup script, so neither its help nor its
plan's footnote names them."""

from __future__ import annotations

import pytest

from ops import deploy, restore
from ops.runbook import Step
from tests import helpers

pytestmark = pytest.mark.cli_in_process


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_restore_help_says_a_held_lock_fails_the_dry_run(tmp_path):
    shown = one_line(helpers.run_here("--help", "restore", cwd=tmp_path).stdout)
    assert "with no lock)" not in shown
    assert "it takes no lock, it looks at them" in shown and "a lock another run holds" in shown


def test_the_dry_run_step_title_does_not_read_as_no_lock_at_all():
    assert "dry run: no lock" not in restore.READ_ONLY and "takes no lock" in restore.READ_ONLY


def test_rollback_help_names_no_backup_lock(tmp_path):
    shown = one_line(helpers.run_here("--help", "deploy.rollback", cwd=tmp_path).stdout)
    assert "backup lock (default" not in shown and "takes no backup lock" in shown, shown


def test_a_plan_without_a_backup_script_has_no_footnote_for_one():
    lock = Step("machine_lock", "lock", commands=(("fly", "ssh", "console", "-C",
                                                   "<lock script>"),))
    backup = Step("backup", "backup", commands=(("fly", "ssh", "console", "-C",
                                                 deploy.SCRIPT),))
    without = " ".join(deploy.render([lock], "app", None))
    assert "<... script>" in without and "a backup script" not in without, without
    with_backup = " ".join(deploy.render([lock, backup], "app", None))
    assert "a backup script, the backup it made" in with_backup, with_backup
