"""Every task that asks first refuses in one wording without a terminal and --yes, and
with --json prints one shape for it (review-op s19 #7: `restore` said "restore replaces
the live database: pass --yes …" and printed its audit document; restore.volume,
deploy.undo and emergency.stop/resume said "not on a terminal: run again with --yes …"
and printed only the error and the exit code)."""

from __future__ import annotations

import json

import pytest

from ops import cli, engine
from ops.errors import ExitCode
from tests.helpers import assert_one_line_error

pytestmark = pytest.mark.cli_in_process

SAME = {"error": cli.WITHOUT_TERMINAL, "exit_code": 2, "outcome": "not confirmed"}


def _refused_as_json(result) -> dict:
    line = assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert line == f"Error: {cli.WITHOUT_TERMINAL}", result
    document = json.loads(result.stdout)
    assert {key: document.get(key) for key in SAME} == SAME, document
    return document


def test_a_restore_refuses_in_the_words_and_shape_of_every_asking_task(
        wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    document = _refused_as_json(run_invoke("restore", made.name, "--json"))
    assert document["kind"] == "restore"  # its audit document's keys are all kept


@pytest.mark.parametrize("task", [("emergency.stop",), ("emergency.resume",),
                                  ("restore.volume", "--snapshot", "latest"),
                                  ("deploy.undo",)])
def test_the_fly_tasks_that_ask_refuse_in_the_same_words_and_shape(site, task):
    site.world.clear_calls()
    _refused_as_json(site.run(*task, "--json"))
    assert site.world.calls() == [], site.world.calls()


def test_a_refusal_of_another_kind_keeps_the_plain_shape(run_invoke):
    result = run_invoke("restore", "--production", "--host", "x", "--json")
    assert json.loads(result.stdout) == {"error": json.loads(result.stdout)["error"],
                                         "exit_code": 2}
