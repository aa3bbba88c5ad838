"""The backup tasks through the real CLI (``python -m invoke`` in a subprocess).

Each test asserts what a user sees: exit codes, one JSON document on stdout, one
``Error:`` line on stderr (never a traceback), and the files on disk. Independent
calls run in parallel: every subprocess costs ~0.4 s of start-up.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ops import engine
from ops.errors import ExitCode
from tests import helpers
from tests.helpers import ANSI, assert_one_line_error, run_mixed, run_parallel

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")

STEP_LINE = re.compile(
    r"^✓ backup (steps-\S+\.db)  [\d.]+ [kMG]?B  sha256 [0-9a-f]{12}  integrity_check ok  "
    r"\[engine\]  from local data/steps\.db \(\d+\.\ds\)$",
    re.M,
)


def days_ago(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=days)


def names(folder: Path) -> list[str]:
    return [item.name for item in engine.list_backups(folder)]


# ---------------------------------------------------------------- invoke backup


def test_backup_makes_one_verified_backup(wal_db, backup_dir, run_invoke):
    result = run_invoke("backup")
    assert result.returncode == 0, result
    assert result.stdout == ""
    assert ANSI not in result.stderr and "Traceback" not in result.stderr
    step = STEP_LINE.search(result.stderr)
    assert step, result
    assert "✓ retention keep 10  removed 0, kept 1" in result.stderr

    name = step.group(1)
    assert names(backup_dir) == [name]
    backup = backup_dir / name
    assert helpers.rows(backup, "SELECT count(*) FROM steps") == [(3000,)]
    assert (backup_dir / f"{name}.sha256").read_text() == f"{helpers.sha256(backup)}  {name}\n"
    assert engine.verify_backup(backup).ok


def test_backup_json_is_one_document_matching_the_files(wal_db, backup_dir, run_invoke):
    old = helpers.old_script_backup(backup_dir, days_ago(3), wal_db)
    result = run_invoke("backup", "--json")
    assert result.returncode == 0, result
    data = result.json()  # the whole of stdout is one JSON document
    assert set(data) == {"backup", "retention"}
    made = data["backup"]
    backup = backup_dir / made["name"]
    assert made["size"] == backup.stat().st_size
    assert made["sha256"] == helpers.sha256(backup)
    assert made["check"] == "integrity" and made["strategy"] == "engine"
    assert made["created"] == engine.iso(engine.parse_created(made["name"]))
    assert json.loads((backup_dir / f"{made['name']}.json").read_text())["sha256"] == (
        made["sha256"]
    )
    assert data["retention"] == [
        {"name": made["name"], "keep": True, "reason": "newest 10"},
        {"name": old.name, "keep": True, "reason": "newest 10"},
    ]
    assert names(backup_dir) == [old.name, made["name"]]
    assert STEP_LINE.search(result.stderr), result  # people still get their step lines


def test_retention_after_backup_default_env_and_flag(wal_db, tmp_path):
    olds = [days_ago(day) for day in range(11, 0, -1)]  # 11 old-script backups, oldest first

    def setup(where: Path) -> Path:
        shutil.copytree(wal_db.parent, where / "data")
        for when in olds:
            helpers.old_script_backup(where / "data" / "backups", when)
        return where / "data" / "backups"

    runs = {
        "default": ((), {}),
        "env": ((), {"INVOKE_BACKUP_KEEP": "2"}),
        "flag": (("--keep", "3"), {"INVOKE_BACKUP_KEEP": "2"}),
    }
    folders = {label: setup(tmp_path / label) for label in runs}
    results = dict(
        zip(
            runs,
            run_mixed(
                functools.partial(helpers.run_invoke, "backup", "--json", *args,
                                  cwd=tmp_path / label, env=env)  # fmt: skip
                for label, (args, env) in runs.items()
            ),
            strict=True,
        )
    )
    old_names = [helpers.old_name(when) for when in olds]
    for label, expected_kept in (("default", 10), ("env", 2), ("flag", 3)):
        result = results[label]
        assert result.returncode == 0, result
        made = result.json()["backup"]["name"]
        kept = names(folders[label])
        assert kept == [*old_names[12 - expected_kept:], made], label
        removed = [d["name"] for d in result.json()["retention"] if not d["keep"]]
        assert sorted(removed) == old_names[: 12 - expected_kept], label
        assert f"retention keep {expected_kept}  removed {12 - expected_kept}" in result.stderr


# ---------------------------------------------------------------- list / verify


@pytest.fixture
def two_backups(wal_db, backup_dir):
    """A verified backup made by the engine, and an older one left by the old npm script."""
    old = helpers.old_script_backup(backup_dir, days_ago(2), wal_db)
    new = engine.create_backup(wal_db, backup_dir)
    return old.name, new.name


def test_list_and_verify(two_backups, backup_dir, run_invoke):
    old, new = two_backups
    before = helpers.snapshot(backup_dir)
    calls = [
        ("backup.list", "--json"),
        ("backup.list",),
        ("backup.verify", "latest", "--json"),
        ("backup.verify", "all"),
        ("backup.verify", old, "--json", "--quick"),
        ("backup.verify", "steps-2020-01-01T00-00-00.db"),
        ("backup.verify", "../etc/passwd"),
        ("backup.verify",),
    ]
    listed, table, latest, every, one, unknown, escape, missing = run_mixed(
        functools.partial(run_invoke, *args) for args in calls
    )

    assert listed.returncode == 0, listed
    assert [(i["name"], i["verified"], i["sha256"] is None, i["future"])
            for i in listed.json()] == [
        (new, True, False, False),  # newest first
        (old, False, True, False),
    ]
    assert listed.json()[0]["sha256"] == helpers.sha256(backup_dir / new)
    assert table.returncode == 0 and new in table.stderr and old in table.stderr, table

    assert latest.returncode == 0, latest
    assert [(r["name"], r["ok"], r["check"]) for r in latest.json()] == [
        (new, True, "integrity")
    ]
    assert latest.json()[0]["recorded_sha256"] == latest.json()[0]["sha256"]
    # the old script recorded no checksum: sound, but unverifiable, so never "ok"
    line = assert_one_line_error(every, ExitCode.VERIFY_FAILED, contains=old, strict=False)
    assert "1 of 2 backups failed verification" in line and "unverifiable" in line
    assert "1 of 2 ok" in every.stderr, every
    assert_one_line_error(one, ExitCode.VERIFY_FAILED, contains="unverifiable", strict=False)
    assert [(r["name"], r["ok"], r["check"], r["recorded_sha256"], r["problems"])
            for r in one.json()] == [
        (old, False, "quick", None, ["unverifiable: no usable checksum record beside it (its "
                                     ".sha256 and .json are missing or unreadable)"])
    ]

    assert_one_line_error(unknown, ExitCode.NOT_FOUND, contains="steps-2020-01-01T00-00-00.db")
    assert_one_line_error(escape, ExitCode.USAGE, contains="not a backup name")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr, missing
    assert "which" in missing.stderr
    for result in (listed, table, latest, every, one, unknown, escape, missing):
        assert ANSI not in result.stderr
    assert helpers.snapshot(backup_dir) == before  # reading never changes anything


def test_verify_reports_a_damaged_backup(two_backups, backup_dir, run_invoke):
    _, new = two_backups
    path = backup_dir / new
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run_invoke("backup.verify", "latest", "--json")
    line = assert_one_line_error(result, ExitCode.VERIFY_FAILED, contains=new, strict=False)
    assert "SHA-256 mismatch" in line and "1 of 1 backups failed verification" in line
    report = result.json()
    assert report[0]["ok"] is False and report[0]["name"] == new
    assert any(problem.startswith("SHA-256 mismatch") for problem in report[0]["problems"])


# ---------------------------------------------------------------- cleanup


def test_cleanup_dry_run_then_real(wal_db, backup_dir, run_invoke):
    # the only verified backup is the oldest; five newer old-script files sit on top of it
    verified = engine.create_backup(wal_db, backup_dir, clock=lambda: days_ago(10))
    olds = [helpers.old_script_backup(backup_dir, days_ago(day)).name for day in (5, 4, 3, 2, 1)]
    before = helpers.snapshot(backup_dir)

    dry, zero, abc, negative = run_mixed(
        functools.partial(run_invoke, "backup.cleanup", *args)
        for args in (
            ("--keep", "2", "--dry-run", "--json"),
            ("--keep", "0"),
            ("--keep", "abc"),
            ("--keep=-1", "--dry-run"),
        )
    )
    assert dry.returncode == 0, dry
    plan = dry.json()
    assert plan["dry_run"] is True and plan["keep"] == 2
    actions = {d["name"]: (d["action"], d["reason"]) for d in plan["decisions"]}
    assert actions == {
        olds[4]: ("keep", "newest 2"),
        olds[3]: ("keep", "newest 2"),
        olds[2]: ("remove", "older than the newest 2"),
        olds[1]: ("remove", "older than the newest 2"),
        olds[0]: ("remove", "older than the newest 2"),
        verified.name: ("keep", "newest backup that passed verification"),
    }
    assert "would remove 3, kept 3" in dry.stderr
    assert_one_line_error(zero, ExitCode.USAGE, contains="--keep must be at least 1, got 0")
    assert_one_line_error(abc, ExitCode.USAGE, contains="--keep must be a whole number")
    assert_one_line_error(negative, ExitCode.USAGE, contains="--keep must be at least 1")
    assert helpers.snapshot(backup_dir) == before  # nothing touched

    real = run_invoke("backup.cleanup", "--keep", "2", "--json")
    assert real.returncode == 0, real
    removed = [d["name"] for d in real.json()["decisions"] if d["action"] == "remove"]
    assert removed == [olds[2], olds[1], olds[0]]
    assert names(backup_dir) == [verified.name, olds[3], olds[4]]
    after = helpers.snapshot(backup_dir)
    assert after == {name: digest for name, digest in before.items() if name in after}
    assert set(before) - set(after) == set(removed)

    again = run_invoke("backup.cleanup", "--keep", "2")  # the human table, nothing left to do
    assert again.returncode == 0, again
    assert "removed 0, kept 3" in again.stderr and "Retention: keep 2" in again.stderr


# ---------------------------------------------------------------- status


def test_status(wal_db, tmp_path):
    empty, fresh, old = tmp_path / "empty", tmp_path / "fresh", tmp_path / "old"
    fresh_db = fresh / "data" / "steps.db"  # a backup counts for the database it copies
    fresh_db.parent.mkdir(parents=True)
    shutil.copy(wal_db, fresh_db)
    engine.create_backup(fresh_db, fresh / "data" / "backups")
    old_backup = helpers.old_script_backup(old / "data" / "backups", days_ago(2))
    (empty / "data" / "backups").mkdir(parents=True)  # empty; a missing folder is exit 3
    calls = [
        (empty, ("--json",)),
        (empty, ("--max-age", "1h", "--json")),
        (fresh, ("--json", "--max-age", "1h")),
        (old, ("--max-age", "1d", "--json")),
        (old, ("--max-age", "3d")),
        (old, ("--max-age", "1x")),
    ]
    results = run_mixed(
        functools.partial(helpers.run_invoke, "backup.status", *args, cwd=cwd)
        for cwd, args in calls
    )
    nothing, nothing_limited, fresh_ok, stale, old_ok, bad = results

    assert nothing.returncode == 0, nothing
    assert nothing.json() == {"hasBackups": False, "count": 0, "latest": None}
    assert_one_line_error(nothing_limited, ExitCode.STALE, contains="there are no backups")
    assert nothing_limited.json()["hasBackups"] is False

    assert fresh_ok.returncode == 0, fresh_ok
    report = fresh_ok.json()
    assert set(report) == {"hasBackups", "count", "latest"}
    assert report["hasBackups"] is True and report["count"] == 1
    assert set(report["latest"]) == {"name", "created", "age"}
    assert report["latest"]["name"] == names(fresh / "data" / "backups")[0]
    assert 0 <= report["latest"]["age"] < 60_000  # milliseconds, as /health reports it

    line = assert_one_line_error(stale, ExitCode.STALE, contains="limit 1d")
    assert "the newest backup is 2d old" in line
    assert stale.json()["latest"]["name"] == old_backup.name
    assert 2 * 86_400_000 <= stale.json()["latest"]["age"] < 2 * 86_400_000 + 120_000
    assert old_ok.returncode == 0 and "1 backup; latest" in old_ok.stderr, old_ok
    assert_one_line_error(bad, ExitCode.USAGE, contains="--max-age must be a duration")


# ---------------------------------------------------------------- failures users see


def test_bad_input_fails_cleanly_and_changes_nothing(wal_db, tmp_path, backup_dir):
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "notes.db").write_text("not a database\n" * 100)
    for day in range(12, 0, -1):  # more than keep: retention must not run after a failure
        helpers.old_script_backup(backup_dir, days_ago(day))
    before = helpers.snapshot(backup_dir)
    cases = [
        ({"INVOKE_DB_PATH": "missing.db"}, ExitCode.NOT_FOUND, "database not found: missing.db"),
        ({"INVOKE_DB_PATH": "folder.db"}, ExitCode.USAGE, "is a directory"),
        ({"INVOKE_DB_PATH": "notes.db"}, ExitCode.VERIFY_FAILED, "not a SQLite database"),
        ({"INVOKE_BACKUP_KEEP": "abc"}, ExitCode.USAGE, "backup.keep"),
        ({"INVOKE_BACKUP_CHECK": "fast"}, ExitCode.USAGE, "backup.check"),
        ({"INVOKE_BACKUP_TIMEOUT": "soon"}, ExitCode.USAGE, "backup.timeout"),
    ]
    results = run_mixed(
        functools.partial(helpers.run_invoke, "backup", cwd=tmp_path, env=env)
        for env, _, _ in cases
    )
    for result, (_, code, text) in zip(results, cases, strict=True):
        assert_one_line_error(result, code, contains=text)
        assert result.stdout == ""
    assert helpers.snapshot(backup_dir) == before
    assert not any(p.name.startswith(engine.TMP_PREFIX) for p in backup_dir.iterdir())


def test_backup_while_locked(wal_db, backup_dir, tmp_path, run_invoke):
    with helpers.lock_held_elsewhere(backup_dir, tmp_path) as (pid, _):
        result = run_invoke("backup")
    assert_one_line_error(result, ExitCode.LOCKED, contains=f"pid {pid}")
    assert "--lock-wait" in result.stderr
    assert helpers.backup_files(tmp_path) == []


def test_backup_folder_under_a_regular_file_is_a_usage_error(wal_db, tmp_path, run_invoke):
    (tmp_path / "data" / "blocker").write_text("x")
    result = run_invoke("backup", env={"INVOKE_BACKUP_DIR": "data/blocker/backups"})
    assert helpers.backup_files(tmp_path) == []
    assert_one_line_error(result, ExitCode.USAGE, contains="data/blocker")


def test_backup_folder_is_a_regular_file(wal_db, tmp_path, run_invoke):
    (tmp_path / "data" / "blocker").write_text("x")
    result = run_invoke("backup", env={"INVOKE_BACKUP_DIR": "data/blocker"})
    assert_one_line_error(result, ExitCode.USAGE, contains="backup folder is not a folder")
    assert (tmp_path / "data" / "blocker").read_text() == "x"
    assert helpers.backup_files(tmp_path) == []


# ---------------------------------------------------------------- colour


SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colour_codes(text: str) -> set[str]:
    """SGR parameters that set a foreground/background colour (not bold/dim/italic)."""
    codes = set()
    for params in SGR.findall(text):
        for code in params.split(";"):
            if code and (30 <= int(code) <= 49 or 90 <= int(code) <= 107):
                codes.add(code)
    return codes


def test_no_color(wal_db, tmp_path):
    runs = {
        "plain": {},
        "forced": {"FORCE_COLOR": "1", "NO_COLOR": None},  # Rich: as if on a terminal
        "forced-no-color": {"FORCE_COLOR": "1", "NO_COLOR": "1"},
    }
    for name in runs:
        shutil.copytree(wal_db.parent, tmp_path / name / "data")
    plain, forced, forced_no_color = run_parallel(
        functools.partial(helpers.run_invoke, "backup", cwd=tmp_path / name, env=env)
        for name, env in runs.items()
    )
    for result in (plain, forced, forced_no_color):
        assert result.returncode == 0, result
    assert ANSI not in plain.stderr  # NO_COLOR and not a terminal: plain text
    assert colour_codes(forced.stderr), forced  # the check below can see colour at all
    assert colour_codes(forced_no_color.stderr) == set(), forced_no_color


# ---------------------------------------------------------------- discoverability


BACKUP_TASKS = ["backup.cleanup", "backup.create", "backup.list", "backup.status", "backup.verify"]


def all_tasks(tree: dict, prefix: str = "") -> list[str]:
    """Every task's dotted name in ``invoke --list --list-format=json`` output."""
    found = [prefix + task["name"] for task in tree["tasks"]]
    for sub in tree["collections"]:
        found += all_tasks(sub, f"{prefix}{sub['name']}.")
    return found


