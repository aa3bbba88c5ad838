"""`invoke demo`, the README's first command, end to end on a small sample."""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys

from ops import engine
from tests.helpers import (
    REPO_ROOT,
    assert_one_line_error,
    clean_env,
    command_after,
    project_root,
    run_invoke,
)


def test_demo_backs_up_verifies_prunes_and_restores(tmp_path):
    result = run_invoke("demo", "--mb", "2", "--dir", "d", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result
    backups = tmp_path / "d" / "data" / "backups"
    names = sorted(p.name for p in backups.iterdir() if engine.parse_created(p.name))
    assert len(names) == 2  # three made, retention kept 2
    for name in names:
        assert engine.verify_backup(backups / name).ok
    # the stand-in app wrote between the backups, so they differ
    assert engine.sha256_file(backups / names[0]) != engine.sha256_file(backups / names[1])
    restored = tmp_path / "d" / "restored.db"
    with sqlite3.connect(f"file:{restored}?mode=ro&immutable=1", uri=True) as conn:
        restored_rows = conn.execute("SELECT count(*) FROM steps").fetchone()[0]
    with sqlite3.connect(f"file:{backups / names[-1]}?mode=ro&immutable=1", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM steps").fetchone()[0] == restored_rows > 0
    for line in ("✓ build a sample database", "✓ verify every backup", "✓ restore the newest"):
        assert line in result.stderr, result
    table = result.stderr[result.stderr.index("Backups in "):]
    listed = [line for line in table.splitlines() if "steps-" in line and "│" in line]
    at = [next(i for i, line in enumerate(listed) if name in line) for name in names]
    assert at[-1] < at[0]  # newest first, as backup.list (review-ox 21)

    # its last line, pasted into a shell, lists them as this database's: without the
    # database's path they were "other db", never latest (s27 review-op #1)
    line = command_after(result.stderr, "Try:")
    words = shlex.split(line)
    assert words[0].endswith("invoke") and words[1:3] == ["-f", "d/config.yaml"], line
    command = shlex.join(  # run in this project (tmp_path: ours)
        [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), *words[1:], "--json"])
    pasted = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, env=clean_env(project_root(tmp_path, None)))
    assert pasted.returncode == 0, pasted
    listed = json.loads(pasted.stdout)
    assert sorted(item["name"] for item in listed) == names
    assert all(item["latest_may_name"] and item["kind"] == "backup" for item in listed), listed


def test_demo_rejects_a_bad_size(tmp_path):
    result = run_invoke("demo", "--mb", "lots", cwd=tmp_path)
    assert_one_line_error(result, 2, contains="--mb must be a number")
    assert not (tmp_path / "demo").exists()
