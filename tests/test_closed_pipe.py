"""A closed stdout or stderr (`invoke --help restore | head -1`, quitting `less` early) ends
the run quietly with exit 141, the status a shell shows for `cat` stopped the same way, not
a BrokenPipeError traceback (review-op W6; docs/exit-codes.md).

The real CLI in a subprocess whose stdout (or stderr) is a pipe with its reading end
already closed, so the first write fails at once: no race with a reader."""

from __future__ import annotations

import os
import subprocess

import pytest

from ops.errors import ExitCode
from tests import helpers
from tests.helpers import PYTHON, REPO_ROOT


def run_with_closed(stream: str, *args: str, cwd, env=None) -> tuple[int, str]:
    """``invoke ARGS`` with ``stream`` ("stdout" or "stderr") a pipe nobody reads: the
    exit code and what the other stream got."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    other = "stderr" if stream == "stdout" else "stdout"
    try:
        proc = subprocess.run(
            [PYTHON, "-m", "invoke", "--search-root", str(REPO_ROOT), *args], cwd=cwd,
            env=helpers.clean_env(env), stdin=subprocess.DEVNULL, timeout=60, text=True,
            **{stream: write_end, other: subprocess.PIPE})  # fmt: skip
    finally:
        os.close(write_end)
    return proc.returncode, getattr(proc, other)


@pytest.mark.parametrize("args", [("--help", "restore"), ("restore", "-h"), ("--list",),
                                  ("backup.list", "--json")])
def test_a_closed_stdout_ends_quietly_with_141(tmp_path, args):
    (tmp_path / "backups").mkdir()
    code, stderr = run_with_closed("stdout", *args, cwd=tmp_path,
                                   env={"INVOKE_BACKUP_DIR": str(tmp_path / "backups")})
    assert (code, stderr) == (ExitCode.BROKEN_PIPE, ""), stderr


def test_a_closed_stderr_ends_quietly_with_141(tmp_path):
    code, stdout = run_with_closed("stderr", "backup.list", cwd=tmp_path,
                                   env={"INVOKE_BACKUP_DIR": str(tmp_path / "missing")})
    assert (code, stdout) == (ExitCode.BROKEN_PIPE, "")


def test_an_open_stdout_is_not_mistaken_for_a_closed_one(tmp_path):
    result = helpers.run_invoke("--help", "restore", cwd=tmp_path)
    assert result.returncode == 0 and "Usage:" in result.stdout
