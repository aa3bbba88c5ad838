"""A retried restore's "data from before" (s18 review findings 1 and 2): an unknown is
never an answer (the machine could not tell which earlier safety backup holds the
backup's content: no file is named, the record's undo is null), and a restore killed
with kill -9 (no audit line) while the app keeps writing is found by the next restore of
the same backup through its safety backup's restore mark, not by content equality.
Real WAL files, the ops.sample writer process, the flyctl double, real SIGKILLs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ops import audit, engine, remote
from ops.restore import interrupted_safeties, pre_restore_safety, unknown_safety
from tests import helpers
from tests.helpers import change, content

HOOKS = str(Path(__file__).parent / "hooks")


def killed_at(wrap: str) -> dict:
    """Environment for a CLI run that kill -9s itself right after ``wrap`` returns."""
    path = os.pathsep.join(filter(None, [HOOKS, os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path,
            "OPS_TEST_HOOK": json.dumps({"wrap": wrap, "when": "after", "signal": "SIGKILL"})}


def safeties(folder: Path) -> list[str]:
    return sorted(item.name for item in engine.list_backups(folder) if item.kind == "safety")


# ---------------------------------------------------------------- the decisions, as data


def test_an_unknown_candidate_stops_the_search_instead_of_counting_as_other_content():
    proof = {"backup_content_sha256": "b" * 64, "content_format": "v1"}
    made = [{"name": "S1", "created": "1", "content_sha256": "a" * 64, "content_format": "v1"},
            {"name": "S2", "created": "2", "content_sha256": None, "content_format": None},
            {"name": "S3", "created": "3", "content_sha256": None, "content_format": None}]
    assert pre_restore_safety("S3", "B", proof, made) is None
    assert unknown_safety("S3", proof, made) == "S2"
    made[1].update(content_sha256="b" * 64, content_format="v1")  # S2: known, the backup's
    assert pre_restore_safety("S3", "B", proof, made) == "S1"
    assert unknown_safety("S3", proof, made) is None


def test_safety_backups_no_audit_line_names_are_the_interrupted_ones():
    class Item:
        def __init__(self, name, created, backup, kind="safety"):
            self.name, self.created, self.kind = name, created, kind
            self.restore = {"backup": backup}

    listing = [Item("S1", "1", "B"), Item("S2", "2", "B"), Item("S3", "3", "other"),
               Item("S4", "4", "B"), Item("X", "5", "B", kind="backup")]
    entries = [{"kind": "restore", "safety_backup": {"name": "S2"}},
               {"kind": "restore", "safety_backup": "S1"}, "not a dict", ["S1"],
               {"kind": "restore", "safety_backup": {"name": ["unhashable"]}}]
    assert interrupted_safeties("B", listing, entries, mine="S4") == ["S1"]
    entries.append({"kind": "undo", "safety_backup": {"name": "S1"}})  # any finished run
    assert interrupted_safeties("B", listing, entries, mine="S4") == []


# ---------------------------------------------------------------- finding 1: on the machine


@pytest.mark.parametrize("why", ["cannot hash", "ssh fails"])
def test_a_retry_whose_machine_cannot_tell_names_no_undo(slow_health_prod, why):
    prod = slow_health_prod
    made = engine.create_backup(prod.db, prod.remote_dir)
    change(prod.db)
    first = prod.run("restore", "--production", "--yes", "--json")
    assert first.returncode == 14, first  # restored; /health was slow
    s1 = first.json()["safety_backup"]["name"]
    retry = prod.run("restore", "--production", "--yes", "--json")
    assert retry.returncode == 14 and retry.json()["undo"] == s1, retry
    s2 = retry.json()["safety_backup"]["name"]
    if why == "cannot hash":  # S2 (the backup's content) unreadable now: cannot tell
        (prod.remote_dir / s2).write_bytes(b"not a database any more" * 100)
    else:  # the question about S2 (its exact `fly ssh console -C`) drops, every time
        prod.world.fail(["ssh", "console", remote.wrap(remote.same_script(
            str(prod.remote_dir), made.name, s2))], times=None,
            stderr="Error: ssh: handshake failed: read tcp: i/o timeout\n")
    again = prod.run("restore", "--production", "--yes", "--json")
    assert again.returncode == 14, again
    record = again.json()
    assert record["undo"] is None, again.stderr
    assert s2 in record["undo_unknown"], record
    assert "could not be told" in again.stderr and "backup.list --production" in again.stderr
    assert f"invoke restore {s2}" not in again.stderr, again.stderr
    line = audit.read(Path(prod.env["INVOKE_DEPLOY_AUDIT_LOG"]))[-1]
    assert (line["kind"], line["undo"]) == ("restore", None), line
    assert engine.describe_file(prod.remote_dir / s1)[1] != engine.describe_file(made.path)[1]


# ---------------------------------------------------------------- finding 2: kill -9, app writing


def test_a_restore_after_a_killed_one_names_its_safety_backup_while_the_app_writes(
        wal_db, backup_dir, run_invoke, tmp_path):
    made = engine.create_backup(wal_db, backup_dir)
    change(wal_db)
    with helpers.Writer(wal_db, tmp_path / "writer").start():
        killed = run_invoke("restore", made.name, "--yes", env=killed_at("restore_live"))
        assert killed.returncode == -9, killed
        [s1] = safeties(backup_dir)
        retry = run_invoke("restore", made.name, "--yes", "--json")
    assert retry.returncode == 0, retry
    record = retry.json()
    assert record["interrupted_safety"] == [s1], retry.stderr
    assert f"An earlier restore of {made.name} was interrupted" in retry.stderr
    assert f"its safety backup {s1} holds the data from before it" in retry.stderr
    assert f"invoke restore {s1} --yes" in retry.stderr
    line = audit.read(tmp_path / "data" / "deploys.jsonl")[-1]
    assert line["interrupted_safety"] == [s1]
    # the file named holds the data from before the killed run (not the backup's)
    assert engine.describe_file(backup_dir / s1)[1] != engine.describe_file(made.path)[1]
    quiet = run_invoke("restore", made.name, "--yes", "--json")  # s1 still has no line
    assert quiet.json()["interrupted_safety"] == [s1], quiet.stderr


def test_a_finished_restore_names_no_interrupted_one(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    change(wal_db)
    for _ in range(2):
        result = run_invoke("restore", made.name, "--yes", "--json")
        assert result.returncode == 0, result
        assert "interrupted_safety" not in result.json(), result.stderr
        assert "was interrupted" not in result.stderr


def test_on_the_machine_a_retry_after_a_kill_9_names_the_killed_runs_safety_backup(
        served_prod, tmp_path):
    prod = served_prod
    made = engine.create_backup(prod.db, prod.remote_dir)
    change(prod.db)
    before = content(prod.db)
    killed = prod.run("restore", made.name, "--production", "--yes",
                      env=killed_at("ops.targets.scripted:ScriptedTarget.restore"))
    assert killed.returncode == -9, killed
    [s1] = safeties(prod.remote_dir)
    assert engine.describe_file(prod.remote_dir / s1)[1] == before
    with helpers.Writer(prod.db, tmp_path / "writer").start():
        retry = prod.run("restore", made.name, "--production", "--yes", "--json")
    assert retry.returncode == 0, retry
    assert retry.json()["interrupted_safety"] == [s1], retry.stderr
    assert f"invoke restore {s1} --production --yes" in retry.stderr
    line = audit.read(Path(prod.env["INVOKE_DEPLOY_AUDIT_LOG"]))[-1]
    assert line["interrupted_safety"] == [s1]
