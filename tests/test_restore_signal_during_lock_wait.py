"""A SIGTERM while the restore waits for the app's write lock ends the wait now, not
after --busy-timeout: the copy (one step) has not started, so nothing is held back for
it. A held signal outlived a CI job's grace, then SIGKILL left no audit line."""

from __future__ import annotations

import signal

from ops import engine
from tests import helpers
from tests.helpers import change, content


def test_sigterm_in_the_wait_for_the_apps_lock_ends_it_unchanged(tmp_path, wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    change(wal_db)
    before = content(wal_db)
    with helpers.app_holds_write_lock(wal_db):
        run = helpers.start_invoke("restore", made.name, "--yes", "--busy-timeout", "60",
                                   "--json", cwd=tmp_path)  # a minute unless signalled
        try:  # said once, from inside the copy's wait (old code: never, so this fails)
            run.wait_for_stderr("waiting up to 60s for the app's write lock on ")
            run.proc.send_signal(signal.SIGTERM)
        except BaseException:
            run.proc.kill()
            raise
        finally:
            result = run.finish(timeout=60)  # killed if still waiting then
    shown = result.stderr
    assert result.returncode == 143, result
    record = result.json()
    assert (record["outcome"], record["holds"]) == ("not restored", "safety"), record
    assert "stayed locked" not in shown  # ended by the signal, not by the busy timeout
    assert f"To restore, run again: `invoke restore {made.name} --yes`" in shown, shown
    assert content(wal_db) == before
