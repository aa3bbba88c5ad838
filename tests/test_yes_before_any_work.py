"""Without a terminal and --yes nothing can be confirmed: every task that asks refuses
first, before its reads, checks or flyctl calls (op #9 of the s18 review: a CI restore
paid its verify, then learnt it lacked --yes), with the refusal it gave after them."""

from __future__ import annotations

import json
import os

import pytest

from ops import emergency, engine
from ops import restore as restores
from ops.errors import ExitCode
from tests.helpers import assert_one_line_error

pytestmark = pytest.mark.cli_in_process


def test_a_local_restore_is_refused_before_its_verify(wal_db, backup_dir, run_invoke, tmp_path):
    made = engine.create_backup(wal_db, backup_dir)
    with open(made.path, "r+b") as damaged:  # its verify would fail it (exit 5)
        damaged.seek(os.path.getsize(made.path) // 2)
        byte = damaged.read(1)
        damaged.seek(-1, 1)
        damaged.write(bytes([byte[0] ^ 0xFF]))
    result = run_invoke("restore", made.name)
    line = assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert line == f"Error: {restores.WITHOUT_TERMINAL}"
    assert "verify" not in result.stderr and "SHA-256" not in result.stderr, result
    logged = [json.loads(entry) for entry in
              (tmp_path / "data" / "deploys.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["outcome"], r["exit_code"]) for r in logged] == \
        [("restore", "not confirmed", 2)]  # recorded, as a declined restore always was


def test_a_production_restore_is_refused_before_any_flyctl_call(prod):
    engine.create_backup(prod.db, prod.remote_dir)
    result = prod.run("restore", "--production")
    line = assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert line == f"Error: {restores.WITHOUT_TERMINAL}"
    assert prod.calls() == [], prod.calls()


@pytest.mark.parametrize("task", [("emergency.stop",), ("emergency.resume",),
                                  ("restore.volume", "--snapshot", "latest"),
                                  ("deploy.undo",)])
def test_the_fly_tasks_that_ask_are_refused_before_any_flyctl_call(site, task):
    site.world.clear_calls()
    result = site.run(*task)
    line = assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert line == f"Error: {emergency.WITHOUT_TERMINAL}"
    assert site.world.calls() == [], site.world.calls()


def test_a_dry_run_needs_no_yes(site):
    assert site.run("emergency.stop", "--dry-run").returncode == 0
