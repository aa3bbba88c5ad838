"""Paths with ``#``, ``?`` or ``%`` in a folder's name (review-break s19 #1).

SQLite reads a ``file:`` URI's path up to its first ``?`` or ``#``: unescaped, a backup
folder named ``bk#1`` made every read-only open of ``bk#1/steps-….db`` open ``bk``, a
file that does not exist and that SQLite reads as an empty, healthy database. A restore
then copied an empty database over the live one and its proof passed ("0 tables match").
The engine builds its URIs one way (``engine.sqlite_uri``; engine.js escapes them too);
these cases back up and restore through such folders and check the rows that arrive. The
machine's paths (``db.remote_path``, ``backup.remote_dir``) must be plain absolute paths
(``ops.config``), so its sqlite3 scripts never meet such a name.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests import helpers

pytestmark = pytest.mark.cli_in_process(per="module")

HOSTILE = ["bk#1", "bk?x=1", "bk%23", "b k#?%"]
STEPS = 3000  # helpers.make_wal_db's rows in steps


def steps(db: Path) -> int:
    return helpers.live_rows(db, "SELECT count(*) FROM steps")[0][0]


def lose_rows(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM steps WHERE id > 100")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("folder", HOSTILE)
def test_a_local_backup_and_restore_through_a_hostile_folder_name(tmp_path, folder):
    db = helpers.make_wal_db(tmp_path / f"live {folder}" / "steps.db")
    backups = tmp_path / folder
    env = {"INVOKE_DB_PATH": str(db), "INVOKE_BACKUP_DIR": str(backups)}
    made = helpers.run_invoke("backup", "--json", cwd=tmp_path, env=env)
    assert made.returncode == 0, made
    record = made.json()["backup"]
    assert record["tables"]["steps"] == STEPS  # the live database's rows, not an empty file's
    assert steps(backups / record["name"]) == STEPS
    assert not (tmp_path / "bk").exists() and not (tmp_path / "live ").exists()  # no stray file
    lose_rows(db)
    restored = helpers.run_invoke("restore", record["name"], "--yes", "--json", cwd=tmp_path,
                                  env=env)
    assert restored.returncode == 0, restored
    proof = restored.json()["proof"]
    assert proof["ok"] and proof["backup_tables"]["steps"] == STEPS
    assert steps(db) == STEPS
