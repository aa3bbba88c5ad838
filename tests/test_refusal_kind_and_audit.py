"""One rule for the tasks that ask first (restore, restore.volume, deploy.undo,
emergency.stop and .resume; docs/flags.md): a run that is not confirmed (no terminal and
no --yes, or any answer but yes) writes its audit line, `outcome: "not confirmed"`, as a
declined restore always did, and its --json refusal names the task's `kind`, as a
restore's did. Before, only restore's refusal had `kind` and an audit line."""

from __future__ import annotations

import json

import pytest

from ops import cli, undo
from tests import helpers

pytestmark = pytest.mark.cli_in_process

TASKS = [(("emergency.stop",), "emergency.stop"), (("emergency.resume",), "emergency.resume"),
         (("restore.volume", "--snapshot", "latest"), "restore.volume"),
         (("deploy.undo",), undo.KIND)]


def logged(path) -> list[tuple]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [(r["kind"], r["outcome"], r["exit_code"]) for r in map(json.loads, lines)]


@pytest.mark.parametrize(("task", "kind"), TASKS)
def test_a_refusal_without_a_terminal_names_its_kind_and_is_recorded(site, task, kind):
    site.world.clear_calls()
    result = site.run(*task, "--json")
    assert result.returncode == 2, result
    document = json.loads(result.stdout)
    assert document == {"error": cli.WITHOUT_TERMINAL, "exit_code": 2,
                        "outcome": "not confirmed", "kind": kind}, document
    assert logged(site.audit_log) == [(kind, "not confirmed", 2)]
    assert site.world.calls() == []  # refused before any work, as before


def test_a_no_at_the_question_is_recorded_too(site):
    code, shown = helpers.on_terminal(["emergency.stop"], cwd=site.cwd, env=site.env(),
                                      answer="no")
    assert code == 1 and cli.NOT_CONFIRMED in shown, shown
    assert logged(site.audit_log) == [("emergency.stop", "not confirmed", 1)]


def test_a_restores_refusal_is_recorded_once(wal_db, backup_dir, run_invoke, tmp_path):
    """A restore's runner records its own refusal: the rule adds no second line."""
    run_invoke("backup")
    result = run_invoke("restore", "--json")
    assert result.returncode == 2 and json.loads(result.stdout)["kind"] == "restore", result
    assert logged(tmp_path / "data" / "deploys.jsonl") == [("restore", "not confirmed", 2)]
