"""SIGTERM during a production restore (a cancelled CI job) leaves an honest audit line
and says what to finish by hand (issue 22; the local case is
``tests/test_backup_choice.py::test_sigterm_*``).

The app on the fake machine holds its write lock, so the machine's restore waits in
its copy; a real SIGTERM is then sent to the real CLI.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
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


def terminated_while_the_machine_restores(prod, name: str):  # noqa: F811
    """Run the real CLI, SIGTERM it once the machine's restore is running; (proc, stderr)."""
    argv = [sys.executable, "-m", "invoke", "--search-root", str(helpers.REPO_ROOT),
            "restore", name, "--production", "--yes", "--busy-timeout", "50"]
    listed = {b.name for b in engine.list_backups(prod.remote_dir)}
    proc = subprocess.Popen(argv, cwd=prod.cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=helpers.clean_env(helpers.project_root(prod.cwd, prod.env)))
    helpers.wait_for(lambda: "ssh restore" in [label(a) for a in prod.calls()],
                     timeout=30, what="the machine's restore")
    # its safety backup is made before its copy waits for the app's write lock: from then
    # on it waits (was: half a second's sleep, which under load could signal it earlier)
    helpers.wait_for(lambda: any(b.kind == "safety" and b.name not in listed
                                 for b in engine.list_backups(prod.remote_dir)),
                     timeout=30, what="the machine's safety backup")
    proc.send_signal(signal.SIGTERM)
    shown = proc.stderr.read()
    proc.wait(timeout=30)
    return proc, shown


def test_sigterm_while_the_machine_restores_leaves_an_honest_record(prod):  # noqa: F811
    made = changed_after_backup(prod)
    before = engine.describe_file(prod.db, live=True)[1]
    with helpers.app_holds_write_lock(prod.db):  # until the test ends, never by a clock
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
    # the by-hand lines: finish the restore once it did not copy, then restart the machine
    assert (f"If it did not copy, to finish the restore: `invoke restore {made.name} "
            "--production --yes`") in shown
    assert f"fly machine restart {MACHINE} -a {APP}" in shown
    assert "Error: terminated by SIGTERM" in shown
