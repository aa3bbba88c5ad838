"""Replica files that are garbage (objects overwritten in the bucket: litestream's
"invalid LTX file") are the replica's failure: exit 15 for replica.drill,
replica.restore and restore --from-replica, as docs/replica.md lists (review-op s19 #4:
it was exit 1, listed for none of them). Nothing is written, nothing restored. Real
litestream, real S3 (moto), real WAL databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import engine
from ops import replica as rp
from ops.errors import ExitCode
from tests.helpers import assert_one_line_error
from tests.replica_world import (  # noqa: F401
    garbage_replica,
    moto_endpoint,
    replica_world,
    users,
)

SCRATCH = Path("/data/backups/.replica-restore-abc")


@pytest.mark.parametrize("line, code, expected", [
    ("litestream restore failed: decode database: invalid LTX file", 15, 15),
    ("litestream restore failed: checksum mismatch", 15, 15),
    (f"litestream restore failed: write {SCRATCH}/steps.db: no space left on device", 15, 1),
    ("litestream restore failed: litestream did not answer within 600s", 8, 8),
    ("replica.endpoint has no host and port to connect to", 2, 2),
])
def test_the_code_of_a_failed_restore(line, code, expected):
    assert rp.restore_failure_code(line, code, SCRATCH) == expected


@pytest.mark.parametrize("task", [("replica.drill",), ("replica.drill", "--json"),
                                  ("restore", "--from-replica", "--yes")])
def test_a_replica_of_garbage_is_exit_15(task, replica_world, run_invoke, tmp_path):
    world = replica_world
    garbage_replica(world, b"garbage" * 100)
    held = world.db.read_bytes()
    backups = tmp_path / "backups"
    result = run_invoke(*task, env={**world.env, "INVOKE_BACKUP_DIR": str(backups)})
    line = assert_one_line_error(result, ExitCode.REPLICA, strict=False)
    assert "invalid ltx file" in line.lower(), line
    assert world.db.read_bytes() == held
    assert not backups.exists() or engine.list_backups(backups) == []
