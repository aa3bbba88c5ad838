"""What `restore --from-replica` and the replica commands say to an operator (review-op
#6, #7, and the replica bits of #8, #9): a missing bucket, an empty prefix, a --timestamp
before the replica starts, a replica.path naming an unset variable, the dry-run plan, and
litestream's own tables kept out of a restore's report. Real litestream, real S3 (moto)."""

from __future__ import annotations

from ops.errors import ExitCode
from tests.replica_world import (  # noqa: F401
    moto_endpoint,
    replica_world,
)


def test_a_bucket_that_does_not_exist_is_named_with_its_endpoint_in_one_line(
        replica_world, run_invoke, tmp_path):
    world = replica_world
    env = {**world.env, "BUCKET_NAME": "nobucket-here",
           "INVOKE_BACKUP_DIR": str(tmp_path / "backups")}
    result = run_invoke("restore", "--from-replica", "--yes", env=env)
    assert result.returncode == ExitCode.REPLICA, result
    [line] = result.error_lines
    assert f"bucket nobucket-here does not exist at {world.endpoint}" in line, line
    assert "replica.bucket" in line and "replica.endpoint" in line  # the fix
    assert line.count("Error:") == 1 and "RequestID" not in line and "HostID" not in line
    assert "testing" not in line  # no credential


def test_an_empty_prefix_names_where_it_looked_and_only_the_flags_given(
        replica_world, run_invoke, tmp_path):
    world = replica_world
    env = {**world.env, "INVOKE_REPLICA_PATH": "nothing-here",
           "INVOKE_BACKUP_DIR": str(tmp_path / "backups")}
    plain = run_invoke("restore", "--from-replica", "--yes", env=env)
    assert plain.returncode == ExitCode.NOT_FOUND, plain
    [line] = plain.error_lines
    assert "no point to restore to" in line
    assert f"bucket {world.bucket}" in line and "nothing-here" in line, line
    assert "--timestamp" not in line and "--txid" not in line  # neither was given
    dated = run_invoke("restore", "--from-replica", "--yes", "--timestamp",
                       "2020-01-01T00:00:00Z", env=env)
    assert dated.returncode == ExitCode.NOT_FOUND, dated
    [line] = dated.error_lines
    assert "--timestamp 2020-01-01T00:00:00Z" in line and "nothing-here" in line, line
    assert "--txid" not in line  # restore has no --txid


def test_a_timestamp_before_the_replica_says_where_it_starts(replica_world, run_invoke,
                                                             tmp_path):
    world = replica_world
    world.start()
    result = run_invoke("restore", "--from-replica", "--yes", "--timestamp",
                        "2020-01-01T00:00:00Z",
                        env={**world.env, "INVOKE_BACKUP_DIR": str(tmp_path / "backups")})
    assert result.returncode == ExitCode.NOT_FOUND, result
    [line] = result.error_lines
    assert "it starts at 20" in line and "give a later --timestamp" in line, line
    assert "--txid" not in line


def test_replica_path_problems_read_like_their_siblings(tmp_path, run_invoke):
    env = {"BUCKET_NAME": "some-bucket", "INVOKE_DB_PATH": str(tmp_path / "steps.db")}
    unset = run_invoke.here("restore", "--from-replica", "--yes",
                            env={**env, "INVOKE_REPLICA_PATH": "$NOPE_NOT_SET/x",
                                 "NOPE_NOT_SET": None})
    assert unset.returncode == ExitCode.USAGE, unset
    [line] = unset.error_lines
    assert line.startswith("Error: config replica.path $NOPE_NOT_SET/x "), line
    assert "set NOPE_NOT_SET or change replica.path" in line
    slash = run_invoke.here("restore", "--from-replica", "--yes",
                            env={**env, "INVOKE_REPLICA_PATH": "a\\b"})
    assert slash.returncode == ExitCode.USAGE, slash
    [line] = slash.error_lines
    assert line.startswith("Error: config replica.path") and line.endswith(": a\\b"), line


def test_a_replica_equal_to_the_live_database_is_no_retry_and_hides_litestream_tables(
        replica_world, run_invoke, tmp_path):
    world = replica_world
    world.kill(world.start())  # the live database now holds litestream's own tables
    result = run_invoke("restore", "--from-replica", "--yes", "--json",
                        env={**world.env, "INVOKE_BACKUP_DIR": str(tmp_path / "backups")})
    assert result.returncode == 0, result
    assert "_litestream_seq" in result.json()["tables_before"]  # in the record, as counted
    assert "_litestream" not in result.stderr  # not in the confirmation nor "Rows per table"
    assert "Rows per table" in result.stderr and "users" in result.stderr
    assert "retried" not in result.stderr
    assert "the replica holds what the live database held" in result.stderr.lower()
    assert "nothing to restore" in result.stderr


def test_the_dry_run_plan_numbers_the_replica_phase_and_claims_no_verification(
        replica_world, run_invoke, tmp_path):
    world = replica_world
    world.start()
    result = run_invoke("restore", "--from-replica", "--dry-run", "--json",
                        env={**world.env, "INVOKE_BACKUP_DIR": "backups"}, cwd=tmp_path)
    assert result.returncode == 0, result
    lines = result.stderr.splitlines()
    assert not any(line.startswith("✓ verify") for line in lines), result.stderr
    assert not any(line.rstrip().endswith(":") and not line.startswith("Restore plan")
                   for line in lines), result.stderr
    [first] = [line for line in lines if line.startswith("  1. ")]
    assert first.startswith("  1. replica: restore the replica's TXID"), first
    assert " MB)" in first or " kB)" in first, first  # ops.ui.human_bytes, not raw bytes
    assert " into backups/steps-" in first and str(tmp_path / "backups") not in result.stderr
    assert not any(" bytes" in line or " ran " in line for line in lines), result.stderr
    plan = result.json()
    assert [step["key"] for step in plan["steps"]][:2] == ["replica", "verify"]
    assert plan["from_replica"]["reached"]["txid"] == f"{world.replica_txid():016x}"
