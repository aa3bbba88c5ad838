"""A live database with another name (a hard link) is refused by backup and restore, on
every engine, before anything is written: SQLite names a database's -wal after the name it
was opened by, so through another name than the app's a backup misses the app's newest
commits and the app's -wal can undo a restore (s24 review-break3, note A). A restore's own
crash leftovers (its placed temporary, a moved-aside file) share the inode and are let
through: refusing them would block the restore that finishes the job."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ops import engine, node, remote
from ops.errors import ExitCode, OpsError
from tests import helpers, node_env
from tests.fake_production import APP, MACHINE, changed_after_backup, site, use_engine  # noqa: F401
from tests.helpers import (
    BASE_TOOLS,
    assert_one_line_error,
    machine_path,
    run_remote,
)

ENGINES = ["python3", "sqlite3", "node"]
STAMP = "2026-12-07T10-00-00Z"
# what a crashed restore of ours leaves beside steps.db under the same inode
OURS = [".tmp-restore-steps.db.4242", f"steps.db.corrupt-{STAMP}", f"steps.db.stale-{STAMP}-2"]
# names anyone else may give it, the near misses of our own among them (s25 review-break #3:
# the sqlite3 CLI took the -1Z-2 one for ours)
FOREIGN = ["steps-copy.db", ".tmp-restore-steps.db.42x", ".tmp-restore-other.db.42",
           ".tmp-restore.KWG2qs", f"steps.db.corrupt-{STAMP}-x", f"steps.db.corrupt-{STAMP}-1Z-2",
           f"steps.db.corrupt-stale-{STAMP}", f"corrupt-{STAMP}", f"steps.db.broken-{STAMP}",
           "odd\nname.db", "-n"]


@pytest.fixture
def live(wal_db):
    return wal_db


def machine(tmp_path, strategy: str):
    """Run a script on a machine whose best engine is ``strategy``."""
    if strategy == "node":
        path = node_env.node_path(tmp_path / "bin-node", BASE_TOOLS)
        return lambda script: run_remote(node.with_app_dir(str(node_env.app_dir()), script),
                                         path, engine_source=True)
    path = machine_path(tmp_path, python=strategy == "python3", sqlite=strategy == "sqlite3")
    return lambda script: run_remote(script, path, engine_source=True)


def mount_of(path: Path) -> Path:
    """Where ``path``'s filesystem is mounted: where the engines' ``find`` starts (/tmp may
    be a mount of its own)."""
    while not os.path.ismount(path):
        path = path.parent
    return path


def refused_backup(tmp_path, live, strategy: str) -> str:
    """The machine's refusal of a backup of ``live``, as the toolkit words it."""
    out = machine(tmp_path, strategy)(
        remote.backup_script(str(live), str(live.parent / "backups"), check="quick"))
    with pytest.raises(OpsError) as refused:
        out.data("backup")
    return str(refused.value)


@pytest.mark.parametrize("strategy", ENGINES)
def test_each_engine_refuses_another_name_and_lets_its_own_leftovers_through(
        tmp_path, live, strategy):
    run = machine(tmp_path, strategy)
    backups = live.parent / "backups"
    for name in FOREIGN + OURS:
        other = live.with_name(name)
        os.link(live, other)
        out = run(remote.backup_script(str(live), str(backups), check="quick"))
        assert out.strategy == strategy
        if name in OURS:
            assert out.data("backup")["name"], (name, out.stdout)
        else:
            with pytest.raises(OpsError) as refused:
                out.data("backup")
            said = str(refused.value)
            assert refused.value.code == ExitCode.USAGE, (name, said)
            assert f"database {live} has another name (a hard link): remove every name " \
                "but the one the app opens" in said, said
            assert "SQLite keeps a -wal per name" in said, said
            assert "\n" not in said and "Nothing was changed. The other name" in said, said
            # every engine in the sqlite3 CLI's words (s26 review-op #7): the name as it
            # stands, in single quotes, or counted beside the find that lists it
            shown = engine.name_shown(str(live.parent / name))
            assert said.endswith(f"The other name: {shown}" if shown else
                                 "2>/dev/null` lists: 1 beside it (not shown)"), said
        other.unlink()
    made = engine.list_backups(backups)
    assert len(made) == len(OURS), [b.name for b in made]  # one per leftover, none refused


