"""What a long wait says while it waits, as the plain lines a CI log shows (no terminal)."""

from __future__ import annotations

import threading

from tests import helpers
from tests.fake_production import make_prod


def test_a_backup_waiting_for_the_lock_says_whose_since_when_and_how_long(
        wal_db, backup_dir, tmp_path):
    with helpers.lock_held_elsewhere(backup_dir, tmp_path / "holder") as (pid, release):
        run = helpers.start_invoke("backup", "--lock-wait", "20", cwd=tmp_path)
        line = run.wait_for_stderr("waiting up to 20s for the backup lock")
        threading.Timer(0.3, release.touch).start()
        result = run.finish()
    assert result.returncode == 0, result
    assert "backups/.backup.lock, held by " in line
    assert f"(pid {pid} on " in line and " since 20" in line
    assert len([p for p in helpers.backup_files(tmp_path) if p.suffix == ".db"]) == 1


def test_cleanup_waiting_for_the_lock_says_so_too(wal_db, backup_dir, tmp_path, run_invoke):
    assert run_invoke("backup").returncode == 0
    assert run_invoke("backup", "--keep", "2").returncode == 0
    with helpers.lock_held_elsewhere(backup_dir, tmp_path / "holder") as (pid, release):
        run = helpers.start_invoke("backup.cleanup", "--keep", "1", cwd=tmp_path,
                                   env={"INVOKE_BACKUP_LOCK_WAIT": "20"})
        line = run.wait_for_stderr("waiting up to 20s for the backup lock")
        threading.Timer(0.3, release.touch).start()
        result = run.finish()
    assert result.returncode == 0, result
    assert f"(pid {pid} on " in line
    assert len([p for p in helpers.backup_files(tmp_path) if p.suffix == ".db"]) == 1


def test_the_snapshot_wait_shows_flys_status_and_the_time_as_it_changes(tmp_path):

    prod = make_prod(tmp_path / "prod")
    result = prod.run("backup.volume", "--json")
    assert result.returncode == 0, result
    waits = [line for line in result.stderr.splitlines() if line.startswith("  snapshot ")]
    assert waits, result.stderr
    assert all(line.endswith("(waiting up to 600s)") and " after " in line for line in waits)
    snap = result.json()["id"]
    assert any(line.startswith(f"  snapshot {snap}: ") for line in waits), waits
    wait_line = next(i for i, line in enumerate(result.stderr.splitlines())
                     if line.startswith(f"✓ snapshot {snap} created"))  # the wait's own line
    assert wait_line > max(result.stderr.splitlines().index(line) for line in waits)


def test_verify_all_prints_each_result(wal_db, backup_dir, tmp_path, run_invoke):
    names = [run_invoke("backup", "--json", "--keep", "5").json()["backup"]["name"]
             for _ in range(2)]
    result = run_invoke("backup.verify", "all")
    assert result.returncode == 0, result
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("  steps-")] == [
        f"  {name}  checksum ok  integrity_check ok" for name in names]


def test_on_a_terminal_the_lock_wait_line_shows_too(wal_db, backup_dir, tmp_path):
    """review-ox item 3: on a terminal the backup's progress display replaced the spinner
    that carried the line, so a lock wait was a blank screen."""
    with helpers.lock_held_elsewhere(backup_dir, tmp_path / "holder") as (pid, release):
        code, shown = helpers.on_terminal(
            ["backup", "--lock-wait", "5"], cwd=tmp_path,
            then=(b"for the backup lock", release.touch))
    assert code == 0, shown
    assert "waiting up to 5s for the backup lock" in " ".join(shown.split()), shown
    assert f"(pid {pid} on " in " ".join(shown.split()), shown


def test_ctrl_c_while_waiting_for_a_snapshot_says_it_goes_on_at_fly(tmp_path):
    """review-ox item 15: `interrupted: KeyboardInterrupt`, and the snapshot's id, shown
    only in the live line, was gone."""
    import signal

    from ops.commands.backup import SNAPSHOT_GOES_ON
    from tests.flyctl_double import DEFAULT_VOLUME_ID

    prod = make_prod(tmp_path / "prod")
    prod.world.snapshot_behavior("never")
    run = helpers.start_invoke("backup.volume", cwd=prod.cwd, env=prod.env)
    line = run.wait_for_stderr(": running after ")
    run.proc.send_signal(signal.SIGINT)
    result = run.finish()
    assert result.returncode == 130, result
    snap = line.split()[1].rstrip(":")
    assert snap.startswith("vs_") and snap in [s["id"] for s in
                                               prod.world.snapshots(DEFAULT_VOLUME_ID)]
    assert "KeyboardInterrupt" not in result.stderr, result
    assert f"✗ wait for snapshot of {DEFAULT_VOLUME_ID}  interrupted by Ctrl-C" in result.stderr
    assert result.error_lines == [f"Error: {SNAPSHOT_GOES_ON}"], result


def test_the_lock_holder_and_the_audit_name_the_user_without_user_set(monkeypatch):
    """review-ox item 21: tmux had no USER, and the holder showed as `unknown`."""
    import os
    import pwd

    from ops import audit, engine

    for key in ("USER", "LOGNAME", "GITHUB_ACTOR"):
        monkeypatch.delenv(key, raising=False)
    name = pwd.getpwuid(os.getuid()).pw_name
    assert engine.holder_text().startswith(f"{name} (pid {os.getpid()} on ")
    assert audit.who().startswith(f"{name}@")
