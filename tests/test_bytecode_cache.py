"""A task's start does not compile ops/ again on every run (issue 21: the idle backup's
start). Invoke turns Python's bytecode cache off (its --write-pyc); tasks.py turns it back
on unless PYTHONDONTWRITEBYTECODE asks otherwise.

Both runs write their cache under a PYTHONPYCACHEPREFIX of their own (a temporary folder),
so the checkout's ops/__pycache__ is neither read nor changed."""

from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, run_invoke

# what a process compiles as it starts is the point: every run a fresh `python -m invoke`
pytestmark = pytest.mark.fresh_process


def cached_ops_modules(prefix: Path) -> set[str]:
    """Names of ops/'s modules whose bytecode Python wrote under ``prefix``."""
    # the prefix mirrors the source's absolute path: PREFIX/<REPO_ROOT>/ops/.../x.cpython-*.pyc
    ops = prefix / REPO_ROOT.resolve().relative_to("/") / "ops"
    return {path.name.split(".")[0] for path in ops.rglob("*.pyc")}


def test_a_task_run_caches_ops_bytecode(tmp_path):
    prefix = tmp_path / "pycache"
    result = run_invoke("--list", cwd=tmp_path, env={
        "PYTHONDONTWRITEBYTECODE": None, "PYTHONPYCACHEPREFIX": str(prefix)})
    assert result.returncode == 0, result
    assert {"signals", "config", "cli"} <= cached_ops_modules(prefix)  # what --list imports


def test_pythondontwritebytecode_still_wins(tmp_path):
    prefix = tmp_path / "pycache"
    result = run_invoke("--list", cwd=tmp_path, env={
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(prefix)})
    assert result.returncode == 0, result
    assert cached_ops_modules(prefix) == set()


def test_python_dash_b_still_wins(tmp_path):
    """``python -B -m invoke``: the interpreter's own switch, not only the variable."""
    import subprocess
    import sys

    from tests.helpers import clean_env

    prefix = tmp_path / "pycache"
    env = clean_env({"PYTHONDONTWRITEBYTECODE": None, "PYTHONPYCACHEPREFIX": str(prefix)})
    result = subprocess.run([sys.executable, "-B", "-m", "invoke", "--search-root",
                             str(REPO_ROOT), "--list"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert cached_ops_modules(prefix) == set()
