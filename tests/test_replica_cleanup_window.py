"""A cleanup that runs between `restore --from-replica` publishing the replica's backup
and its restore taking the folder's locks cannot remove that backup (issue 18): the
backup is dated by its data, so it is not the newest, and `backup.cleanup --keep 1` (or a
backup's retention) used to remove it there; the restore then failed "not found" (exit 3).
The publish now takes the folder's backup lock and keeps it until the restore holds it.
The window is held open by the restore's question on a real terminal, and the cleanup is
the real CLI. Real litestream and moto, real WAL databases."""

from __future__ import annotations

import datetime as dt
import re

from ops import engine, poll
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
    """The window held open at the restore's question (on a terminal, no --yes): the
    backup is published and the restore has not begun. (It used to be held open by
    another restore holding the restore lock; the run now takes that lock before it
    publishes, as every restore takes it before the backup lock: see
    tests/test_replica_lock_order.py.)"""
    world = replica_world
    before = lose_rows(world)  # the replica holds `before` users, the live database 10
    shipped = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the point is no later
    poll.until(lambda: dt.datetime.now(dt.UTC) >= shipped + dt.timedelta(seconds=1) or None,
               timeout=10, interval=0.05,  # so the backups' seconds never hold the point's
               expired=lambda *_: AssertionError("the clock never moved"))
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups)}
    for _ in range(2):  # newer than the replica's point: keep 1 keeps neither its backup
        assert run_invoke("backup", env=env).returncode == 0
    newer = [item.name for item in engine.list_backups(backups)]
    seen: dict = {}

    def cleanup_at_the_question():
        seen["backups"] = [item.name for item in engine.list_backups(backups)]
        seen["cleanup"] = run_invoke("backup.cleanup", "--keep", "1", env=env)
        seen["after"] = [item.name for item in engine.list_backups(backups)]

    code, shown = helpers.on_terminal(["restore", "--from-replica"], cwd=world.tmp, env=env,
                                      answer="yes", then=(b"Type yes", cleanup_at_the_question))
    name = re.search(r"is the backup (\S+) in ", shown)[1]
    assert all(name < other for other in newer), (name, newer)  # not the newest
    assert name in seen["backups"] and name in seen["after"], seen  # was: removed by it
    assert code == 0, shown  # was: exit 3, the chosen backup gone
    assert users(world.db) == before and sound(world.db)
    helpers.assert_one_line_error(seen["cleanup"], ExitCode.LOCKED,
                                  contains="a restore holds the lock", strict=False)
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
