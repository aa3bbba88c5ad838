"""The deploy's data guard (issue 23 #1): after `fly deploy` and /health, the live database
on the machine is compared with the pre-deploy backup; a migration that drops a table or
deletes rows fails the deploy with exit 16, names the table and the numbers, and says how
to put the data back. The new release's migration is SQL the flyctl double runs against
the machine's database when the deploy succeeds (``FlyWorld.deploy_migrates``), as the
app's migrations run when it boots."""

from __future__ import annotations

import shlex
import sqlite3
import subprocess

import pytest
from invoke import Config

from ops import config, data_guard, engine, node, remote, undo
from ops.data_guard import RowLossLimit, compare
from ops.errors import ExitCode, OpsError
from ops.targets import scripted
from tests import helpers, node_env
from tests.fake_production import remove_tools
from tests.helpers import run_parallel

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")

# ---------------------------------------------------------------- the judgement, as data


@pytest.mark.parametrize(("before", "after", "lost"), [
    (3000, 3004, False),  # the app kept writing
    (3000, 2990, False),  # a few rows deleted by users: under both limits
    (3000, 2000, True),  # a third gone: over 20 % and over 10 rows
    (20, 1, True),  # a small table nearly emptied
    (200, 101, True),
    (200, 195, False),
    (3000, 2850, False),  # 150 rows is only 5 %
    (300, 250, False),  # 17 % of a small table
    (120, 10, True),  # 110 rows, 92 %
    (40, 31, False),  # 9 rows: under the 10
    (50, 0, True),  # emptied: lost, whatever its size
    (1, 0, True),
    (0, 0, False),
])
def test_the_default_limit_fires_on_real_loss_and_not_on_a_normal_day(before, after, lost):
    comparison = compare("b", {"t": before}, {"t": after})
    assert comparison.ok is (not lost), comparison


def test_a_table_gone_fails_even_empty_and_a_new_table_is_only_shown():
    comparison = compare("b", {"steps": 5, "old": 0}, {"steps": 5, "new": 3},
                         schema_before=["table steps", "table old", "column old.x"],
                         schema_after=["table steps", "table new", "column new.y"])
    assert comparison.lost == ("table old is gone (it had 0 rows)",)
    # the columns of a table that came or went are said by the table's own line
    assert comparison.added == ("table new",) and comparison.dropped == ("table old",)


def test_a_column_dropped_from_a_table_with_a_dot_in_its_name_is_lost():
    """`column a.b.secret` is table `a.b`'s column, not table `a`'s (review-break #3)."""
    schema = ["table a.b", "column a.b.id", "column a.b.secret", "table a", "column a.x"]
    comparison = compare("b", {"a.b": 500, "a": 1}, {"a.b": 500, "a": 1},
                         schema_before=schema,
                         schema_after=[e for e in schema if not e.endswith("secret")])
    assert comparison.lost == ("column a.b.secret is gone, and its values with it",)


def test_a_dropped_column_is_lost_data_and_an_added_one_is_not():
    before = ["table steps", "column steps.id", "column steps.count"]
    dropped = compare("b", {"steps": 9}, {"steps": 9}, schema_before=before,
                      schema_after=["table steps", "column steps.id"])
    assert dropped.lost == ("column steps.count is gone, and its values with it",)
    added = compare("b", {"steps": 9}, {"steps": 9}, schema_before=before,
                    schema_after=[*before, "column steps.note", "index steps_by_day"])
    assert added.ok and added.added == ("column steps.note", "index steps_by_day")


def test_allowed_tables_pass_and_say_so_and_litestreams_tables_are_not_the_apps():
    comparison = compare("b", {"steps": 3000, "sessions": 40, "_litestream_seq": 1},
                         {"steps": 0, "sessions": 0},
                         schema_before=["table _litestream_seq"], allow=["steps", "nope"])
    assert comparison.lost == ("table sessions lost 40 of 40 rows (40 → 0)",)
    assert comparison.allowed == ("steps",)
    assert "_litestream_seq" not in comparison.tables and not comparison.dropped


