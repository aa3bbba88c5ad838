"""Restore you can trust (issue 16), the local engine's cases and the ones needing a real
signal or a change at an exact moment of a real run (``tests/hooks/sitecustomize.py``):
Ctrl-C around the copy, a ``--from`` file changed after its check, the drill and both
SHA-256 records, deeply nested records, a corrupt or missing live database here."""

from __future__ import annotations

import json
import os
import random
import sqlite3
from pathlib import Path

import pytest

from ops import engine, restore
from tests import helpers
from tests.helpers import assert_one_line_error

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process


@pytest.fixture
def prod(served_prod):
    """Production whose /health answers (a restore restarts the machine and waits for it)."""
    return served_prod


HOOKS = str(Path(__file__).parent / "hooks")


def hooked(**spec) -> dict:
    """Environment for a CLI run with ``spec`` acted out at its exact point."""
    path = os.pathsep.join(filter(None, [HOOKS, os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "OPS_TEST_HOOK": json.dumps(spec)}


def changed_after_backup(db: Path, directory: Path) -> engine.BackupResult:
    made = engine.create_backup(db, directory)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM steps WHERE id > 1000")
    conn.commit()
    conn.close()
    return made


def content(path: Path) -> str:
    return engine.describe_file(path, live=True)[1]


# ---------------------------------------------------------------- #8 Ctrl-C during the restore


def test_ctrl_c_right_after_the_copy_says_and_records_that_it_was_restored(
        wal_db, backup_dir, run_invoke, tmp_path):
    made = changed_after_backup(wal_db, backup_dir)
    result = run_invoke("restore", made.name, "--yes", "--json",
                        env=hooked(wrap="restore_live", when="after", signal="SIGINT"))
    assert result.returncode == 130, result
    assert "SIGINT came after the copy: the live database holds backup" in result.stderr
    assert content(wal_db) == engine.describe_file(made.path)[1]
    record = json.loads((tmp_path / "data" / "deploys.jsonl").read_text().splitlines()[-1])
    assert record["outcome"] == "ok" and record["holds"] == "backup"
    assert record["interrupted"] == "SIGINT" and record["proof"]["ok"]


def test_ctrl_c_before_the_copy_commits_says_nothing_was_changed(
        wal_db, backup_dir, run_invoke, tmp_path):
    made = changed_after_backup(wal_db, backup_dir)
    before = content(wal_db)
    result = run_invoke("restore", made.name, "--yes",
                        env=hooked(wrap="restore_live", when="before", signal="SIGINT"))
    assert result.returncode == 130, result
    assert "still holds its content from before (nothing was changed)" in result.stderr
    assert content(wal_db) == before
    record = json.loads((tmp_path / "data" / "deploys.jsonl").read_text().splitlines()[-1])
    assert record["outcome"] == "not restored" and record["holds"] == "safety"


# ---------------------------------------------------------------- #5 restore --from


def test_restore_from_restores_the_bytes_it_verified(prod, tmp_path):  # noqa: F811
    """The local file is changed right after its check: what reaches the live database is
    what was checked (one read, one SHA-256 checked again on the machine)."""
    local_dir = tmp_path / "mine"
    made = engine.create_backup(prod.db, local_dir)
    local = local_dir / made.name
    digest = engine.describe_file(local)[1]  # before the hook tampers with the file
    conn = sqlite3.connect(prod.db)
    conn.execute("DELETE FROM users WHERE id > 10")
    conn.commit()
    conn.close()
    result = prod.run("restore", "--production", "--from", str(local), "--yes", "--json",
                      env=hooked(wrap="verify_copy,verify_backup", when="after",
                                 tamper=str(local)))
    assert result.returncode == 0, result
    tampered = "SELECT count(*) FROM teams WHERE name LIKE '%tampered%'"
    assert helpers.live_rows(local, tampered)[0][0] == made.tables["teams"]  # it did change
    assert content(prod.db) == digest
    assert helpers.sha256(prod.remote_dir / made.name) == made.sha256


# ---------------------------------------------------------------- #6 the drill reads both records


@pytest.mark.parametrize("record", ["json", "both"])
def test_a_backup_verify_rejects_fails_the_drill(wal_db, backup_dir, run_invoke, record):
    made = engine.create_backup(wal_db, backup_dir)
    manifest = backup_dir / f"{made.name}.json"
    data = json.loads(manifest.read_text())
    data["sha256"] = "0" * 64
    manifest.unlink()
    manifest.write_text(json.dumps(data))
    if record == "json":
        (backup_dir / f"{made.name}.sha256").unlink()
    verified = run_invoke("backup.verify", made.name)
    assert_one_line_error(verified, 5, contains="SHA-256 mismatch", strict=False)
    drilled = run_invoke("backup.drill", made.name, "--json")
    assert drilled.returncode == 5, drilled
    assert any("SHA-256 mismatch" in p for p in drilled.json()["problems"])


# ---------------------------------------------------------------- #9 deeply nested records


def test_a_deeply_nested_record_is_one_line_about_that_backup_in_every_task(
        wal_db, backup_dir, run_invoke):
    good = engine.create_backup(wal_db, backup_dir)
    bad = engine.create_backup(wal_db, backup_dir)
    manifest = backup_dir / f"{bad.name}.json"
    manifest.unlink()
    manifest.write_text("[" * 50_000)
    runs = {task: run_invoke(*task.split()) for task in (
        "backup.list", "backup.status", f"backup.verify {bad.name}",
        f"backup.verify {good.name}", f"backup.drill {bad.name}", f"backup.drill {good.name}",
        f"restore {bad.name} --yes")}
    for task, result in runs.items():
        assert "Traceback" not in result.stderr and "Recursion" not in result.stderr, task
        assert result.returncode in (0, 5), (task, result)
    assert runs[f"backup.drill {bad.name}"].returncode == 5
    assert f"{bad.name}.json" in runs[f"backup.drill {bad.name}"].stderr
    assert runs[f"backup.drill {good.name}"].returncode == 0
    assert runs[f"restore {bad.name} --yes"].returncode == 0  # its .sha256 vouches for it


# ---------------------------------------------------------------- #11 corrupt or missing, locally


def garble(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(db, "r+b") as handle:
        handle.seek(4096 * 2)
        handle.write(random.Random(5).randbytes(4096 * 4))


@pytest.mark.parametrize("how", ["corrupt", "missing"])
def test_a_broken_live_database_here_needs_app_stopped(wal_db, backup_dir, run_invoke, how):
    made = engine.create_backup(wal_db, backup_dir)
    if how == "corrupt":
        garble(wal_db)
    else:
        for path in wal_db.parent.glob("steps.db*"):
            path.unlink()
    skip = (".backup.lock", "deploys.jsonl")  # the audit log records the refusal
    files = helpers.snapshot(wal_db.parent, skip)
    refused = run_invoke("restore", made.name, "--yes")
    line = assert_one_line_error(refused, 2, contains=f"is {how}", strict=False)
    assert "--app-stopped" in line
    after = helpers.snapshot(wal_db.parent, skip)  # SQLite's own look may add -wal/-shm
    assert {name: after.get(name) for name in files} == files
    assert not list(wal_db.parent.glob("steps.db.corrupt-*"))
    result = run_invoke("restore", made.name, "--yes", "--app-stopped", "--json")
    assert result.returncode == 0, result
    record = result.json()
    assert record["live_state"] == how and record["proof"]["ok"]
    assert content(wal_db) == engine.describe_file(made.path)[1]
    aside = sorted(wal_db.parent.glob("steps.db.corrupt-*"))
    if how == "missing":
        assert aside == []
        return
    main = next(path for path in aside if path.name.endswith("Z"))
    assert helpers.sha256(main) == files["steps.db"]  # kept, byte for byte
    kept = next(line for line in result.stderr.splitlines() if line.startswith("Kept"))
    assert kept.startswith("Kept the corrupt database here, never deleted: ")
    assert kept.endswith(main.name) or f"{main.name}," in kept


def test_two_corrupt_files_moved_aside_in_one_second_both_stay(tmp_path):
    live = tmp_path / "steps.db"
    when = engine.parse_iso("2026-01-01T00:00:00Z")
    kept = []
    for text in (b"first", b"second"):
        live.write_bytes(text)
        Path(f"{live}-wal").write_bytes(text + b"-wal")
        kept.append(engine.move_aside(live, when))
    assert [Path(p).name for p in kept[1]] == ["steps.db.corrupt-2026-01-01T00-00-00Z-2-wal",
                                               "steps.db.corrupt-2026-01-01T00-00-00Z-2"]
    assert [Path(p).read_bytes() for p in kept[0] + kept[1]] == [
        b"first-wal", b"first", b"second-wal", b"second"]
    assert not live.exists() and not Path(f"{live}-wal").exists()


def test_ctrl_c_as_a_missing_database_is_placed_says_it_was_restored(
        wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    for path in wal_db.parent.glob("steps.db*"):
        path.unlink()
    result = run_invoke("restore", made.name, "--yes", "--app-stopped", "--json",
                        env=hooked(wrap="replace_broken_live", when="after", signal="SIGINT"))
    assert result.returncode == 130, result
    assert "SIGINT came after the copy: the live database holds backup" in result.stderr
    assert result.json()["holds"] == "backup" and result.json()["outcome"] == "ok"
    assert content(wal_db) == engine.describe_file(made.path)[1]


# ---------------------------------------------------------------- the proof's verdict, as data

A, B, C = "a" * 64, "b" * 64, "c" * 64


@pytest.mark.parametrize("live,backup,safety,tables,ok,holds,words", [
    (A, A, None, {"t": 2}, True, "backup", None),
    (A, A, None, {"t": 9}, True, "backup", None),  # counts read later (sqlite3 CLI): the hash rules
    (B, A, B, {"t": 1}, False, "safety", "still holds its content from before"),
    (C, A, B, {"t": 2}, False, "other", "holds neither"),
    (None, None, None, {"t": 1}, False, "other", "table t: backup 2 rows, live 1 rows"),
    (None, None, None, {"t": 2}, True, "backup", None),  # no hash anywhere: counts only
])
def test_the_proof_judges_every_engine_alike(live, backup, safety, tables, ok, holds, words):
    proof = engine.judge_proof(check="integrity", check_problems=[], tables=tables,
                               backup_tables={"t": 2}, content_sha256=live,
                               backup_content_sha256=backup, content_format="json-2",
                               safety_sha256=safety)
    assert (proof["ok"], proof["holds"]) == (ok, holds)
    problems = engine.proof_problems(proof)
    assert (words in problems[0]) if words else problems == []


def test_a_failed_check_fails_the_proof_whatever_the_content():
    proof = engine.judge_proof(check="integrity", check_problems=["row 3 missing from index"],
                               tables={"t": 2}, backup_tables={"t": 2}, content_sha256=A,
                               backup_content_sha256=A, content_format="json-2")
    assert not proof["ok"] and proof["holds"] == "backup"
    assert engine.proof_problems(proof) == [
        "the live database failed integrity_check after the restore: row 3 missing from index"]


@pytest.mark.parametrize(("app_wrote", "read_at_copy", "check", "words"), [
    (True, False, [], "not proven: the app committed while the restore ran"),
    (None, False, [], "holds neither"),
    (False, False, [], "holds neither"),
    # judged on the copy's own read (a signal during the proof): the app's writes since are
    # not in that read, so they explain nothing (review-break2 s24 #2)
    (True, True, [], "holds neither"),
    (True, False, ["row 3 missing from index"], "failed integrity_check"),
])
def test_a_differing_proof_blames_the_app_only_when_its_writes_can_be_in_the_read(
        app_wrote, read_at_copy, check, words):
    proof = engine.judge_proof(check="integrity", check_problems=check, tables={"t": 3},
                               backup_tables={"t": 2}, content_sha256=C,
                               backup_content_sha256=A, content_format="json-2",
                               safety_sha256=B, app_wrote=app_wrote)
    proof["read_at_copy"] = read_at_copy
    assert engine.raced(proof) is (words.startswith("not proven"))
    problems = engine.proof_problems(proof)
    assert words in problems[0]
    assert all("not proven" not in line for line in problems) or engine.raced(proof)
    # the audit line words it alike: a script counting wrong copies must not count this one
    outcome = restore.failed_outcome({"outcome": "running", "proof": proof})
    assert outcome == ("not proven" if words.startswith("not proven") else "failed")


@pytest.mark.parametrize("unread", ["backup gone", "backup unreadable", "live unhashed"])
def test_a_proof_that_could_not_read_a_side_whole_is_failed_never_not_proven(
        tmp_path, wal_db, unread):
    """s26 review-break #1: a backup the proof could not open ("cannot open …", no hash)
    beside the app's writes read "not proven", blaming the app for what nobody compared."""
    backup = Path(engine.create_backup(wal_db, tmp_path / "backups").path)
    with sqlite3.connect(wal_db) as conn:  # the app's write: the live database differs
        conn.execute("CREATE TABLE app_wrote (x)")
        conn.execute("INSERT INTO app_wrote VALUES (1)")
    conn.close()
    snapshot = {**engine.snapshot_of(wal_db), "app_wrote": True}
    if unread == "backup gone":
        backup.unlink()
    elif unread == "backup unreadable":
        backup.write_bytes(b"not a database at all" * 100)
    else:
        snapshot["content_sha256"] = None  # the live side's read gave no hash
    proof = engine.prove_restore(backup, wal_db, snapshot)
    assert not proof["ok"] and proof["app_wrote"] is True, proof
    assert not engine.raced(proof), proof
    assert restore.failed_outcome({"outcome": "running", "proof": proof}) == "failed"
    assert not any("not proven" in line for line in engine.proof_problems(proof)), proof


@pytest.mark.parametrize("said", ["refused", "not confirmed", "not restored"])
def test_a_failed_restore_keeps_the_outcome_its_run_already_said(said):
    raced = engine.judge_proof(check="integrity", check_problems=[], tables={"t": 3},
                               backup_tables={"t": 2}, content_sha256=C,
                               backup_content_sha256=A, content_format="json-2",
                               safety_sha256=B, app_wrote=True)
    assert engine.raced(raced)
    assert restore.failed_outcome({"outcome": said, "proof": raced}) == said
    assert restore.failed_outcome({"outcome": "running"}) == "failed"  # no proof yet


@pytest.mark.parametrize("moment", ["before", "after"])
def test_kill_9_while_a_corrupt_database_is_replaced_loses_nothing(
        wal_db, backup_dir, run_invoke, moment):
    """kill -9 right after the corrupt file is moved aside (nothing placed yet) or right
    after the backup is placed: the corrupt file is kept either way, and running the same
    restore again ends with a proven live database."""
    made = engine.create_backup(wal_db, backup_dir)
    garble(wal_db)
    corrupt = helpers.sha256(wal_db)
    killed = run_invoke("restore", made.name, "--yes", "--app-stopped",
                        env=hooked(wrap="place_restored", when=moment, signal="SIGKILL"))
    assert killed.returncode == -9, killed
    main = next(p for p in wal_db.parent.glob("steps.db.corrupt-*") if p.name.endswith("Z"))
    assert helpers.sha256(main) == corrupt
    assert wal_db.exists() == (moment == "after")
    again = run_invoke("restore", made.name, "--yes", "--app-stopped", "--json")
    assert again.returncode == 0, again
    assert again.json()["proof"]["ok"]
    assert content(wal_db) == engine.describe_file(made.path)[1]
    assert helpers.sha256(main) == corrupt


@pytest.mark.parametrize("when", ["after", "before"])
def test_ctrl_c_during_a_restore_on_the_machine_asks_it_what_it_holds(prod, when):  # noqa: F811
    made = changed_after_backup(prod.db, prod.remote_dir)
    before = content(prod.db)
    result = prod.run("restore", made.name, "--production", "--yes", "--json",
                      env=hooked(wrap="ops.targets.scripted:ScriptedTarget.restore",
                                 when=when, signal="SIGINT"))
    assert result.returncode == 130, result
    record = result.json()
    if when == "after":
        assert f"its live database now holds backup {made.name}'s content" in result.stderr
        assert (record["holds"], record["outcome"]) == ("backup", "ok")
        assert content(prod.db) == engine.describe_file(made.path)[1]
    else:
        assert "does not hold backup" in result.stderr
        assert (record["holds"], record["outcome"]) == ("other", "interrupted")
        assert content(prod.db) == before
