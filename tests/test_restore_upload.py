"""restore --from's upload on a server (review-break s20 #1, #2, #3, #5).

- ``latest`` never names an upload, before or after its restore: latest is the newest
  backup a backup task made from the live database, never a copy made for a restore.
- The upload's record carries what the local record says it is: its ``source`` (the
  other-database guard applies to it) and, for a safety backup sent back, ``kind: safety``
  with its ``restore`` mark.
- Retention keeps an upload whose restore has not begun for ``retention.UPLOAD_GRACE``
  from its ``uploaded`` time, then removes it; a record claiming kind ``upload`` by hand
  gets no more than that.
- A run that uploaded and stopped before its restore began removes its upload, and says
  so; when it cannot, it names the file and the command that removes it.
- A page size the machine refuses is refused before the upload, in the run and its dry run.
- review-break2: no staged ``.upload-*`` file is left (the run removes its own; a backup's
  sweep one unwritten for an hour); ``uploaded`` is the machine's clock; a sent-back safety
  backup this run published goes like an upload; a second signal still names the upload.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from pathlib import Path

import pytest

from ops import engine, remote, retention
from tests import helpers
from tests.fake_production import days_ago, use_engine

HOOKS = str(Path(__file__).parent / "hooks")
NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


def item(name: str, kind: str = "backup", **fields) -> engine.BackupFile:
    return engine.BackupFile(name=name, path=name, created=engine.iso(engine.parse_created(name)),
                             size=1, verified=True, kind=kind, **fields)


def recorded(folder: Path, when: dt.datetime, db: Path, **record) -> Path:
    """A sound recorded backup of ``db`` named as made at ``when`` (``record``: more fields)."""
    path = helpers.old_script_backup(folder, when, db)
    digest = helpers.sha256(path)
    Path(f"{path}.sha256").write_text(f"{digest}  {path.name}\n")
    Path(f"{path}.json").write_text(json.dumps(
        {"name": path.name, "size": path.stat().st_size, "sha256": digest, "check": "integrity",
         "source": str(db), **record}) + "\n")
    return path


def kinds(folder: Path) -> dict[str, str]:
    return {backup.name: backup.kind for backup in engine.list_backups(folder)}


def hooked(spec: dict | list) -> dict:
    path = os.pathsep.join(filter(None, [HOOKS, os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "OPS_TEST_HOOK": json.dumps(spec)}


# ---------------------------------------------------------------- latest (finding 1)


def test_latest_never_names_an_upload_before_or_after_its_restore():
    older = item("steps-2026-01-08T00-00-00.db")
    upload = item("steps-2026-01-09T00-00-00.db", "upload", uploaded=engine.iso(NOW))
    assert engine.latest_reason(upload, NOW) == "uploaded by restore --from"
    assert engine.latest_of([older, upload], NOW).name == older.name
    safety = item("steps-2026-01-10T00-00-00.db", "safety",
                  restore={"when": engine.iso(NOW), "backup": upload.name})
    assert engine.latest_of([older, upload, safety], NOW).name == older.name  # restored too
    assert retention.good_candidates([older, upload, safety], NOW) == [older.name]
    with pytest.raises(engine.EngineError, match="uploaded by restore --from"):
        engine.latest_of([upload], NOW)


def test_a_run_stopped_by_a_held_lock_removes_its_upload_and_latest_stays_production(
        served_prod, tmp_path):
    """Another database's backup, uploaded; the restore there finds the restore lock held
    (exit 4): the upload is removed and said so, and a later plain restore takes
    production's own newest backup, not the other database (was: users 7 over 200)."""
    prod = served_prod
    own = prod.seed(2, 1)
    other = helpers.make_wal_db(tmp_path / "other" / "other.db", users=7, steps=11)
    made = engine.create_backup(other, tmp_path / "here")
    with open(prod.remote_dir / engine.RESTORE_LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = prod.run("restore", "--production", "--from", str(made.path), "--yes")
    assert result.returncode == 4, result
    assert f"Removed the upload {made.name} from {prod.remote_dir} on the machine: its " \
        "restore never began" in result.stderr, result.stderr
    assert sorted(kinds(prod.remote_dir)) == own  # nothing of the upload is left
    assert not list(prod.remote_dir.glob(f"{made.name}*"))
    later = prod.run("restore", "--production", "--yes")
    assert later.returncode == 0, later
    assert f"find backup latest  {own[-1]}" in later.stderr
    assert helpers.rows(prod.db, "SELECT count(*) FROM users") == [(200,)]


def test_a_backup_already_there_under_the_name_is_never_removed(served_prod, tmp_path):
    """A production backup sent back (the same file was there): its adopt changed nothing,
    and the failed run leaves it as it was, saying nothing of an upload."""
    import shutil

    prod = served_prod
    own = prod.seed(2, 1)
    here = tmp_path / "here"
    here.mkdir()
    for suffix in ("", ".sha256", ".json"):
        shutil.copy(prod.remote_dir / f"{own[0]}{suffix}", here / f"{own[0]}{suffix}")
    with open(prod.remote_dir / engine.RESTORE_LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = prod.run("restore", "--production", "--from", str(here / own[0]), "--yes")
    assert result.returncode == 4, result
    assert kinds(prod.remote_dir) == {name: "backup" for name in own}
    assert "Removed the upload" not in result.stderr and "stays in" not in result.stderr


def sigterm_after(prod, tmp_path: Path, wrap: str):
    """restore --from, SIGTERM right after ``wrap`` returns: the local file and the result."""
    prod.seed(1)
    made = recorded(tmp_path / "here", days_ago(3), prod.db)
    hook = {"wrap": wrap, "when": "after", "signal": "SIGTERM"}
    result = prod.run("restore", "--production", "--from", str(made), "--yes", env=hooked(hook))
    assert result.returncode == 143, result
    return made, result


def test_sigterm_right_after_the_upload_removes_it(served_prod, tmp_path):
    prod = served_prod
    made, result = sigterm_after(prod, tmp_path, "ops.targets.scripted:ScriptedTarget.upload")
    assert f"Removed the upload {made.name}" in result.stderr, result.stderr
    assert made.name not in kinds(prod.remote_dir)
    # the rerun it suggests sends the file again (the upload is gone)
    assert f"invoke restore --production --from {made} --yes" in result.stderr, result.stderr


def changed_after_upload(prod, path: Path) -> str:
    """restore --from ``path`` with the restore lock held, the file there changed right
    after its upload (so its removal refuses it): the run's stderr as one line."""
    hook = {"wrap": "ops.targets.scripted:ScriptedTarget.upload", "when": "after",
            "tamper": str(prod.remote_dir / path.name)}
    with open(prod.remote_dir / engine.RESTORE_LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = prod.run("restore", "--production", "--from", str(path), "--yes",
                          env=hooked(hook))
    assert result.returncode == 4, result
    return " ".join(result.stderr.split())


def test_an_upload_it_cannot_remove_is_named_with_the_command_that_removes_it(
        served_prod, tmp_path):
    """The file there is no longer the one sent (changed after its upload): the run
    removes nothing and names it, with the cleanup that removes it after its hour."""
    prod = served_prod
    prod.seed(1)
    made = recorded(tmp_path / "here", days_ago(3), prod.db)
    text = changed_after_upload(prod, made)
    assert f"the upload {made.name} stays in {prod.remote_dir} on the machine" in text, text
    assert "`invoke backup.cleanup --production` removes it from " in text
    assert kinds(prod.remote_dir)[made.name] == "upload"
    record = json.loads(Path(f"{prod.remote_dir / made.name}.json").read_text())
    assert engine.parse_iso(record["uploaded"]) >= days_ago(0) - dt.timedelta(minutes=5)


# ---------------------------------------------------------------- what the record carries (#1, #2)


def test_an_uploads_record_keeps_its_source_so_the_other_database_guard_applies(
        served_prod, tmp_path):
    prod = served_prod
    prod.seed(1)
    other = helpers.make_wal_db(tmp_path / "other" / "other.db", users=7, steps=11)
    made = engine.create_backup(other, tmp_path / "here")
    done = prod.run("restore", "--production", "--from", str(made.path), "--yes")
    assert done.returncode == 0, done
    record = json.loads(Path(f"{prod.remote_dir / made.name}.json").read_text())
    assert record["kind"] == "upload" and record["source"] == str(other)
    again = prod.run("restore", made.name, "--production", "--dry-run")
    assert again.returncode == 2, again
    assert f"backup {made.name} is of {other}, not of the live database" in again.stderr


@pytest.mark.parametrize("age_days", [0, 5])
def test_a_safety_backup_sent_back_stays_a_safety_backup(served_prod, tmp_path, age_days):
    prod = served_prod
    prod.seed(2, 1)
    mark = {"when": "2026-12-02T00:00:00Z", "backup": "steps-2026-12-01T00-00-00.db"}
    path = recorded(tmp_path / "here", days_ago(age_days) - dt.timedelta(minutes=5), prod.db,
                    kind="safety", restore=mark)
    result = prod.run("restore", "--production", "--from", str(path), "--yes")
    assert result.returncode == 0, result
    record = json.loads(Path(f"{prod.remote_dir / path.name}.json").read_text())
    assert record["kind"] == "safety" and record["restore"] == mark
    assert record["source"] == str(prod.db)
    listed = {b.name: b for b in engine.list_backups(prod.remote_dir)}
    assert engine.latest_reason(listed[path.name], days_ago(0)) == "a restore's safety backup"
    cleanup = prod.run("backup.cleanup", "--keep", "1", "--production")
    assert cleanup.returncode == 0, cleanup
    assert kinds(prod.remote_dir)[path.name] == "safety"  # was: removed as an old backup


# ---------------------------------------------------------------- retention's hour (#1, #5)


@pytest.mark.parametrize("uploaded, kept", [
    (NOW - dt.timedelta(minutes=30), True),
    (NOW - dt.timedelta(hours=1, seconds=1), False),  # the documented hour
    (None, False),  # no readable time: a hand-made record gets nothing
    (NOW + dt.timedelta(days=365), False),  # dated ahead: no endless grace
])
def test_retention_keeps_an_unrestored_upload_only_for_its_hour(uploaded, kept):
    upload = item("steps-2026-01-09T00-00-00.db", "upload",
                  uploaded=engine.iso(uploaded) if uploaded else None)
    newer = [item("steps-2026-01-09T12-00-00.db"), item("steps-2026-01-10T00-00-00.db")]
    decisions = {d.name: d for d in retention.plan_retention([upload, *newer], 5, now=NOW)}
    assert decisions[upload.name].keep is kept
    assert decisions[upload.name].reason == (retention.UPLOAD if kept
                                             else retention.UPLOAD_EXPIRED)
    restored = item("steps-2026-01-10T06-00-00.db", "safety",
                    restore={"when": engine.iso(NOW), "backup": upload.name})
    decisions = {d.name: d for d in retention.plan_retention(
        [upload, *newer, restored], 5, now=NOW)}
    assert decisions[upload.name].reason == "newest 5"  # restored: counted as any backup


def test_a_hand_made_upload_record_locally_is_removed_and_never_latest(run_invoke, tmp_path):
    """Finding 5: a NAME.json claiming kind upload (not written by this tool locally)."""
    db = helpers.make_wal_db(tmp_path / "data" / "steps.db")
    folder = tmp_path / "data" / "backups"
    paths = [recorded(folder, days_ago(age), db) for age in (3, 2, 1)]
    record = json.loads(Path(f"{paths[-1]}.json").read_text())
    Path(f"{paths[-1]}.json").write_text(json.dumps({**record, "kind": "upload"}))
    listed = run_invoke("backup.list")
    assert listed.returncode == 0, listed
    assert "upload: a file `invoke restore --from FILE` sent here for its restore; never " \
        "latest" in " ".join(listed.stderr.split()), listed.stderr
    dry = run_invoke("restore", "--dry-run")
    assert dry.returncode == 0 and f"latest is {paths[1].name}" in dry.stderr, dry
    cleanup = run_invoke("backup.cleanup", "--keep", "1")
    assert cleanup.returncode == 0, cleanup
    assert sorted(kinds(folder)) == [paths[1].name]  # was: "removed 1, kept 2"


# ---------------------------------------------------------------- page size first (#3)


@pytest.mark.parametrize("machine_engine", ["python3", "sqlite3", "node"])
def test_a_page_size_the_machine_refuses_is_refused_before_the_upload(
        served_prod, tmp_path, machine_engine):
    prod = served_prod
    use_engine(prod, machine_engine)
    prod.seed(2, 1)
    before = helpers.snapshot(prod.remote_dir)
    made = helpers.backup_of_other_page_size(tmp_path / "here", tmp_path)
    line = ("Error: restore on the machine: the backup's page size (8192) differs from the "
            "live database's (4096); SQLite cannot restore it into a WAL database. Nothing "
            "was changed")
    for args in (["--dry-run"], ["--yes"]):
        result = prod.run("restore", "--production", "--from", str(made.path), *args)
        assert result.returncode == 2, result
        assert " ".join(result.stderr.split()).endswith(line), result.stderr
    assert not [argv for argv in prod.world.calls() if argv[:3] == ["ssh", "sftp", "put"]]
    assert helpers.snapshot(prod.remote_dir) == before


def test_a_page_size_the_host_refuses_is_refused_before_the_upload(host, tmp_path, run_invoke):
    made = helpers.backup_of_other_page_size(tmp_path / "here", tmp_path)
    host["dir"].mkdir(parents=True)
    before = helpers.snapshot(host["dir"])
    lines = set()
    for args in (["--dry-run"], ["--yes"]):
        result = run_invoke("restore", "--host", host["addr"], "--from", str(made.path), *args,
                            env=host["env"])
        assert result.returncode == 2, result
        assert "the backup's page size (8192) differs from the live database's (4096)" \
            in result.stderr, result.stderr
        lines.add(result.stderr.strip().splitlines()[-1])
    assert len(lines) == 1  # the run's line and its dry run's are one
    assert helpers.snapshot(host["dir"]) == before  # nothing uploaded


@pytest.mark.parametrize("uploaded, token", [
    ("2026-12-07T09:00:00Z", "2026-12-07T09:00:00Z"),
    ("2026-12-07T09:00:00Z; rm -rf /", "-"),
    ("1" * 41, "-"),  # longer than any time: never a listing the tool refuses as a whole
    (7, "-"),
])
def test_the_listing_reads_an_uploads_time_as_one_token(tmp_path, uploaded, token):
    """The machine's listing (plain sh, every engine) carries the ``uploaded`` time
    retention's hour starts from; anything else is ``-`` (no grace), never a bad line."""
    path = helpers.machine_path(tmp_path, python=False, sqlite=False)
    folder = tmp_path / "b"
    folder.mkdir()
    name = "steps-2026-01-01T00-00-00.db"
    (folder / name).write_bytes(b"x" * 10)
    (folder / f"{name}.json").write_text(json.dumps({"name": name, "kind": "upload",
                                                     "uploaded": uploaded}))
    entries = helpers.run_remote(remote.list_script(str(folder)), path).entries
    assert entries == [[name, "10", "-", "1", "upload", "-", "-", token]]
    local = engine.list_backups(folder)[0]
    assert local.uploaded == (None if token == "-" else token)  # read alike here


# ---------------------------------------------------------------- leftovers (review-break2 s20)


def test_sigterm_between_the_transfer_and_the_adopt_leaves_no_staged_file(served_prod, tmp_path):
    """The hidden file the upload is sent to is this run's own: its removal step removes it
    (#1; was: ``.upload-NAME.PID``, as large as the database, kept forever)."""
    prod = served_prod
    made, _ = sigterm_after(prod, tmp_path, "ops.targets.fly.session:FlySession.put_file")
    assert [p.name for p in prod.remote_dir.iterdir() if p.name.startswith(".upload-")] == []
    assert made.name not in kinds(prod.remote_dir)


def test_an_uploads_time_is_the_machines_clock_not_the_uploaders(served_prod, tmp_path,
                                                                  monkeypatch):
    """#3: the uploader's clock 2 hours ahead; the record's ``uploaded`` is the machine's
    time of the adopt (was: the uploader's, so another computer's cleanup gave no grace)."""
    import types

    from ops.targets import scripted

    class Ahead(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.now(tz) + dt.timedelta(hours=2)

    monkeypatch.setattr(scripted, "dt", types.SimpleNamespace(
        datetime=Ahead, UTC=dt.UTC, timedelta=dt.timedelta))
    prod = served_prod
    prod.seed(1)
    made = recorded(tmp_path / "here", days_ago(3), prod.db)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    done = prod.here("restore", "--production", "--from", str(made), "--yes")
    assert done.returncode == 0, done
    record = json.loads(Path(f"{prod.remote_dir / made.name}.json").read_text())
    assert before <= engine.parse_iso(record["uploaded"]) <= dt.datetime.now(dt.UTC)


def test_a_safety_backup_this_run_sent_back_is_removed_when_its_restore_never_began(
        served_prod, tmp_path):
    """#2: the server published it (adopted) and the run failed before its restore: it
    goes like an upload, and the run says so (was: a permanent safety backup, said nothing).
    The same file already there (present) stays: the guard test above."""
    prod = served_prod
    prod.seed(2, 1)
    mark = {"when": "2026-12-02T00:00:00Z", "backup": "steps-2026-12-01T00-00-00.db"}
    path = recorded(tmp_path / "here", days_ago(0) - dt.timedelta(minutes=5), prod.db,
                    kind="safety", restore=mark)
    with open(prod.remote_dir / engine.RESTORE_LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = prod.run("restore", "--production", "--from", str(path), "--yes")
    assert result.returncode == 4, result
    assert path.name not in kinds(prod.remote_dir)
    assert f"Removed the safety backup this run sent back, {path.name}" in result.stderr


def test_a_second_signal_during_the_removal_still_names_the_upload(served_prod, tmp_path):
    """#4: SIGTERM after the upload, then Ctrl-C as its removal starts: the upload stays,
    and the run names it with how it goes (was: not a word of it)."""
    prod = served_prod
    prod.seed(1)
    made = recorded(tmp_path / "here", days_ago(3), prod.db)
    hooks = [{"wrap": "ops.targets.scripted:ScriptedTarget.upload", "when": "after",
              "signal": "SIGTERM"},
             {"wrap": "ops.targets.scripted:ScriptedTarget.discard_upload", "when": "before",
              "signal": "SIGINT"}]
    result = prod.run("restore", "--production", "--from", str(made), "--yes", env=hooked(hooks))
    assert result.returncode == 130, result
    assert kinds(prod.remote_dir)[made.name] == "upload"
    text = " ".join(result.stderr.split())
    assert f"the upload {made.name} stays in {prod.remote_dir} on the machine" in text, text


def test_a_sent_back_safety_backup_it_cannot_remove_is_named_as_one(served_prod, tmp_path):
    """#2: left (changed since it was sent), it is named as the safety backup it is, and no
    cleanup is promised (retention never removes a safety backup)."""
    prod = served_prod
    prod.seed(2, 1)
    mark = {"when": "2026-12-02T00:00:00Z", "backup": "steps-2026-12-01T00-00-00.db"}
    path = recorded(tmp_path / "here", days_ago(0) - dt.timedelta(minutes=5), prod.db,
                    kind="safety", restore=mark)
    text = changed_after_upload(prod, path)
    assert f"the safety backup {path.name} this run sent back stays in {prod.remote_dir}" \
        in text, text
    assert "never removed automatically" in text and "backup.cleanup" not in text


@pytest.mark.parametrize("machine_engine", ["python3", "sqlite3", "node"])
def test_a_backup_sweeps_a_staged_upload_a_killed_run_left(served_prod, machine_engine):
    """#1, kill -9 between the transfer and the adopt: nothing of the run is left to remove
    its staged file; a backup's sweep there removes one unwritten for an hour, never one
    still being written (the transfer holds no lock)."""
    import time

    prod = served_prod
    use_engine(prod, machine_engine)
    prod.seed(1)
    old = prod.remote_dir / ".upload-steps-2026-01-01T00-00-00.db.4242"
    fresh = prod.remote_dir / ".upload-steps-2026-01-02T00-00-00.db.4343"
    for path in (old, fresh):
        path.write_bytes(b"x" * 1000)
    os.utime(old, (time.time() - engine.STAGED_AGE - 120,) * 2)
    done = prod.run("backup", "--production")
    assert done.returncode == 0, done
    assert not old.exists() and fresh.exists()


def test_a_changed_file_under_a_leftover_uploads_name_is_told_what_is_there(
        served_prod, tmp_path):
    """#4: a different file under the name of an upload an earlier run left: the refusal
    says what is there and that it goes (was: only "a different backup … exists")."""
    import shutil

    prod = served_prod
    prod.seed(1)
    made = recorded(tmp_path / "here", days_ago(3), prod.db)
    for suffix in ("", ".sha256"):
        shutil.copy(f"{made}{suffix}", prod.remote_dir / f"{made.name}{suffix}")
    (prod.remote_dir / f"{made.name}.json").write_text(json.dumps(
        {"kind": "upload", "name": made.name, "uploaded": engine.iso(days_ago(0))}))
    other = helpers.make_wal_db(tmp_path / "o" / "o.db", users=7, steps=11)
    shutil.copy(engine.create_backup(other, tmp_path / "made").path, made)
    Path(f"{made}.json").unlink()
    Path(f"{made}.sha256").write_text(f"{helpers.sha256(made)}  {made.name}\n")
    result = prod.run("restore", "--production", "--from", str(made), "--yes",
                      "--other-source")
    assert result.returncode == 2, result
    text = " ".join(result.stderr.split())
    assert f"a different backup named {made.name} already exists on the machine (an upload " \
        "an earlier restore --from left there" in text, text
