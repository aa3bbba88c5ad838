"""The machine's locks and a restore's hold on its backup, seen from any pid namespace
(review-break #1, s21). A lock taken through flock(1) stays on the shell's open file after
flock(1) has exited; outside the machine's top pid namespace (an ``--host`` that is a
container) /proc/locks hides such a lock. So a cleanup keeps a held backup by trying an
exclusive flock on it (``remote.delete_script``), and a dry run's look reads the holders'
/proc/PID/fdinfo there too (``remote.IS_HELD``, ``engine._flocked``).

Each case runs here, and again under ``unshare --pid --fork --mount-proc`` (the last test:
this file in a child pid namespace, the CLI, the flyctl double and the machine's scripts
all in it). The holders are real shell scripts: the restore's own ``hold_backup`` and the
sh ``take_lock``, each through flock(1)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from ops import engine, remote
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import error_line

pytestmark = pytest.mark.cli_in_process

INSIDE = "OPS_TEST_IN_CHILD_PID_NAMESPACE"
TOOLS = {"python3": (), "node": ("python3",), "sqlite3": ("python3", "node")}


@pytest.fixture(autouse=True)
def _where():
    """Run again by the last test, each case must really be in a child pid namespace."""
    if os.environ.get(INSIDE) == "1":
        assert not engine._top_pid_namespace(), "not in a child pid namespace"


@contextlib.contextmanager
def sh_holding(script: str):
    """A shell running ``script`` (the machine's own lock code), then ``exec sleep`` so the
    descriptor it locked stays open in one process, killed at the end."""
    proc = subprocess.Popen(["sh", "-c", f"{remote.PRELUDE}\n{script}\necho ready\nexec sleep 120"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.poll()
        yield
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def two_backups(site):
    assert site.here("backup", "--production").returncode == 0
    assert site.here("backup", "--production").returncode == 0
    found = sorted(site.backups.glob("steps-*.db"))
    assert len(found) >= 2, found
    return found[0]


def test_a_cleanup_keeps_the_backup_a_restore_holds_and_says_keep(site):
    """The restore's hold (``hold_backup``) on the oldest backup: the real cleanup keeps it,
    and its --json decisions and its table say ``keep`` (review-break #4), not remove."""
    doomed = two_backups(site)
    files = sorted(site.backups.glob(f"{doomed.name}*"))
    with sh_holding(remote.hold_backup(str(site.backups), doomed.name)):
        run = site.here("backup.cleanup", "--production", "--keep", "1", "--json")
        table = site.here("backup.cleanup", "--production", "--keep", "1")
        assert sorted(site.backups.glob(f"{doomed.name}*")) == files  # with its sidecars
    assert run.returncode == 0 and table.returncode == 0, (run, table)
    decisions = {d["name"]: d for d in json.loads(run.stdout)["decisions"]}
    assert decisions[doomed.name]["action"] == "keep", decisions
    assert decisions[doomed.name]["reason"].startswith("held by a restore there"), decisions
    rows = [[cell.strip() for cell in line.split("\u2502")] for line in table.stderr.splitlines()]
    (row,) = [row[1:3] for row in rows if row[1:2] == [doomed.name]]
    assert row == [doomed.name, "keep"], table.stderr
    assert f"kept {doomed.name}: a restore on" in " ".join(table.stderr.split()), table
    assert "removed 0, kept" in table.stderr, table
    # let go: the next cleanup removes it
    assert site.here("backup.cleanup", "--production", "--keep", "1").returncode == 0
    assert not doomed.exists()


@pytest.mark.parametrize("eng", list(TOOLS))
def test_a_restores_dry_run_sees_a_backup_lock_a_shell_holds(site, eng):
    """The machine's own sh backup or cleanup holds the backup lock (``take_lock``): the dry
    run refuses as the run does, exit 4, whatever engine the machine has."""
    assert site.here("backup", "--production").returncode == 0
    if TOOLS[eng]:
        site.world.remove_machine_tools(*TOOLS[eng])
    with sh_holding(f"take_lock {shlex.quote(str(site.backups))} 0"):
        dry = site.here("restore", "--production", "--dry-run")
        run = site.here("restore", "--production", "--yes")
    both_refuse(site, dry, run)


def both_refuse(site, dry, run):
    """The dry run and the run: exit 4, the sh holder (it names nobody) in the same words."""
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = (f"another backup holds the lock {site.backups}/{engine.LOCK_NAME}: unknown "
            "(use --lock-wait SECONDS to wait for it)")
    assert error_line(dry).endswith(said), dry
    assert error_line(run).endswith(said), run


def test_a_cleanups_dry_run_sees_a_backup_lock_a_shell_holds(site):
    two_backups(site)
    with sh_holding(f"take_lock {shlex.quote(str(site.backups))} 0"):
        dry = site.here("backup.cleanup", "--production", "--keep", "1", "--dry-run")
        run = site.here("backup.cleanup", "--production", "--keep", "1")
    both_refuse(site, dry, run)


def test_the_same_cases_in_a_child_pid_namespace():
    """This file again, under ``unshare --pid --fork --mount-proc``, as an ``--host`` that is
    a container sees its /proc. Skipped where unshare may not make one, but not in CI."""
    unshare = shutil.which("unshare")
    why = "unshare(1) is missing"
    if unshare:
        probe = subprocess.run([unshare, "--pid", "--fork", "--mount-proc", "true"],
                               capture_output=True, text=True, check=False)
        why = "" if probe.returncode == 0 else (
            f"unshare --pid is not permitted: {probe.stderr.strip()}")
    if why:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI must run the pid namespace cases, but {why}")
        pytest.skip(why)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env[INSIDE] = "1"
    inner = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-m", "pytest", "-q",
         "-p", "no:cacheprovider", "-p", "no:randomly", __file__,
         "-k", "not test_the_same_cases_in_a_child_pid_namespace"],
        cwd=helpers.REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
        check=False)
    assert inner.returncode == 0, inner.stdout[-4000:] + inner.stderr[-2000:]
    assert "5 passed" in inner.stdout, inner.stdout[-2000:]
