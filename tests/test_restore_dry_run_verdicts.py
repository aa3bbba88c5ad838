"""A restore's dry run gives the verdict its run gives before changing anything (issue
22: the same runner, running the read-only steps). Two gaps closed here (s20-dry):

- ``restore --from FILE --dry-run`` (--production, --host) now runs the run's verify of
  the local FILE, read in place: a bad checksum, no records, not SQLite fail it with the
  run's exit code and ``Error:`` line; nothing is written (no private copy, no upload).
- A missing or corrupt live database there, the app not stopped: the run refuses it
  (exit 2, before its question); its dry run only warned and exited 0. It now fails
  with the run's refusal, on every engine (python3, node, the sqlite3 shell), having
  only read (the listing and the counts: not even the verify on the machine).

Each case runs the real CLI twice, the dry run then the run, against the flyctl double's
machine (or the real sshd), and compares exit codes and error lines word for word."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import engine
from tests import fake_production as fp
from tests import helpers
from tests.fake_production import changed_after_backup, error_line, flip_bytes, use_engine
from tests.fake_production import restore_label as label

READS = [*fp.RESTORE_RESOLVE, *fp.STOPPED]  # resolve, then "is it emergency-stopped?"


def bad_file(kind: str, db: Path, folder: Path) -> Path:
    """A local backup file the run's verify refuses (exit 5)."""
    made = engine.create_backup(db, folder)
    path = Path(made.path)
    if kind == "checksum":  # a byte changed after its records were written
        flip_bytes(path, made.size // 2, 4)
    elif kind == "unrecorded":  # no .sha256, no .json: unverifiable
        for side in engine.sidecars(path):
            side.unlink()
    else:  # not SQLite at all, its records still naming it
        path.write_bytes(b"not a database" * 300)
    return path


def broken_live(db: Path, state: str) -> None:
    for side in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        side.unlink(missing_ok=True)
    if state == "corrupt":
        db.write_text("this is not a database\n" * 100)


def files(*folders: Path) -> dict:
    return {f"{folder}/{name}": digest for folder in folders
            for name, digest in helpers.snapshot(folder, set()).items()}


@pytest.mark.parametrize("kind", ["checksum", "unrecorded", "not-sqlite"])
def test_a_from_files_dry_run_refuses_what_the_run_refuses(prod, tmp_path, kind):
    path = bad_file(kind, prod.db, tmp_path / "here")
    scratch = tmp_path / "tmp"  # the run's private copy goes here (TMPDIR); the dry run's none
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    before = files(path.parent, prod.remote_dir, prod.db.parent)
    dry = prod.run("restore", "--from", str(path), "--production", "--dry-run", env=env)
    assert dry.returncode == 5, dry
    assert [label(a) for a in prod.calls()] == READS  # reads only
    assert files(path.parent, prod.remote_dir, prod.db.parent) == before
    assert list(scratch.iterdir()) == []  # read in place: not even a private copy
    assert "Restore plan" not in dry.stderr
    real = prod.run("restore", "--from", str(path), "--production", "--yes", env=env)
    assert real.returncode == 5, real
    assert error_line(dry) == error_line(real)  # the same refusal, word for word
    assert str(path) in error_line(real) and "/ops-upload-" not in error_line(real)


def test_a_sound_from_files_dry_run_verifies_it_and_counts_there(prod, tmp_path):
    made = engine.create_backup(prod.db, tmp_path / "here")
    dry = prod.run("restore", "--from", made.path, "--production", "--dry-run", "--json")
    assert dry.returncode == 0, dry
    # the plan's verify step is read-only now, and its command (the counts) is the call
    assert [label(a) for a in prod.calls()] == [*READS, "ssh counts"]
    (line,) = [ln for ln in dry.stderr.splitlines() if ln.startswith("✓ verify")]
    assert f"sha256 {made.sha256[:12]}  integrity_check ok" in line, line
    steps = {s["key"]: s for s in dry.json()["steps"]}
    assert steps["verify"]["reads_only"] and not steps["upload"]["reads_only"]
    assert "latest is" not in dry.stderr  # no backup there was chosen: the file is


@pytest.mark.parametrize("state", ["corrupt", "missing"])
@pytest.mark.parametrize("machine_engine", ["python3", "sqlite3", "node"])
def test_a_broken_live_database_there_fails_the_dry_run_as_the_run(prod, state,
                                                                   machine_engine):
    use_engine(prod, machine_engine)
    made = changed_after_backup(prod)
    broken_live(prod.db, state)
    before = files(prod.remote_dir, prod.db.parent)
    dry = prod.run("restore", made.name, "--production", "--dry-run")
    assert dry.returncode == 2, dry
    # the run refuses after its counts, before its question: the dry run stops there too
    assert [label(a) for a in prod.calls()] == [*READS, "ssh list",
                                                "ssh counts"]
    assert files(prod.remote_dir, prod.db.parent) == before
    real = prod.run("restore", made.name, "--production", "--yes")
    assert real.returncode == 2, real
    assert error_line(dry) == error_line(real)
    assert f"is {state} (" in error_line(dry) and "emergency.stop" in error_line(dry)


def test_a_from_files_dry_run_refuses_a_corrupt_live_database_there(prod, tmp_path):
    made = engine.create_backup(prod.db, tmp_path / "here")
    broken_live(prod.db, "corrupt")
    dry = prod.run("restore", "--from", made.path, "--production", "--dry-run")
    real = prod.run("restore", "--from", made.path, "--production", "--yes")
    assert dry.returncode == real.returncode == 2, (dry, real)
    assert error_line(dry) == error_line(real) and "is corrupt (" in error_line(dry)
    assert "sftp put" not in [label(a) for a in prod.calls()]  # neither uploaded it


def test_emergency_stopped_the_dry_run_still_says_what_the_run_will_do(prod):
    made = changed_after_backup(prod)
    assert prod.run("emergency.stop", "--yes").returncode == 0
    broken_live(prod.db, "corrupt")
    dry = prod.run("restore", made.name, "--production", "--dry-run")
    assert dry.returncode == 0, dry
    warned = [ln for ln in dry.stderr.splitlines() if "is corrupt (" in ln]
    assert len(warned) == 1 and "the real run moves it aside" in warned[0], dry.stderr


def test_refused_options_fail_the_dry_run_as_the_run(prod, tmp_path):
    made = engine.create_backup(prod.db, prod.remote_dir)
    for args, code in ([(made.name, "--production", "--app-stopped"), 2],
                       [("--from", str(tmp_path / "nothing.db"), "--production"), 3]):
        dry = prod.run("restore", *args, "--dry-run")
        real = prod.run("restore", *args, "--yes")
        assert dry.returncode == real.returncode == code, (dry, real)
        assert error_line(dry) == error_line(real)


def test_an_ssh_hosts_dry_runs_refuse_what_its_runs_refuse(host, tmp_path, run_invoke):
    db, folder, env, addr = host["db"], host["dir"], host["env"], host["addr"]
    made = engine.create_backup(db, folder)
    path = bad_file("checksum", db, tmp_path / "here")
    dry = run_invoke("restore", "--from", str(path), "--host", addr, "--dry-run", env=env)
    real = run_invoke("restore", "--from", str(path), "--host", addr, "--yes", env=env)
    assert dry.returncode == real.returncode == 5, (dry, real)
    assert error_line(dry) == error_line(real)
    broken_live(db, "missing")
    before = files(folder, db.parent)
    dry = run_invoke("restore", made.name, "--host", addr, "--dry-run", env=env)
    assert files(folder, db.parent) == before
    real = run_invoke("restore", made.name, "--host", addr, "--yes", env=env)
    assert dry.returncode == real.returncode == 2, (dry, real)
    assert error_line(dry) == error_line(real) and "is missing (" in error_line(dry)
    stopped = run_invoke("restore", made.name, "--host", addr, "--dry-run", "--app-stopped",
                         env=env)
    assert stopped.returncode == 0, stopped
    assert "the real run restores into its place" in stopped.stderr, stopped.stderr


@pytest.mark.parametrize("state", ["corrupt", "missing"])
def test_here_the_dry_run_refuses_a_broken_live_database_in_the_runs_order(
        wal_db, backup_dir, run_invoke, state):
    made = engine.create_backup(wal_db, backup_dir)
    broken_live(wal_db, state)
    for args, code in ([(made.name,), 2], [("steps-2020-01-01T00-00-00.db",), 3]):
        before = files(backup_dir, wal_db.parent)  # (the run's audit line goes there too)
        dry = run_invoke("restore", *args, "--dry-run")  # an unknown name comes first
        assert files(backup_dir, wal_db.parent) == before  # no lock file, nothing moved
        real = run_invoke("restore", *args, "--yes")
        assert dry.returncode == real.returncode == code, (dry, real)
        assert error_line(dry) == error_line(real)
    stopped = run_invoke("restore", made.name, "--dry-run", "--app-stopped")
    assert stopped.returncode == 0 and "the real run" in stopped.stderr, stopped