@pytest.mark.parametrize("value", [
    "0.2", {"fraction": "nan"}, {"fraction": float("inf")}, {"fraction": 1.5},
    {"fraction": True}, {"rows": -1}, {"rows": 2.5}, {"rows": "many"}, {"limit": 3}, [0.2],
])
def test_a_bad_max_row_loss_is_refused_with_its_key(value):
    with pytest.raises(ValueError, match=r"deploy\.max_row_loss"):
        data_guard.row_loss_limit(value)


def test_max_row_loss_takes_numbers_as_an_environment_variable_spells_them():
    assert data_guard.row_loss_limit({"fraction": "0.5", "rows": "10"}) == RowLossLimit(0.5, 10)
    assert data_guard.row_loss_limit({"rows": 0}) == RowLossLimit(0.2, 0)


def test_the_summary_lines_show_changes_and_count_the_rest():
    record = compare("b", {"steps": 3000, "users": 200, "teams": 4},
                     {"steps": 3004, "users": 200, "teams": 4},
                     schema_after=["column steps.note"]).as_record()
    assert data_guard.record_lines(record) == [
        "steps 3,000 → 3,004 (+4)", "2 tables unchanged", "+ column steps.note"]


def test_a_table_that_lost_a_column_is_not_counted_unchanged():
    record = compare("b", {"steps": 3000, "users": 200},
                     {"steps": 3000, "users": 200},
                     schema_before=["column steps.updated_at"]).as_record()
    assert data_guard.record_lines(record) == [
        "1 table unchanged", "- column steps.updated_at",
        "LOST: column steps.updated_at is gone, and its values with it"]


def test_an_allowed_table_the_guard_never_saw_is_named():
    comparison = compare("b", {"steps": 3000}, {"steps": 3000})
    assert data_guard.unseen_allowed(comparison, ["stepz", "steps", "stepz"]) == ["stepz"]


# ---------------------------------------------------------------- through the CLI


ADDITIVE = ("ALTER TABLE steps ADD COLUMN note TEXT; CREATE TABLE badges (id INTEGER "
            "PRIMARY KEY, name TEXT); INSERT INTO badges (name) VALUES ('first'), ('second');")
DELETES = "DELETE FROM steps WHERE id > 1000;"  # 2,000 of 3,000 rows
DROPS = "DROP TABLE teams;"


def test_an_additive_migration_passes_and_is_shown(site):
    site.world.deploy_migrates(site.db, ADDITIVE)
    result = site.run("deploy", "--json")
    assert result.returncode == 0, result
    data = site.audit()[-1]["data"]
    assert data["ok"] is True and data["lost"] == [] and data["source"] == "recorded"
    assert data["added"] == ["column steps.note", "table badges"]
    assert data["tables"]["badges"] == [None, 2]
    assert "  data      badges none → 2 (new table)" in result.stderr
    assert "+ column steps.note" in result.stderr


