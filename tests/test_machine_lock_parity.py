"""A dry run on the machine says what its run does at the locks, on a sqlite3-only machine
and with a lock name of the wrong kind (review-break #5, #6, s21), and a backup the ssh
user cannot read ends the restore with the engine's one-line error, not a dead dash at
the hold (#3). Each held lock is a real process holding a real flock(2)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ops import engine, node, remote
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import error_line

pytestmark = pytest.mark.cli_in_process

HOLDER = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0); os.pwrite(fd, sys.argv[2].encode(), 0)
print("ready", flush=True)
time.sleep(120)
"""
HELD = "ann (pid 7 on h) since 2026-12-07T09:00:00Z"


@contextlib.contextmanager
def held(path, record):
    """A process holding flock(2) on ``path``, its record ``record``."""
    proc = helpers.python(HOLDER, str(path), record)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.communicate()
        yield
    finally:
        proc.kill()
        proc.communicate()


@pytest.fixture
def sqlite3_only(site):
    assert site.here("backup", "--production").returncode == 0
    site.world.remove_machine_tools("python3", "node")
    return site


@pytest.mark.parametrize("lock_name, record, said", [
    # a restore named in the backup lock is named by the run too
    (engine.LOCK_NAME, f"a restore by {HELD}",
     f"a restore holds the lock {{lock}}: a restore by {HELD} "
     "(use --lock-wait SECONDS to wait for it)"),
    # a holder without a record is unknown to the run too
    (engine.RESTORE_LOCK, "",
     "another restore holds the lock {lock}: unknown (use --lock-wait SECONDS to wait "
     "for it)"),
], ids=["restore-named", "no-record"])
def test_the_dry_run_names_the_holder_as_the_run_does(sqlite3_only, lock_name, record, said):
    site, lock = sqlite3_only, sqlite3_only.backups / lock_name
    with held(lock, record):
        dry = site.here("restore", "--production", "--dry-run")
        run = site.here("restore", "--production", "--yes")
    said = said.format(lock=lock)
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    assert error_line(dry).endswith(said) and error_line(run).endswith(said), (dry, run)


def test_a_lock_wait_under_a_fifth_of_a_second_is_waited_for(sqlite3_only):
    """--lock-wait 0.1: the dry run says the run would wait; the run waits (one try at
    least, as the engines do) and then stops with exit 4, without advising --lock-wait."""
    site, lock = sqlite3_only, sqlite3_only.backups / engine.RESTORE_LOCK
    with held(lock, HELD):
        dry = site.here("restore", "--production", "--dry-run", "--lock-wait", "0.1", "--json")
        run = site.here("restore", "--production", "--yes", "--lock-wait", "0.1")
    assert dry.returncode == 0, dry
    assert json.loads(dry.stdout)["lock_waits"] == [
        f"another restore holds the lock {lock}: {HELD}; the run would wait up to 0.1s for "
        "it, then stop with exit 4 if it is still held"]
    assert run.returncode == ExitCode.LOCKED, run
    assert error_line(run).endswith(f"another restore holds the lock {lock}: {HELD}"), run


def test_tries_any_wait_at_least_once():
    assert [remote._tries(w) for w in (0, -1, float("nan"), 0.01, 0.1, 0.2, 0.3, 1)] == \
        [0, 0, 0, 1, 1, 1, 2, 5]


def wrong_kind(path, kind):
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:  # a symlink to nothing
        path.symlink_to(path.with_name("nowhere"))


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink"])
def test_a_cleanups_dry_run_refuses_a_backup_lock_of_the_wrong_kind_as_its_run(site, kind):
    assert site.here("backup", "--production").returncode == 0
    assert site.here("backup", "--production").returncode == 0
    lock = site.backups / engine.LOCK_NAME
    wrong_kind(lock, kind)
    dry = site.here("backup.cleanup", "--production", "--keep", "1", "--dry-run")
    run = site.here("backup.cleanup", "--production", "--keep", "1")
    said = (f"refusing the lock {lock}: it is not a regular file (a symlink or something "
            "else has its name)")
    assert dry.returncode == run.returncode == ExitCode.ERROR, (dry, run)
    assert error_line(dry).endswith(said) and error_line(run).endswith(said), (dry, run)


@pytest.mark.parametrize("eng", ["sqlite3", "python3"])
@pytest.mark.parametrize("name", [engine.RESTORE_LOCK, engine.LOCK_NAME])
def test_a_restores_dry_run_refuses_a_fifo_lock_as_its_run(site, name, eng):
    """Each in its run's words: the sh take_lock's (sqlite3), the engine's file_lock's."""
    assert site.here("backup", "--production").returncode == 0
    if eng == "sqlite3":
        site.world.remove_machine_tools("python3", "node")
    lock = site.backups / name
    wrong_kind(lock, "fifo")
    dry = site.here("restore", "--production", "--dry-run")
    run = site.here("restore", "--production", "--yes")
    said = (f"refusing the lock {lock}: it is not a regular file (a symlink or something "
            "else has its name)") if eng == "sqlite3" else (
            f"refusing the lock file {lock}: a FIFO, not a regular file this tool made; "
            "remove it if nothing else needs it")
    assert dry.returncode == run.returncode == ExitCode.ERROR, (dry, run)
    assert error_line(dry).endswith(said) and error_line(run).endswith(said), (dry, run)


def test_a_backup_the_user_cannot_read_gives_the_engines_one_line_error():
    """The backup is root's, mode 0600; the restore script runs as nobody under dash (the
    usual /bin/sh of an ``--host``): the hold gives way, the engine says what is wrong."""
    dash = shutil.which("dash")
    if os.geteuid() != 0 or dash is None:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail("CI must run this as root with dash")
        pytest.skip("needs root (to run the script as nobody) and dash")
    with tempfile.TemporaryDirectory(dir="/tmp") as where:  # pytest's tmp_path is root's, 0700
        restore_as_nobody(dash, Path(where))


def restore_as_nobody(dash, folder):
    folder.chmod(0o777)
    name = "steps-2026-01-01T00-00-00.db"
    for db in ("live.db", name):
        subprocess.run(["sqlite3", str(folder / db), "create table t(x); insert into t values(1);"],
                       check=True)
    (folder / name).chmod(0o600)
    os.chown(folder / "live.db", 65534, 65534)
    script = remote.restore_script(str(folder / "live.db"), str(folder), name, check="quick")
    _, flag, body = shlex.split(remote.wrap(script))
    done = subprocess.run([dash, flag, body], input=node.engine_stdin(), capture_output=True,
                          user="nobody", cwd="/", check=False, timeout=60)
    out = remote.parse_output(done.stdout.decode())
    assert out.strategy == "python3", done
    assert out.result is not None and out.result["ok"] is False, done
    assert out.result["kind"] == "verify_failed", out.result
    assert out.result["error"].endswith(f"cannot read backup {folder}/{name}: permission denied")

