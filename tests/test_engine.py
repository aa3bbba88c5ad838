"""ops.engine against real SQLite files, a real writer process, kill -9 and a full disk."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ops import engine
from tests import helpers
from tests.helpers import utc

NAME_RE = re.compile(r"^steps-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2})\.db$")


def leftovers(folder: Path) -> list[str]:
    """Temporaries, journals, -wal/-shm: anything a finished run must not leave."""
    return sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.name.startswith(engine.TMP_PREFIX)
        or entry.name.endswith(("-wal", "-shm", "-journal"))
    )


def expect_error(kind: str, call, *args, **kwargs) -> engine.EngineError:
    with pytest.raises(engine.EngineError) as info:
        call(*args, **kwargs)
    assert info.value.kind == kind, f"{info.value.kind}: {info.value}"
    return info.value


# ---------------------------------------------------------------- online backup


def test_backup_under_a_writer_process_is_a_consistent_verified_wal_copy(wal_db, tmp_path):
    folder = tmp_path / "backups"
    writer = helpers.Writer(wal_db, tmp_path / "writer").start()
    during: list[int] = []

    def on_pages(done, total):
        # called while the copy holds its read transaction: the app must keep committing
        if not during:
            during.append(writer.max_id())
            time.sleep(0.3)
            during.append(writer.max_id())

    try:
        helpers.wait_for(lambda: writer.max_id() >= 5, what="a few writer commits")
        committed_before = writer.max_id()  # separate connection, closed again
        started = dt.datetime.now(dt.UTC).replace(microsecond=0)
        result = engine.create_backup(wal_db, folder, on_pages=on_pages)
        finished = dt.datetime.now(dt.UTC)
    finally:
        report = writer.stop()

    backup = folder / result.name
    # every row committed before the backup started is in it; nothing after its snapshot
    ids = [row[0] for row in helpers.rows(backup, "SELECT id FROM writer_log ORDER BY id")]
    live_ids = [
        row[0]
        for row in helpers.live_rows(
            wal_db, "SELECT id FROM writer_log WHERE id <= ? ORDER BY id", committed_before
        )
    ]
    assert set(live_ids) <= set(ids)
    assert max(ids) >= committed_before
    assert max(ids) <= during[0]
    assert helpers.rows(backup, "SELECT count(*) FROM steps") == [(3000,)]
    assert helpers.rows(backup, "PRAGMA integrity_check") == [("ok",)]
    # the writer was never blocked: it kept committing during the copy, without errors
    assert during[1] > during[0], during
    assert report["errors"] == 0, report
    assert report["max_id"] > max(ids)

    # WAL mode, as the live database: header bytes 18/19 are 2, and SQLite says so
    assert backup.read_bytes()[18:20] == b"\x02\x02"
    probe = tmp_path / "probe" / "copy.db"
    probe.parent.mkdir()
    shutil.copyfile(backup, probe)
    assert helpers.live_rows(probe, "PRAGMA journal_mode") == [("wal",)]

    # sidecars: the real sha256sum accepts NAME.sha256; NAME.json matches the file
    check = subprocess.run(
        ["sha256sum", "-c", f"{result.name}.sha256"], cwd=folder, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == f"{result.name}: OK"
    manifest = json.loads((folder / f"{result.name}.json").read_text())
    assert manifest["size"] == backup.stat().st_size == result.size
    assert manifest["sha256"] == helpers.sha256(backup) == result.sha256
    assert manifest["name"] == result.name and manifest["check"] == "integrity"

    # private, named in UTC after the moment it started, and nothing else left behind
    for path in (backup, *engine.sidecars(backup)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    stamp = NAME_RE.match(result.name)
    assert stamp, result.name
    named = dt.datetime.strptime(stamp.group(1), "%Y-%m-%dT%H-%M-%S").replace(tzinfo=dt.UTC)
    assert started <= named <= finished
    assert result.created == named.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert leftovers(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [engine.LOCK_NAME, result.name, f"{result.name}.sha256", f"{result.name}.json"]
    )


def test_names_are_utc_whatever_the_local_time_zone(wal_db, tmp_path):
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kathmandu"  # UTC+05:45: no accidental match
    time.tzset()
    try:
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        result = engine.create_backup(wal_db, tmp_path / "b", check="quick")
        after = dt.datetime.now(dt.UTC)
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
    assert before <= engine.parse_created(result.name) <= after
    assert result.check == "quick"
    # an aware local time is named by its UTC moment
    nepal = dt.timezone(dt.timedelta(hours=5, minutes=45))
    when = dt.datetime(2025, 1, 1, 5, 45, 0, tzinfo=nepal)
    assert engine.backup_name(when) == "steps-2025-01-01T00-00-00.db"


# ---------------------------------------------------------------- never overwrite


def test_two_backups_in_the_same_second_get_different_names(wal_db, tmp_path):
    folder = tmp_path / "b"
    first = engine.create_backup(wal_db, folder, check="quick")
    second = engine.create_backup(wal_db, folder, check="quick")
    assert first.name != second.name
    assert engine.parse_created(second.name) > engine.parse_created(first.name)
    assert [item.name for item in engine.list_backups(folder)] == [first.name, second.name]
    assert all(item.verified for item in engine.list_backups(folder))


def test_a_taken_name_waits_for_the_next_second(wal_db, tmp_path):
    folder = tmp_path / "b"
    taken = helpers.old_script_backup(folder, utc(2024, 5, 1, 12, 0, 0))
    times = iter([utc(2024, 5, 1, 12, 0, 0) + dt.timedelta(milliseconds=995),
                  utc(2024, 5, 1, 12, 0, 1) + dt.timedelta(milliseconds=5)])  # fmt: skip
    result = engine.create_backup(wal_db, folder, check="quick", clock=lambda: next(times))
    assert result.name == "steps-2024-05-01T12-00-01.db"
    assert taken.exists()


def test_an_existing_backup_is_never_replaced(wal_db, tmp_path):
    folder = tmp_path / "b"
    when = utc(2024, 5, 1, 12, 0, 0) + dt.timedelta(milliseconds=999)  # short retry sleeps
    existing = helpers.old_script_backup(folder, when)
    (folder / f"{existing.name}.sha256").write_text(f"{'0' * 64}  {existing.name}\n")
    before = helpers.snapshot(folder)

    error = expect_error("exists", engine.create_backup, wal_db, folder, clock=lambda: when)
    assert existing.name in str(error)
    assert helpers.snapshot(folder) == before
    assert leftovers(folder) == []


def _someone_else_writes(folder: Path, name: str) -> None:
    """What the old npm script (which takes no lock) would leave: a backup and its checksum."""
    if not (folder / name).exists():
        helpers.old_script_backup(folder, engine.parse_created(name))
        (folder / f"{name}.sha256").write_text(f"{'0' * 64}  {name}\n")


def _published(folder: Path) -> dict[str, str]:
    return {
        name: digest
        for name, digest in helpers.snapshot(folder).items()
        if not name.startswith(engine.TMP_PREFIX)  # our own copy in progress
    }


def test_a_name_taken_during_the_copy_is_not_touched(wal_db, tmp_path):
    folder = tmp_path / "b"
    when = utc(2024, 5, 1, 12, 0, 0)
    before: dict[str, str] = {}

    def on_pages(done, total):
        _someone_else_writes(folder, engine.backup_name(when))
        before.update(_published(folder))

    expect_error("exists", engine.create_backup, wal_db, folder, clock=lambda: when,
                 on_pages=on_pages)  # fmt: skip
    assert helpers.snapshot(folder) == before
    assert leftovers(folder) == []


def test_a_name_taken_while_publishing_keeps_its_own_sidecars(wal_db, tmp_path, monkeypatch):
    folder = tmp_path / "b"
    when = utc(2024, 5, 1, 12, 0, 0)
    real_write = engine.write_private
    before: dict[str, str] = {}

    def write_private(path, text):  # the other writer lands just after the exists() check
        if not before:
            _someone_else_writes(folder, engine.backup_name(when))
            before.update(_published(folder))
        real_write(path, text)

    monkeypatch.setattr(engine, "write_private", write_private)
    with pytest.raises(engine.EngineError):
        engine.create_backup(wal_db, folder, clock=lambda: when)
    assert helpers.snapshot(folder) == before


# ---------------------------------------------------------------- crashes, locks, limits

STALL_AFTER_FIRST_STEP = """
import sys, time
from pathlib import Path
from ops import engine
def stall(done, total):
    Path(sys.argv[3]).write_text(f"{done} {total}")
    time.sleep(60)
