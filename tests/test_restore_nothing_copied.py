"""A restore on the machine stopped by a signal, over a live database that holds the
backup's content when asked (op #2b of the s18 review): it says what happened. Nothing
copied (no safety backup appeared): "not restored", ``"copied": false``, never "proven";
copied (its safety backup appeared): "ok" with that safety backup as the undo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ops import engine
from tests.fake_production import changed_after_backup

HOOKS = str(Path(__file__).parent / "hooks")


@pytest.fixture
def prod(served_prod):
    return served_prod


def stopped(prod, name: str, when: str):
    """``restore NAME --production`` with SIGTERM sent ``when`` (before or after) the
    machine's restore call (``tests/hooks/sitecustomize.py``)."""
    spec = {"wrap": "ops.targets.scripted:ScriptedTarget.restore", "when": when,
            "signal": "SIGTERM"}
    path = os.pathsep.join(filter(None, [HOOKS, os.environ.get("PYTHONPATH")]))
    return prod.run("restore", name, "--production", "--yes", "--json",
                    env={"PYTHONPATH": path, "OPS_TEST_HOOK": json.dumps(spec)})


def safeties(prod) -> list[str]:
    return [item.name for item in engine.list_backups(prod.remote_dir) if item.kind == "safety"]


def test_stopped_before_its_copy_over_the_same_content_says_nothing_was_copied(prod):
    made = engine.create_backup(prod.db, prod.remote_dir)  # the live database holds it
    before = engine.describe_file(prod.db, live=True)[1]
    result = stopped(prod, made.name, "before")
    assert result.returncode == 143, result
    record = result.json()
    assert (record["outcome"], record["holds"], record["copied"]) == \
        ("not restored", "backup", False), record
    assert record["safety_backup"] is None and safeties(prod) == []
    assert (f"nothing was copied: its live database already held backup {made.name}'s "
            "content, and no safety backup was made") in result.stderr
    assert "Nothing was copied: the live database already held backup" in result.stderr
    assert f"run again: `invoke restore {made.name} --production --yes`" in result.stderr
    assert "proven" not in result.stderr and "To undo" not in result.stderr
    assert result.error_lines[-1] == ("Error: terminated by SIGTERM; the live database was "
                                      "not changed by this run (see above)")
    assert engine.describe_file(prod.db, live=True)[1] == before  # the data as it was


def test_stopped_after_its_copy_names_the_safety_backup_it_made_as_the_undo(prod):
    made = changed_after_backup(prod)
    result = stopped(prod, made.name, "after")
    assert result.returncode == 143, result
    record = result.json()
    [safety] = safeties(prod)
    assert (record["outcome"], record["holds"]) == ("ok", "backup"), record
    assert record["safety_backup"]["name"] == safety and "copied" not in record
    assert f"(safety backup {safety} was made before the copy)" in result.stderr
    assert f"invoke restore {safety} --production --yes" in result.stderr  # the undo
    assert result.error_lines[-1] == ("Error: terminated by SIGTERM; the live database holds "
                                      "the backup's content (see above)")