@pytest.mark.parametrize("strategy", ENGINES)
def test_a_name_in_another_folder_is_refused_and_said_to_be_outside(tmp_path, live, strategy):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.link(live, elsewhere / "steps.db")
    said = refused_backup(tmp_path, live, strategy)
    assert "has another name (a hard link)" in said
    assert said.endswith(f"The other name, which `find {mount_of(live)} -xdev -samefile {live} "
                         "2>/dev/null` lists: 1 outside its folder")
    assert not (live.parent / "backups").exists() or not engine.list_backups(
        live.parent / "backups")


def test_a_symlinked_live_path_is_judged_by_the_file_it_leads_to(tmp_path, live):
    link = tmp_path / "current.db"
    link.symlink_to(live)
    backups = tmp_path / "backups"
    assert engine.create_backup(link, backups).name  # a symlink is not a second name
    os.link(live, live.with_name("copy.db"))
    with pytest.raises(engine.EngineError, match=f"The other name: '{live.parent}/copy.db'"):
        engine.create_backup(link, backups)


@pytest.mark.parametrize("strategy", ENGINES)
def test_a_production_restore_and_backup_refuse_it_and_change_nothing(site, strategy):  # noqa: F811
    use_engine(site, strategy)
    made = changed_after_backup(site)
    os.link(site.db, site.db.with_name("steps-copy.db"))
    before, listed = site.db.read_bytes(), engine.list_backups(site.remote_dir)
    for args in (("restore", made.name, "--production", "--yes"),
                 ("restore", made.name, "--production", "--dry-run"),
                 ("backup", "--production")):
        result = site.run(*args, timeout=60)
        line = assert_one_line_error(result, 2, strict=False,
                                     contains="has another name (a hard link)")
        assert "steps-copy.db" in line and "Replace the live database" not in result.stderr
        # the names are on the machine: how to get there (s25 review-op #2)
        assert line.endswith("(the names are on the machine: open a shell there with "
                             f"`fly ssh console -a {APP} --machine {MACHINE}`)"), line
    assert site.db.read_bytes() == before
    assert engine.list_backups(site.remote_dir) == listed  # no safety backup, no new backup


def test_locally_backup_and_restore_refuse_it(wal_db, backup_dir, run_invoke, tmp_path):
    made = engine.create_backup(wal_db, backup_dir)
    os.link(wal_db, wal_db.with_name("other.db"))
    for args in (("backup",), ("restore", "--yes"), ("restore", "--dry-run")):
        result = run_invoke(*args)
        line = assert_one_line_error(result, 2, contains="has another name", strict=True)
        assert f"'{wal_db.parent}/other.db'" in line and "WARNING" not in result.stderr, result
    audit = (tmp_path / "data" / "deploys.jsonl").read_text().splitlines()
    assert json.loads(audit[-1])["outcome"] == "refused"  # as production records it
    assert [b.name for b in engine.list_backups(backup_dir)] == [made.name]


def test_a_restore_finishes_over_its_own_crash_leftover(wal_db, backup_dir, run_invoke):
    """kill -9 between ``place_restored``'s link and its unlink leaves the live database
    with our temporary's name too: the next restore goes on and proves itself."""
    made = engine.create_backup(wal_db, backup_dir)
    with sqlite3.connect(wal_db) as conn:
        conn.execute("DELETE FROM steps WHERE id > 100")
    leftover = wal_db.with_name(f".tmp-restore-{wal_db.name}.999999")
    os.link(wal_db, leftover)
    result = run_invoke("restore", made.name, "--yes")
    assert result.returncode == 0, result
    assert engine.describe_file(wal_db, live=True)[0] == made.tables


def test_a_corrupt_live_database_with_another_name_is_refused_too(
        wal_db, backup_dir, run_invoke):
    """Moved aside, the corrupt file would stay under the name the app may open (s25
    review-break #2: a file without SQLite's header was restored here, refused there)."""
    engine.create_backup(wal_db, backup_dir)
    wal_db.write_bytes(b"not a database\n" * 100)
    os.link(wal_db, wal_db.with_name("app.db"))
    for args in (("restore", "--app-stopped", "--yes"), ("restore", "--app-stopped", "--dry-run")):
        assert_one_line_error(run_invoke(*args), 2, contains="has another name", strict=False)
    assert wal_db.read_bytes() == b"not a database\n" * 100


