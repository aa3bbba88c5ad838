"""Production over flyctl: the backup tasks with ``--production`` through the real CLI.

Every test runs ``python -m invoke`` in a subprocess against the flyctl test double
(``tests/flyctl_double``). The "machine's /data" is a tmp folder (``vol/``), so a
remote command on the fake machine works on real files we can inspect. Asserted is
what a user sees (exit codes, stdout JSON, one ``Error:`` line, files on the fake
volume and locally) and the exact flyctl calls in their order.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ops import engine
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import (
    MACHINE,
    RESOLVE,
    VOLUME,
    Prod,
    assert_error,
    days_ago,
    flip_bytes,
    flow,
    make_prod,
    remove_tools,
    run_deferred,
    sftp_calls,
)
from tests.flyctl_double.state import (
    DEFAULT_APP,
)
from tests.helpers import run_parallel

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")

APP = DEFAULT_APP
TOKEN = "fo1_Zq8vK2mXw9LpR4tYhN7cB3sD6gJ0eUa5-distinctive"


# ---------------------------------------------------------------- the production world


# ---------------------------------------------------------------- reading the calls


def sha256sum_check(folder: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sha256sum", "-c", f"{name}.sha256"], cwd=folder,
                          capture_output=True, text=True)


def assert_sound_remote_backup(prod: Prod, made: dict) -> Path:
    """The new backup on the fake volume: its sidecars agree and ``sha256sum -c`` passes."""
    name = made["name"]
    backup = prod.remote_dir / name
    assert helpers.BACKUP_RE.match(name), made
    assert made["path"] == str(backup)
    assert made["size"] == backup.stat().st_size
    assert made["sha256"] == helpers.sha256(backup)
    assert made["check"] == "integrity"
    assert (prod.remote_dir / f"{name}.sha256").read_text() == f"{made['sha256']}  {name}\n"
    manifest = json.loads((prod.remote_dir / f"{name}.json").read_text())
    assert manifest["name"] == name and manifest["sha256"] == made["sha256"]
    checked = sha256sum_check(prod.remote_dir, name)
    assert checked.returncode == 0 and checked.stdout == f"{name}: OK\n", checked
    assert engine.verify_backup(backup).ok
    assert not [p for p in prod.remote_dir.iterdir() if p.name.startswith(".tmp-")]
    return backup


# ---------------------------------------------------------------- 1-2. invoke backup --production


@pytest.mark.parametrize("strategy", ["python3", "sqlite3"])
def test_backup_production_under_a_live_writer(prod, strategy):
    if strategy == "sqlite3":
        prod.world.remove_machine_tools("python3")
    writer = helpers.Writer(prod.db, prod.root / "writer").start()
    try:
        helpers.wait_for(lambda: writer.max_id() >= 20, what="the writer's first commits")
        committed = writer.max_id()
        result = prod.run("backup", "--production", "--json")
        after = writer.max_id()
    finally:
        report = writer.stop()
    assert result.returncode == 0, result
    assert after > committed, "the writer did not keep writing during the backup"
    assert report, "the writer left no report"

    data = result.json()
    made = data["backup"]
    assert made["strategy"] == strategy
    assert f"[{strategy}]" in result.stderr
    backup = assert_sound_remote_backup(prod, made)
    # every row committed before the call is in the backup, and nothing is half-written
    copied = helpers.rows(backup, "SELECT max(id), count(*) FROM writer_log")[0]
    assert copied[0] >= committed and copied[1] == copied[0]
    assert helpers.rows(backup, "SELECT count(*) FROM steps") == [(3000,)]
    assert data["retention"] == [{"name": made["name"], "keep": True, "reason": "newest 10"}]
    assert prod.remote_backups() == [made["name"]]
    assert prod.local_files() == []  # nothing downloaded: the backup lives on the volume

    assert prod.flow() == [*RESOLVE, "ssh backup", "ssh list"]


def test_the_machines_python_environment_cannot_reach_the_engine(prod):
    """engine.PYTHON3 (``python3 -I -S``): a PYTHONPATH or a module in the working folder
    that shadows the standard library, PYTHONUNBUFFERED and PYTHONSTARTUP, set in the image,
    change nothing in a backup, a verify or machine.check."""
    shadow = prod.root / "shadow"
    shadow.mkdir()
    planted = {"json.py", "sqlite3.py", "hashlib.py", "sitecustomize.py"}
    for name in planted:
        code = f"open({str(prod.root / 'ran')!r}, 'a').write({name!r} + '\\n')\n1 / 0\n"
        (shadow / name).write_text(code)
        (prod.world.machine_home(MACHINE) / name).write_text(code)  # the working folder
    prod.world.set_remote_env(MACHINE, {"PYTHONPATH": str(shadow), "PYTHONUNBUFFERED": "1",
                                        "PYTHONSTARTUP": str(shadow / "json.py")})

    made = prod.run("backup", "--production", "--json")
    assert made.returncode == 0, made
    assert made.json()["backup"]["strategy"] == "python3"
    assert_sound_remote_backup(prod, made.json()["backup"])
    checked = prod.run("backup.verify", "latest", "--production", "--json")
    assert checked.returncode == 0, checked
    probed = prod.run("machine.check", "--production", "--json")
    assert probed.returncode == 0, probed
    assert probed.json()["facts"]["python3"] is not None
    assert set(probed.json()["engines"].values()) == {"python3"}
    assert not (prod.root / "ran").exists(), (prod.root / "ran").read_text()


def test_machine_check_says_why_a_python3_that_needs_its_environment_is_not_used(prod):
    """A python3 that only starts with the image's PYTHONHOME (as such builds fail: a fatal
    error under -I) is no python3 for the engine: machine.check says it is there and why
    it is not used, and the backup takes the sqlite3 CLI."""
    fake = prod.root / "python3"
    fake.write_text("#!/bin/sh\n"
                    'case " $* " in *" -I "*) echo "Fatal Python error: init_fs_encoding" >&2;'
                    " exit 1;; esac\n"
                    '[ "$1" = --version ] && { echo "Python 3.11.2"; exit 0; }\nexit 1\n')
    fake.chmod(0o755)
    prod.world.add_machine_tool("python3", fake)
    probed = prod.run("machine.check", "--production", "--json")
    assert probed.returncode == 0, probed
    facts = probed.json()["facts"]
    assert facts["python3"] is None
    assert facts["python3_problem"].startswith(
        "python3 3.11.2 is here, but `python3 -I -S` "), facts
    assert probed.json()["engines"]["backup"] == "sqlite3"
    shown = prod.run("machine.check", "--production")
    assert "python3      no: python3 3.11.2 is here, but" in shown.stderr, shown
    made = prod.run("backup", "--production", "--json")
    assert made.returncode == 0 and made.json()["backup"]["strategy"] == "sqlite3", made


def test_backup_production_retention_deletes_old_script_backups(prod):
    olds = prod.seed(3, 2, sidecars=False)  # as the npm script left them: no sidecars
    result = prod.run("backup", "--production", "--json", env={"INVOKE_BACKUP_KEEP": "1"})
    assert result.returncode == 0, result
    made = result.json()["backup"]
    assert_sound_remote_backup(prod, made)
    assert result.json()["retention"] == [
        {"name": made["name"], "keep": True, "reason": "newest 1"},
        {"name": olds[1], "keep": False, "reason": "older than the newest 1"},
        {"name": olds[0], "keep": False, "reason": "older than the newest 1"},
    ]
    assert sorted(p.name for p in prod.remote_dir.glob("steps-*")) == [
        made["name"], f"{made['name']}.json", f"{made['name']}.sha256"]
    assert "retention keep 1  removed 2, kept 1" in result.stderr

    calls = prod.calls()
    assert flow(calls) == [*RESOLVE, "ssh backup", "ssh list", "ssh delete"]
    delete = shlex.split(shlex.split(calls[-1][8])[2])
    for old in olds:  # the backups and their (absent) sidecars, by name, nothing else
        assert {old, f"{old}.sha256", f"{old}.json"} <= set(delete)
    assert made["name"] not in delete


def test_backup_production_remote_command_strategy(prod):
    prod.world.remove_machine_tools("python3", "sqlite3")
    command = (f"mkdir -p {prod.remote_dir} && cp {prod.db} "
               f"{prod.remote_dir}/steps-$(date -u +%Y-%m-%dT%H-%M-%S).db")
    result = prod.run("backup", "--production", "--json",
                      env={"INVOKE_BACKUP_REMOTE_COMMAND": command})
    assert result.returncode == 0, result
    made = result.json()["backup"]
    name = made["name"]
    assert made["strategy"] == "remote_command"
    assert "[remote_command]" in result.stderr

    # downloaded into the local backup dir, verified there, with its own sidecars
    local = prod.local_dir / name
    assert made["local_copy"] == str(local)
    assert prod.local_files() == sorted([name, f"{name}.json", f"{name}.sha256"])
    assert helpers.sha256(local) == helpers.sha256(prod.remote_dir / name) == made["sha256"]
    assert sha256sum_check(prod.local_dir, name).returncode == 0
    assert engine.verify_backup(local).ok
    # the sidecars written beside the app's file on the machine
    assert_sound_remote_backup(prod, made)
    record = json.loads((prod.remote_dir / f"{name}.json").read_text())
    assert record["strategy"] == "remote_command"
    # recorded like any backup (issue 17 #4; issue 21: row counts, no content hash)
    assert "no SHA-256 recorded" not in result.stderr and "WARNING" not in result.stderr
    assert (record["tables"], record["content_sha256"], record["content_format"]) == (
        engine.count_rows(local), None, None)

    calls = prod.calls()
    assert flow(calls) == [*RESOLVE, "ssh backup", "ssh sha256", "sftp get", "ssh sidecars",
                           "ssh list"]
    (get,) = sftp_calls(calls)
    assert get[3] == f"{prod.remote_dir}/{name}"
    tmp = Path(get[4])
    assert tmp.parent.parent == prod.local_dir and tmp.parent.name.startswith(".tmp-download-")
    assert not tmp.parent.exists()


def test_backup_production_without_any_tool_says_what_the_machine_needs(prod):
    prod.world.remove_machine_tools("python3", "sqlite3")
    result = prod.run("backup", "--production")
    line = assert_error(result, ExitCode.ERROR,
                        contains="the production machine has neither python3")
    assert "sqlite3" in line and "backup.remote_command" in line
    assert helpers.backup_files(prod.root / "vol") == []
    assert prod.local_files() == []
    assert prod.flow() == [*RESOLVE, "ssh backup"]


@contextlib.contextmanager
def remote_lock(prod: Prod, strategy: str) -> Iterator[Callable[[], None]]:
    """Another backup holds the folder's lock, the one both strategies take (flock on
    ``.backup.lock``, held by a live process); yields its release."""
    with helpers.lock_held_elsewhere(prod.remote_dir, prod.root) as (_, release):
        yield release.touch


def release_once_the_backup_runs(prod: Prod, release: Callable[[], None], delay: float,
                                 finished: threading.Event) -> threading.Thread:
    """Release the lock ``delay`` s after the backup's ``ssh console`` call reached flyctl
    (or as soon as the run has ``finished``)."""

    def run():
        helpers.wait_for(lambda: "ssh backup" in prod.flow() or finished.is_set(), timeout=30,
                         what="the backup's ssh call")
        finished.wait(delay)
        release()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("strategy", ["python3", "sqlite3"])
def test_backup_production_is_refused_while_another_backup_holds_the_lock(prod, strategy):
    if strategy == "sqlite3":
        prod.world.remove_machine_tools("python3")
    with remote_lock(prod, strategy):
        result = prod.run("backup", "--production")
    assert_error(result, ExitCode.LOCKED, contains="another backup")
    assert prod.remote_backups() == []
    assert prod.flow() == [*RESOLVE, "ssh backup"]


@pytest.mark.parametrize(
    "strategy",
    [
        "python3",
        "sqlite3",
    ],
)
def test_backup_production_lock_wait_waits_for_the_other_backup(prod, strategy):
    if strategy == "sqlite3":
        prod.world.remove_machine_tools("python3")
    finished = threading.Event()
    with remote_lock(prod, strategy) as release:
        releaser = release_once_the_backup_runs(prod, release, 1.0, finished)
        result = prod.run("backup", "--production", "--lock-wait", "20", "--json")
        finished.set()
        releaser.join(timeout=30)
    assert result.returncode == 0, result
    made = result.json()["backup"]
    assert made["strategy"] == strategy
    assert not releaser.is_alive()
    assert_sound_remote_backup(prod, made)
    assert prod.flow() == [*RESOLVE, "ssh backup", "ssh list"]


def test_backup_production_config_is_checked_before_flyctl_and_on_the_machine(tmp_path):
    unsafe, python3, sqlite3 = (make_prod(tmp_path / label)
                                for label in ("unsafe", "python3", "sqlite3"))
    sqlite3.world.remove_machine_tools("python3")
    results = run_deferred([
        unsafe.later("backup", "--production",
                     env={"INVOKE_BACKUP_REMOTE_DIR": "/data/backups; rm -rf /"}),
        unsafe.later("backup.list", "--production",
                     env={"INVOKE_DB_REMOTE_PATH": "data/steps.db"}),
        *(prod.later("backup", "--production",
                     env={"INVOKE_DB_REMOTE_PATH": str(prod.root / "vol" / "missing.db")})
          for prod in (python3, sqlite3)),
    ])
    assert_error(results[0], ExitCode.USAGE, contains="backup.remote_dir must be a plain")
    assert_error(results[1], ExitCode.USAGE, contains="db.remote_path must be a plain")
    assert unsafe.calls() == []
    for prod, result in zip((python3, sqlite3), results[2:], strict=True):
        assert_error(result, ExitCode.NOT_FOUND, contains="database not found")
        assert prod.flow() == [*RESOLVE, "ssh backup"]
        assert helpers.backup_files(prod.root / "vol") == []


# ---------------------------------------------------------------- 3. list / verify / cleanup


def test_list_production_json(prod):
    olds = prod.seed(3, 2)
    bare = prod.seed(1, sidecars=False)
    result = prod.run("backup.list", "--production", "--json")
    assert result.returncode == 0, result
    found = result.json()
    assert [item["name"] for item in found] == [*bare, *reversed(olds)]  # newest first
    for item in found:
        path = prod.remote_dir / item["name"]
        assert set(item) == {"name", "path", "created", "size", "sha256", "verified", "future",
                             "kind", "source", "restore", "adopted", "uploaded",
                             "latest_may_name"}
        assert item["path"] == str(path)
        assert item["size"] == path.stat().st_size
        assert item["created"] == engine.iso(engine.parse_created(item["name"]))
    assert [(item["sha256"], item["verified"]) for item in found] == [
        (None, False), *((helpers.sha256(prod.remote_dir / n), True) for n in reversed(olds))]
    assert prod.flow() == [*RESOLVE, "ssh list"]


@pytest.mark.parametrize("tools", ["python3", "sqlite3", "none"])
def test_verify_production_latest_all_and_name(tmp_path, tools):
    prod = make_prod(tmp_path / tools)
    remove_tools(prod, tools)
    names = prod.seed(3, 2, 1)
    runs = {"all": names}
    if tools == "python3":  # the choice of names is the same code for every strategy
        runs |= {"latest": names[-1:], names[0]: names[:1]}
    results = run_deferred(prod.later("backup.verify", which, "--production", "--json")
                           for which in runs)
    for result, expected in zip(results, runs.values(), strict=True):
        assert result.returncode == 0, result
        verdicts = result.json()
        assert sorted(v["name"] for v in verdicts) == expected, result
        assert all(v["ok"] and v["problems"] == [] for v in verdicts), result
        assert all(v["sha256"] == helpers.sha256(prod.remote_dir / v["name"])
                   for v in verdicts), result
    assert prod.local_files() == []  # verification by download leaves nothing behind
    assert prod.remote_backups() == names
    if tools != "python3":
        # with no SQLite on the machine: each file's record, then the file
        downloads = ["ssh sha256", "sftp get"] * 3 if tools == "none" else []
        assert prod.flow() == [*RESOLVE, "ssh list", "ssh verify", *downloads]
        for get in sftp_calls(prod.calls()):  # into a scratch folder, never backup.dir
            assert Path(get[4]).parent != prod.local_dir


@pytest.mark.parametrize(
    "tools",
    [
        "python3",
        "sqlite3",
        "none",
    ],
)
def test_verify_production_catches_a_tampered_backup(tmp_path, tools):
    """A changed byte inside a row passes integrity_check: only the recorded SHA-256 sees it."""
    prod = make_prod(tmp_path / tools)
    remove_tools(prod, tools)
    names = prod.seed(3, 2, 1)
    tampered = prod.remote_dir / names[-1]
    flip_bytes(tampered, tampered.read_bytes().index(b"User 150"), 4)  # users.name: no index
    assert engine.run_check(tampered) == []  # still a sound database: only the hash tells

    result = prod.run("backup.verify", "all", "--production", "--json")
    assert_error(result, ExitCode.VERIFY_FAILED,
                 contains=f"1 of 3 backups failed verification; {names[-1]}: SHA-256 mismatch")
    verdicts = {v["name"]: v["ok"] for v in result.json()}
    assert verdicts == {names[0]: True, names[1]: True, names[2]: False}
    assert tampered.exists()  # verification never deletes
    if tools != "none":
        assert prod.flow() == [*RESOLVE, "ssh list", "ssh verify"]


def test_verify_production_with_sqlite3_reports_the_size(prod):
    prod.world.remove_machine_tools("python3")
    (name,) = prod.seed(1)
    result = prod.run("backup.verify", name, "--production", "--json")
    assert result.returncode == 0, result
    (verdict,) = result.json()
    assert verdict["ok"] is True
    assert verdict["size"] == (prod.remote_dir / name).stat().st_size


def test_verify_production_bad_and_unknown_names(prod):
    prod.seed(1)
    missing = helpers.old_name(days_ago(30))
    nothing = {"INVOKE_BACKUP_REMOTE_DIR": str(prod.root / "vol" / "nothing-here")}
    unknown, bad, empty, listing = run_deferred([
        prod.later("backup.verify", missing, "--production"),
        prod.later("backup.verify", "../steps.db", "--production"),
        prod.later("backup.verify", "latest", "--production", env=nothing),
        prod.later("backup.list", "--production", "--json", env=nothing),
    ])
    assert_error(unknown, ExitCode.NOT_FOUND, contains=missing)
    assert_error(bad, ExitCode.USAGE, contains="not a backup name")
    assert_error(empty, ExitCode.NOT_FOUND, contains="no backups")
    assert listing.returncode == 0, listing
    assert listing.json() == []


def test_cleanup_production_dry_run_then_for_real(prod):
    names = prod.seed(4, 3, 2, 1)
    before = helpers.snapshot(prod.remote_dir)

    dry = prod.run("backup.cleanup", "--production", "--keep", "1", "--dry-run", "--json")
    assert dry.returncode == 0, dry
    assert dry.json()["dry_run"] is True and dry.json()["keep"] == 1
    assert [(d["name"], d["keep"]) for d in dry.json()["decisions"]] == [
        (names[3], True), (names[2], False), (names[1], False), (names[0], False)]
    assert helpers.snapshot(prod.remote_dir) == before
    # the newest backup is verified on the machine before anything may go; no delete
    # call, and a look at the backup lock the run takes (tests/test_dry_run_locks.py)
    assert prod.flow() == [*RESOLVE, "ssh list", "ssh verify", "ssh look-locks"]

    prod.world.clear_calls()
    real = prod.run("backup.cleanup", "--production", "--keep", "1", "--json")
    assert real.returncode == 0, real
    assert real.json()["dry_run"] is False
    assert sorted(p.name for p in prod.remote_dir.iterdir()) == [
        engine.LOCK_NAME, names[3], f"{names[3]}.json", f"{names[3]}.sha256"]
    assert prod.flow() == [*RESOLVE, "ssh list", "ssh verify", "ssh delete"]


def test_cleanup_production_keep_zero_is_refused_before_any_flyctl_call(prod):
    names = prod.seed(2, 1)
    result = prod.run("backup.cleanup", "--production", "--keep", "0")
    assert_error(result, ExitCode.USAGE, contains="keep")
    assert prod.calls() == []
    assert prod.remote_backups() == names


# ---------------------------------------------------------------- 4. status


def test_status_production_reads_the_apps_health(prod, health):
    block = {
        "hasBackups": True,
        "count": 3,
        "latest": {"name": "steps-2026-08-20T02-00-00.db", "created": "2026-08-20T02:00:00Z",
                   "age": 3_600_000},
    }
    health.body = {"status": "ok", "backup": block}
    fresh, stale = run_deferred([
        prod.later("backup.status", "--production", "--json",
                   env={"INVOKE_HEALTH_URL": health.url}),
        prod.later("backup.status", "--production", "--json", "--max-age", "1s",
                   env={"INVOKE_HEALTH_URL": health.url}),
    ])
    assert fresh.returncode == 0, fresh
    assert fresh.json() == {**block, "source": health.url}
    assert "WARNING" not in fresh.stderr
    assert_error(stale, ExitCode.STALE, contains="1h old")
    assert stale.json() == {**block, "source": health.url}  # still reported
    assert health.paths == ["/health", "/health"]
    # the app answered; the folder is listed once to see what the app's latest is: the app
    # counts every backup-named file, a restore's safety backup too (issue 16 #2)
    assert sorted(flow(prod.calls())) == sorted([*RESOLVE, "ssh list"] * 2)


def test_status_production_never_reports_a_safety_backup_as_the_newest(prod, health):
    """After a restore the app's /health names the restore's safety backup as its newest
    backup (it counts every file named like one): status reports the folder's newest
    real backup instead, and says why."""
    (old,) = prod.seed(3)
    safety = engine.create_backup(prod.db, prod.remote_dir,
                                  restore={"when": "2026-08-20T02:00:00Z", "backup": old})
    health.body = {"status": "ok", "backup": {"hasBackups": True, "count": 2, "latest": {
        "name": safety.name, "created": safety.created, "age": 1000}}}
    result = prod.run("backup.status", "--production", "--json", "--max-age", "1d",
                      env={"INVOKE_HEALTH_URL": health.url})
    assert_error(result, ExitCode.STALE, contains="3d old")
    report = result.json()
    assert report["latest"]["name"] == old and report["count"] == 1
    assert report["safetyBackups"] == [safety.name] and report["source"] == "remote folder"
    assert f"names {safety.name} as the newest backup, but it is a restore's safety" \
        in result.stderr


def test_status_production_falls_back_to_the_remote_folder(prod, health):
    names = prod.seed(3, 2)
    health.body = {"status": "ok"}  # an older app: no backup block
    down, no_block, stale = run_deferred([
        prod.later("backup.status", "--production", "--json"),
        prod.later("backup.status", "--production", "--json",
                   env={"INVOKE_HEALTH_URL": health.url}),
        prod.later("backup.status", "--production", "--json", "--max-age", "1s"),
    ])
    for result in (down, no_block):
        assert result.returncode == 0, result
        report = result.json()
        assert report["source"] == "remote folder"
        assert report["hasBackups"] is True and report["count"] == 2
        assert report["latest"]["name"] == names[-1]
        assert 2 * 86_400_000 <= report["latest"]["age"] < 2 * 86_400_000 + 120_000
        warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
        assert len(warnings) == 1 and str(prod.remote_dir) in warnings[0], result
    assert "unreachable" in down.stderr
    assert "no backup block" in no_block.stderr
    assert_error(stale, ExitCode.STALE, contains="old")
    labels = flow(prod.calls())  # three runs at once: their calls interleave
    assert sorted(labels) == sorted([*RESOLVE, "ssh list"] * 3)


def test_status_production_with_a_malformed_health_block_never_crashes(prod, health):
    prod.seed(2)
    health.body = {"status": "ok", "backup": {"hasBackups": True, "count": 1, "latest": {
        "name": "steps-2026-08-20T02-00-00.db", "created": "2026-08-20T02:00:00Z"}}}  # no age
    env = {"INVOKE_HEALTH_URL": health.url}
    plain, stale = run_deferred([
        prod.later("backup.status", "--production", env=env),
        prod.later("backup.status", "--production", "--max-age", "1h", "--json", env=env),
    ])
    assert plain.returncode == 0, plain
    assert "Traceback" not in plain.stderr
    assert_error(stale, ExitCode.STALE, contains="old")


def test_status_production_with_no_backups_is_stale_with_max_age(prod):
    result = prod.run("backup.status", "--production", "--json", "--max-age", "26h")
    assert_error(result, ExitCode.STALE, contains="no backups")
    assert result.json() == {"hasBackups": False, "count": 0, "latest": None,
                             "source": "remote folder"}


# ---------------------------------------------------------------- 5. snapshots


def test_volume_snapshot_waits_until_created(prod):
    before = {snap["id"] for snap in prod.world.snapshots(VOLUME)}
    result = prod.run("backup.volume", "--json")
    assert result.returncode == 0, result
    new = [snap for snap in prod.world.snapshots(VOLUME) if snap["id"] not in before]
    assert len(new) == 1 and new[0]["status"] == "created", new
    snap = result.json()
    assert snap["id"] == new[0]["id"] and snap["id"].startswith("vs_")
    assert snap["status"] == "created" and snap["volume"] == VOLUME
    assert snap["size"] == new[0]["size"]

    calls = prod.calls()
    labels = flow(calls)
    assert labels[:5] == [*RESOLVE, "snapshots list", "snapshots create"]
    assert labels[5:] == ["snapshots list"] * 3  # waiting, running, created
    assert labels.count("snapshots create") == 1
    assert all("-c" not in argv for argv in calls)

    assert f"Snapshot {snap['id']} of {VOLUME}" in result.stderr  # for people, on stderr


def test_volume_snapshot_no_wait_timeout_and_failure(tmp_path):
    no_wait, never, failed = (make_prod(tmp_path / label) for label in ("nw", "never", "fail"))
    never.world.snapshot_behavior("never")
    failed.world.snapshot_behavior("fail")
    r_no_wait, r_never, r_failed = run_deferred([
        no_wait.later("backup.volume", "--no-wait", "--json"),
        never.later("backup.volume", "--timeout", "0.5"),
        failed.later("backup.volume"),
    ])

    assert r_no_wait.returncode == 0, r_no_wait
    assert r_no_wait.json() == {"volume": VOLUME, "status": "scheduled", "id": None}
    assert no_wait.flow() == [*RESOLVE, "snapshots list", "snapshots create"]

    line = assert_error(r_never, ExitCode.TIMEOUT, contains="status: running")
    assert "0.5s" in line and VOLUME in line
    labels = never.flow()
    assert labels[:5] == [*RESOLVE, "snapshots list", "snapshots create"]
    assert len(labels) >= 6 and set(labels[5:]) == {"snapshots list"}  # it polled

    line = assert_error(r_failed, ExitCode.ERROR, contains="failed")
    assert VOLUME in line
    assert failed.flow().count("snapshots create") == 1


def test_snapshots_json_newest_first(prod):
    prod.world.remove_volume("vol_r7l0wm3x9gq2vn5j")  # an earlier "data" volume: listed too
    prod.world.add_snapshot(VOLUME, "vs_Newest0000000000000000", size=4096,
                            created_at="2026-08-20T02:00:00Z", retention_days=14)
    result = prod.run("backup.snapshots", "--json")
    assert result.returncode == 0, result
    found = result.json()
    assert [snap["id"] for snap in found] == [
        "vs_Newest0000000000000000", "vs_M3n4O5p6Q7r8S9t0U1v2W3x4", "vs_A1b2C3d4E5f6G7h8I9j0K1l2"]
    assert set(found[0]) == {"id", "status", "size", "volume_size", "created_at",
                             "retention_days", "digest", "volume"}  # volume: issue 19
    world = {snap["id"]: snap for snap in prod.world.snapshots(VOLUME)}
    for snap in found:
        assert snap["size"] == world[snap["id"]]["size"]
        assert snap["created_at"] == world[snap["id"]]["created_at"]
    assert prod.flow() == [*RESOLVE, "snapshots list"]


# ---------------------------------------------------------------- 6. download


def assert_downloaded(prod: Prod, name: str, result: helpers.InvokeResult) -> Path:
    local = prod.local_dir / name
    assert result.returncode == 0, result
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    assert helpers.sha256(local) == helpers.sha256(prod.remote_dir / name)
    assert result.json()["sha256"] == helpers.sha256(local)
    assert result.json()["path"] == str(local)
    assert (prod.local_dir / f"{name}.sha256").read_text() == f"{helpers.sha256(local)}  {name}\n"
    assert json.loads((prod.local_dir / f"{name}.json").read_text())["sha256"] == (
        helpers.sha256(local))
    assert sha256sum_check(prod.local_dir, name).returncode == 0
    assert not [f for f in prod.local_files() if f.startswith(".tmp-")]
    return local


def test_download_latest_and_by_name(tmp_path):
    by_latest, by_name = make_prod(tmp_path / "latest"), make_prod(tmp_path / "name")
    names = by_latest.seed(3, 2, 1)
    other = by_name.seed(3, 2, 1)
    latest, named = run_deferred([
        by_latest.later("backup.download", "latest", "--json"),
        by_name.later("backup.download", other[0], "--json"),
    ])
    assert_downloaded(by_latest, names[-1], latest)
    assert by_latest.local_files() == sorted([names[-1], f"{names[-1]}.json",
                                              f"{names[-1]}.sha256"])
    assert_downloaded(by_name, other[0], named)
    assert by_name.local_files() == sorted([other[0], f"{other[0]}.json", f"{other[0]}.sha256"])

    assert flow(by_latest.calls()) == [*RESOLVE, "ssh list", "ssh sha256", "sftp get"]
    assert flow(by_name.calls()) in (  # a name needs no listing: the machine says if it is gone
        [*RESOLVE, "ssh list", "ssh sha256", "sftp get"], [*RESOLVE, "ssh sha256", "sftp get"])
    for prod, name in ((by_latest, names[-1]), (by_name, other[0])):
        calls = prod.calls()
        (get,) = sftp_calls(calls)
        assert get[3] == f"{prod.remote_dir}/{name}"
        private = Path(get[4]).parent  # a private folder in backup.dir, gone afterwards
        assert private.parent == prod.local_dir and private.name.startswith(".tmp-download-")
        assert not private.exists()


def test_download_refuses_to_overwrite_a_local_file(prod):
    names = prod.seed(2, 1)
    prod.local_dir.mkdir(parents=True)
    (prod.local_dir / names[-1]).write_bytes(b"mine")
    result = prod.run("backup.download", "latest")
    # review-ox 22: not the usage error (2) it was; it says what differs
    assert_error(result, ExitCode.VERIFY_FAILED, contains="is already here but is not that "
                 "backup as recorded")
    assert (prod.local_dir / names[-1]).read_bytes() == b"mine"
    assert prod.local_files() == [names[-1]]
    assert sftp_calls(prod.calls()) == []


def test_download_of_a_backup_already_here_succeeds_without_downloading(prod):
    """review-ox 22: a daily `download latest` failed (exit 2) whenever no new backup had
    appeared."""
    name = prod.seed(2, 1)[-1]
    first = prod.run("backup.download", "latest", "--json")
    assert_downloaded(prod, name, first)
    again = prod.run("backup.download", "latest", "--json")
    assert again.returncode == 0, again
    assert again.json() == {"name": name, "path": str(prod.local_dir / name),
                            "sha256": helpers.sha256(prod.remote_dir / name),
                            "size": (prod.local_dir / name).stat().st_size,
                            "already_here": True}
    assert "already here" in again.stderr and len(sftp_calls(prod.calls())) == 1


def test_download_interrupted_leaves_nothing_and_a_retry_succeeds(prod):
    names = prod.seed(1)
    prod.world.sftp_fail_after(10_000)
    failed = prod.run("backup.download", names[0], "--json")
    assert_error(failed, ExitCode.FLY, contains="connection lost")
    assert failed.json()["exit_code"] == ExitCode.FLY  # the one document: the error
    assert prod.local_files() == []  # no partial file, no temporary name
    assert len(sftp_calls(prod.calls())) == 1

    retry = prod.run("backup.download", names[0], "--json")
    assert_downloaded(prod, names[0], retry)
    assert len(sftp_calls(prod.calls())) == 2


def test_download_bad_names(prod):
    prod.seed(1)
    missing = helpers.old_name(days_ago(30))
    unknown, dotdot, every = run_deferred([
        prod.later("backup.download", missing),
        prod.later("backup.download", "../x"),
        prod.later("backup.download", "all"),
    ])
    assert_error(unknown, ExitCode.NOT_FOUND, contains=missing)
    assert_error(dotdot, ExitCode.USAGE, contains="../x")
    assert_error(every, ExitCode.USAGE, contains="one backup at a time")
    assert sftp_calls(prod.calls()) == []
    assert prod.local_files() == []
    assert not (prod.root / "local" / "x").exists()


# ---------------------------------------------------------------- 7. faults


def test_flyctl_missing_from_path(prod):
    prod.seed(1)
    env = {"PATH": "/usr/bin:/bin"}
    results = run_deferred([
        prod.later("backup", "--production", env=env),
        prod.later("backup.download", "latest", env=env),
    ])
    # the dry run looks at the machine's backup lock as its run meets it (review-op s21
    # #3), so it needs flyctl as its run does, and stops with the run's code and words
    dry = prod.run("backup", "--production", "--dry-run", "--json", env=env)
    results.append(dry)
    for result in results:
        assert_error(result, ExitCode.FLY, contains="flyctl is not installed")
        assert "https://fly.io/install.sh" in result.stderr
    assert prod.calls() == []
    assert len(prod.remote_backups()) == 1


def test_not_logged_in_shows_flyctls_message(tmp_path):
    rejected, bad_token = make_prod(tmp_path / "rejected"), make_prod(tmp_path / "bad")
    rejected.world.unauthenticated()
    results = run_deferred([
        rejected.later("backup", "--production"),
        bad_token.later("backup.list", "--production", env={"FLY_API_TOKEN": "nope-not-a-token"}),
    ])
    for prod, result in zip((rejected, bad_token), results, strict=True):
        assert_error(result, ExitCode.FLY, contains="You must be authenticated to view this")
        # review-ox 14: the whole command, and what to do
        assert f"`fly volumes list -a {APP} --json` failed" in result.stderr, result
        assert "log in with `fly auth login`, or set FLY_API_TOKEN" in result.stderr
        assert "nope-not-a-token" not in result.stderr + result.stdout
        assert prod.flow() == ["version", "volumes list"]
        assert not prod.remote_dir.exists()


def test_flyctl_printing_no_json(prod):
    prod.world.garbage(["volumes", "list"], stdout="Update available! 0.4.88\n")
    result = prod.run("backup", "--production")
    assert_error(result, ExitCode.FLY, contains="did not print JSON")
    assert "Update available" in result.error_lines[0]
    assert prod.flow() == ["version", "volumes list"]


def test_production_machine_stopped(prod):
    prod.world.set_machine_state(MACHINE, "stopped")
    result = prod.run("backup", "--production")
    assert_error(result, ExitCode.NOT_FOUND, contains="no started machine")
    assert prod.flow() == RESOLVE
    assert not prod.remote_dir.exists()


def test_failing_ssh_console_is_a_clear_error(prod):
    prod.world.fail(["ssh", "console"], stderr="Error: tunnel unavailable: connection refused\n")
    result = prod.run("backup", "--production")
    line = assert_error(result, ExitCode.FLY, contains="tunnel unavailable")
    assert "ssh console" in line and MACHINE in line
    assert prod.flow() == [*RESOLVE, "ssh backup"]
    assert helpers.backup_files(prod.root / "vol") == []


@pytest.mark.parametrize("strategy", ["python3", "sqlite3"])
def test_corrupt_remote_database_makes_no_backup(prod, strategy):
    if strategy == "sqlite3":
        prod.world.remove_machine_tools("python3")
    data = bytearray(prod.db.read_bytes())
    page = 4096
    pages = len(data) // page
    assert pages > 20
    for number in range(pages // 3, pages // 3 + 6):  # garbage over middle b-tree pages
        data[number * page:(number + 1) * page] = bytes((number * 37 + i) % 251
                                                        for i in range(page))
    corrupt = prod.root / "vol" / "corrupt.db"
    corrupt.write_bytes(bytes(data))
    result = prod.run("backup", "--production", env={"INVOKE_DB_REMOTE_PATH": str(corrupt)})
    assert_error(result, ExitCode.VERIFY_FAILED, contains="check")
    assert helpers.backup_files(prod.root / "vol") == []
    assert not [p for p in prod.remote_dir.iterdir() if p.name.startswith(".tmp-")]
    assert prod.flow() == [*RESOLVE, "ssh backup"]  # no retention after a failed backup


def test_token_never_printed(tmp_path):
    prod = make_prod(tmp_path / "ok")
    failing = make_prod(tmp_path / "failing")
    for world in (prod.world, failing.world):
        world.add_token(TOKEN)
    # flyctl --debug style output that echoes the token back in its error
    failing.world.fail(["ssh", "console"], times=None,
                       stderr=f"DEBUG Authorization: FlyV1 {TOKEN}\nError: denied for {TOKEN}\n")
    env = {"FLY_API_TOKEN": TOKEN}
    prod.seed(1)
    results = run_parallel([
        prod.later("backup", "--production", "--json", env=env),
        prod.later("backup.download", "latest", env=env),
        failing.later("backup.status", "--production", env=env),
    ])
    for result in results[:2]:
        assert result.returncode == 0, result
    assert_error(results[2], ExitCode.FLY, contains="denied for ***")
    for result in results:
        assert TOKEN not in result.stdout + result.stderr, result
    records = prod.world.call_records() + failing.world.call_records()
    assert records and all(record["token"] for record in records)  # the token did reach flyctl
