"""A real `restore --from-replica` says in its JSON and its audit line that the data came
from the replica, and which point (review-op s19 #7: `"from": null` and nothing else;
only the backup's own record said so). Additive: every other field is the restore's.
Real litestream, real S3 (moto), real WAL databases."""

from __future__ import annotations

import json

from tests.replica_world import (  # noqa: F401
    lose_rows,
    moto_endpoint,
    replica_world,
    users,
)


def test_the_record_names_the_replica_point(replica_world, run_invoke, tmp_path):
    world = replica_world
    before = lose_rows(world)
    backups = tmp_path / "backups"
    audit = tmp_path / "audit.jsonl"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups), "INVOKE_DEPLOY_AUDIT_LOG": str(audit)}
    result = run_invoke("restore", "--from-replica", "--yes", "--json", env=env)
    assert result.returncode == 0, result
    assert users(world.db) == before
    record = result.json()
    replica = record["from_replica"]
    assert replica["reached"]["txid"] and replica["reached"]["time"], replica
    assert replica["output"].endswith(record["backup"]["name"]), (replica, record["backup"])
    logged = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [entry["kind"] for entry in logged] == ["restore"]
    assert logged[0]["from_replica"]["reached"] == replica["reached"]
    assert logged[0]["outcome"] == "ok" and "from" in logged[0]  # the restore's fields stay
