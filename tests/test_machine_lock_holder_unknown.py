"""The machine's lock refusal names an unnamed holder "unknown", as its dry run's look
does (s21 review-op #8: the run said `.backup.lock:  (use --lock-wait …)`, two spaces and
no holder). The real sh script (``remote.take_lock``, through the cleanup's delete) run
here against a lock a real process holds without writing its name."""

from __future__ import annotations

import subprocess

from ops import engine, remote
from tests import helpers


def test_an_unnamed_holder_is_unknown_in_the_runs_refusal(tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    lock = folder / engine.LOCK_NAME
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        lock.write_text("")  # a holder that never wrote its name (a shell script's flock)
        script = remote.delete_script(str(folder), [], 0)
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    assert f"another backup holds the lock {lock}: unknown (use --lock-wait" in said, said