def test_list_and_help_cover_every_task_and_flag(run_invoke, tmp_path):
    listing, as_json = run_parallel(
        functools.partial(run_invoke, *args)
        for args in (("--list",), ("--list", "--list-format=json"))
    )
    assert listing.returncode == 0 and as_json.returncode == 0, (listing, as_json)
    assert "backup.create (backup)" in listing.stdout  # `invoke backup` is the default
    for task in BACKUP_TASKS:
        assert re.search(rf"^  {re.escape(task)}\s", listing.stdout, re.M), task
    tasks = all_tasks(as_json.json())
    assert set(BACKUP_TASKS) <= set(tasks)
    (backup,) = [c for c in as_json.json()["collections"] if c["name"] == "backup"]
    assert backup["default"] == "create"
    assert all(task["help"] for task in backup["tasks"]), backup

    # every task anyone added: a docstring, and help text for every flag
    # the help of every task in-process (helpers.run_here): tens of runs, no start-up each
    helps = [helpers.run_here("--help", task, cwd=tmp_path) for task in tasks]
    missing = []
    for task, result in zip(tasks, helps, strict=True):
        assert result.returncode == 0, result
        assert re.search(r"^Docstring:\n  \S", result.stdout, re.M), result
        if "Options:" not in result.stdout:
            continue  # a task without flags
        options = result.stdout.split("Options:", 1)[1]
        entries = re.findall(r"^  (-\S.*?)(?:\s{2,}(\S.*))?$", options, re.M)
        assert entries, result
        missing += [f"{task} {flags}" for flags, text in entries if not text]
    assert missing == [], "flags without help text"


def test_help_after_the_task_name(tmp_path):
    tasks = [task for task in BACKUP_TASKS if task != "backup.verify"]
    results = [helpers.run_here(task, "--help", cwd=tmp_path) for task in tasks]
    for task, result in zip(tasks, results, strict=True):
        assert result.returncode == 0, result
        assert f"backup.{task.split('.')[1]} [--options]" in result.stdout, result


def test_help_after_a_task_with_a_positional(tmp_path):
    # Invoke 2.2 would take `--help` as the positional's value (pyinvoke/invoke#982)
    for task in ("backup.verify", "backup.download"):
        result = helpers.run_here(task, "--help", cwd=tmp_path)
        assert result.returncode == 0, result
        assert f"{task} [--options]" in result.stdout and "Options:" in result.stdout, result


def test_the_tasks_load_without_the_ssh_stack():
    """Fabric, Paramiko and cryptography hold about 25 MiB: only an SSH run loads them
    (peak RSS of a local backup, issue 12)."""
    code = ("import sys, tasks; heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('fabric', 'paramiko', 'cryptography')]; print(heavy); sys.exit(bool(heavy))")
    done = subprocess.run([helpers.PYTHON, "-c", code], cwd=helpers.REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
