"""SIGTERM during `backup.drill --production` (a cancelled scheduled CI job) ends as the
other tasks do: exit 143, one `Error:` line after the step it stopped in, no traceback,
and flyctl stopped with it (issue 22: the drill runs on the one Runner).

The flyctl double holds the drill's first `fly ssh console` (its listing) until the
test sends a real SIGTERM to the real CLI.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from ops import engine
from tests import helpers
from tests.fake_production import label


def test_sigterm_during_a_production_drill_exits_143_with_one_error_line(prod, tmp_path):
    engine.create_backup(prod.db, prod.remote_dir)
    prod.world.hang(["ssh", "console"], seconds=60, until=tmp_path / "never")
    argv = [sys.executable, "-m", "invoke", "--search-root", str(helpers.REPO_ROOT),
            "backup.drill", "--production"]
    proc = subprocess.Popen(argv, cwd=prod.cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=helpers.clean_env(helpers.project_root(prod.cwd, prod.env)))
    try:
        helpers.wait_for(lambda: "ssh list" in [label(a) for a in prod.calls()],
                         timeout=30, what="the drill's listing")
        proc.send_signal(signal.SIGTERM)
        shown = proc.stderr.read()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, shown
    assert "Traceback" not in shown, shown
    lines = [line for line in shown.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: terminated by SIGTERM"), shown
    assert lines[-2].startswith("✗ find backup latest") and "SIGTERM" in lines[-2], shown
    assert "✓ resolve production machine" in shown  # the step before it had finished
    assert [label(a) for a in prod.calls()][-1] == "ssh list"  # nothing ran after it
