"""`restore --from-replica` without a terminal and without --yes is refused before any
work, as every other restore is (review-op s19 #1, review-break s19 #6): it used to
restore the replica through litestream, check it, publish a full-size backup (and with
--production call flyctl), and only then refuse with "nothing was changed"."""

from __future__ import annotations

import pytest

from ops import engine
from ops import restore as restores
from ops.errors import ExitCode
from tests import helpers
from tests.replica_world import (  # noqa: F401
    lose_rows,
    moto_endpoint,
    replica_world,
    users,
)


@pytest.mark.parametrize("extra", [(), ("--timestamp", "2026-01-01T00:00:00Z"), ("--json",)])
def test_a_local_restore_from_the_replica_is_refused_before_the_replica_is_read(
        replica_world, run_invoke, tmp_path, extra):
    world = replica_world
    lose_rows(world)
    held = world.db.read_bytes()
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups)}
    result = run_invoke("restore", "--from-replica", *extra, env=env)
    line = helpers.assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert line == f"Error: {restores.WITHOUT_TERMINAL}"
    assert "from the replica" not in result.stderr, result  # no plan, no litestream step
    assert not backups.exists() or engine.list_backups(backups) == []  # was: one added
    assert world.db.read_bytes() == held


def test_a_production_restore_from_the_replica_is_refused_before_any_flyctl_call(prod):
    result = prod.run("restore", "--from-replica", "--production",
                      env={"BUCKET_NAME": "a-bucket"})  # settings sound: judged first
    line = helpers.assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert line == f"Error: {restores.WITHOUT_TERMINAL}"
    assert prod.calls() == [], prod.calls()


def test_a_dry_run_from_the_replica_needs_no_yes(replica_world, run_invoke, tmp_path):
    lose_rows(replica_world)  # the replica holds a point to plan
    env = {**replica_world.env, "INVOKE_BACKUP_DIR": str(tmp_path / "backups")}
    result = run_invoke("restore", "--from-replica", "--dry-run", env=env)
    assert result.returncode == 0, result