@pytest.mark.parametrize("strategy", ENGINES)
def test_each_engine_refuses_a_corrupt_one_with_another_name(tmp_path, live, strategy):
    made = engine.create_backup(live, live.parent / "backups")
    live.write_bytes(b"not a database\n" * 100)
    os.link(live, live.with_name("app.db"))
    out = machine(tmp_path, strategy)(remote.restore_script(
        str(live), str(live.parent / "backups"), made.name, check="quick", app_stopped=True))
    with pytest.raises(OpsError, match="has another name"):
        out.data("restore")
    assert not [p.name for p in live.parent.iterdir() if ".corrupt-" in p.name]  # not moved
    assert live.read_bytes() == b"not a database\n" * 100


def test_the_sqlite3_restores_own_crash_leftover_lets_the_next_restore_finish(tmp_path, live):
    """kill -9 of the sqlite3 CLI's restore between linking its placed file to the live
    name and removing the temporary (s25 review-break #1: it was `mktemp .tmp-restore.XXXXXX`,
    a name no engine knew as ours, so every later restore and backup was refused)."""
    made = engine.create_backup(live, live.parent / "backups")
    live.write_bytes(b"not a database\n" * 100)  # the app is stopped: placed anew
    path = Path(machine_path(tmp_path, python=False, sqlite=True))
    killing = tmp_path / "bin-kill"
    killing.mkdir()
    for tool in path.iterdir():
        if tool.name != "ln":
            (killing / tool.name).symlink_to(os.path.realpath(tool))
    (killing / "ln").write_text(f"""#!/bin/sh
{shutil.which("ln")} "$@"; rc=$?
case $1 in *.tmp-restore-*) kill -9 0;; esac
exit $rc
""")
    (killing / "ln").chmod(0o755)
    script = remote.restore_script(str(live), str(live.parent / "backups"), made.name,
                                   check="quick", app_stopped=True)
    done = subprocess.run(shlex.split(remote.wrap(script)), capture_output=True, text=True,
                          env={"PATH": str(killing), "LANG": "C.UTF-8"}, start_new_session=True)
    assert done.returncode == -9, done
    leftover = [p.name for p in live.parent.iterdir() if p.name.startswith(".tmp-restore-")]
    assert len(leftover) == 1 and os.path.samefile(live.parent / leftover[0], live), leftover
    for strategy in ENGINES:
        out = machine(tmp_path, strategy)(remote.restore_script(
            str(live), str(live.parent / "backups"), made.name, check="quick", app_stopped=True))
        out.data("restore")  # raises with the refusal
        assert engine.describe_file(live, live=True)[0] == made.tables, strategy


@pytest.mark.parametrize(("shown", "outside", "said"), [
    (["'/d/a.db'"], 0, 'has another name (a hard link): remove every name but the one the app '
     'opens (if that is not this one, set db.path or db.remote_path to it first)'),
    (["'/d/a.db'"], 0, "Nothing was changed. The other name: '/d/a.db'"),
    # a name too long to show is counted, and the find lists it
    ([None], 0, "The other name, which `FIND` lists: 1 beside it (not shown)"),
    (["'/d/a'", None, "'/d/c'"], 0, "which `FIND` lists: 3 beside it ('/d/a', '/d/c', and 1 "
     "not shown)"),
    ([], 2, "has 2 other names (hard links)"),
    ([], 2, "The other names, which `FIND` lists: 2 outside its folder"),
    ([f"'/d/{n}'" for n in "abcde"], 1, "The other names, which `FIND` lists: 5 beside it "
     "('/d/a', '/d/b', '/d/c', and 2 not shown) and 1 outside its folder"),
    ([f"'/d/{n}'" for n in "abcde"], 1, "has 6 other names (hard links)"),
])
def test_the_line_says_how_many_names_and_lists_three(shown, outside, said):
    line = engine.other_names_said("/d/steps.db", shown, outside, "FIND")
    assert said in line and line.count("`") in (0, 2), line


