"""The restore contract, run against every target (restic-style: one set of cases, each
backend must pass them all).

The same cases run through the real CLI against this computer's folder, the Fly machine
(the flyctl double, its /health served here) and an SSH host (the real sshd of
``tests/sshd.py``): restore ``latest``, restore a named backup, a damaged backup is
refused with nothing changed, the proof is recorded (in the JSON record and the audit
log), and the undo line printed after a restore puts back what was there before.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops import engine
from tests import helpers
from tests.fake_production import HealthApp, make_prod

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")

HEALTHY = {"status": "ok", "backup": {"hasBackups": True, "count": 1, "latest": {
    "name": "steps-2026-01-01T00-00-00.db", "created": "2026-01-01T00:00:00Z", "age": 1000}}}


@dataclass
class Site:
    """One target as the contract sees it: its live database, the folder its restores
    read, how to run a task against it and the flag its commands carry."""

    kind: str
    settles: tuple[str, ...]  # the steps after the restore that settle the app (``settle``)
    db: Path
    folder: Path
    audit_log: Path
    flag: tuple[str, ...]
    invoke: Callable[..., helpers.InvokeResult]

    def run(self, *args: str) -> helpers.InvokeResult:
        return self.invoke(*args, *self.flag)

    def backup(self) -> engine.BackupResult:
        return engine.create_backup(self.db, self.folder)

    def audit(self) -> list[dict]:
        return [json.loads(line) for line in self.audit_log.read_text().splitlines()]


def local_site(request, tmp_path) -> Site:
    db = helpers.make_wal_db(tmp_path / "data" / "steps.db")
    folder = tmp_path / "data" / "backups"
    log = tmp_path / "audit.jsonl"
    env = {"INVOKE_DEPLOY_AUDIT_LOG": str(log)}
    return Site("local", (), db, folder, log, (), lambda *a: helpers.run_invoke(
        *a, cwd=tmp_path, env=env))


def fly_site(request, tmp_path) -> Site:
    prod = make_prod(tmp_path, request.getfixturevalue("fly_world"))
    server = HealthApp().__enter__()
    request.addfinalizer(lambda: server.__exit__(None, None, None))
    server.body = HEALTHY
    log = tmp_path / "audit.jsonl"
    prod.env.update({"INVOKE_HEALTH_URL": server.url, "INVOKE_HEALTH_TIMEOUT": "5",
                     "INVOKE_DEPLOY_AUDIT_LOG": str(log)})
    return Site("fly", ("restart", "health"), prod.db, prod.remote_dir, log,
                ("--production",), prod.run)


def ssh_site(request, tmp_path) -> Site:
    server = request.getfixturevalue("ssh_host")
    db = helpers.make_wal_db(tmp_path / "host" / "data" / "steps.db")
    folder = tmp_path / "host" / "backups"
    log = tmp_path / "audit.jsonl"
    env = {"HOME": os.environ["HOME"], "INVOKE_DB_REMOTE_PATH": str(db),
           "INVOKE_BACKUP_REMOTE_DIR": str(folder), "INVOKE_BACKUP_DIR": str(tmp_path / "local"),
           "INVOKE_SSH_CONNECT_TIMEOUT": "5", "INVOKE_SSH_TIMEOUT": "60",
           "INVOKE_DEPLOY_AUDIT_LOG": str(log)}
    addr = f"{server.user}@127.0.0.1:{server.port}"
    return Site("ssh", (), db, folder, log, ("--host", addr), lambda *a: helpers.run_invoke(
        *a, cwd=tmp_path, env=env))


SITES = {"local": local_site, "fly": fly_site, "ssh": ssh_site}


@pytest.fixture(params=list(SITES))
def site(request, tmp_path) -> Site:
    return SITES[request.param](request, tmp_path)


def content(db: Path) -> str:
    return engine.describe_file(db, live=True)[1]


def change(db: Path, keep: int) -> None:
    """The app writes after the backup: only ``keep`` steps are left."""
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM steps WHERE id > ?", (keep,))
    conn.commit()
    conn.close()


def restore(site: Site, *which: str) -> helpers.InvokeResult:
    return site.run("restore", *which, "--yes", "--json")


def assert_restored(site: Site, result: helpers.InvokeResult, made: engine.BackupResult):
    """The run says ok, the live database holds the backup's content, and the proof
    (integrity_check, row counts, content hash against the backup) is recorded."""
    assert result.returncode == 0, result
    record = result.json()
    assert record["outcome"] == "ok" and record["backup"]["name"] == made.name
    assert content(site.db) == engine.describe_file(made.path)[1]
    proof = record["proof"]
    assert proof["ok"] and proof["tables"] == made.tables
    assert proof["content_sha256"] == proof["backup_content_sha256"]
    assert proof["content_sha256"] == engine.describe_file(made.path)[1]
    assert record["tables_after"] == made.tables
    logged = site.audit()[-1]
    assert logged["kind"] == "restore" and logged["outcome"] == "ok"
    assert logged["proof"] == proof and logged["backup"]["name"] == made.name
    # the target settles the app after the copy: Fly restarts and waits for /health, a
    # folder here and an SSH host do nothing (no restart, no wait, nothing recorded)
    keys = [step["step"] for step in logged["steps"]]
    assert keys[keys.index("restore") + 1:] == [*site.settles, *(
        ["check"] if site.kind == "local" else [])]
    assert all(step["outcome"] == "ok" for step in logged["steps"])
    return record


# ---------------------------------------------------------------- the cases


def test_restore_latest(site):
    made = site.backup()
    change(site.db, keep=1000)
    record = assert_restored(site, restore(site), made)
    assert record["tables_before"]["steps"] == 1000
    safety = site.folder / record["safety_backup"]["name"]  # what was there, kept
    assert engine.verify_backup(safety).ok and engine.count_rows(safety)["steps"] == 1000


def test_restore_a_named_backup_not_the_latest(site):
    older = site.backup()
    change(site.db, keep=500)
    newer = site.backup()
    assert newer.name != older.name
    assert engine.describe_file(newer.path)[1] != engine.describe_file(older.path)[1]
    assert_restored(site, restore(site, older.name), older)


def test_latest_is_never_a_safety_backup(site):
    made = site.backup()
    change(site.db, keep=1000)
    first = assert_restored(site, restore(site), made)
    change(site.db, keep=10)
    # the first run's safety backup is newer than `made`, but latest still means `made`
    second = assert_restored(site, restore(site), made)
    assert second["safety_backup"]["name"] != first["safety_backup"]["name"]


def test_a_damaged_backup_is_refused_and_nothing_changes(site):
    made = site.backup()
    change(site.db, keep=1000)
    before = content(site.db)
    with open(site.folder / made.name, "r+b") as damaged:  # one byte of a page flipped
        damaged.seek(made.size // 2)
        byte = damaged.read(1)
        damaged.seek(made.size // 2)
        damaged.write(bytes([byte[0] ^ 0xFF]))
    result = restore(site)
    assert result.returncode == 5, result
    assert made.name in result.error_lines[-1] and "nothing was changed" in result.stderr
    assert content(site.db) == before
    assert [b.name for b in engine.list_backups(site.folder)] == [made.name]  # no safety
    logged = site.audit()[-1]
    assert logged["kind"] == "restore" and logged["exit_code"] == 5
    assert logged["outcome"] != "ok" and not logged.get("safety_backup")


def undo_line(stderr: str) -> list[str]:
    """The command printed after "To undo this restore:", its wrapped lines joined."""
    return helpers.command_after(stderr, "To undo this restore:").split()


def test_the_undo_line_puts_back_what_was_there(site):
    made = site.backup()
    change(site.db, keep=1000)
    before = content(site.db)
    result = restore(site)
    record = assert_restored(site, result, made)
    safety = record["safety_backup"]["name"]
    undo = undo_line(result.stderr)
    assert undo == ["invoke", "restore", safety, *site.flag, "--yes"], result.stderr
    undone = site.invoke(*undo[1:], "--json")  # run exactly as printed
    assert undone.returncode == 0, undone
    assert content(site.db) == before
    assert undone.json()["backup"]["name"] == safety and undone.json()["proof"]["ok"]


def test_the_confirmation_counts_both_sides_as_the_target_counts_them(site):
    """The rows the question shows come from the target (``Target.counts``), the same on
    every target: the live database's now, and the backup's as recorded."""
    made = site.backup()
    change(site.db, keep=1000)
    result = restore(site)
    assert_restored(site, result, made)
    lines = result.stderr.splitlines()
    live = [line for line in lines if line.startswith("Replace the live database")]
    backup = [line for line in lines if line.startswith(f"with backup {made.name} (")]
    assert len(live) == len(backup) == 1, result.stderr
    assert "steps 1000" in live[0] and f"steps {made.tables['steps']}" in backup[0], lines
