"""A local restore waiting for another restore's lock says so at once, in the backup
lock's words (``ui.lock_waiting``): which lock, for how long at most, held by whom
(s21 review-op #2: the screen stayed empty for the whole wait)."""

from __future__ import annotations

from ops import engine
from tests import helpers


def test_a_restore_waiting_for_the_restore_lock_says_so_at_once(tmp_path, wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    lock = backup_dir / engine.RESTORE_LOCK
    with helpers.file_lock_held(lock, tmp_path / "holder") as (pid, release):
        run = helpers.start_invoke("restore", made.name, "--yes", "--lock-wait", "60",
                                   cwd=tmp_path)
        try:
            line = run.wait_for_stderr("waiting up to 60s for the restore lock ", timeout=60)
            assert "data/backups/.restore.lock" in line and f"(pid {pid} on " in line, line
        finally:
            release.touch()
            result = run.finish()
    assert result.returncode == 0, result
