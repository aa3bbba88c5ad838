"""A deploy's dry run names the step its run would stop at, with that step's real code
(s21 review-op #6: a backup lock held on the machine was "would stop at preflight",
while the run passed preflight, took both deploy locks and stopped at its backup; the
--json plan's lock steps said `"abort": 10` where a held lock exits 4). And a deploy
waiting for this computer's deploy lock says so in the one wording, with the lock's
path (``ui.lock_waiting``; review-op #12)."""

from __future__ import annotations

import json

import pytest

from ops import engine
from ops.errors import ExitCode
from tests import helpers

pytestmark = pytest.mark.cli_in_process


def test_a_held_backup_lock_on_the_machine_stops_the_dry_run_at_backup(site, tmp_path):
    lock = site.backups / engine.LOCK_NAME
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        dry = site.here("deploy", "--dry-run", "--json")
        run = site.here("deploy")
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    shown = " ".join(dry.stderr.split())
    assert "a real run would stop at backup: " in shown and "another backup holds the lock" in shown
    assert "stop at preflight" not in shown
    assert "(backup failed)" in " ".join(run.stderr.split()), run.stderr  # where it stops
    steps = {step["key"]: step for step in json.loads(dry.stdout)["steps"]}
    assert ExitCode.LOCKED in steps["lock"]["keeps"], steps["lock"]  # a held lock: 4
    assert ExitCode.LOCKED in steps["machine_lock"]["keeps"], steps["machine_lock"]


def test_a_deploy_waiting_for_this_computers_lock_names_it(site, tmp_path):
    with helpers.file_lock_held(site.lock_file, tmp_path / "holder") as (pid, release):
        run = site.start("deploy", "--lock-wait", "30")
        try:
            line = run.wait_for_stderr("waiting up to 30s for the deploy lock ")
            assert f"for the deploy lock {site.lock_file}, held by " in line, line
            assert f"(pid {pid} on " in line, line
        finally:
            release.touch()
            result = run.finish()
    assert result.returncode == 0, result
