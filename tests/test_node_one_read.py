"""The Node engine's backup reads its new copy once (issue 21): the SHA-256 on a worker
thread while SQLite's synchronous check reads the same file, then the counts. Real Node
and better-sqlite3 on a node-only PATH, as on the app's own image."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from ops import engine, node, remote
from ops.errors import OpsError
from tests import helpers, node_env
from tests.helpers import BASE_TOOLS


@pytest.fixture
def app(tmp_path):
    folder = node_env.app_dir()
    return {"dir": str(folder), "path": node_env.node_path(tmp_path / "bin-node", BASE_TOOLS)}


def node_backup(app: dict, db, backups, check: str):
    done = subprocess.run(
        shlex.split(remote.wrap(node.with_app_dir(app["dir"], remote.backup_script(
            str(db), str(backups), check=check)))),
        input=node.engine_stdin(), capture_output=True,
        env={"PATH": app["path"], "LANG": "C.UTF-8"}, timeout=60)
    return done, remote.parse_output(done.stdout.decode())


def test_the_worker_hashes_the_copy_that_is_published(tmp_path, app):
    db = helpers.make_blob_db(tmp_path / "data" / "steps.db", 24)
    backups = tmp_path / "data" / "backups"
    _, out = node_backup(app, db, backups, "quick")
    data = out.data("backup")
    final = backups / data["name"]
    assert data["sha256"] == engine.sha256_file(final) == engine.read_recorded_sha256(final)
    assert data["tables"] == engine.count_rows(final)
    assert engine.verify_backup(final).ok


def test_a_copy_that_fails_its_check_stops_the_worker_and_publishes_nothing(tmp_path, app):
    """The check fails while the worker may still be hashing: the worker is stopped, the
    engine reports the check (not the stopped worker, not an unhandled rejection) and
    leaves neither a backup nor a temporary."""
    db = helpers.make_blob_db(tmp_path / "data" / "steps.db", 24)
    helpers.break_an_index(db)
    backups = tmp_path / "data" / "backups"
    done, out = node_backup(app, db, backups, "integrity")
    assert out.strategy == "node"
    with pytest.raises(OpsError) as failed:
        out.data("backup")
    assert "the new backup failed integrity_check" in str(failed.value)
    assert b"Unhandled" not in done.stderr and b"stopped" not in done.stderr
    assert [p.name for p in backups.iterdir() if p.name.startswith(("steps-", ".tmp-"))] == []
