"""Data safety of the local backup folder, through the real CLI on real files (issue 7).

Each test plants what an adversary, a wrong clock or a crash leaves (symlinks, FIFOs,
junk named like backups, corrupted backups, full disks, read-only mounts, undecodable
names) and asserts what a user sees: exit codes, one-line errors and the files on disk.
docs/backup-folder.md ("What the backup folder promises") names the test behind each promise.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ops import engine
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import NEW_IMAGE, make_site
from tests.helpers import assert_one_line_error, run_mixed, run_parallel

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")


def days_ago(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=days)


def names(folder: Path) -> list[str]:
    return [item.name for item in engine.list_backups(folder)]


def tmp_leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith(engine.TMP_PREFIX))


def corrupt_quietly(path: Path) -> None:
    """Change one byte of a row's text: the file stays a sound database (integrity_check
    passes, same size, same header), only its checksum can tell."""
    data = bytearray(path.read_bytes())
    at = data.index(b"User 17")  # users.name has no index that would notice
    data[at] = ord("u")
    path.write_bytes(bytes(data))
    assert helpers.rows(path, "PRAGMA integrity_check") == [("ok",)]


# ---------------------------------------------------------------- 1. nothing followed


def plant(kind: str, path: Path, victim: Path) -> None:
    """Put a symlink, FIFO, directory or hard link to ``victim`` where ``path`` goes."""
    if kind == "symlink":
        path.symlink_to(os.path.relpath(victim, path.parent))
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        os.link(victim, path)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "hardlink"])
def test_a_planted_backup_lock_is_refused_and_its_target_untouched(wal_db, backup_dir,
                                                                   run_invoke, kind):
    engine.create_backup(wal_db, backup_dir, clock=lambda: days_ago(3))
    for day in (2, 1):  # cleanup --keep 1 has one to delete, and takes the lock for it
        helpers.old_script_backup(backup_dir, days_ago(day))
    live = helpers.sha256(wal_db)
    (backup_dir / engine.LOCK_NAME).unlink()
    plant(kind, backup_dir / engine.LOCK_NAME, wal_db)  # ln -s ../steps.db .backup.lock
    before = helpers.snapshot(backup_dir)

    backup, cleanup = run_mixed(
        functools.partial(run_invoke, *args, timeout=20)
        for args in (("backup",), ("backup.cleanup", "--keep", "1"))
    )
    for result in (backup, cleanup):
        if kind == "hardlink" and result is backup:  # the live database has a second name
            assert_one_line_error(result, ExitCode.USAGE,  # refused first, in its subfolder
                                  contains="lists: 1 outside its folder")
            continue
        assert_one_line_error(result, ExitCode.ERROR, contains="refusing the lock file")
    assert helpers.sha256(wal_db) == live  # the live database was not truncated
    assert helpers.rows(wal_db, "SELECT count(*) FROM steps") == [(3000,)]
    assert helpers.snapshot(backup_dir) == before  # nothing made, nothing deleted
    assert tmp_leftovers(backup_dir) == []


def test_the_local_deploy_lock_never_follows_a_symlink(fly_world, tmp_path):

    site = make_site(tmp_path, fly_world)
    try:
        site.lock_file.parent.mkdir(parents=True, exist_ok=True)
        site.lock_file.symlink_to(site.db)  # data/.deploy-<app>.lock -> the database
        live = helpers.sha256(site.db)
        result = site.run("deploy", "--skip-backup", "--image", NEW_IMAGE)
    finally:
        site.health.close()
    assert result.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, result  # before anything
    assert "refusing the lock file" in result.stderr and "a symlink" in result.stderr, result
    assert "deploy" not in site.labels()  # no fly deploy
    assert helpers.sha256(site.db) == live and site.lock_file.is_symlink()


def test_symlinks_named_like_the_next_sidecars_are_left_alone(wal_db, backup_dir, run_invoke):
    backup_dir.mkdir(parents=True)
    victim = wal_db.with_name("victim.txt")
    victim.write_text("not yours\n")
    now = dt.datetime.now(dt.UTC)
    planted = []
    for second in range(2):  # whatever second the run starts in, its sidecar names are taken
        name = engine.backup_name(now + dt.timedelta(seconds=second))
        for suffix in (".sha256", ".json"):
            link = backup_dir / (name + suffix)
            link.symlink_to(victim)
            planted.append(link)
    result = run_invoke("backup", "--json")
    assert result.returncode == 0, result
    made = result.json()["backup"]["name"]
    assert all(link.is_symlink() and os.readlink(link) == str(victim) for link in planted)
    assert victim.read_text() == "not yours\n"
    for sidecar in engine.sidecars(backup_dir / made):
        assert sidecar.is_file() and not sidecar.is_symlink()
    assert engine.verify_backup(backup_dir / made).ok
    assert tmp_leftovers(backup_dir) == []


def test_a_symlink_planted_at_a_temporary_name_is_never_written_through(wal_db, tmp_path):
    folder = tmp_path / "b"
    victim = tmp_path / "victim.db"
    shutil.copyfile(wal_db, victim)
    kept = helpers.sha256(victim)
    folder.mkdir()
    (folder / ".tmp-steps-2026-01-01T00-00-00.db.1").symlink_to(victim)  # an old plant
    fixed = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
    name = engine.backup_name(fixed)
    staged = [folder / f"{engine.TMP_PREFIX}{name}{suffix}.{os.getpid()}"
              for suffix in (".sha256", ".json")]

    def plant_during_copy(done, total):  # an attacker who guesses the staged names
        for path in staged:
            if not os.path.lexists(path):
                path.symlink_to(victim)

    error = None
    try:
        engine.create_backup(wal_db, folder, on_pages=plant_during_copy, clock=lambda: fixed)
    except engine.EngineError as exc:
        error = exc
    assert error is not None and error.kind == "exists" and "not overwritten" in str(error)
    assert helpers.sha256(victim) == kept
    assert names(folder) == [] and helpers.backup_files(folder) == []
    assert sorted(p for p in folder.iterdir() if p.name.startswith(".tmp")) == sorted(staged)


# ---------------------------------------------------------------- 2. the clock


def test_future_dated_backups_never_push_out_the_new_one(wal_db, backup_dir, run_invoke):
    future = [engine.create_backup(wal_db, backup_dir,
                                   clock=lambda y=year: dt.datetime(y, 1, 1, tzinfo=dt.UTC)).name
              for year in (2098, 2099)]
    old = engine.create_backup(wal_db, backup_dir, clock=lambda: days_ago(1)).name

    made = run_invoke("backup", "--keep", "2", "--json")
    assert made.returncode == 0, made
    name = made.json()["backup"]["name"]
    assert names(backup_dir) == sorted([old, name, *future])  # its own backup is still there
    reasons = {d["name"]: d["reason"] for d in made.json()["retention"]}
    assert reasons == {future[0]: "dated in the future: not counted, never removed "
                                  "automatically", future[1]: reasons[future[0]],
                       name: "newest 2", old: "newest 2"}
    assert "2 dated in the future, left alone" in made.stderr

    status, status_text, listed, listed_text, latest = run_mixed(
        functools.partial(run_invoke, *args) for args in (
            ("backup.status", "--max-age", "1h", "--json"),
            ("backup.status", "--max-age", "1h"),
            ("backup.list", "--json"),
            ("backup.list",),
            ("backup.verify", "latest", "--json"),
        )
    )
    assert status.returncode == 0, status
    report = status.json()
    assert report["latest"]["name"] == name and 0 <= report["latest"]["age"] < 60_000
    assert report["count"] == 2 and report["futureDated"] == future
    assert status_text.returncode == 0 and "dated in the future" in status_text.stderr
    assert [(i["name"], i["future"]) for i in listed.json()] == [
        (future[1], True), (future[0], True), (name, False), (old, False)]
    assert listed_text.returncode == 0 and "│ future " in listed_text.stderr, listed_text
    assert [r["name"] for r in latest.json()] == [name]  # never "latest"


def test_only_future_dated_backups_is_no_fresh_backup(wal_db, backup_dir, run_invoke):
    engine.create_backup(wal_db, backup_dir, clock=lambda: dt.datetime(2099, 1, 1,
                                                                        tzinfo=dt.UTC))
    result = run_invoke("backup.status", "--max-age", "26h", "--json")
    assert_one_line_error(result, ExitCode.STALE, contains="1 dated in the future, not trusted",
                          strict=False)
    assert result.json()["hasBackups"] is False and result.json()["latest"] is None


@pytest.mark.parametrize("year", [1, 50, 99, 100, 999, 1000, 9999])
def test_a_name_at_the_calendars_edge_reads_back_as_it_was_written(year):
    """Years before 100 are no backup's (engine.js's Date cannot hold them either); the
    rest read back the time their name holds, with four digits of year."""
    name = f"steps-{year:04d}-12-31T23-59-59.db"
    when = engine.parse_created(name)
    if year < 100:
        assert when is None
        return
    assert engine.iso(when) == f"{year:04d}-12-31T23:59:59Z"
    assert engine.parse_iso(engine.iso(when)) == when


def test_backups_named_at_the_calendars_edges_never_crash_a_task(wal_db, backup_dir,
                                                                  run_invoke):
    """A backup named for year 100 crashed backup.list, backup.status, backup.cleanup and
    every `latest` with a traceback: its time was written back as "100-12-31T…", which
    nothing parses. Anyone can put a file there (s27: found while fixing a replica time)."""
    made = engine.create_backup(wal_db, backup_dir, clock=lambda: days_ago(1))
    edges = []
    for stamp in ("0001-01-01T00-00-00", "0099-12-31T23-59-59", "0100-01-01T00-00-00",
                  "0999-06-30T12-00-00", "9999-12-31T23-59-59"):
        edge = backup_dir / f"steps-{stamp}.db"
        shutil.copy(made.path, edge)  # the same bytes under a name whose time is absurd
        record = json.loads(Path(f"{made.path}.json").read_text()) | {"name": edge.name}
        Path(f"{edge}.json").write_text(json.dumps(record))
        Path(f"{edge}.sha256").write_text(f"{made.sha256}  {edge.name}\n")
        edges.append(edge.name)
    ours = [edges[4], made.name, edges[3], edges[2]]  # newest first; years 1-99 not ours

    results = run_mixed(functools.partial(run_invoke, *args) for args in (
        ("backup.list", "--json"), ("backup.list",), ("backup.status", "--json"),
        ("backup.cleanup", "--keep", "1", "--dry-run", "--json"),
        ("backup.verify", "all", "--json"), ("backup.drill", "latest", "--json"),
        ("restore", "latest", "--dry-run", "--json")))
    for result in results:
        assert result.returncode == 0 and "Traceback" not in result.stderr, result
    listed, status, cleanup, verified, drill, restore = (
        results[at].json() for at in (0, 2, 3, 4, 5, 6))
    assert [item["name"] for item in listed] == ours
    assert [item["created"][:4] for item in listed] == ["9999", made.created[:4], "0999", "0100"]
    assert status["latest"]["name"] == made.name and status["futureDated"] == [edges[4]]
    assert {d["name"] for d in cleanup["decisions"] if d["action"] == "remove"} == \
        {edges[2], edges[3]}
    assert sorted(item["name"] for item in verified) == sorted(ours)
    assert drill["name"] == made.name and restore["backup"] == made.name


def test_a_missing_backup_folder_is_no_backup_to_an_alert(tmp_path, run_invoke):
    """With --max-age it exits 7, the alert's code, not 3: a folder that vanished or was
    never mounted holds no backup (s27 review-op #7)."""
    env = {"INVOKE_BACKUP_DIR": str(tmp_path / "gone")}
    alert = run_invoke("backup.status", "--max-age", "26h", env=env)
    line = assert_one_line_error(alert, ExitCode.STALE)
    assert "there are no backups (backup folder not found: " in line, line
    plain = run_invoke("backup.status", env=env)
    assert_one_line_error(plain, ExitCode.NOT_FOUND, contains="backup folder not found")


# ---------------------------------------------------------------- 3. trust on evidence


def test_cleanup_never_stands_on_junk_or_a_corrupted_backup(wal_db, backup_dir, run_invoke):
    good = [engine.create_backup(wal_db, backup_dir, clock=lambda d=day: days_ago(d)).name
            for day in (5, 4)]
    corrupted = engine.create_backup(wal_db, backup_dir, clock=lambda: days_ago(3)).name
    corrupt_quietly(backup_dir / corrupted)  # after it was written: manifest still agrees
    junk = helpers.old_name(days_ago(1))
    (backup_dir / junk).write_bytes(engine.SQLITE_HEADER + b"\0" * 4080)
    (backup_dir / f"{junk}.json").write_text("{}")

    listed = run_invoke("backup.list", "--json")
    verified = {item["name"]: item["verified"] for item in listed.json()}
    assert verified == {good[0]: True, good[1]: True, corrupted: True, junk: False}

    dry = run_invoke("backup.cleanup", "--keep", "1", "--dry-run", "--json")
    assert dry.returncode == 0, dry
    assert f"{corrupted} failed verification (SHA-256 mismatch" in dry.stderr
    plan = {d["name"]: (d["action"], d["reason"]) for d in dry.json()["decisions"]}
    assert plan == {
        junk: ("keep", "newest 1"),
        corrupted: ("remove", "older than the newest 1"),
        good[1]: ("keep", "newest backup that passed verification"),
        good[0]: ("remove", "older than the newest 1"),
    }
    real = run_invoke("backup.cleanup", "--keep", "1")
    assert real.returncode == 0, real
    assert names(backup_dir) == [good[1], junk]
    assert engine.verify_backup(backup_dir / good[1]).ok


def test_cleanup_deletes_nothing_when_no_backup_passes(wal_db, backup_dir, run_invoke):
    bad = engine.create_backup(wal_db, backup_dir, clock=lambda: days_ago(3)).name
    corrupt_quietly(backup_dir / bad)
    for day in (2, 1):
        helpers.old_script_backup(backup_dir, days_ago(day), wal_db)  # sound, no records
    before = helpers.snapshot(backup_dir)
    dry, real = run_mixed(functools.partial(run_invoke, "backup.cleanup", "--keep", "1", *a)
                             for a in (("--dry-run",), ()))
    for result in (dry, real):
        line = assert_one_line_error(result, ExitCode.VERIFY_FAILED, strict=False,
                                     contains="retention removed nothing")
        assert "none of 1 candidates passed verification" in line
    assert helpers.snapshot(backup_dir) == before


# ---------------------------------------------------------------- 9. every checksum record


@pytest.fixture
def made(wal_db, backup_dir) -> Path:
    return Path(engine.create_backup(wal_db, backup_dir).path)


def _records(path: Path, sha: str | None, manifest: str | None) -> None:
    """Rewrite NAME.sha256 / NAME.json: None removes, "fifo"/"dir"/"symlink" plant."""
    for sidecar, content in zip(engine.sidecars(path), (sha, manifest), strict=True):
        if sidecar.is_dir() and not sidecar.is_symlink():
            sidecar.rmdir()
        else:
            sidecar.unlink(missing_ok=True)
        if content == "fifo":
            os.mkfifo(sidecar)
        elif content == "dir":
            sidecar.mkdir()
        elif content == "symlink":
            sidecar.symlink_to(path)
        elif content is not None:
            sidecar.write_text(content)


def test_verify_uses_every_checksum_record(made, tmp_path):
    name = made.name
    good_sha = helpers.sha256(made)
    manifest = json.dumps(json.loads(engine.sidecars(made)[1].read_text()))
    corrupt_quietly(made)
    sha_line = f"{good_sha}  {name}\n"
    cases = {  # (NAME.sha256, NAME.json) -> the problem verify reports
        "sha256 missing": (None, manifest, "SHA-256 mismatch: recorded"),
        "sha256 garbage": ("garbage\n", manifest, "SHA-256 mismatch: recorded"),
        "sha256 symlink": ("symlink", manifest, "SHA-256 mismatch: recorded"),
        "sha256 fifo": ("fifo", manifest, "SHA-256 mismatch: recorded"),
        "json missing": (sha_line, None, "SHA-256 mismatch: recorded"),
        "nothing usable": ("fifo", "dir", "unverifiable: no usable checksum record"),
        "all garbage": ("x" * 64 + "\n", '{"sha256": 7}', "unverifiable"),
    }
    for label, (sha, text, _) in cases.items():  # one folder each, checked in parallel
        folder = tmp_path / label.replace(" ", "-") / "data" / "backups"
        folder.mkdir(parents=True)
        copy = folder / name
        shutil.copyfile(made, copy)
        for sidecar in engine.sidecars(copy):
            sidecar.touch()
        _records(copy, sha, text)
    results = run_parallel(
        functools.partial(helpers.run_invoke, "backup.verify", name, "--json", timeout=20,
                          cwd=tmp_path / label.replace(" ", "-"))
        for label in cases)
    for (label, (_, _, problem)), result in zip(cases.items(), results, strict=True):
        line = assert_one_line_error(result, ExitCode.VERIFY_FAILED, strict=False,
                                     contains=problem)
        assert result.json()[0]["ok"] is False, label
        assert "1 of 1 backups failed verification" in line, label


def test_verify_fails_when_the_records_disagree(made, run_invoke):
    manifest = json.loads(engine.sidecars(made)[1].read_text())
    manifest["sha256"] = "0" * 64
    engine.sidecars(made)[1].write_text(json.dumps(manifest))
    result = run_invoke("backup.verify", "latest", "--json")
    assert_one_line_error(result, ExitCode.VERIFY_FAILED, strict=False,
                          contains="SHA-256 mismatch: the records disagree")


# ---------------------------------------------------------------- 10. FIFOs and odd names


def test_fifos_directories_and_undecodable_names_never_hang_or_crash(made, backup_dir,
                                                                     run_invoke):
    other = engine.create_backup(made.parent.parent / "steps.db", backup_dir,
                                 clock=lambda: days_ago(1)).name
    _records(backup_dir / other, "fifo", "dir")
    raw = os.fsencode(backup_dir)
    for junk in (b"steps-\xff.db", b".tmp-\xfe\xff", b"\xff\xfe.json"):
        Path(os.fsdecode(raw + b"/" + junk)).write_bytes(b"junk")
    calls = [("backup.list",), ("backup.list", "--json"), ("backup.status", "--json"),
             ("backup.verify", "all", "--json"), ("backup.cleanup", "--keep", "1", "--dry-run",
                                                  "--json")]
    results = run_parallel(functools.partial(run_invoke, *args, timeout=20) for args in calls)
    listing, as_json, status, verify, dry = results
    for result in results:
        assert "Traceback" not in result.stderr, result
    os.mkfifo(backup_dir.parent / "fifo.db")  # a FIFO as the database never hangs either
    fifo = run_invoke("backup", env={"INVOKE_DB_PATH": "data/fifo.db"}, timeout=20)
    assert_one_line_error(fifo, ExitCode.USAGE, contains="database is not a regular file")
    assert listing.returncode == 0 and "\ufffd" in listing.stderr, listing  # the leftover, shown
    assert [i["name"] for i in as_json.json()] == [made.name, other]
    assert status.json()["count"] == 2
    assert verify.returncode == ExitCode.VERIFY_FAILED
    assert {r["name"]: r["ok"] for r in verify.json()} == {other: False, made.name: True}
    assert dry.returncode == 0 and [d["name"] for d in dry.json()["leftovers"]] == [
        ".tmp-\ufffd\ufffd"]
    real = run_invoke("backup.cleanup", "--keep", "1", timeout=20)
    assert real.returncode == 0, real
    assert names(backup_dir) == [made.name]
    assert (backup_dir / f"{other}.json").is_dir()  # a planted folder is never removed


@pytest.mark.parametrize("where", ["local", "production"])
def test_cleanup_says_what_it_left_that_is_named_like_a_backup(where, wal_db, backup_dir,
                                                               run_invoke, fly_world, tmp_path):
    """A symlink with a backup's name is never a backup, so retention never removes it:
    once cleanup removed the backup it named, it dangles. Cleanup says it is there, as
    backup.list does (s28 review-break #1: only backup.list said so)."""
    site = make_site(tmp_path / "site", fly_world) if where == "production" else None
    folder = site.backups if site else backup_dir
    try:
        if site:
            folder.mkdir(parents=True, exist_ok=True)
        for day in (3, 2, 1):
            engine.create_backup(site.db if site else wal_db, folder,
                                 clock=lambda day=day: days_ago(day))
        oldest = names(folder)[0]  # oldest first
        (folder / "steps-2030-01-01T00-00-00.db").symlink_to(oldest)
        (folder / "steps-2020-01-01T00-00-00.db").mkdir()
        cleanup = (site.run if site else run_invoke)(
            "backup.cleanup", "--keep", "2", *(["--production"] if site else []))
    finally:
        if site:
            site.health.close()
    assert cleanup.returncode == 0, cleanup
    assert oldest not in names(folder) and len(names(folder)) == 2
    assert (folder / "steps-2030-01-01T00-00-00.db").is_symlink()  # left alone, now dangling
    said = " ".join(cleanup.stderr.split())
    assert ("WARNING: 2 entry(ies) named like a backup but not a regular file (a symlink, FIFO "
            "or folder), never used as one: steps-2020-01-01T00-00-00.db, "
            "steps-2030-01-01T00-00-00.db; look at it and remove it by hand") in said, said


# ---------------------------------------------------------------- 12. read-only snapshots


@pytest.fixture
def read_only_mount(tmp_path):
    """``read_only_mount(folder)``: a read-only bind mount of ``folder`` (a mounted snapshot)."""
    mounted: list[Path] = []

    def mount(folder: Path) -> Path:
        point = tmp_path / f"ro{len(mounted)}"
        point.mkdir()
        proc = subprocess.run(f"mount --bind '{folder}' '{point}' && "
                              f"mount -o remount,bind,ro '{point}'", shell=True,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
            pytest.skip(f"cannot make a read-only bind mount here: {proc.stderr.strip()}")
        mounted.append(point)
        assert not os.access(point, os.W_OK)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _snapshot_of_live_db(folder: Path, *, files: tuple[str, ...]) -> int:
    """Copy a live WAL database's files (with commits only in -wal) as a snapshot would."""
    folder.mkdir()
    live = helpers.make_wal_db(folder.parent / f"{folder.name}-live" / "steps.db")
    conn = sqlite3.connect(live)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("INSERT INTO teams (name) VALUES ('only in the wal')")
    conn.commit()
    for suffix in files:
        shutil.copyfile(f"{live}{suffix}", folder / f"steps.db{suffix}")
    conn.close()
    return 21 if "-wal" in files else 20


def test_a_wal_database_on_a_read_only_mount_is_backed_up_not_called_corrupt(
        tmp_path, read_only_mount):
    cases = {"clean": ("",), "live": ("", "-wal", "-shm"), "no-shm": ("", "-wal")}
    mounts = {}
    for label, files in cases.items():
        teams = _snapshot_of_live_db(tmp_path / label, files=files)
        mounts[label] = (read_only_mount(tmp_path / label), teams)
    results = run_parallel(
        functools.partial(helpers.run_invoke, "backup", "--json", cwd=tmp_path, env={
            "INVOKE_DB_PATH": str(point / "steps.db"), "INVOKE_BACKUP_DIR": f"b-{label}"})
        for label, (point, _) in mounts.items())
    for (label, (point, teams)), result in zip(mounts.items(), results, strict=True):
        if label == "no-shm":
            assert_one_line_error(result, ExitCode.ERROR, contains="read-only folder")
            continue
        assert result.returncode == 0, result
        backup = tmp_path / f"b-{label}" / result.json()["backup"]["name"]
        assert helpers.rows(backup, "SELECT count(*) FROM teams") == [(teams,)], label
        assert sorted(os.listdir(point)) == sorted(f"steps.db{s}" for s in cases[label])

    # verifying backups on a read-only mount works too
    frozen = read_only_mount(tmp_path / "b-clean")
    result = helpers.run_invoke("backup.verify", "all", cwd=tmp_path,
                                env={"INVOKE_BACKUP_DIR": str(frozen)})
    assert result.returncode == 0 and "1 of 1 ok" in result.stderr, result


# ---------------------------------------------------------------- 13. exact names


def test_names_match_exactly(made, backup_dir, run_invoke):
    odd = ["steps-2099-01-01T00-00-00.db\n",  # "$" used to match before the newline
           "steps-\u0662\u0660\u0669\u0669-01-01T00-00-00.db",  # Arabic-Indic digits
           "steps-\uff12\uff10\uff19\uff19-01-01T00-00-00.db"]  # full-width digits
    for name in odd:
        shutil.copyfile(made, backup_dir / name)
        for src, dst in zip(engine.sidecars(made), engine.sidecars(backup_dir / name),
                            strict=True):
            shutil.copyfile(src, dst)
        with pytest.raises(engine.EngineError):
            engine.check_name(name)
    calls = [("backup.list", "--json"), ("backup.verify", "latest", "--json"),
             ("backup.cleanup", "--keep", "1", "--json"),
             *(("backup.verify", name) for name in odd)]
    listed, latest, cleanup, *refused = run_mixed(
        functools.partial(run_invoke, *args) for args in calls)
    assert [i["name"] for i in listed.json()] == [made.name]
    assert [r["name"] for r in latest.json()] == [made.name]
    assert [d["name"] for d in cleanup.json()["decisions"]] == [made.name]
    for result in refused:
        assert_one_line_error(result, ExitCode.USAGE, contains="not a backup name")
    assert all((backup_dir / name).exists() for name in odd)  # never pruned


# ---------------------------------------------------------------- 19 + issue 9 #15. full disks


def _fill_blocks(point: Path, leave_pages: int) -> None:
    """Fill the tmpfs so that exactly ``leave_pages`` pages stay free."""
    reserve = point / "reserve"
    reserve.write_bytes(b"\0" * 4096 * leave_pages)
    with open(point / "filler", "ab", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    reserve.unlink()


def _fill_inodes(point: Path, leave: int) -> None:
    """Use every free inode of the tmpfs but ``leave``."""
    made = []
    try:
        while True:
            path = point / f"inode-{len(made)}"
            path.touch()
            made.append(path)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    for path in made[:leave]:
        path.unlink()


# which step runs out of space, how it is filled, and what fails there
STEPS = {
    "the .sha256 sidecar's write": (_fill_blocks, 0, None),
    "the .json manifest's write": (_fill_blocks, 1, None),
    "creating the .sha256 sidecar": (_fill_inodes, 0, ".sha256."),
    "creating the .json manifest": (_fill_inodes, 1, ".json."),
    "linking the .sha256 sidecar": (_fill_inodes, 2, ".sha256"),
    "linking the .json manifest": (_fill_inodes, 3, ".json"),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_full_disk_at_each_write_step_leaves_nothing(tmpfs, wal_db, step):
    fill, leave, failing = STEPS[step]
    point = tmpfs("4m,nr_inodes=400")  # a real full disk: no space, or no inodes
    folder = point / "backups"
    folder.mkdir()

    def run_out_of_space(done, total):  # after the copy: every later write step is ours
        if done == total and not (point / "filled").exists():
            (point / "filled").touch()
            fill(point, leave)

    with pytest.raises(engine.EngineError) as info:
        engine.create_backup(wal_db, folder, on_pages=run_out_of_space)
    assert info.value.kind == "no_space" and "backup folder is full" in str(info.value)
    cause = info.value.__cause__
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
    where = str(cause.filename2 or cause.filename or "")
    if failing is None:
        assert where == ""  # a write, not a create or a link
    else:
        assert where.endswith(failing) or failing in where, (step, cause)
    assert os.listdir(folder) == [engine.LOCK_NAME]  # no temporary, sidecar or backup


def test_the_last_link_into_place_runs_out_of_space_cleanly(tmpfs, wal_db):
    point = tmpfs("4m,nr_inodes=400")
    folder = point / "backups"
    folder.mkdir()

    def run_out(done, total):
        if done == total and not (point / "filled").exists():
            (point / "filled").touch()
            _fill_inodes(point, 4)

    with pytest.raises(engine.EngineError) as info:
        engine.create_backup(wal_db, folder, on_pages=run_out)
    cause = info.value.__cause__
    assert info.value.kind == "no_space" and cause.errno == errno.ENOSPC
    assert engine.parse_created(Path(cause.filename2).name) is not None  # the backup's link
    assert os.listdir(folder) == [engine.LOCK_NAME]


def test_a_full_folder_says_in_human_sizes_what_cleanup_would_free(tmpfs, tmp_path):
    point = tmpfs("3m")
    db = helpers.make_blob_db(tmp_path / "data" / "steps.db", 1)
    folder = point / "backups"
    olds = [engine.create_backup(db, folder, clock=lambda d=day: days_ago(d))
            for day in (2, 1)]
    before = helpers.snapshot(folder)
    result = helpers.run_invoke("backup", cwd=tmp_path, env={"INVOKE_BACKUP_DIR": str(folder),
                                                             "INVOKE_BACKUP_KEEP": "5"})
    line = assert_one_line_error(result, ExitCode.NO_SPACE, contains="not enough free space")
    size = engine.human_size(olds[0].size)
    assert " MB free, the backup needs about " in line, line
    assert line.endswith(f"; `invoke backup.cleanup --keep 1` would free {size}"), line
    assert helpers.snapshot(folder) == before and tmp_leftovers(folder) == []


# ---------------------------------------------------------------- issue 9 #14. leftovers


def test_leftovers_of_a_killed_backup_are_listed_and_cleaned_under_the_lock(
        made, backup_dir, tmp_path, run_invoke):
    leftover = backup_dir / f"{engine.TMP_PREFIX}{made.name}.4242"
    leftover.write_bytes(b"\0" * 1_500_000)  # as large as the copy got before kill -9
    journal = backup_dir / f"{leftover.name}-journal"
    journal.write_bytes(b"\0" * 512)

    listing, dry_text, dry = run_mixed(functools.partial(run_invoke, *args) for args in (
        ("backup.list",), ("backup.cleanup", "--dry-run"),
        ("backup.cleanup", "--dry-run", "--json")))
    assert listing.returncode == 0, listing
    assert "2 temporary file(s) of an interrupted (or running) backup take 1.5 MB" in (
        listing.stderr)
    assert f"{leftover.name} (1.5 MB)" in listing.stderr
    assert "would remove 2 (1.5 MB)" in dry_text.stderr, dry_text
    assert dry.json()["leftovers"] == [{"name": leftover.name, "size": 1_500_000},
                                       {"name": journal.name, "size": 512}]
    assert leftover.exists() and journal.exists()

    with helpers.lock_held_elsewhere(backup_dir, tmp_path / "holder") as (pid, _):
        locked = run_invoke("backup.cleanup")
    assert_one_line_error(locked, ExitCode.LOCKED, contains=f"pid {pid}")
    assert leftover.exists() and journal.exists()

    cleaned = run_invoke("backup.cleanup", "--json")
    assert cleaned.returncode == 0, cleaned
    assert tmp_leftovers(backup_dir) == [] and names(backup_dir) == [made.name]
    again = run_invoke("backup.list")
    assert "temporary file" not in again.stderr
