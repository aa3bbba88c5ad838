"""What `backup.drill --dry-run` shows is what the drill does (issue 22 items 1 and 2).

The drill runs twice through the real CLI: ``--dry-run --json`` (the plan: only its
reading steps ran), then for real with ``--json``, locally, on an SSH host (the real
sshd) and on Fly (the flyctl double). The steps the run recorded are the plan's, in its
order; on Fly every flyctl call the run made is a command the plan showed, in the order
shown, with the machine the dry run resolved filled in and each machine script the
plan names by its purpose (``<script: drill>``) being the script of that mark.
"""

from __future__ import annotations

import shlex

import pytest

from ops import drill, engine
from tests.fake_production import APP, MACHINE, MARK
from tests.helpers import assert_one_line_error

pytestmark = pytest.mark.cli_in_process(per="module")


def keys(steps: list[dict]) -> list[str]:
    return [step.get("key") or step["step"] for step in steps]


def commands(steps: list[dict]) -> list[list[str]]:
    return [argv for step in steps for argv in step["commands"]]


def same_call(shown: list[str], made: list[str]) -> bool:
    """A planned command against a flyctl call: equal words, but for a machine script
    the plan names by its purpose, which must be the mark the sent script carries."""
    if shown[:2] != ["ssh", "console"] or not shown[-1].startswith("<script: "):
        return shown == made
    sent = shlex.split(made[-1])[-1]  # `sh -c SCRIPT`
    mark = MARK.search(sent)
    return shown[:-1] == made[:-1] and mark is not None and \
        shown[-1] == f"<script: {mark.group(1)}>"


def assert_calls(shown: list[list[str]], made: list[list[str]]) -> None:
    assert len(shown) == len(made), (shown, made)
    for want, got in zip(shown, made, strict=True):
        assert same_call(want, got), (want, got)


def test_the_plan_says_the_drill_makes_a_scratch_copy_and_changes_nothing_else():
    steps = drill.plan("latest", where=drill.FLY, folder="/data/backups on the machine",
                       directory="/data/backups", check="integrity", app=APP)
    assert keys([{"key": s.key} for s in steps]) == ["resolve", "find", "drill", "machine"]
    by_key = {step.key: step for step in steps}
    assert not by_key["drill"].reads_only and "scratch copy" in by_key["drill"].title
    assert "only read" in by_key["drill"].title
    assert [s.key for s in steps if s.reads_only] == ["resolve", "find", "machine"]


def test_a_local_drill_runs_the_steps_its_dry_run_shows(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    before = sorted(p.name for p in backup_dir.iterdir())
    plan = run_invoke("backup.drill", "--dry-run", "--json")
    assert plan.returncode == 0, plan
    assert plan.json()["dry_run"] and plan.json()["backup"] == made.name
    steps = plan.json()["steps"]
    assert keys(steps) == ["find", "drill"]
    assert made.name in steps[1]["title"] and "scratch copy" in steps[1]["title"]
    assert "Drill plan (dry run" in plan.stderr and f"✓ find backup latest  {made.name}" \
        in plan.stderr
    assert sorted(p.name for p in backup_dir.iterdir()) == before  # no scratch copy made
    run = run_invoke("backup.drill", "--json")
    assert run.returncode == 0, run
    assert run.json()["ok"] and run.json()["name"] == made.name
    assert keys(run.json()["steps"]) == keys(steps)
    assert sorted(p.name for p in backup_dir.iterdir()) == before  # and none left


def test_a_production_drill_makes_the_calls_its_dry_run_shows(prod):
    made = engine.create_backup(prod.db, prod.remote_dir)
    plan = prod.run("backup.drill", "--production", "--dry-run", "--json")
    assert plan.returncode == 0, plan
    data = plan.json()
    assert (data["backup"], data["machine"]) == (made.name, MACHINE)
    steps = data["steps"]
    shown = commands(steps)
    assert not [argv for argv in shown if any("<machine>" in w for w in argv)]
    read = commands([s for s in steps[:keys(steps).index("drill")]])
    assert_calls(read, prod.calls())  # the dry run ran its reads, and nothing else
    assert f"drill {made.name}" in steps[2]["title"] and "scratch copy" in steps[2]["title"]
    before = len(prod.calls())

    run = prod.run("backup.drill", "--production", "--json")

    assert run.returncode == 0, run
    assert run.json()["ok"] and run.json()["where"] == "machine"
    assert_calls(shown, prod.calls()[before:])
    assert keys(run.json()["steps"]) == keys(steps)
    assert not [p for p in prod.remote_dir.iterdir() if p.name.startswith(".drill-")]


def test_a_drill_of_a_backup_production_lacks_fails_its_dry_run(prod):
    engine.create_backup(prod.db, prod.remote_dir)
    missing = "steps-2021-01-01T00-00-00.db"
    plan = prod.run("backup.drill", missing, "--production", "--dry-run", "--json")
    assert_one_line_error(plan, 3, contains=f"no backup named {missing}", strict=False)
    assert not [argv for argv in prod.calls() if "<script: drill>" in argv[-1]
                or "# ops: drill" in argv[-1]]  # it never drilled


def test_a_drill_on_an_ssh_host_runs_the_steps_its_dry_run_shows(host, run_invoke):
    made = engine.create_backup(host["db"], host["dir"])
    args = ("backup.drill", "--host", host["addr"], "--json")
    plan = run_invoke(*args, "--dry-run", env=host["env"])
    assert plan.returncode == 0, plan
    assert plan.json()["backup"] == made.name
    assert keys(plan.json()["steps"]) == ["connect", "find", "drill", "machine"]
    assert f"connect to {host['addr']}" in plan.stderr and "✓ drill" not in plan.stderr
    run = run_invoke(*args, env=host["env"])
    assert run.returncode == 0, run
    assert run.json()["ok"] and keys(run.json()["steps"]) == keys(plan.json()["steps"])
