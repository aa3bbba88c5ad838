"""A closed stderr while the human lines are written (`invoke backup.list 2>&1 | head -1`)
ends with 141 like a closed stdout, not 1 (review-op s19 #5): Rich's own handler of the
BrokenPipeError exited 1; the task's (``cli.end_quietly``) now ends it."""

from __future__ import annotations

import os
import subprocess

import pytest

from ops import engine
from ops.errors import ExitCode
from tests import helpers
from tests.helpers import PYTHON, REPO_ROOT


@pytest.mark.parametrize("args", [("backup.list",), ("restore", "--dry-run"),
                                  ("backup", "--json")])
def test_a_closed_stderr_under_the_lines_ends_with_141(tmp_path, wal_db, backup_dir, args):
    engine.create_backup(wal_db, backup_dir)
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the first line written to stderr fails
    try:
        proc = subprocess.run(
            [PYTHON, "-m", "invoke", "--search-root", str(REPO_ROOT), *args], cwd=tmp_path,
            env=helpers.clean_env({"INVOKE_BACKUP_DIR": str(backup_dir),
                                   "INVOKE_DB_PATH": str(wal_db)}),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=write_end, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == ExitCode.BROKEN_PIPE
