"""Every command the tool suggests for a person to paste runs as pasted in the shell they
used (review-op s20 #6): with the venv not active, `.venv/bin/invoke restore NAME --yes`,
not `invoke restore …` ("command not found" while undoing a restore under stress). The
messages keep the plain word; ``cli.pasteable`` spells it where lines are printed."""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ops import cli, engine
from tests import helpers

pytestmark = pytest.mark.cli_in_process

OURS = shlex.quote(str(Path(sys.executable).parent / "invoke"))


@pytest.mark.parametrize(("said", "shown"), [
    ("To undo this restore:\n  invoke restore s.db --yes", "  .venv/bin/invoke restore s.db --yes"),
    ("adopt it with `invoke backup.adopt NAME`", "`.venv/bin/invoke backup.adopt NAME`"),
    ("undo it with: invoke emergency.resume --yes", ": .venv/bin/invoke emergency.resume"),
    ("INVOKE_BACKUP_DIR=/x invoke backup.list", "=/x .venv/bin/invoke backup.list"),
])
def test_a_suggested_command_is_spelled_as_invoke_was_run(monkeypatch, said, shown):
    monkeypatch.setattr(cli, "invoke_command", lambda: ".venv/bin/invoke")
    assert shown in cli.pasteable(said)
    assert cli.pasteable(said).count("invoke ") == said.count("invoke ")


@pytest.mark.parametrize("said", [
    ".venv/bin/invoke backup.list", "python -m invoke demo", "to invoke the hook",
    "INVOKE_BACKUP_DIR=x", "invoke-ish restore"])
def test_what_is_not_a_suggestion_is_left_as_it_is(monkeypatch, said):
    monkeypatch.setattr(cli, "invoke_command", lambda: ".venv/bin/invoke")
    assert cli.pasteable(said) == said