def test_deleted_rows_and_a_dropped_table_fail_the_gate_with_the_numbers(sites):
    deleted, dropped = sites("deleted"), sites("dropped")
    deleted.world.deploy_migrates(deleted.db, DELETES)
    dropped.world.deploy_migrates(dropped.db, DROPS)
    r_deleted, r_dropped = run_parallel([lambda: deleted.run("deploy", "--json"),
                                         lambda: dropped.run("deploy", "--json")])
    for site, result, words in ((deleted, r_deleted, "table steps lost 2,000 of 3,000 rows "
                                 "(3,000 → 1,000)"), (dropped, r_dropped, "table teams is gone")):
        assert result.returncode == ExitCode.DATA_LOST == 16, result
        error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(error) == 1 and words in error[0], result.stderr
        record = site.audit()[-1]
        backup = record["backup"]["name"]
        assert "`invoke deploy.undo`" in error[0] and f"since backup {backup}" in error[0]
        assert record["outcome"] == "data failed" and record["exit_code"] == 16
        assert record["data"]["ok"] is False and words in record["data"]["lost"][0]
        assert record["release"]["version"] == 13  # it is out: the guard says so, after
        # the machine's deploy lock is still released by the closing step
        assert record["steps"][-1]["step"] == "record" and record["steps"][-1]["outcome"] == "ok"
        assert not site.machine_lock.exists()
        assert "ssh shape" in site.labels() and site.labels()[-1] == "ssh shape"
        # the summary's way back puts the data back too, before the code-only rollback
        shown = result.stderr.splitlines()
        undo_at = shown.index("  undo      invoke deploy.undo (code and data: the backup "
                              "above)")
        assert shown[undo_at + 1] == ("  rollback  invoke deploy.rollback --to 12 (code "
                                      "only), or by hand:")


def test_a_failed_health_gate_says_the_guard_did_not_run_and_how_to_count(site):
    """The health gate failed first: nobody knows whether rows were lost; the output and
    the by-hand line say so and give the undo's dry run (it counts them), never "if the
    migration destroyed data" (review-op #4)."""
    site.world.deploy_migrates(site.db, DELETES)
    site.health.mode = "503"
    result = site.run("deploy", "--health-timeout", "0.5")
    assert result.returncode == ExitCode.HEALTH_FAILED, result
    record = site.audit()[-1]
    backup = record["backup"]["name"]
    assert record.get("data") is None
    assert (f"  data      the data guard did not run: health failed first; `invoke "
            f"deploy.undo --dry-run` counts the rows against {backup}") in result.stderr
    line = (f"  invoke deploy.undo --dry-run   # the data guard did not run: this counts the "
            f"rows per table live against {backup}; rows lost: invoke deploy.undo")
    assert any(shown.startswith(line) for shown in record["manual"]), record["manual"]
    assert "destroyed" not in result.stderr
    dry = site.run("deploy.undo", "--dry-run")  # the line tells the truth: it counts
    assert dry.returncode == 0, dry
    assert "steps 3,000 → 1,000" in dry.stderr


def test_a_deploy_on_top_of_a_failed_guard_warns_and_names_the_undo(site):
    """The last deploy failed its guard and nobody undid it: the next deploy's backup would
    lack the rows, and a plain undo would then target the new deploy (review-op #5)."""
    site.world.deploy_migrates(site.db, DELETES)
    assert site.run("deploy").returncode == ExitCode.DATA_LOST
    failed = site.audit()[-1]
    result = site.run("deploy", "--json")
    assert result.returncode == 0, result
    warning = (f"WARNING: the last deploy, v13 at {failed['when'][:19]}Z, failed its data "
               "guard (exit 16) and was not undone: this deploy's backup would not have the "
               "lost rows; to put them back first: invoke deploy.undo")
    assert warning in result.stderr.replace("\n", " ")
    assert site.audit()[-1]["data_failed_before"] == {"deploy": "v13",
                                                      "when": failed["when"][:40]}


def test_only_a_failed_guard_not_undone_is_warned_about():
    def deployed(version, **extra):
        return {"kind": "deploy", "app": "a", "when": f"w{version}",
                "release": {"version": version}, **extra}

    failed = deployed(13, exit_code=16)
    assert undo.data_failed_not_undone([deployed(12), failed], "a") == {"deploy": "v13",
                                                                       "when": "w13"}
    assert undo.data_failed_not_undone([failed, deployed(14)], "a") is None  # not the last
    assert undo.data_failed_not_undone([failed], "b") is None
    undid = {"kind": "undo", "app": "a", "deploy": "v13", "release": {"version": 14}}
    assert undo.data_failed_not_undone([failed, undid], "a") is None
    stopped = {"kind": "undo", "app": "a", "deploy": "v13"}  # stopped before its redeploy
    assert undo.data_failed_not_undone([failed, stopped], "a") is not None
    assert undo.data_failed_not_undone(["junk", None, failed], "a") is not None


