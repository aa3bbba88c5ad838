"""`restore --from-replica` takes the folder's two locks in the order every restore takes
them: the restore lock, then the backup lock (review-break s19 #7). It took the backup
lock as it published the replica's backup and the restore lock only when its restore
began, a plain restore the other way round: overlapping, each waited for the other until
the lock wait ran out (exit 4). So, while it waits for the restore lock, it holds no
backup lock: a backup, a cleanup or a plain restore's backup lock is free. Real
litestream, real S3 (moto), real WAL databases, the real CLI."""

from __future__ import annotations

import signal

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


def test_waiting_for_the_restore_lock_it_holds_no_backup_lock(replica_world, run_invoke,
                                                               tmp_path):
    world = replica_world
    before = lose_rows(world)  # the replica holds `before` users, the live database 10
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups)}
    assert run_invoke("backup", env=env).returncode == 0
    with helpers.file_lock_held(backups / engine.RESTORE_LOCK,
                                tmp_path / "holder") as (_, release):
        run = helpers.start_invoke("restore", "--from-replica", "--yes", cwd=world.tmp,
                                   env={**env, "INVOKE_BACKUP_LOCK_WAIT": "60"})
        line = poll.until(  # where it waits: before its publish (was: after it)
            lambda: next((text for text in list(run.stderr_lines)
                          if "restore lock" in text or "restoring it" in text), None),
            timeout=60, interval=0.05,
            expired=lambda *_: AssertionError(f"never waited: {run.stderr_lines}"))
        assert "waiting up to 60s for the restore lock" in line, run.stderr_lines
        assert len(engine.list_backups(backups)) == 1  # nothing published yet
        backup = run_invoke("backup", env=env)  # the backup lock is free meanwhile
        assert backup.returncode == 0, backup  # was: exit 4, "a restore holds the lock"
        release.touch()
        result = run.finish()
    assert result.returncode == 0, result
    assert users(world.db) == before and sound(world.db)



def test_a_sigterm_while_it_waits_for_the_restore_lock_leaves_nothing(replica_world,
                                                                      run_invoke, tmp_path):
    world = replica_world
    lose_rows(world)
    held = world.db.read_bytes()
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups), "INVOKE_BACKUP_LOCK_WAIT": "60"}
    with helpers.file_lock_held(backups / engine.RESTORE_LOCK, tmp_path / "holder"):
        run = helpers.start_invoke("restore", "--from-replica", "--yes", cwd=world.tmp,
                                   env=env)
        run.wait_for_stderr("waiting up to 60s for the restore lock", timeout=60)
        run.proc.send_signal(signal.SIGTERM)
        result = run.finish()
    helpers.assert_one_line_error(result, ExitCode.TERMINATED, strict=False,
                                  contains="nothing restored")
    assert engine.list_backups(backups) == []
    assert [path.name for path in backups.iterdir()
            if path.name not in (engine.LOCK_NAME, engine.RESTORE_LOCK)] == []  # no scratch
    assert world.db.read_bytes() == held
    assert run_invoke("backup", env=env).returncode == 0  # no lock left held
