"""A cleanup that runs between `restore --from-replica` publishing the replica's backup
and its restore taking the folder's locks cannot remove that backup (issue 18): the
backup is dated by its data, so it is not the newest, and `backup.cleanup --keep 1` (or a
backup's retention) used to remove it there; the restore then failed "not found" (exit 3).
The publish now takes the folder's backup lock and keeps it until the restore holds it.
The window is held open by a real wait (another restore holds the restore lock), and the
cleanup is the real CLI. Real litestream and moto, real WAL databases."""

from __future__ import annotations

import re

from ops import engine
from ops.errors import ExitCode
from tests import helpers
from tests.replica_world import (  # noqa: F401
    lose_rows,
    moto_endpoint,
    replica_world,
    sound,
    users,
)


def test_a_cleanup_in_the_window_leaves_the_backup_the_restore_takes(replica_world,
                                                                     run_invoke, tmp_path):
    world = replica_world
    before = lose_rows(world)  # the replica holds `before` users, the live database 10
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups)}
    for _ in range(2):  # newer than the replica's point: keep 1 keeps neither its backup
        assert run_invoke("backup", env=env).returncode == 0
    newer = [item.name for item in engine.list_backups(backups)]
    with helpers.file_lock_held(backups / engine.RESTORE_LOCK,
                                tmp_path / "holder") as (_, release):
        run = helpers.start_invoke("restore", "--from-replica", "--yes", cwd=world.tmp,
                                   env={**env, "INVOKE_BACKUP_LOCK_WAIT": "60"})
        line = run.wait_for_stderr("restoring it", timeout=60)  # published; waits to restore
        name = re.search(r"is the backup (\S+) in ", line)[1]
        assert all(name < other for other in newer), (name, newer)  # not the newest
        cleanup = run_invoke("backup.cleanup", "--keep", "1", env=env)
        assert (backups / name).exists(), cleanup  # was: removed by that cleanup
        release.touch()
        result = run.finish()
    assert result.returncode == 0, result  # was: exit 3, the chosen backup gone
    assert users(world.db) == before and sound(world.db)
    helpers.assert_one_line_error(cleanup, ExitCode.LOCKED, contains="a restore holds the lock",
                                  strict=False)
    after = run_invoke("backup.cleanup", "--keep", "1", env=env)  # the restore is over
    assert after.returncode == 0, after


def test_a_failed_publish_holds_no_lock(replica_world, run_invoke, tmp_path):
    """The lock kept from the publish is released whatever ends the run: another backup
    holding the folder (wait 0) makes the publish fail, and the next backup runs."""
    world = replica_world
    lose_rows(world)
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups)}
    with helpers.file_lock_held(backups / engine.LOCK_NAME, tmp_path / "holder"):
        refused = run_invoke("restore", "--from-replica", "--yes", env=env)
    helpers.assert_one_line_error(refused, ExitCode.LOCKED, strict=False)
    assert engine.list_backups(backups) == []
    again = run_invoke("restore", "--from-replica", "--yes", env=env)
    assert again.returncode == 0, again
    assert run_invoke("backup", env=env).returncode == 0
