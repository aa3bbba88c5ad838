"""The commands a refused restore suggests run as pasted and do what the operator asked
(review-op s18 #1): over a corrupt live database, `invoke restore NAME --yes` suggested
`invoke restore --app-stopped`, which restores ``latest`` instead of NAME and, without a
terminal, fails again for lack of --yes.

Real WAL databases and the real CLI; the suggestion is pasted through ``shlex.split``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sqlite3
import subprocess

import pytest

from ops import engine
from tests import helpers

LOCKS = (engine.LOCK_NAME, engine.RESTORE_LOCK)  # the tool's own bookkeeping


def suggested(text: str) -> list[str]:
    (command,) = re.findall(r"`(invoke restore [^`]*)`", text)
    return shlex.split(command)[1:]


def test_the_app_stopped_suggestion_keeps_the_backup_the_operator_named(
        wal_db, backup_dir, run_invoke):
    older = engine.create_backup(wal_db, backup_dir)
    marked = helpers.rows(older.path, "SELECT count(*) FROM steps")[0][0]
    conn = sqlite3.connect(wal_db)
    conn.execute("DELETE FROM steps WHERE id % 2 = 0")
    conn.commit()
    conn.close()
    newer = engine.create_backup(wal_db, backup_dir, lock_wait=5)
    assert newer.name != older.name
    helpers.damage_cells(wal_db)

    dry = run_invoke("restore", older.name, "--dry-run")
    refused = run_invoke("restore", older.name, "--yes")

    line = helpers.assert_one_line_error(refused, 2, strict=False)
    again = suggested(line)
    assert again == ["restore", older.name, "--app-stopped", "--yes"], line
    assert helpers.assert_one_line_error(dry, 2, strict=False) == line  # s20-dry: the refusal
    done = run_invoke(*again)  # pasted, without a terminal
    assert done.returncode == 0, done
    assert helpers.rows(wal_db, "SELECT count(*) FROM steps")[0][0] == marked  # not latest's


def test_latest_keeps_its_own_words(wal_db, backup_dir, run_invoke):
    engine.create_backup(wal_db, backup_dir)
    helpers.damage_cells(wal_db)
    latest = run_invoke("restore", "--yes")
    assert suggested(helpers.assert_one_line_error(latest, 2, strict=False)) == [
        "restore", "--app-stopped", "--yes"]


@contextlib.contextmanager
def read_only_folder(folder):
    """The folder made unwritable for this process: its mode, or for root (whom the mode
    does not stop) the immutable attribute; skipped where neither can be set."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("root, and chattr +i is not possible here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_backup_folder_is_in_the_dry_run_and_the_refusal_says_what_to_do(
        wal_db, backup_dir, run_invoke):
    engine.create_backup(wal_db, backup_dir)
    before = helpers.snapshot(backup_dir)
    with read_only_folder(backup_dir):
        dry = run_invoke("restore", "--dry-run")
        refused = run_invoke("restore", "--yes")

    line = helpers.assert_one_line_error(refused, 2, strict=False)
    assert "nothing was changed" in line and "set backup.dir" in line, line
    # s20-dry: the dry run gives the run's refusal (it warned and exited 0)
    assert helpers.assert_one_line_error(dry, 2, strict=False) == line, dry
    assert helpers.snapshot(backup_dir) == before


def test_a_damaged_backup_points_to_the_others(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    with open(made.path, "r+b") as handle:  # one byte flipped: its SHA-256 no longer matches
        handle.seek(4096 * 3)
        byte = handle.read(1)
        handle.seek(4096 * 3)
        handle.write(bytes([byte[0] ^ 0xFF]))
    before = (helpers.sha256(wal_db), helpers.snapshot(backup_dir, ignore=LOCKS))

    results = [run_invoke("restore", *args, "--yes") for args in ([], [made.name])]

    for result in results:
        line = helpers.assert_one_line_error(result, 5, strict=False)
        assert "SHA-256 mismatch" in line and "nothing was changed" in line, line
        assert line.endswith("restore another backup instead: see `invoke backup.list`, "
                             "then `invoke restore NAME`"), line
    assert (helpers.sha256(wal_db), helpers.snapshot(backup_dir, ignore=LOCKS)) == before