def test_allow_data_loss_lets_an_intended_migration_through_and_is_audited(site):
    site.world.deploy_migrates(site.db, DELETES + DROPS)
    result = site.run("deploy", "--json", "--allow-data-loss", "steps",
                      "--allow-data-loss", "teams")
    assert result.returncode == 0, result
    data = site.audit()[-1]["data"]
    assert data["ok"] is True and data["allowed"] == ["steps", "teams"]
    assert "allowed (--allow-data-loss): teams" in result.stderr
    assert "WARNING: --allow-data-loss" not in result.stderr


def test_allow_data_loss_naming_no_table_is_a_warning(site):
    site.world.deploy_migrates(site.db, ADDITIVE)
    result = site.run("deploy", "--allow-data-loss", "stepz")
    assert result.returncode == 0, result
    backup = site.audit()[-1]["backup"]["name"]
    assert (f"WARNING: --allow-data-loss stepz: no table stepz in {backup} nor in the live "
            "database (a typo?): it excused nothing") in result.stderr.replace("\n", " ")


def test_one_allowed_table_does_not_excuse_another(site):
    site.world.deploy_migrates(site.db, DELETES + DROPS)
    result = site.run("deploy", "--allow-data-loss", "steps")
    assert result.returncode == 16, result
    assert "table teams is gone" in result.stderr
    assert site.audit()[-1]["data"]["allowed"] == ["steps"]


@pytest.mark.parametrize("tools", ["sqlite3", "node"])
def test_the_node_image_and_a_sqlite3_only_machine_judge_the_same(sites, tools):
    site = sites(tools)
    env = {}
    if tools == "node":
        site.world.set_machine_image("node")
        env = {"INVOKE_MACHINE_APP_DIR": str(node_env.app_dir())}
    else:
        remove_tools(site, "sqlite3")  # no python3: the sqlite3 CLI's strategy
    site.world.deploy_migrates(site.db, DELETES + "ALTER TABLE users DROP COLUMN name;")
    result = site.run("deploy", "--json", env=env)
    assert result.returncode == 16, result.stderr
    record = site.audit()[-1]
    assert record["backup"]["strategy"] == tools
    assert record["data"]["lost"] == [
        "table steps lost 2,000 of 3,000 rows (3,000 → 1,000)",
        "column users.name is gone, and its values with it"]
    assert record["data"]["tables"]["users"] == [200, 200]


def test_a_skip_backup_deploy_has_nothing_to_compare_and_says_so(site):
    site.world.deploy_migrates(site.db, DROPS)
    result = site.run("deploy", "--skip-backup", "--json")
    assert result.returncode == 0, result
    (data,) = [s for s in site.audit()[-1]["steps"] if s["step"] == "data"]
    assert data["outcome"] == "skipped" and "no backup to compare with" in data["detail"]


# ---------------------------------------------------------------- three engines, one answer

HOSTILE = ['we ird "t"', "new\nline", "ünï", "__OPS_ENTRY__ x", "a.b"]