def run_without_venv_on_path(tmp_path, *args):
    env = helpers.clean_env(helpers.project_root(tmp_path, None))
    env["PATH"] = "/usr/bin:/bin"  # the README's first line: the venv not activated
    return subprocess.run([helpers.PYTHON, "-m", "invoke", "--search-root",  # noqa: S603
                           str(helpers.REPO_ROOT), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_undo_line_and_an_errors_hint_run_as_pasted(wal_db, backup_dir, tmp_path):
    made = engine.create_backup(wal_db, backup_dir)
    with sqlite3.connect(wal_db) as db:  # the live data moves on: the restore has an undo
        db.execute("DELETE FROM steps WHERE rowid % 2 = 0")
    restored = run_without_venv_on_path(tmp_path, "restore", made.name, "--yes")
    assert restored.returncode == 0, restored.stderr
    assert f"{OURS} restore steps-" in restored.stderr, restored.stderr
    assert " invoke restore" not in restored.stderr.replace(OURS, "OURS"), restored.stderr
    stray = backup_dir / "steps-2026-01-02T03-04-05.db"
    stray.write_bytes((backup_dir / made.name).read_bytes())
    refused = run_without_venv_on_path(tmp_path, "restore", stray.name, "--dry-run")
    assert refused.returncode != 0, refused.stderr
    assert f"`{OURS} backup.adopt {stray.name}" in refused.stderr, refused.stderr


def test_a_removed_working_folder_leaves_the_plain_word(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # so the path would be asked for
    assert cli.pasteable("run `invoke backup.list`") == "run `invoke backup.list`"


# a collection of another name in the working folder: the project's tasks, as a user's own
# tasks file may gather them
COLLECTION = f"""import importlib.util, sys
sys.path.insert(0, {str(helpers.REPO_ROOT)!r})
spec = importlib.util.spec_from_file_location("project_tasks",
                                              {str(helpers.REPO_ROOT / "tasks.py")!r})
tasks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tasks)
ns = tasks.ns
"""


def test_the_undo_line_keeps_the_config_file_and_collection_the_run_was_given(tmp_path):
    """`invoke -c ops_tasks -f other.yaml restore NAME --yes`: its undo line, pasted,
    restores other.yaml's database with the same tasks (without `--config` it ran with
    the default configuration: another database, another backup folder)."""
    wal_db = helpers.make_wal_db(tmp_path / "other" / "app.db")
    folder = tmp_path / "other backups"
    (tmp_path / "other.yaml").write_text(f"db:\n  path: {wal_db}\nbackup:\n  dir: {folder}\n")
    (tmp_path / "ops_tasks.py").write_text(COLLECTION)
    made = engine.create_backup(wal_db, folder)
    with sqlite3.connect(wal_db) as db:
        db.execute("DELETE FROM steps WHERE rowid % 2 = 0")
        before = db.execute("SELECT count(*) FROM steps").fetchone()[0]
    default = helpers.clean_env(helpers.project_root(tmp_path, None))  # its own data/steps.db
    default["PATH"] = "/usr/bin:/bin"
    restored = subprocess.run([helpers.PYTHON, "-m", "invoke", "-c", "ops_tasks",  # noqa: S603
                               "-f", "other.yaml", "restore", made.name, "--yes"],
                              cwd=tmp_path, env=default, capture_output=True, text=True,
                              timeout=60)
    assert restored.returncode == 0, restored.stderr
    undo = helpers.command_after(restored.stderr, "To undo this restore:")
    assert undo.startswith(f"{OURS} --config other.yaml --collection ops_tasks restore ")
    pasted = subprocess.run(["sh", "-c", undo], cwd=tmp_path, env=default,  # noqa: S603, S607
                            capture_output=True, text=True, timeout=60)
    assert pasted.returncode == 0, pasted.stderr
    with sqlite3.connect(wal_db) as db:
        assert db.execute("SELECT count(*) FROM steps").fetchone()[0] == before
    assert not list((tmp_path / "data").rglob("*.db*"))  # no default database was touched


def test_outside_a_run_no_option_is_added():
    assert cli.chosen_by_options() == []


@pytest.mark.parametrize(("argv", "hint"), [
    (["nosuch"], "--collection ops_tasks --list"),
    (["restore", "--bogus"], "--collection ops_tasks --help restore"),
    (["restore", "-e"], "--echo -c ops_tasks restore"),  # moved whole: -c once, as typed
])
def test_hints_keep_the_collection_the_run_was_given(tmp_path, argv, hint):
    """`invoke --list` and `invoke --help TASK` in a hint showed the default collection
    after `invoke -c ops_tasks …` (s28 review-break2 #4)."""
    (tmp_path / "ops_tasks.py").write_text(COLLECTION)
    env = helpers.clean_env(helpers.project_root(tmp_path, None))
    env["PATH"] = "/usr/bin:/bin"
    refused = subprocess.run([helpers.PYTHON, "-m", "invoke", "-c", "ops_tasks", *argv],  # noqa: S603
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0, refused
    assert f"`{OURS} {hint}" in refused.stderr, refused.stderr


@pytest.mark.parametrize(("said", "kept"), [
    ("list them with `invoke backup.list --backup-dir 'my -copy'`", True),  # a quoted word
    ("run `invoke --echo -c tasks backup`", False),  # moved whole: -c spelled as typed
    ("run `invoke --echo -ec tasks backup`", False),
    ("run `invoke --config=x.yaml --echo backup`", False),
])
def test_a_command_gets_the_runs_options_unless_it_gives_its_own(monkeypatch, said, kept):
    monkeypatch.setattr(cli, "_invoke_program", lambda: "invoke")
    monkeypatch.setattr(cli, "chosen_by_options", lambda: ["--config", "c.yaml"])
    assert ("invoke --config c.yaml" in cli.pasteable(said)) is kept


def test_a_runs_backup_dir_is_in_every_command_it_suggests(wal_db, tmp_path):
    """s28 review-break3 #1: a restore or listing run on `--backup-dir DIR` suggested its
    undo, `backup.cleanup` and `backup.adopt` without it: pasted, they acted on backup.dir."""
    folder = tmp_path / "mine backups"
    env = helpers.clean_env(helpers.project_root(tmp_path, None))

    def run(*args):
        return subprocess.run([helpers.PYTHON, "-m", "invoke", "--search-root",  # noqa: S603
                               str(helpers.REPO_ROOT), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)

    made = run("backup", "--backup-dir", "mine backups", "--json")
    assert made.returncode == 0, made.stderr
    name = json.loads(made.stdout)["backup"]["name"]
    with sqlite3.connect(wal_db) as db:
        db.execute("DELETE FROM steps WHERE rowid % 2 = 0")
        before = db.execute("SELECT count(*) FROM steps").fetchone()[0]
    restored = run("restore", name, "--backup-dir", "mine backups", "--yes")
    assert restored.returncode == 0, restored.stderr
    undo = shlex.split(helpers.command_after(restored.stderr, "To undo this restore:"))
    assert undo[1:4] == ["restore", "--backup-dir", "mine backups"], undo  # after the task
    assert undo[4].startswith("steps-") and undo[4] != name, undo  # the safety backup
    assert run(*undo[1:]).returncode == 0  # pasted: the data from before is back
    with sqlite3.connect(wal_db) as db:
        assert db.execute("SELECT count(*) FROM steps").fetchone()[0] == before
    (folder / ".tmp-steps-left-behind").write_bytes(b"x")
    (folder / "steps-2026-01-01T00-00-00.db").write_bytes((folder / name).read_bytes())
    listed = " ".join(run("backup.list", "--backup-dir", "mine backups").stderr.split())
    assert "`invoke backup.cleanup --backup-dir 'mine backups'` removes them" in listed, listed
    assert "invoke backup.adopt --backup-dir 'mine backups' " in listed, listed
    assert not (tmp_path / "data" / "backups").exists()  # nothing ever went to backup.dir


@pytest.mark.parametrize("task", ["backup.verify", "backup.adopt", "backup.download"])
def test_a_refusal_before_the_folder_is_opened_keeps_the_runs_backup_dir(tmp_path, task):
    """s28 review-break4 #1: refused for a missing name before it opened its folder, the
    task suggested `invoke TASK latest` without the run's --backup-dir; pasted, verify
    checked backup.dir and said ✓."""
    env = helpers.clean_env(helpers.project_root(tmp_path, None))
    refused = subprocess.run([helpers.PYTHON, "-m", "invoke", "--search-root",  # noqa: S603
                              str(helpers.REPO_ROOT), task, "--backup-dir", "my folder"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0, refused
    assert f"invoke {task} --backup-dir 'my folder' " in refused.stderr, refused.stderr


@pytest.mark.parametrize("folder", ["-offsite", "-cf", "x -c y"])
def test_a_folder_that_looks_like_an_option_never_drops_the_runs_config(monkeypatch, folder):
    """s28 review-break4 #2: `--backup-dir -offsite` was read as Invoke's -f, and the
    line lost the run's --config."""
    monkeypatch.setattr(cli, "_invoke_program", lambda: "invoke")
    monkeypatch.setattr(cli, "chosen_by_options", lambda: ["--config", "c.yaml"])
    said = f"list them with `invoke backup.list --backup-dir {shlex.quote(folder)}`"
    assert "`invoke --config c.yaml backup.list --backup-dir" in cli.pasteable(said)


def test_an_empty_backup_dir_is_refused_not_the_current_folder(tmp_path):
    env = helpers.clean_env(helpers.project_root(tmp_path, None))
    listed = subprocess.run([helpers.PYTHON, "-m", "invoke", "--search-root",  # noqa: S603
                             str(helpers.REPO_ROOT), "backup.list", "--backup-dir", ""],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 2 and "Error: --backup-dir is empty" in listed.stderr, listed