engine.create_backup(sys.argv[1], sys.argv[2], on_pages=stall)
"""


@pytest.fixture
def big_db(tmp_path) -> Path:
    """40 MiB: three backup steps of 4096 pages, so a run can be caught mid-copy."""
    return helpers.make_blob_db(tmp_path / "big" / "steps.db", 40)


def test_kill_9_mid_backup_leaves_nothing_that_looks_like_a_backup(big_db, tmp_path):
    folder = tmp_path / "b"
    marker = tmp_path / "stalled"
    proc = helpers.python(STALL_AFTER_FIRST_STEP, str(big_db), str(folder), str(marker))
    try:
        helpers.wait_for(lambda: (marker.exists() and marker.read_text().strip())
                         or proc.poll() is not None, what="first step")  # written, not just made
        assert proc.poll() is None, proc.communicate()
        done, total = map(int, marker.read_text().split())
        # mid-copy with the engine's 4096-page steps (done < total); with a one-step copy the
        # kill still lands before fsync, check and publish, which is what must be safe
        assert 0 < done <= total
        temporaries = [p.name for p in folder.iterdir() if p.name.startswith(engine.TMP_PREFIX)]
        assert temporaries, sorted(p.name for p in folder.iterdir())
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    assert helpers.backup_files(folder) == []
    assert engine.list_backups(folder) == []
    stale = leftovers(folder)
    assert stale, "the crash should have left its temporary file"

    # the next run gets the lock at once (flock died with the process) and cleans up
    result = engine.create_backup(big_db, folder, check="quick")
    assert leftovers(folder) == []
    assert [item.name for item in engine.list_backups(folder)] == [result.name]
    assert engine.verify_backup(folder / result.name, "quick").ok


def test_timeout_abandons_the_copy_and_leaves_nothing(big_db, tmp_path):
    folder = tmp_path / "b"
    error = expect_error("timeout", engine.create_backup, big_db, folder, timeout=0.000001)
    assert "did not finish within" in str(error)
    assert helpers.backup_files(folder) == []
    assert leftovers(folder) == []


def test_lock_held_by_another_process(wal_db, tmp_path):
    folder = tmp_path / "b"
    with helpers.lock_held_elsewhere(folder, tmp_path) as (pid, release):
        error = expect_error("locked", engine.create_backup, wal_db, folder)
        assert f"pid {pid}" in str(error) and "--lock-wait" in str(error)
        assert helpers.backup_files(folder) == []

        threading.Timer(0.3, release.touch).start()
        started = time.monotonic()
        result = engine.create_backup(wal_db, folder, check="quick", lock_wait=10)
        waited = time.monotonic() - started
    assert waited >= 0.25
    assert [item.name for item in engine.list_backups(folder)] == [result.name]


# ---------------------------------------------------------------- bad input


def test_missing_database(tmp_path):
    error = expect_error("not_found", engine.create_backup, tmp_path / "nope.db", tmp_path / "b")
    assert "nope.db" in str(error)
    assert not (tmp_path / "b").exists()


def test_database_path_is_a_directory(tmp_path):
    (tmp_path / "dir.db").mkdir()
    error = expect_error("usage", engine.create_backup, tmp_path / "dir.db", tmp_path / "b")
    assert "directory" in str(error)


def test_not_a_sqlite_file(tmp_path):
    text = tmp_path / "steps.db"
    text.write_text("id,steps\n1,1000\n" * 100)
    error = expect_error("corrupt", engine.create_backup, text, tmp_path / "b")
    assert "not a SQLite database" in str(error)
    assert helpers.backup_files(tmp_path) == []


def test_corrupt_database_is_refused_and_leaves_nothing(wal_db, tmp_path):
    pages = wal_db.stat().st_size // 4096
    assert pages > 12
    with open(wal_db, "r+b") as handle:  # no connection is open: plain I/O is safe here
        handle.seek(4096 * 5)
        handle.write(os.urandom(4096 * 6))
    folder = tmp_path / "b"
    with pytest.raises(engine.EngineError) as info:
        engine.create_backup(wal_db, folder)
    assert info.value.kind in ("corrupt", "verify_failed"), info.value
    assert helpers.backup_files(folder) == []
    assert leftovers(folder) == []


def test_backup_folder_under_a_regular_file(wal_db, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(engine.EngineError) as info:
        engine.create_backup(wal_db, blocker / "backups")
    assert str(blocker) in str(info.value)
    with pytest.raises(engine.EngineError) as info:
        engine.create_backup(wal_db, blocker)
    assert info.value.kind == "usage" and "not a folder" in str(info.value)
    assert blocker.read_text() == "x"


def test_free_space_precheck(wal_db, tmp_path, monkeypatch):
    folder = tmp_path / "b"
    monkeypatch.setattr(engine, "free_bytes", lambda path: 1000)
    error = expect_error("no_space", engine.create_backup, wal_db, folder)
    assert "1.0 kB free, the backup needs about" in str(error)  # human sizes
    assert (error.free, error.needed) == (1000, wal_db.stat().st_size)
    assert helpers.backup_files(folder) == []


def _fill(point: Path, leave: int) -> None:
    """Fill a tmpfs until exactly ``leave`` bytes are free."""
    free = shutil.disk_usage(point).free
    with open(point / "filler", "wb") as handle:
        handle.write(b"\0" * (free - leave))
    assert shutil.disk_usage(point).free == leave


def _full_folder(tmpfs, wal_db) -> Path:
    point = tmpfs("1m")
    folder = point / "backups"
    folder.mkdir()
    with engine.backup_lock(folder):  # the lock file takes its block first
        pass
    # precheck passes (free == the database's size) but copy + journal + sidecars do not fit
    _fill(point, wal_db.stat().st_size)
    return folder


def test_full_folder_real_tmpfs_precheck(tmpfs, tmp_path):
    db = helpers.make_blob_db(tmp_path / "two-mib.db", 2)
    folder = tmpfs("1m") / "backups"
    error = expect_error("no_space", engine.create_backup, db, folder)
    assert "not enough free space" in str(error)
    assert helpers.backup_files(folder) == []
    assert leftovers(folder) == []


def test_full_folder_mid_copy_leaves_nothing(tmpfs, wal_db):
    folder = _full_folder(tmpfs, wal_db)
    with pytest.raises(engine.EngineError):
        engine.create_backup(wal_db, folder)
    assert helpers.backup_files(folder) == []
    assert leftovers(folder) == []


def test_full_folder_mid_copy_says_no_space(tmpfs, wal_db):
    folder = _full_folder(tmpfs, wal_db)
    error = expect_error("no_space", engine.create_backup, wal_db, folder)
    assert "full" in str(error)


def test_unknown_check(wal_db, tmp_path):
    expect_error("usage", engine.create_backup, wal_db, tmp_path / "b", check="fast")
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------- verify


@pytest.fixture
def good_backup(wal_db, tmp_path) -> Path:
    result = engine.create_backup(wal_db, tmp_path / "b")
    return Path(result.path)


def _copy_with_sidecars(backup: Path, folder: Path, sidecars: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / backup.name
    shutil.copyfile(backup, copy)
    if sidecars:
        for extra in engine.sidecars(backup):
            shutil.copyfile(extra, folder / extra.name)
    return copy


@pytest.mark.parametrize("check", ["integrity", "quick"])
def test_verify_a_good_backup(good_backup, check):
    result = engine.verify_backup(good_backup, check)
    assert result.ok and result.problems == []
    assert result.check == check
    assert result.sha256 == result.recorded_sha256 == helpers.sha256(good_backup)
    assert result.size == good_backup.stat().st_size
    assert leftovers(good_backup.parent) == []


def test_verify_reports_a_flipped_byte(good_backup, tmp_path):
    copy = _copy_with_sidecars(good_backup, tmp_path / "flipped")
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    result = engine.verify_backup(copy)
    assert not result.ok
    assert any(problem.startswith("SHA-256 mismatch") for problem in result.problems)
    assert result.recorded_sha256 == helpers.sha256(good_backup) != result.sha256


@pytest.mark.parametrize("sidecars", [True, False], ids=["recorded", "old-script"])
@pytest.mark.parametrize("check", ["integrity", "quick"])
def test_verify_reports_a_truncated_file(good_backup, tmp_path, sidecars, check):
    copy = _copy_with_sidecars(good_backup, tmp_path / "cut", sidecars)
    os.truncate(copy, copy.stat().st_size // 2)
    result = engine.verify_backup(copy, check)
    assert not result.ok and result.problems
    assert (result.recorded_sha256 is not None) == sidecars


def test_verify_reports_a_file_that_is_not_sqlite(tmp_path):
    junk = tmp_path / "steps-2024-01-01T00-00-00.db"
    junk.write_bytes(b"not a database")
    result = engine.verify_backup(junk)
    assert not result.ok and "not a SQLite database" in result.problems[0]


def test_verify_rejects_an_unknown_check(good_backup):
    expect_error("usage", engine.verify_backup, good_backup, "fast")


# ---------------------------------------------------------------- list / resolve / delete


def test_list_backups_recognises_only_backup_names(good_backup, tmp_path):
    folder = good_backup.parent
    old = helpers.old_script_backup(folder, utc(2023, 6, 1, 8, 30, 0))
    older = helpers.old_script_backup(folder, utc(2022, 1, 2, 3, 4, 5))
    for name in ("steps-latest.db", "notes.txt", "steps-2025-13-40T99-99-99.db",
                 "steps-2024-01-01T00-00-00.db.bak", "backup-2024-01-01T00-00-00.db",
                 ".tmp-steps-2024-01-01T00-00-00.db.123"):  # fmt: skip
        (folder / name).write_bytes(helpers.SQLITE_HEADER)
    (folder / "steps-2021-01-01T00-00-00.db").mkdir()  # a folder named like one

    found = engine.list_backups(folder)
    assert [item.name for item in found] == [older.name, old.name, good_backup.name]
    by_name = {item.name: item for item in found}
    assert by_name[old.name].verified is False and by_name[old.name].sha256 is None
    assert by_name[old.name].created == "2023-06-01T08:30:00Z"
    assert by_name[old.name].size == old.stat().st_size
    assert by_name[good_backup.name].verified is True
    assert by_name[good_backup.name].sha256 == helpers.sha256(good_backup)
    assert engine.list_backups(tmp_path / "nowhere") == []

    assert [i.name for i in engine.resolve_backup(folder, "latest")] == [good_backup.name]
    assert len(engine.resolve_backup(folder, "all")) == 3
    assert [i.name for i in engine.resolve_backup(folder, old.name)] == [old.name]
    expect_error("not_found", engine.resolve_backup, folder, "steps-2020-01-01T00-00-00.db")
    expect_error("usage", engine.resolve_backup, folder, "../etc/passwd")
    expect_error("not_found", engine.resolve_backup, tmp_path / "empty", "latest")


@pytest.mark.parametrize(
    "name",
    ["../steps-2024-01-01T00-00-00.db", "sub/steps-2024-01-01T00-00-00.db",
     "..\\steps-2024-01-01T00-00-00.db", "steps-latest.db", "notes.txt", "", ".", ".."],
)  # fmt: skip
def test_delete_refuses_anything_but_a_backup_name(tmp_path, name):
    folder = tmp_path / "b"
    folder.mkdir()
    outside = helpers.old_script_backup(tmp_path, utc(2024, 1, 1, 0, 0, 0))
    (folder / "sub").mkdir()
    inside = helpers.old_script_backup(folder / "sub", utc(2024, 1, 1, 0, 0, 0))
    error = expect_error("usage", engine.delete_backups, folder, [name])
    assert "not a backup name" in str(error)
    assert outside.exists() and inside.exists()


def test_delete_removes_backups_with_their_sidecars(good_backup, tmp_path):
    folder = good_backup.parent
    old = helpers.old_script_backup(folder, utc(2023, 6, 1, 8, 30, 0))
    keep = helpers.old_script_backup(folder, utc(2023, 7, 1, 8, 30, 0))
    deleted = engine.delete_backups(folder, [good_backup.name, old.name])
    assert deleted == [good_backup.name, old.name]
    assert sorted(p.name for p in folder.iterdir()) == [engine.LOCK_NAME, keep.name]
    assert engine.delete_backups(folder, ["steps-2000-01-01T00-00-00.db"]) == []


def test_delete_checks_every_name_before_deleting_any(tmp_path):
    folder = tmp_path / "b"
    first = helpers.old_script_backup(folder, utc(2024, 1, 1, 0, 0, 0))
    expect_error("usage", engine.delete_backups, folder, [first.name, "../x"])
    assert first.exists()


# ---------------------------------------------------------------- restore

EXIT_WITHOUT_CHECKPOINT = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("CREATE TABLE after_backup (x)")
conn.executemany("INSERT INTO after_backup VALUES (?)", [(i,) for i in range(500)])
conn.execute("DELETE FROM steps WHERE id % 2 = 0")
conn.commit()
os._exit(0)  # like a crashed app: committed frames stay in -wal, never checkpointed
"""