def test_the_three_engines_give_the_same_shape_even_for_hostile_names(tmp_path):
    """python3's engine, node's with the app's binding, and the sqlite3 CLI's lines read
    the same live database and backup to the same counts and schema."""
    db = helpers.make_wal_db(tmp_path / "steps.db", users=5, steps=30)
    conn = sqlite3.connect(db)
    for i, name in enumerate(HOSTILE):
        quoted = '"' + name.replace('"', '""') + '"'
        conn.execute(f"CREATE TABLE {quoted} ({quoted} TEXT, n INT)")
        conn.executemany(f"INSERT INTO {quoted} VALUES (?, ?)", [("x", j) for j in range(i)])
    conn.commit()
    backups = tmp_path / "backups"
    made = engine.create_backup(db, backups, check="quick")
    conn.execute(f'DROP TABLE "{HOSTILE[0].replace(chr(34), chr(34) * 2)}"')
    conn.execute("DELETE FROM steps WHERE id > 10")
    conn.commit()
    conn.close()

    python = engine.data_shape(db, backups, made.name)
    script = remote.shape_script(str(db), str(backups), made.name)
    sqlite = scripted.sqlite_shape(helpers.run_remote(
        script, helpers.machine_path(tmp_path, python=False, sqlite=True)), made.name)
    app = node_env.app_dir()
    ran = subprocess.run(
        shlex.split(remote.wrap(node.with_app_dir(str(app), script))),
        input=node.engine_stdin(), capture_output=True,
        env={"PATH": node_env.node_path(tmp_path / "bin-node", helpers.BASE_TOOLS),
             "LANG": "C.UTF-8"})
    output = remote.parse_output(ran.stdout.decode())
    assert output.strategy == "node", ran.stderr
    js = output.data("shape")
    assert python == sqlite == js
    assert python["backup"][HOSTILE[0]] == 0 and HOSTILE[0] not in python["live"]
    assert f"table {HOSTILE[1]}" in python["live_schema"]
    assert python["live"]["steps"] == 10 and python["backup"]["steps"] == 30


def test_a_backup_without_counts_is_counted_only_once_its_checksum_matches(tmp_path):
    db = helpers.make_wal_db(tmp_path / "steps.db", users=5, steps=30)
    made = engine.create_backup(db, tmp_path / "b", check="quick")
    path = tmp_path / "b" / made.name
    path.with_name(path.name + ".json").unlink()  # an old script's backup: a .sha256 only
    shape = engine.data_shape(db, tmp_path / "b", made.name)
    assert shape["source"] == "computed" and shape["backup"]["steps"] == 30
    changed = sqlite3.connect(path)  # no longer the file its checksum vouches for
    changed.execute("DELETE FROM steps")
    changed.commit()
    changed.close()
    with pytest.raises(engine.EngineError, match="SHA-256") as caught:
        engine.data_shape(db, tmp_path / "b", made.name)
    assert caught.value.kind == "verify_failed"


@pytest.mark.parametrize(("env", "words"), [
    ({"INVOKE_DEPLOY_MAX_ROW_LOSS_ROWS": "abc"}, "deploy.max_row_loss.rows must be a whole"),
    ({"INVOKE_DEPLOY_MAX_ROW_LOSS_FRACTION": "inf"}, "deploy.max_row_loss.fraction must be"),
])
def test_the_guards_settings_from_the_environment_are_checked_in_one_line(tmp_path, env, words):
    result = helpers.run_here("deploy", "--dry-run", cwd=tmp_path, env=env)
    assert result.returncode == ExitCode.USAGE, result
    assert result.stderr.strip().splitlines()[-1].startswith("Error: config " + words), result
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("setting", "flags", "allowed"), [
    ("sessions, tmp", ["steps"], ("sessions", "tmp", "steps")),  # as the variable gives it
    (["sessions"], ["sessions"], ("sessions",)),
    (" , ", [], ()),
])
def test_allowed_tables_come_from_the_setting_then_the_flag(setting, flags, allowed):
    settings = config.load(Config(overrides={"deploy": {"allow_data_loss": setting}}),
                           allow_data_loss=flags)
    assert settings.allow_data_loss == allowed


@pytest.mark.parametrize("setting", [7, [1], {"a": "b"}, ["ok", ""]])
def test_a_bad_allow_data_loss_is_a_usage_error(setting):
    with pytest.raises(OpsError) as caught:
        config.load(Config(overrides={"deploy": {"allow_data_loss": setting}}))
    assert caught.value.code == ExitCode.USAGE