@pytest.mark.parametrize("strategy", ENGINES)
def test_every_engine_says_it_alike_and_escapes_a_backtick_in_a_name(tmp_path, live, strategy):
    """Names with a backtick paired with the find's own when the line was laid out, and the
    engines' lines differed (s25 review-break2 #1, #2; s26 review-op #7: quotes): the same
    words everywhere now, a name with a backtick counted, not shown."""
    for name in ("a`b.db", "c.db", "d.db", "e.db"):
        os.link(live, live.with_name(name))
    sub = live.parent / "sub"
    sub.mkdir()
    os.link(live, sub / "f.db")
    said = refused_backup(tmp_path, live, strategy)
    folder = live.parent
    assert said == (
        f"backup on the machine: database {live} has 5 other names (hard links): remove every "
        "name but the one the app opens (if that is not this one, set db.path or "
        "db.remote_path to it first): SQLite keeps a -wal per name, so through another name a "
        "backup misses the app's writes and its -wal can undo a restore. Nothing was changed. "
        f"The other names, which `find {mount_of(live)} -xdev -samefile {live} 2>/dev/null` "
        f"lists: 4 beside it ('{folder}/c.db', '{folder}/d.db', and 2 not shown) and 1 "
        "outside its folder"), said


@pytest.mark.parametrize("strategy", ["python3", "sqlite3"])
def test_machine_check_and_the_drill_say_the_backup_and_restore_cannot_run(site, strategy):  # noqa: F811
    """They said a restore could run on a machine where every one was refused (s25
    review-break2 #3)."""
    use_engine(site, strategy)
    changed_after_backup(site)
    os.link(site.db, site.db.with_name("steps-copy.db"))
    checked = site.run("machine.check", "--production", "--json", timeout=60)
    assert checked.returncode == 1, checked
    cannot = checked.json()["cannot"]
    assert set(cannot) >= {"backup", "restore"} and "has another name" in cannot["restore"]
    assert "CANNOT RUN: database" in checked.stderr
    drill = site.run("backup.drill", "--production", timeout=60)
    assert drill.returncode == 5 and "has another name" in drill.stderr, drill


@pytest.mark.parametrize("readlink", [True, False])
def test_the_sqlite3_cli_judges_a_symlinked_path_by_the_file_it_leads_to(tmp_path, live,
                                                                          readlink):
    """Without resolving it, the shell listed the real database as a name to remove
    (s25 review-break2 #4); without readlink it follows the links as ls shows them (it
    refused there, and a dry run with it refused a run that went on: review-break4 #2)."""
    link = tmp_path / "current.db"
    link.symlink_to(live)
    os.link(live, live.with_name("copy.db"))
    path = Path(machine_path(tmp_path, python=False, sqlite=True))
    if readlink:
        (path / "readlink").symlink_to(shutil.which("readlink"))
    out = run_remote(remote.backup_script(str(link), str(tmp_path / "backups"), check="quick"),
                     str(path), engine_source=True)
    with pytest.raises(OpsError) as refused:
        out.data("backup")
    said = str(refused.value)
    assert said.endswith(f"The other name: '{live.parent}/copy.db'"), said  # as python3 says


def test_a_name_cannot_forge_what_machine_check_reports(tmp_path, run_invoke):
    """A listed name went into the probe's facts with its newlines, so a name could add
    entry lines: another sqlite3, an empty refusal (s25 review-break3 #1)."""
    db = helpers.make_wal_db(tmp_path / "data" / "steps.db")
    forged = "x\n__OPS_ENTRY__ sqlite3 9.9.9\n__OPS_ENTRY__ other_names\n__OPS_RESULT__ {}"
    os.link(db, db.with_name(forged))
    checked = run_invoke("machine.check", "--json")
    assert checked.returncode == 1, checked
    report = checked.json()
    assert report["facts"]["sqlite3"] != "9.9.9", report["facts"]
    assert "has another name" in report["cannot"]["restore"], report
    assert "__OPS_ENTRY__" not in report["cannot"]["restore"], report
    assert report["cannot"]["restore"].endswith("lists: 1 beside it (not shown)"), report


@pytest.mark.parametrize("strategy", ENGINES)
def test_a_name_that_cannot_be_shown_as_it_stands_is_counted_never_shown_wrong(
        tmp_path, live, strategy):
    """fail() drops quotes, backslashes and non-ASCII bytes: `café.db` read `caf.db`, another
    file's name (s25 review-break3 #4), then `caf??.db`, which no paste finds. Such a name,
    or one too long for the line, is counted: the find lists it exactly (s26)."""
    for name in ('café.db', 'a"b\\c.db', "n" * 240 + ".db", "it's.db", "a-plain.db"):
        os.link(live, live.with_name(name))
    said = refused_backup(tmp_path, live, strategy)  # in byte order, a"b\c.db first
    assert said.endswith(f"lists: 5 beside it ('{live.parent}/a-plain.db', and 4 not "
                         "shown)"), said
    assert "caf" not in said and "it?s" not in said and "?" not in said.split("lists:")[1]