def test_restore_into_a_live_wal_database_with_a_stale_wal(good_backup, wal_db):
    proc = helpers.python(EXIT_WITHOUT_CHECKPOINT, str(wal_db))
    assert proc.wait(timeout=10) == 0, proc.communicate()
    proc.communicate()
    wal = wal_db.with_name(wal_db.name + "-wal")
    assert wal.exists() and wal.stat().st_size > 0
    assert helpers.ro_rows(wal_db, "SELECT count(*) FROM after_backup") == [(500,)]
    assert wal.stat().st_size > 0  # reading did not checkpoint it away

    holder = sqlite3.connect(wal_db)  # the app still has a connection that wrote rows
    holder.execute("INSERT INTO teams (name) VALUES ('written by the live app')")
    holder.commit()
    try:
        engine.restore_into(good_backup, wal_db)
        assert holder.execute("SELECT count(*) FROM steps").fetchone() == (3000,)
    finally:
        holder.close()

    assert helpers.live_rows(wal_db, "PRAGMA integrity_check") == [("ok",)]
    # reopened from scratch (the -wal replayed if any): exactly the backup's content
    reopened = sqlite3.connect(wal_db)
    try:
        assert list(reopened.iterdump()) == helpers.dump(good_backup)
    finally:
        reopened.close()


