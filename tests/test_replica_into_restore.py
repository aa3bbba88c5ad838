"""`invoke restore --from-replica`: the replica restored and checked by replica.restore's
code, kept as a backup with its records, then put back by the ordinary restore (safety
backup, proof). Real litestream, real S3 endpoint (moto), real WAL databases."""

from __future__ import annotations

import json

from ops import engine
from ops.errors import ExitCode
from tests import helpers
from tests.replica_world import (  # noqa: F401
    World,
    lose_rows,
    moto_endpoint,
    replica_world,
    users,
)


def test_restore_from_the_replica_goes_through_the_restore_with_a_safety_backup(
        replica_world, run_invoke, tmp_path):
    world = replica_world
    before = lose_rows(world)
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups)}
    result = run_invoke("restore", "--from-replica", "--yes", "--json", env=env)
    assert result.returncode == 0, result
    assert users(world.db) == before  # the rows the replica held are back
    record = result.json()
    assert record["outcome"] == "ok"
    name = record["backup"]["name"]
    restored = backups / name
    assert engine.verify_backup(restored).ok  # a backup with its records, like any other
    manifest = json.loads((backups / f"{name}.json").read_text())
    assert manifest["kind"] == "adopted" and manifest["adopted"]["by"].startswith(
        "replica.restore TXID ")
    assert set(manifest["tables"]) >= {"users", "steps"}
    safety = [item for item in engine.list_backups(backups) if item.name != name]
    assert safety, "the live database was saved before it was replaced"
    assert users(safety[-1].path) == 10  # the safety backup holds the state replaced
    assert "is the backup" in result.stderr and "restoring it" in result.stderr


def test_from_the_replica_into_the_folder_given_by_flag(replica_world, run_invoke, tmp_path):
    """`--backup-dir DIR` (this stop's flag): the replica's backup is made in DIR, where
    the restore then looks for it, not in backup.dir (the final read found the replica
    restored into backup.dir and the restore refusing: "no backup named …")."""
    world = replica_world
    before = lose_rows(world)
    configured, given = tmp_path / "configured", tmp_path / "given"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(configured)}
    result = run_invoke("restore", "--from-replica", "--yes", "--json", "--backup-dir",
                        str(given), env=env)
    assert result.returncode == 0, result
    assert users(world.db) == before
    assert engine.verify_backup(given / result.json()["backup"]["name"]).ok
    assert not configured.exists()  # nothing went to backup.dir


def test_a_dry_run_plans_the_replica_restore_and_writes_nothing(replica_world, run_invoke,
                                                                tmp_path):
    world = replica_world
    world.start()
    backups = tmp_path / "backups"
    result = run_invoke("restore", "--from-replica", "--dry-run", "--json",
                        env={**world.env, "INVOKE_BACKUP_DIR": str(backups)})
    assert result.returncode == 0, result
    assert "Would restore the replica's TXID" in result.stderr
    plan = result.json()
    assert plan["dry_run"] and plan["from_replica"]["reached"]["txid"] == \
        f"{world.replica_txid():016x}"
    assert [p for p in backups.iterdir() if not p.name.startswith(".")] == []


def test_from_replica_refuses_a_name_a_file_and_a_lone_timestamp(tmp_path):
    env = {"BUCKET_NAME": "some-bucket", "INVOKE_DB_PATH": str(tmp_path / "steps.db")}

    def run(*args):  # in this process: usage errors need no real process
        return helpers.run_here("restore", *args, cwd=tmp_path, env=env)

    named = run("steps-2026-01-01T00-00-00.db", "--from-replica")
    assert named.returncode == ExitCode.USAGE and "give no backup name" in named.error_lines[0]
    lone = run("--timestamp", "2026-12-06T22:00:00Z")
    assert lone.returncode == ExitCode.USAGE and "--timestamp is for --from-replica" in \
        lone.error_lines[0]
    for when in ("yesterday", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
        bad = run("--from-replica", "--timestamp", when, "--yes")  # past the calendar in
        assert bad.returncode == ExitCode.USAGE, bad               # UTC: it was a traceback
        assert "ISO time" in bad.error_lines[0] and "Traceback" not in bad.stderr, bad
        replica = helpers.run_here("replica.restore", "--output", str(tmp_path / "o.db"),
                                   "--timestamp", when, cwd=tmp_path, env=env)
        assert replica.returncode == ExitCode.USAGE and "ISO time" in replica.error_lines[0]
    assert list(tmp_path.iterdir()) == []  # refused before any folder was made


def test_restore_from_the_replica_on_the_production_machine(served_prod, moto_endpoint,  # noqa: F811
                                                            tmp_path):
    """The replica of the machine's database restored here, uploaded with its records and
    restored there by the ordinary --production restore (safety backup, restart, /health)."""
    import urllib.request

    prod = served_prod
    bucket = "prod-replica-test"
    request = urllib.request.Request(f"{moto_endpoint}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=30):
        pass
    (tmp_path / "ls").mkdir()
    world = World(moto_endpoint, bucket, prod.db, tmp_path / "ls")
    try:
        before = lose_rows(world)
        env = {k: v for k, v in world.env.items() if k != "INVOKE_DB_PATH"}
        result = prod.run("restore", "--from-replica", "--production", "--yes", "--json",
                          env=env)
        assert result.returncode == 0, result
        assert users(prod.db) == before
        record = result.json()
        assert record["outcome"] == "ok" and record["backup"]["from"].startswith(
            str(prod.local_dir.parent / "replica"))
        name = record["backup"]["name"]
        assert engine.verify_backup(prod.remote_dir / name).ok  # uploaded with its records
        safety = [b for b in prod.remote_backups() if b != name]
        assert safety and users(prod.remote_dir / safety[-1]) == 10
    finally:
        world.close()


def test_on_a_host(host, moto_endpoint, run_invoke, tmp_path):  # noqa: F811
    """--from-replica --host: restored here, uploaded (--from), restored there (a short
    name: the socket path under xdist must fit a Unix socket's 104 bytes)."""
    import urllib.request

    bucket = "host-replica-test"
    request = urllib.request.Request(f"{moto_endpoint}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=30):
        pass
    (tmp_path / "ls").mkdir()
    world = World(moto_endpoint, bucket, host["db"], tmp_path / "ls")
    try:
        before = lose_rows(world)
        env = {**{k: v for k, v in world.env.items() if k != "INVOKE_DB_PATH"}, **host["env"]}
        result = run_invoke("restore", "--from-replica", "--host", host["addr"], "--yes",
                            "--json", env=env)
        assert result.returncode == 0, result
        assert users(host["db"]) == before
        record = result.json()
        name = record["backup"]["name"]
        assert record["outcome"] == "ok" and engine.verify_backup(host["dir"] / name).ok
        safety = [b.name for b in engine.list_backups(host["dir"]) if b.name != name]
        assert safety and users(host["dir"] / safety[-1]) == 10
    finally:
        world.close()
