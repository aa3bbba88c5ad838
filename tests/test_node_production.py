"""Every production task on the app's own image (issue 17): the flyctl double's machine
runs the "node" image (node and the app's node_modules, neither python3 nor the sqlite3
CLI), through the real CLI."""

from __future__ import annotations

import json

import pytest

from ops import engine
from tests import node_env
from tests.test_drill import RESOLVE, STOPPED, changed_after_backup, label, prod  # noqa: F401


@pytest.fixture
def node_prod(prod):  # noqa: F811 - the drill tests' production, on the Node image
    prod.world.set_machine_image("node")
    prod.env["INVOKE_MACHINE_APP_DIR"] = str(node_env.app_dir())
    return prod


def test_backup_verify_and_drill_on_a_node_only_machine(node_prod):
    prod = node_prod
    made = prod.run("backup", "--production", "--json")
    assert made.returncode == 0, made
    backup = made.json()["backup"]
    assert backup["strategy"] == "node" and "[node]" in made.stderr
    assert "WARNING" not in made.stderr
    final = prod.remote_dir / backup["name"]
    assert engine.verify_backup(final).ok
    record = json.loads((prod.remote_dir / f"{backup['name']}.json").read_text())
    assert (record["tables"], record["content_sha256"]) == engine.describe_file(final)[:2]
    checked = prod.run("backup.verify", "latest", "--production", "--json")
    assert checked.returncode == 0, checked
    assert [(v["name"], v["ok"]) for v in checked.json()] == [(backup["name"], True)]
    assert "1 of 1 ok  [node]" in checked.stderr  # every task says which engine ran
    drilled = prod.run("backup.drill", "--production", "--json")
    assert drilled.returncode == 0, drilled
    drill = drilled.json()
    assert (drill["where"], drill["strategy"], drill["ok"]) == ("machine", "node", True)
    assert drill["tables"] == record["tables"] and drill["differences"] == []
    assert drill["machine"]["engines"]["restore"] == "node" and "[node]" in drilled.stderr


def test_restore_on_a_node_only_machine_proves_itself(node_prod):
    prod = node_prod
    made = changed_after_backup(prod)
    result = prod.run("restore", "--production", "--yes", "--json")
    assert result.returncode == 0, result
    record = result.json()
    assert record["strategy"] == "node" and record["outcome"] == "ok"
    assert engine.describe_file(prod.db, live=True)[1] == made.content_sha256
    assert record["proof"]["holds"] == "backup" and record["proof"]["ok"]
    assert record["tables_before"]["steps"] == 1000 and record["tables_after"]["steps"] == 3000
    safety = prod.remote_dir / record["safety_backup"]["name"]
    assert engine.verify_backup(safety).ok and engine.count_rows(safety)["steps"] == 1000
    assert [label(a) for a in prod.calls()] == [
        *RESOLVE, *STOPPED, "ssh list", "ssh counts", "ssh restore", "machine restart"]


@pytest.mark.parametrize(("image", "binding", "restore"), [
    ("default", False, "python3"),
    ("node", True, "node"),
    ("node", False, None),
])
def test_machine_check_says_what_each_image_can_run(prod, image, binding, restore):  # noqa: F811
    prod.world.set_machine_image(image)
    if binding:
        prod.env["INVOKE_MACHINE_APP_DIR"] = str(node_env.app_dir())
    result = prod.run("machine.check", "--production", "--json")
    data = result.json()
    assert data["engines"]["restore"] == restore
    assert data["facts"]["flock"] and data["facts"]["node"]
    assert data["facts"]["binding"] == ("better-sqlite3" if binding else None)
    assert data["facts"]["python3"] is None if image == "node" else data["facts"]["python3"]
    if restore:
        assert result.returncode == 0, result
        assert data["cannot"] == {} and data["fixes"] == []
        assert f"restore      {restore}" in result.stderr
    else:
        assert result.returncode == 1, result
        assert "restore      CANNOT RUN: no engine" in result.stderr
        assert data["engines"]["backup"] is None and data["engines"]["verify"] == "download"
        assert data["fixes"][0].startswith("RUN npm install better-sqlite3")
        assert "apt-get install -y --no-install-recommends sqlite3" in data["fixes"][1]
        assert result.stderr.strip().splitlines()[-1].startswith(
            "Error: restore cannot run on")


def test_an_unsafe_machine_app_dir_is_refused_before_flyctl(prod):  # noqa: F811
    prod.env["INVOKE_MACHINE_APP_DIR"] = "/app; rm -rf /"
    result = prod.run("machine.check", "--production")
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines()[-1].startswith(
        "Error: config machine.app_dir must be a plain absolute path")
    assert prod.calls() == []