def test_restore_refuses_a_bad_backup(tmp_path, wal_db):
    junk = tmp_path / "steps-2024-01-01T00-00-00.db"
    junk.write_text("junk")
    before = helpers.dump(wal_db)
    expect_error("corrupt", engine.restore_into, junk, wal_db)
    expect_error("not_found", engine.restore_into, tmp_path / "missing.db", wal_db)
    assert helpers.dump(wal_db) == before


# ---------------------------------------------------------------- the script entry point


def test_engine_script_prints_one_result_line(wal_db, tmp_path):
    folder = tmp_path / "b"
    script = Path(engine.__file__)
    out = subprocess.run(
        [helpers.PYTHON, str(script), "backup", "--db", str(wal_db), "--dir", str(folder),
         "--check", "quick"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    mark, payload = out.stdout.strip().split(" ", 1)
    assert mark == engine.RESULT_MARK
    data = json.loads(payload)
    assert data["ok"] and (folder / data["data"]["name"]).exists()

    bad = subprocess.run(
        [helpers.PYTHON, str(script), "verify", "--dir", str(folder), "--which", "../x"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 1
    data = json.loads(bad.stdout.strip().split(" ", 1)[1])
    assert data == {"ok": False, "kind": "usage",
                    "error": "not a backup name: '../x' (give a file name, not a path)"}


def test_phases_copy_first_then_the_checks_together_and_a_byte_identical_copy(wal_db, tmp_path):
    seen = []
    result = engine.create_backup(
        wal_db, tmp_path / "b",
        on_phase=lambda name, done=None, total=None, finished=False: seen.append(
            (name, finished)))
    starts = [name for name, finished in seen if not finished]
    ends = [name for name, finished in seen if finished]
    assert starts[0] == "copy" and seen[1] == ("copy", True)  # the copy ends before the rest
    # issue 21: the row counts, no content hash (the drill and the proof compute that)
    assert set(starts) == set(ends) == {"copy", "fsync", "integrity_check", "sha256", "counts"}
    # the private copy settings leave the published file exactly what SQLite's backup gives
    plain = tmp_path / "plain.db"
    src, dst = sqlite3.connect(wal_db), sqlite3.connect(plain)
    src.backup(dst)
    src.close(), dst.close()
    assert Path(result.path).read_bytes() == plain.read_bytes()
    assert result.tables == engine.describe_file(plain)[0]


def test_a_check_that_fails_refuses_the_backup_while_the_other_passes_run(wal_db, tmp_path):
    helpers.break_an_index(wal_db)  # a row its index lacks: only integrity_check sees it

    error = expect_error("verify_failed", engine.create_backup, wal_db, tmp_path / "b")
    assert "integrity_check" in str(error) and "probe_x" in str(error)
    assert leftovers(tmp_path / "b") == []
    assert engine.create_backup(wal_db, tmp_path / "q", check="quick").check == "quick"


def test_a_set_cancel_stops_the_check_and_the_content_pass(wal_db, tmp_path):
    result = engine.create_backup(wal_db, tmp_path / "b")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(engine.Cancelled):
        engine.run_check(Path(result.path), cancel=cancel)
    with pytest.raises(engine.Cancelled):
        engine.describe_file(result.path, cancel=cancel)
    assert engine.run_check(Path(result.path), mmap_size=1 << 20) == []


def test_a_copy_is_flushed_while_it_is_written_and_a_failed_flush_is_raised(tmp_path,
                                                                           monkeypatch):
    """A flush that fails during the copy (EIO, ENOSPC) must end the copy with that error:
    the kernel reports a write error once, and the final fsync would not see it again."""
    path = tmp_path / "copy"
    path.write_bytes(b"x")
    flushed = []

    def failing(fd):
        flushed.append(fd)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    def until_flushed():
        deadline = time.monotonic() + 10
        while not flushed and time.monotonic() < deadline:
            time.sleep(0.001)
        assert flushed

    with pytest.raises(OSError, match="Input/output error"), engine._flushing(path, 0.001):
        until_flushed()
    monkeypatch.setattr(os, "fdatasync", lambda fd: flushed.append(fd))
    flushed.clear()
    with engine._flushing(path, every=0.001):  # a flush that works: nothing raised
        until_flushed()
