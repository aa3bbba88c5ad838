"""`backup.adopt` records what a backup records (issue 21): size, SHA-256 and row counts,
no content hash; the drill computes that from the verified file, as for any new backup."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

from ops import engine, node
from tests import helpers, node_env


def an_old_backup(tmp_path, wal_db) -> Path:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    return helpers.old_script_backup(tmp_path / "old", when, wal_db)


def test_python_adopt_records_counts_and_no_content_hash(tmp_path, wal_db):
    old = an_old_backup(tmp_path, wal_db)
    [verdict] = engine.adopt_backups(old.parent, "all", by="test")
    assert verdict["adopted"], verdict
    record = json.loads(Path(f"{old}.json").read_text())
    assert record["tables"] == engine.count_rows(old)
    assert (record["content_sha256"], record["content_format"]) == (None, None)
    drill = engine.drill_backup(old, scratch_dir=tmp_path)
    assert drill["ok"], drill
    assert drill["backup_content_sha256"] == engine.describe_file(old)[1]  # computed now


def test_node_adopt_records_counts_and_no_content_hash(tmp_path, wal_db):
    old = an_old_backup(tmp_path, wal_db)
    done = subprocess.run(["node", "-", "adopt", "--dir", str(old.parent), "--which", "all",
                           "--by", "test"], input=node.js_source(), capture_output=True,
                          env={"PATH": "/usr/bin:/bin", "OPS_APP_DIR": str(node_env.app_dir())},
                          timeout=60)
    assert done.returncode == 0, done.stderr
    record = json.loads(Path(f"{old}.json").read_text())
    assert record["kind"] == "adopted" and record["tables"] == engine.count_rows(old)
    assert (record["content_sha256"], record["content_format"]) == (None, None)
    assert engine.verify_backup(old).ok
