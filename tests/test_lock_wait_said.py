"""A run that waits for another run's lock says so at once: which lock, for how long at
most, held by whom since when; never a silent wait until a step's "still running" line
(issue 22 leftover 5). restore --from-replica's publish is pinned in
tests/test_replica_from_replica_stopped.py; here, a download into this computer's folder."""

from __future__ import annotations

from ops import engine
from tests import helpers


def test_a_download_waiting_for_the_local_folders_lock_says_so_at_once(prod, tmp_path):
    (name,) = prod.seed(1)
    env = {**prod.env, "INVOKE_BACKUP_LOCK_WAIT": "60"}
    lock = prod.local_dir / engine.LOCK_NAME
    with helpers.file_lock_held(lock, tmp_path / "holder") as (pid, release):
        run = helpers.start_invoke("backup.download", name, cwd=prod.cwd,
                                   env=env)
        try:
            line = run.wait_for_stderr("waiting up to 60s for the backup lock ", timeout=60)
            assert str(lock) in line and f"(pid {pid} on " in line and " since " in line, line
            assert not (prod.local_dir / name).exists()
        finally:
            release.touch()
            result = run.finish()
    assert result.returncode == 0, result
    assert helpers.sha256(prod.local_dir / name) == helpers.sha256(prod.remote_dir / name)
