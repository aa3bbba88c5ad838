"""SIGTERM during a production restore (a cancelled CI job) leaves an honest audit line
and says what to finish by hand (issue 22; the local case is
``tests/test_backup_choice.py::test_sigterm_*``).

The app on the fake machine holds its write lock, so the machine's restore waits in
its copy; a real SIGTERM is then sent to the real CLI.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops import engine
from tests import helpers
from tests.fake_production import APP, MACHINE, changed_after_backup
from tests.fake_production import restore_label as label


@pytest.fixture
def prod(served_prod):
    """Production whose /health answers (a restore restarts the machine and waits for it)."""
    return served_prod


HOLD_WRITE_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(60)
"""


@contextlib.contextmanager
def app_holds_its_write_lock(db: Path):
    """The app, mid-transaction: a restore's copy into ``db`` waits for it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, str(db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


def terminated_while_the_machine_restores(prod, name: str):  # noqa: F811
    """Run the real CLI, SIGTERM it once the machine's restore is running; (proc, stderr)."""
    argv = [sys.executable, "-m", "invoke", "--search-root", str(helpers.REPO_ROOT),
            "restore", name, "--production", "--yes", "--busy-timeout", "50"]
    proc = subprocess.Popen(argv, cwd=prod.cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=helpers.clean_env(helpers.project_root(prod.cwd, prod.env)))
    helpers.wait_for(lambda: "ssh restore" in [label(a) for a in prod.calls()],
                     timeout=30, what="the machine's restore")
    time.sleep(0.5)  # its copy is waiting for the app's write lock now
    proc.send_signal(signal.SIGTERM)
    shown = proc.stderr.read()
    proc.wait(timeout=30)
    return proc, shown


def test_sigterm_while_the_machine_restores_leaves_an_honest_record(prod):  # noqa: F811
    made = changed_after_backup(prod)
    before = engine.describe_file(prod.db, live=True)[1]
    with app_holds_its_write_lock(prod.db):
        proc, shown = terminated_while_the_machine_restores(prod, made.name)
    assert proc.returncode == 143, shown
    assert "Traceback" not in shown
    assert engine.describe_file(prod.db, live=True)[1] == before  # the app's lock held
    line = [json.loads(x) for x in Path(prod.env["INVOKE_DEPLOY_AUDIT_LOG"]).read_text()
            .splitlines()][-1]
    assert line["kind"] == "restore" and line["exit_code"] == 143, line
    assert line["outcome"] == "terminated by SIGTERM" and line["interrupted"] == "SIGTERM"
    assert line["backup"]["name"] == made.name and line["machine"] == MACHINE
    assert [s["step"] for s in line["steps"]][-1] == "restore"
    # asked the machine, against its new safety backup too: its content from before
    # (was "other", which read as "neither the backup nor its own"; review-break s19 #3)
    assert line["holds"] == "safety"
    assert "does not hold backup" in shown
    # the by-hand lines: finish the restore, then restart the machine
    assert f"To finish the restore: invoke restore {made.name} --production --yes" in shown
    assert f"fly machine restart {MACHINE} -a {APP}" in shown
    assert "Error: terminated by SIGTERM" in shown
