"""Every production task on the app's own image (issue 17): the flyctl double's machine
runs the "node" image (node and the app's node_modules, neither python3 nor the sqlite3
CLI), through the real CLI."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ops import engine
from tests import node_env
from tests.fake_production import APP, STOPPED, changed_after_backup
from tests.fake_production import RESTORE_RESOLVE as RESOLVE
from tests.fake_production import restore_label as label

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")


@pytest.fixture
def prod(served_prod):
    """Production whose /health answers (a restore restarts the machine and waits for it)."""
    return served_prod


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
    assert (record["tables"], record["content_sha256"]) == (engine.describe_file(final)[0], None)
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
    assert engine.describe_file(prod.db, live=True)[1] == engine.describe_file(made.path)[1]
    assert record["proof"]["holds"] == "backup" and record["proof"]["ok"]
    assert record["tables_before"]["steps"] == 1000 and record["tables_after"]["steps"] == 3000
    safety = prod.remote_dir / record["safety_backup"]["name"]
    assert engine.verify_backup(safety).ok and engine.count_rows(safety)["steps"] == 1000
    assert [label(a) for a in prod.calls()] == [
        *RESOLVE, *STOPPED, "ssh list", "ssh counts", "ssh restore", "machine restart"]
    assert "counted by node" in result.stderr  # the plan says which engine counted the rows


def test_a_node_restore_the_app_wrote_into_before_its_proof_fails_closed_and_says_so(
        node_prod, tmp_path):
    """The app commits between the Node engine's copy and its proof's read: the restore is
    not called proven (exit 5), and the operator is told the app committed around it."""
    prod = node_prod
    made = changed_after_backup(prod)
    prod.env["INVOKE_MACHINE_APP_DIR"] = str(node_env.app_committing(
        tmp_path / "app", prod.env["INVOKE_MACHINE_APP_DIR"], prod.db, "after"))
    result = prod.run("restore", "--production", "--yes", "--json")
    assert result.returncode == 5, result
    assert result.error_lines[-1].startswith(
        "Error: restore not proven: the app committed while the restore ran, and the live "
        "database differs from the backup (table steps: backup 3000 rows, live 3001 rows; "
        "content hash"), result
    assert "the app's writes can do that, and so can a wrong copy" in result.error_lines[-1]
    record = result.json()  # the record, as the audit log keeps it
    assert record["proof"]["app_wrote"] is True and not record["proof"]["ok"]
    assert record["outcome"] == "not proven" and prod.audit()[-1]["outcome"] == "not proven"
    assert engine.count_rows(prod.db, live=True)["steps"] == made.tables["steps"] + 1
    # what is known, and the three ways on: keep it (restart, /health), prove a restore with
    # the app stopped, or undo it; the app's writes since go into that run's safety backup
    shown = " ".join(result.stderr.split())
    safety = record["safety_backup"]["name"]
    assert ("The live database passed integrity_check. The app committed while the restore "
            "ran; its writes can make the live database differ like this, and so would a "
            "wrong copy.") in shown
    assert (f"The machine was not restarted and /health was not checked. To keep this result: "
            f"`fly machine restart {record['machine']} -a {APP}`, then check "
            "/health.") in shown
    assert (f"For a proven restore, run it while the app is stopped: `invoke emergency.stop`, "
            f"then `invoke restore {made.name} --production --yes`, then `invoke "
            "emergency.resume` (the app's writes since then go into that run's safety "
            "backup).") in shown
    assert (f"Safety backup: {safety}. To undo this restore (the app's writes since then go "
            "into that run's safety backup):") in shown
    assert [label(a) for a in prod.calls()][-1] == "ssh restore"  # no restart, no /health


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
    assert data["engines"]["adopt"] == restore  # python3 or node: the engines that adopt
    if restore:
        assert result.returncode == 0, result
        assert data["cannot"] == {} and data["fixes"] == []
        assert f"restore      {restore}" in result.stderr
        assert f"adopt        {restore}" in result.stderr
        assert "✓ check" in result.stderr
    else:
        assert result.returncode == 1, result
        assert "restore      CANNOT RUN: no engine" in result.stderr
        assert "adopt        CANNOT RUN: needs python3 or node" in result.stderr
        assert "counts       no engine" in result.stderr and "None" not in result.stderr
        assert "✓ check" not in result.stderr and "✗ check" in result.stderr  # exit 1: no ✓
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


def test_backup_adopt_on_a_node_only_machine_writes_the_engines_records(node_prod):
    """The hint every task gives for an unrecorded backup (`backup.adopt NAME`) works on
    the app's image: engine.js adopts with engine.py's rules and records."""
    prod = node_prod
    made = prod.run("backup", "--production", "--json")
    assert made.returncode == 0, made
    old = prod.remote_dir / "steps-2026-01-07T00-00-00.db"
    old.write_bytes((prod.remote_dir / made.json()["backup"]["name"]).read_bytes())
    bad = prod.remote_dir / "steps-2026-01-06T00-00-00.db"
    bad.write_bytes(b"SQLite format 3\0" + b"\xff" * 4000)
    taken = prod.remote_dir / "steps-2026-01-05T00-00-00.db"
    taken.write_bytes(old.read_bytes())
    (prod.remote_dir / f"{taken.name}.json").symlink_to(prod.db)  # never written through
    result = prod.run("backup.adopt", "all", "--production", "--json")
    assert result.returncode != 0, result  # two of the three could not be adopted
    verdicts = {v["name"]: v for v in result.json()["adopted"]}
    assert verdicts[old.name]["adopted"] and verdicts[old.name]["ok"]
    assert not verdicts[bad.name]["adopted"] and verdicts[bad.name]["problem"]
    assert "exists but is not a usable record" in verdicts[taken.name]["problem"]
    assert not (prod.remote_dir / f"{bad.name}.sha256").exists()
    assert engine.verify_backup(old).ok
    listed = {item.name: item for item in engine.list_backups(prod.remote_dir)}
    assert listed[old.name].kind == "adopted" and listed[old.name].adopted["by"]
    record = json.loads((prod.remote_dir / f"{old.name}.json").read_text())
    assert (record["tables"], record["content_sha256"]) == (engine.count_rows(old), None)
    again = prod.run("backup.adopt", old.name, "--production")
    assert again.returncode == 2 and "already has a checksum record" in again.stderr, again


def test_machine_check_names_no_engine_for_a_task_that_cannot_run(node_prod):
    """No flock(1) on the node image: backup, restore and adopt cannot run, so `engines`
    names none for them (it agrees with `cannot`), and the check shows no ✓."""
    prod = node_prod
    prod.world.remove_machine_tools("flock")
    result = prod.run("machine.check", "--production", "--json")
    assert result.returncode == 1, result
    data = result.json()
    assert set(data["cannot"]) == {"backup", "restore", "adopt"}
    assert data["engines"] == {"backup": None, "verify": "node", "restore": None,
                               "drill": "node", "counts": "node", "adopt": None}
    assert "✓ check" not in result.stderr and "restore: node" not in result.stderr
    assert "database 0 MiB" not in result.stderr and " kB" in result.stderr


def test_a_symlink_at_a_backup_name_is_no_backup_and_blocks_nothing(node_prod):
    """`[ -f ]` follows links: the plain-sh listing showed a link to the live database as
    the newest backup, which then blocked verify/drill/restore of `latest` (the engines
    refuse links). It is listed as an odd entry, and `verify all` checks the rest."""
    prod = node_prod
    made = prod.run("backup", "--production", "--json")
    assert made.returncode == 0, made
    name = made.json()["backup"]["name"]
    newer = engine.backup_name(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    (prod.remote_dir / newer).symlink_to(prod.db)
    shown = prod.run("backup.list", "--production")
    assert shown.returncode == 0 and "(1), listed by sh" in shown.stderr, shown
    listed = prod.run("backup.list", "--production", "--json")
    assert listed.returncode == 0, listed
    assert [item["name"] for item in listed.json()] == [name]
    assert f"not a regular file (a symlink, FIFO or folder), never used as one: {newer}" in (
        " ".join(listed.stderr.split()))
    latest = prod.run("backup.verify", "latest", "--production", "--json")
    assert latest.returncode == 0, latest
    assert [v["name"] for v in latest.json()] == [name]
    drilled = prod.run("backup.drill", "--production", "--json")
    assert drilled.returncode == 0 and drilled.json()["name"] == name, drilled
    assert (prod.remote_dir / newer).is_symlink()  # nothing was changed through it


def test_a_restore_killed_before_its_safety_backup_names_its_engine_and_changed_nothing(
        node_prod, tmp_path):
    """The binding's backup() kills its own process (kill -9) at the safety backup: the
    run names the engine that died and says the live database was not changed."""
    prod = node_prod
    module = tmp_path / "app" / "node_modules" / "better-sqlite3"
    module.mkdir(parents=True)
    (module / "package.json").write_text('{"name": "better-sqlite3", "main": "index.js"}')
    real = node_env.app_dir() / "node_modules" / "better-sqlite3"
    (module / "index.js").write_text(
        f"const D = require({json.dumps(str(real))});\n"
        "D.prototype.backup = function () { process.kill(process.pid, 'SIGKILL'); };\n"
        "module.exports = D;\n")
    made = changed_after_backup(prod)
    before = engine.describe_file(prod.db, live=True)
    prod.env["INVOKE_MACHINE_APP_DIR"] = str(tmp_path / "app")
    result = prod.run("restore", made.name, "--production", "--yes")
    assert result.returncode != 0, result
    last = " ".join(result.stderr.split())
    assert "printed no result (exit 137, engine node)" in last, result
    assert "stopped before its safety backup was made: nothing was changed" in last
    assert engine.describe_file(prod.db, live=True) == before