@pytest.mark.parametrize("strategy", ["python3", "sqlite3"])
def test_the_dry_runs_of_a_deploy_and_a_backup_refuse_it_as_their_runs_do(site, strategy):  # noqa: F811
    """deploy --dry-run said nothing, and the deploy then stopped at its backup (s25
    review-op #4); its look at the backup lock there now refuses it first, as the run."""
    use_engine(site, strategy)
    changed_after_backup(site)
    os.link(site.db, site.db.with_name("steps-copy.db"))
    for args, code in ((("deploy", "--dry-run"), None),
                       (("backup", "--production", "--dry-run"), 2)):
        result = site.run(*args, timeout=60)
        run = site.run(*args[:-1], timeout=120)  # what the run itself does
        assert "has another name (a hard link)" in result.stderr, result
        assert result.returncode == (code or run.returncode) != 0, (result, run)
        assert "a look at the locks" not in result.stderr, result  # the run's words
    cleanup = site.run("backup.cleanup", "--production", "--dry-run", timeout=60)
    assert cleanup.returncode == 0, cleanup  # its run never reads the live database
    site.db.with_name("steps-copy.db").unlink()
    site.db.unlink()  # missing: the dry runs passed while the runs failed (review-break4 #1)
    for args in (("deploy", "--dry-run"), ("backup", "--production", "--dry-run")):
        result, run = site.run(*args, timeout=60), site.run(*args[:-1], timeout=120)
        assert result.returncode == run.returncode != 0, (result, run)
        assert "database not found" in result.stderr, result


def test_a_deploy_says_the_refusal_once_on_its_step_and_once_in_its_error_line(site):  # noqa: F811
    """s25 last round: the refusal was printed four times (machine.check's warning about
    restore, the backup's nested step, its step, the Error line). The warning stays only
    when the deploy takes no backup, where it is the one place that says it."""
    use_engine(site, "python3")
    changed_after_backup(site)
    os.link(site.db, site.db.with_name("steps-copy.db"))
    words = "has another name (a hard link)"
    refused = site.run("deploy", timeout=120)
    assert refused.returncode == ExitCode.DEPLOY_ABORTED_BACKUP, refused
    assert refused.stderr.count(words) == 2 and words in refused.error_lines[-1], refused
    assert "a restore cannot run" not in refused.stderr, refused
    assert "deploy" not in site.labels(), site.labels()  # nothing deployed
    skipped = site.run("deploy", "--skip-backup", timeout=120)
    assert skipped.returncode == 0 and "deploy" in site.labels(), skipped
    warning = [line for line in skipped.stderr.splitlines() if "a restore cannot run" in line]
    assert len(warning) == 1 and words in warning[0], skipped
    assert site.audit()[-1]["machine_check"]["cannot"]["restore"].endswith(
        "The other name: '" + str(site.db.with_name("steps-copy.db")) + "'"), site.audit()[-1]


def test_a_local_backup_dry_run_refuses_it(wal_db, backup_dir, run_invoke):
    engine.create_backup(wal_db, backup_dir)
    os.link(wal_db, wal_db.with_name("other.db"))
    assert_one_line_error(run_invoke("backup", "--dry-run"), 2, contains="has another name")
    assert run_invoke("backup.cleanup", "--dry-run").returncode == 0


@pytest.mark.parametrize("strategy", ENGINES)
def test_every_engine_lists_the_names_in_the_order_the_shell_walks_them(
        tmp_path, live, strategy):
    """The shell walks * then .[!.]* then ..?*, so a dot-name came last there and first on
    python3 and Node: past three names the engines showed different ones, and a deploy's
    dry run (the shell) and its run (python3) said different lines (s26 review-break2 #1)."""
    for name in ("b.db", "..c.db", ".b.db", "a.db", ".a"):
        os.link(live, live.with_name(name))
    said = refused_backup(tmp_path, live, strategy)
    folder = live.parent
    assert said.endswith(f"lists: 5 beside it ('{folder}/a.db', '{folder}/b.db', "
                         f"'{folder}/.a', and 2 not shown)"), said
