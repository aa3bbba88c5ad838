"""The machine-side restore meets the backup scripts' rules, with either tool: one lock
protocol (flock on ``.restore.lock``, and the folder's ``.backup.lock`` so no backup or
retention runs in the folder meanwhile), nothing written through a planted name, the
chosen backup's records read by the validated readers (no record: refused).

Each test runs ``invoke restore --production`` through the real CLI and the flyctl
double on real files; the live database must stay byte-identical when it refuses.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from ops import engine
from ops.errors import ExitCode
from tests import helpers, node_env
from tests.fake_production import changed_after_backup, near_names
from tests.fake_production import restore_label as label
from tests.helpers import assert_one_line_error

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")


@pytest.fixture
def prod(served_prod):
    """Production whose /health answers (a restore restarts the machine and waits for it)."""
    return served_prod


STRATEGIES = ["python3", "sqlite3", "node"]


def use(prod, strategy: str) -> None:
    if strategy == "sqlite3":
        prod.world.remove_machine_tools("python3")
    if strategy == "node":  # the app's own image and its node_modules (issue 17)
        prod.world.set_machine_image("node")
        prod.env["INVOKE_MACHINE_APP_DIR"] = str(node_env.app_dir())


def unchanged(prod, made, before: str, *, planted=()) -> None:
    """The live database as it was, no safety backup, planted names left as found."""
    assert helpers.sha256(prod.db) == before
    assert prod.remote_backups() == [made.name]
    assert all(link.is_symlink() for link in planted)
    assert not [p for p in prod.remote_dir.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("lock", [".restore.lock", ".backup.lock"])
def test_a_planted_lock_is_refused_and_the_live_database_untouched(prod, strategy, lock):
    use(prod, strategy)
    made = changed_after_backup(prod)
    link = prod.remote_dir / lock
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(prod.db, prod.remote_dir))
    before = helpers.sha256(prod.db)
    result = prod.run("restore", "--production", "--yes")
    assert_one_line_error(result, ExitCode.ERROR, contains="not a regular file", strict=False)
    unchanged(prod, made, before, planted=[link])
    assert "machine restart" not in [label(a) for a in prod.calls()]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_symlinks_at_the_safety_backups_names_are_never_written_through(prod, strategy):
    use(prod, strategy)
    made = changed_after_backup(prod)
    target = os.path.relpath(prod.db, prod.remote_dir)
    planted = [prod.remote_dir / f"{name}{ext}" for name in near_names()
               for ext in (".sha256", ".json") if name != made.name]
    for link in planted:
        link.symlink_to(target)
    before = helpers.sha256(prod.db)
    result = prod.run("restore", made.name, "--production", "--yes")
    assert_one_line_error(result, ExitCode.ERROR, contains="already exists", strict=False)
    unchanged(prod, made, before, planted=planted)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("lock", [".restore.lock", ".backup.lock"])
def test_a_held_lock_stops_the_restore_before_anything(prod, tmp_path, strategy, lock):
    """A restore and a backup (or its retention) never run in one folder at once: the
    chosen backup cannot be removed between its check and the restore."""
    use(prod, strategy)
    made = changed_after_backup(prod)
    before = helpers.sha256(prod.db)
    with helpers.file_lock_held(prod.remote_dir / lock, tmp_path / "holder"):
        result = prod.run("restore", "--production", "--yes")
    assert_one_line_error(result, ExitCode.LOCKED, contains="holds the lock", strict=False)
    unchanged(prod, made, before)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("records", ["none", "garbage and a symlink", "disagree"])
def test_the_chosen_backups_records_are_read_like_the_engine_reads_them(prod, strategy,
                                                                       records):
    use(prod, strategy)
    made = changed_after_backup(prod)
    path = prod.remote_dir / made.name
    sidecar, manifest = Path(f"{path}.sha256"), Path(f"{path}.json")
    if records == "none":
        sidecar.unlink()
        manifest.unlink()
    elif records == "garbage and a symlink":
        sidecar.write_text(f"{made.sha256}\n__OPS_EXIT__=0\n")  # 64 hex digits first
        manifest.unlink()
        manifest.symlink_to(sidecar.name)
    else:
        sidecar.write_text(f"{'ab' * 32}  {made.name}\n")
    before = helpers.sha256(prod.db)
    result = prod.run("restore", made.name, "--production", "--yes")
    words = "records disagree" if records == "disagree" else "unverifiable"
    line = assert_one_line_error(result, ExitCode.VERIFY_FAILED, contains=words, strict=False)
    assert "nothing was changed" in line
    unchanged(prod, made, before)


def test_an_upload_is_never_adopted_through_planted_sidecars(prod, tmp_path):
    local_dir = tmp_path / "mine"
    made = engine.create_backup(prod.db, local_dir)
    conn = sqlite3.connect(prod.db)
    conn.execute("DELETE FROM users WHERE id > 10")
    conn.commit()
    conn.close()
    prod.remote_dir.mkdir(parents=True)
    planted = [prod.remote_dir / f"{made.name}{ext}" for ext in (".sha256", ".json")]
    for link in planted:
        link.symlink_to(os.path.relpath(prod.db, prod.remote_dir))
    before = helpers.sha256(prod.db)
    result = prod.run("restore", "--production", "--from", str(local_dir / made.name), "--yes")
    assert_one_line_error(result, ExitCode.ERROR, contains="could not place the upload",
                          strict=False)
    assert helpers.sha256(prod.db) == before
    assert all(link.is_symlink() for link in planted)
    assert prod.remote_backups() == []
    assert not [p for p in prod.remote_dir.iterdir()
                if p.name.startswith((".upload-", ".tmp-"))]
