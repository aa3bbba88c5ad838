"""The new operator's review (review-op.md) of issue 16's restore: each data-loss case and
misleading message, through the real CLI, real WAL databases, the flyctl double and sshd.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from ops import engine
from tests import helpers
from tests.fake_production import APP, MID, autostarts, fly, look, started, use_engine
from tests.helpers import change, content

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")


def undo_words(stderr: str) -> list[str]:
    r"""The printed undo command, as the shell reads it (it may be wrapped with ` \`)."""
    return shlex.split(helpers.command_after(stderr, "To undo this restore:"))


def undo_named(stderr: str) -> str:
    """The backup the printed undo command names."""
    words = undo_words(stderr)
    return words[words.index("restore") + 1]


# ---------------------------------------------------------------- 1. a retried restore's undo


def test_a_retried_local_restore_undoes_to_the_data_from_before_the_restores(
        wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    change(wal_db)
    before = content(wal_db)
    first = run_invoke("restore", "--yes", "--json")
    assert first.returncode == 0, first
    first_safety = first.json()["safety_backup"]["name"]
    for _ in range(2):  # a retry, and one more
        retried = run_invoke("restore", "--yes")
        assert retried.returncode == 0, retried
        assert f"already held {made.name}'s content (a retried restore?)" in retried.stderr
        assert undo_named(retried.stderr) == first_safety, retried.stderr
    # the undo, pasted, puts back the data from before the restores
    undo = run_invoke("restore", first_safety, "--yes")
    assert undo.returncode == 0, undo
    assert content(wal_db) == before


@pytest.mark.parametrize("tools", ["python3", "sqlite3"])
def test_a_retried_production_restore_undoes_to_the_data_from_before(slow_health_prod, tools):
    prod = slow_health_prod
    use_engine(prod, tools)
    made = engine.create_backup(prod.db, prod.remote_dir)
    change(prod.db)
    before = content(prod.db)
    first = prod.run("restore", "--production", "--yes", "--json")
    assert first.returncode == 14, first  # restored; /health was slow
    first_safety = first.json()["safety_backup"]["name"]
    retried = prod.run("restore", "--production", "--yes")
    assert retried.returncode == 14, retried
    assert f"already held {made.name}'s content" in retried.stderr, retried.stderr
    assert undo_named(retried.stderr) == first_safety
    assert json.loads((prod.remote_dir / f"{first_safety}.json").read_text())
    engine_content = engine.describe_file(prod.remote_dir / first_safety)[1]
    assert engine_content == before


def test_a_retried_restore_over_ssh_undoes_to_the_data_from_before(ssh_host, tmp_path,
                                                                   run_invoke):
    db = helpers.make_wal_db(tmp_path / "host" / "data" / "steps.db")
    folder = tmp_path / "host" / "backups"
    env = {"HOME": os.environ["HOME"], "INVOKE_DB_REMOTE_PATH": str(db),
           "INVOKE_BACKUP_REMOTE_DIR": str(folder), "INVOKE_BACKUP_DIR": str(tmp_path / "local"),
           "INVOKE_SSH_CONNECT_TIMEOUT": "5", "INVOKE_SSH_TIMEOUT": "60"}
    addr = f"{ssh_host.user}@127.0.0.1:{ssh_host.port}"
    engine.create_backup(db, folder)
    change(db)
    before = content(db)
    first = run_invoke("restore", "--host", addr, "--yes", "--json", env=env)
    assert first.returncode == 0, first
    retried = run_invoke("restore", "--host", addr, "--yes", env=env)
    assert retried.returncode == 0, retried
    assert undo_named(retried.stderr) == first.json()["safety_backup"]["name"]
    undo = run_invoke("restore", undo_named(retried.stderr), "--host", addr, "--yes", env=env)
    assert undo.returncode == 0, undo
    assert content(db) == before


# ---------------------------------------------------------------- 2. retention and safety backups


def test_retention_never_counts_or_removes_a_safety_backup(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    change(wal_db)
    safety = run_invoke("restore", "--yes", "--json").json()["safety_backup"]["name"]
    plan = run_invoke("backup.cleanup", "--keep", "1", "--dry-run", "--json")
    decided = {d["name"]: d for d in plan.json()["decisions"]}
    assert decided[safety]["keep"] and "safety backup" in decided[safety]["reason"]
    assert decided[made.name]["keep"]  # the one real backup is the newest 1
    table = run_invoke("backup.cleanup", "--keep", "1")
    assert table.returncode == 0, table
    assert "safety backup" in table.stderr + table.stdout
    names = {item.name for item in engine.list_backups(backup_dir)}
    assert {safety, made.name} <= names


def test_retention_on_the_machine_keeps_its_safety_backups(slow_health_prod):
    prod = slow_health_prod
    made = engine.create_backup(prod.db, prod.remote_dir)
    change(prod.db)
    safety = prod.run("restore", "--production", "--yes", "--json").json()[
        "safety_backup"]["name"]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)  # two backups after it
    newer = [engine.create_backup(prod.db, prod.remote_dir, clock=lambda s=s: later + s).name
             for s in (dt.timedelta(0), dt.timedelta(seconds=1))]
    result = prod.run("backup.cleanup", "--keep", "1", "--production", "--json")
    assert result.returncode == 0, result
    gone = {d["name"] for d in result.json()["decisions"] if not d["keep"]}
    assert gone == {made.name, newer[0]}  # the real backups beyond the newest 1
    assert (prod.remote_dir / safety).is_file() and (prod.remote_dir / newer[1]).is_file()


# ---------------------------------------------------------------- 7. remote listing


def test_backup_list_on_the_machine_says_what_a_safety_backup_put_back(slow_health_prod):
    prod = slow_health_prod
    made = engine.create_backup(prod.db, prod.remote_dir)
    change(prod.db)
    first = prod.run("restore", "--production", "--yes", "--json").json()
    listed = {i["name"]: i for i in prod.run("backup.list", "--production", "--json").json()}
    safety = first["safety_backup"]["name"]
    assert listed[safety]["restore"]["backup"] == made.name
    shown = prod.run("backup.list", "--production").stderr
    assert f"before it put back {made.name}" in shown and "?" not in shown.split(
        "before it put back")[1].split(")")[0]


# ---------------------------------------------------------------- 3. another database's backup


def test_another_databases_backup_is_refused_and_its_undo_works_with_the_flag(
        tmp_path, wal_db, backup_dir, run_invoke):
    other = helpers.make_wal_db(tmp_path / "other.db", users=5, steps=10)
    made = run_invoke("backup", "--db", str(other), "--json")
    assert made.returncode == 0, made
    folder = Path(made.json()["backup"]["path"]).parent
    name = made.json()["backup"]["name"]
    before = content(wal_db)
    env = {"INVOKE_BACKUP_DIR": str(folder)}

    refused = run_invoke("restore", name, "--yes", env=env)
    assert refused.returncode == 2, refused
    error = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "--other-source" in error[0], refused.stderr
    assert f"is of {other}" in refused.stderr
    assert content(wal_db) == before  # nothing changed

    done = run_invoke("restore", name, "--yes", "--other-source", "--json", env=env)
    assert done.returncode == 0, done
    safety = done.json()["safety_backup"]["name"]
    assert (backup_dir / safety).is_file()  # the live database's own folder
    assert engine.count_rows(wal_db, live=True)["steps"] == 10
    undo = undo_words(done.stderr)
    assert undo[:3] == ["invoke", "restore", safety] and undo[3] == "--backup-dir", undo
    assert (tmp_path / undo[4]).resolve() == backup_dir.resolve(), undo
    # the run's folder still set as it was: the flag wins over it (a -f file's too, below)
    back = run_invoke(*undo[1:], env=env)
    assert back.returncode == 0, back
    assert content(wal_db) == before


def test_the_undo_of_another_databases_backup_runs_as_pasted_under_a_config_file(
        tmp_path, wal_db, backup_dir, run_invoke):
    """s28 review-break2 #1: with `-f FILE` setting backup.dir, the undo line's
    `env INVOKE_BACKUP_DIR=…` lost to the file (Invoke ranks a -f file above variables):
    pasted, it was refused ("no backup named …"). The folder is a flag now."""
    other = helpers.make_wal_db(tmp_path / "other.db", users=5, steps=10)
    made = run_invoke("backup", "--db", str(other), "--json")
    assert made.returncode == 0, made
    folder = Path(made.json()["backup"]["path"]).parent
    name = made.json()["backup"]["name"]
    (tmp_path / "c2.yaml").write_text(f"db:\n  path: {wal_db}\nbackup:\n  dir: {folder}\n")
    before = content(wal_db)
    done = run_invoke("-f", "c2.yaml", "restore", name, "--yes", "--other-source")
    assert done.returncode == 0, done
    undo = undo_words(done.stderr)
    assert undo[:3] == ["invoke", "--config", "c2.yaml"] and "--backup-dir" in undo, undo
    pasted = subprocess.run(  # as pasted in the shell the run came from
        ["sh", "-c", shlex.join([helpers.PYTHON, "-m", "invoke", "--search-root",
                                 str(helpers.REPO_ROOT), *undo[1:]])],
        cwd=tmp_path, env=helpers.clean_env(helpers.project_root(tmp_path, None)),
        capture_output=True, text=True, timeout=60)
    assert pasted.returncode == 0, pasted.stderr
    assert content(wal_db) == before


# ---------------------------------------------------------------- 4. restore.volume's go-back


def test_the_go_back_leaves_no_clone_the_proxy_can_start(site):  # noqa: F811
    """The clone ran and autostarts (its /health never answered): the pasted go-back
    makes it unstartable before stopping it, so Fly's proxy can never start it on the
    snapshot's data when no other machine may run."""
    site.health.mode = "503"
    result = site.run("restore.volume", "--snapshot", "latest", "--yes", "--json",
                      env={"INVOKE_HEALTH_TIMEOUT": "0.5"})
    assert result.returncode != 0, result
    (clone,) = [m["id"] for m in site.world.machines() if m["id"] != MID]
    assert autostarts(site.world.machine(clone)) == [True]  # the autostart step ran
    for line in result.json()["go_back"]:
        assert fly(site, *shlex.split(line)[1:]).returncode == 0, line
    look(site)
    assert started(site) == [MID]
    site.world.proxy_traffic()  # requests keep arriving; then the old machine is guarded
    for argv in (["update", MID, "-a", APP, "--autostart=false", "--skip-start", "--yes"],
                 ["stop", MID, "-a", APP]):  # and stopped (a next restore.volume, say)
        assert fly(site, "machine", *argv).returncode == 0
    look(site, times=4)
    assert site.world.machine(clone)["state"] != "started"


# ---------------------------------------------------------------- 5. a corrupt live database


def test_the_corrupt_database_refusal_always_shows_the_way_out(wal_db, backup_dir,
                                                               run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    helpers.damage_cells(wal_db)
    refused = run_invoke("restore", "--yes")
    line = helpers.assert_one_line_error(refused, 2, strict=False)
    assert "is corrupt (quick_check: On tree page" in line, line
    assert "invoke restore --app-stopped" in line and "Nothing was changed" in line, line

    done = run_invoke("restore", made.name, "--app-stopped", "--yes", "--json")
    assert done.returncode == 0, done
    shown = [ln for ln in done.stderr.splitlines() if "is corrupt" in ln]
    assert len(shown) == 1 and "On tree page" in shown[0], done.stderr  # one problem
    assert "On tree page" not in done.stderr.replace(shown[0], "")  # not 60 lines
    moved = {Path(name).name for name in done.json()["moved_aside"]}
    named = shown[0].split("moved aside to ", 1)[1].split()[0]
    assert named in moved, (moved, shown[0])  # the name shown is the name used


# ---------------------------------------------------------------- 6. the dry run of a broken one


@pytest.mark.parametrize("how", ["corrupt", "missing"])
def test_the_dry_run_says_what_the_real_run_does_with_a_broken_live_database(
        wal_db, backup_dir, run_invoke, how):
    engine.create_backup(wal_db, backup_dir)
    if how == "corrupt":
        helpers.damage_cells(wal_db)
    else:
        for path in wal_db.parent.glob("steps.db*"):
            path.unlink()
    plain = run_invoke("restore", "--dry-run", "--json")  # s20-dry: the run's refusal
    real = run_invoke("restore", "--yes", "--json")
    assert plain.returncode == real.returncode == 2, plain
    assert f"the live database data/steps.db is {how}" in plain.json()["error"]
    assert "--app-stopped" in plain.json()["error"]
    assert plain.json()["error"] == real.json()["error"]
    stopped = run_invoke("restore", "--dry-run", "--app-stopped", "--json")
    assert stopped.json()["live_state"] == how
    keys = [step["key"] for step in stopped.json()["steps"]]
    assert "safety" not in keys and "aside" in keys, keys
    assert "will refuse" not in stopped.stderr and "the real run" in stopped.stderr


# ---------------------------------------------------------------- 8. hints that lead somewhere


def test_a_production_drill_names_adopt_with_production(slow_health_prod):
    prod = slow_health_prod
    old = helpers.old_script_backup(prod.remote_dir, dt.datetime.now(dt.UTC)
                                    - dt.timedelta(days=3), prod.db)
    result = prod.run("backup.drill", old.name, "--production")
    assert result.returncode == 5, result
    hints = [line for line in result.stderr.splitlines() if "backup.adopt" in line]
    assert hints and all(f"backup.adopt {old.name} --production" in line for line in hints), \
        result.stderr


def test_a_damaged_npm_backup_is_never_sent_to_adopt(wal_db, backup_dir, run_invoke):
    engine.create_backup(wal_db, backup_dir)
    old = helpers.old_script_backup(backup_dir, dt.datetime.now(dt.UTC)
                                    - dt.timedelta(days=3), wal_db)
    helpers.damage_cells(old)
    for args in (("backup.drill", old.name), ("backup.verify", "all")):
        result = run_invoke(*args)
        assert result.returncode == 5, result
        assert f"backup.adopt {old.name}" not in result.stderr, result.stderr
        assert "backup.adopt all" not in result.stderr, result.stderr
        assert f"{old.name} is also damaged, so adopting it would fail" in result.stderr


def test_restore_from_without_a_target_names_both_targets(tmp_path, run_invoke):
    result = run_invoke("restore", "--from", str(tmp_path / "x.db"), "--yes")
    line = helpers.assert_one_line_error(result, 2)
    assert "--production" in line and "--host" in line, line


# ---------------------------------------------------------------- 9. where other sources' go


def test_other_sources_folders_are_named_and_a_download_folder_is_its_hosts(
        tmp_path, wal_db, backup_dir, run_invoke):
    engine.create_backup(wal_db, backup_dir)
    other = helpers.make_wal_db(tmp_path / "other.db", users=5, steps=10)
    made = run_invoke("backup", "--db", str(other))
    assert made.returncode == 0, made
    (folder,) = [p for p in backup_dir.iterdir() if p.is_dir() and p.name.startswith("db-")]
    assert f"own folder {folder.relative_to(tmp_path)}" in made.stderr, made.stderr
    for task in ("backup.list", "backup.status"):
        shown = run_invoke(task)
        assert f"{folder.name} (1)" in shown.stderr, shown.stderr
    # a download from production, as backup.download leaves it: another database's
    # (the machine's /data/steps.db), in the app's own folder
    downloads = backup_dir / "fly-step-app-4x-yhw"
    prod_db = helpers.make_wal_db(tmp_path / "machine" / "data" / "steps.db", steps=40)
    got = engine.create_backup(prod_db, downloads)
    env = {"INVOKE_BACKUP_DIR": str(downloads)}
    status = run_invoke("backup.status", "--json", env=env)
    assert status.returncode == 0 and status.json()["latest"]["name"] == got.name, status
    listed = run_invoke("backup.list", env=env)
    assert got.name in listed.stderr and "other db" not in listed.stderr, listed.stderr
    drill = run_invoke("backup.drill", env=env)
    assert drill.returncode == 0, drill
    assert f"drill latest in {downloads}" in drill.stderr, drill.stderr  # never "local db"


def test_the_list_line_after_a_backup_of_another_database_runs_as_pasted_under_a_config_file(
        tmp_path, wal_db, run_invoke):
    """s28 review-break2 #1: "list them with `INVOKE_BACKUP_DIR=… invoke --config c.yaml
    backup.list`" listed c.yaml's folder, and named the same line again."""
    other = helpers.make_wal_db(tmp_path / "other.db", users=5, steps=10)
    (tmp_path / "c.yaml").write_text(f"backup:\n  dir: {tmp_path / 'c backups'}\n")
    made = run_invoke("-f", "c.yaml", "backup", "--db", str(other))
    assert made.returncode == 0, made
    line = " ".join(made.stderr.split())
    command = line[line.index("list them with `") + 16:]
    words = shlex.split(command[:command.index("`")])
    assert words[:3] == ["invoke", "--config", "c.yaml"] and "--backup-dir" in words, words
    listed = run_invoke(*words[1:], "--json")
    assert listed.returncode == 0, listed
    (backup,) = listed.json()  # the other database's folder, not c.yaml's
    assert Path(backup["path"]).parent.name.startswith("db-other-"), backup
    assert backup["source"] == str(other), backup
