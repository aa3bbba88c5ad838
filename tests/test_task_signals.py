"""SIGTERM (a cancelled CI job) to a task that is not a runbook flow: backup, download,
the volume snapshot. Before, these died by the signal itself (status -15, no line at
all); now every task ends with one ``Error: terminated by SIGTERM`` line and exit 143,
after its own ``finally`` blocks ran, and leaves nothing that looks like a backup.

Real processes: the real CLI, the flyctl double hanging the call that is interrupted,
and a local backup of a real WAL database large enough to be stopped mid-copy.
"""

from __future__ import annotations

import signal

import pytest

from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import label

# signals to the CLI's own process are the point: every run a fresh `python -m invoke`
pytestmark = pytest.mark.fresh_process

# (the double's call that hangs, the task, the call's label once it has started)
REMOTE = {
    "backup on the machine": (["ssh", "console"], ("backup", "--production"), "ssh backup"),
    "download": (["ssh", "sftp"], ("backup.download", "latest"), "ssh sftp get"),
    "snapshot request": (["volumes", "snapshots", "create"], ("backup.volume",),
                         "volumes snapshots create"),
}


def one_error_line(result) -> str:
    assert result.returncode == ExitCode.TERMINATED, result
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.error_lines
    return line


@pytest.mark.parametrize("case", REMOTE)
def test_sigterm_during_a_production_task_ends_in_one_line_and_leaves_no_backup(site, case):
    hang, args, started = REMOTE[case]
    site.run("backup", "--production")  # a backup to download
    before = (helpers.snapshot(site.backups), helpers.snapshot(site.root / "local"))
    site.world.hang(hang, seconds=60)
    earlier = len(site.world.calls())
    run = site.start(*args)
    helpers.wait_for(lambda: started in [label(a) for a in site.world.calls()[earlier:]],
                     timeout=60, what=started)
    run.proc.send_signal(signal.SIGTERM)
    line = one_error_line(run.finish(timeout=40))

    assert line == "Error: terminated by SIGTERM", line
    assert (helpers.snapshot(site.backups), helpers.snapshot(site.root / "local")) == before


def test_sigterm_while_waiting_for_the_snapshot_names_the_snapshot_that_goes_on(site):
    site.world.snapshot_behavior("never")  # listed as running, never created
    run = site.start("backup.volume")
    run.wait_for_stderr(": running after")
    run.proc.send_signal(signal.SIGTERM)
    line = one_error_line(run.finish(timeout=40))

    assert line.startswith("Error: terminated by SIGTERM: only the wait stopped; the "
                           "snapshot goes on at Fly"), line
    assert "invoke backup.snapshots" in line


def test_sigterm_during_a_local_backup_leaves_no_partial_backup(tmp_path):
    db = helpers.make_blob_db(tmp_path / "data" / "steps.db", 300)
    folder = tmp_path / "data" / "backups"
    env = {"INVOKE_DB_PATH": str(db), "INVOKE_BACKUP_DIR": str(folder)}
    run = helpers.start_invoke("backup", cwd=tmp_path, env=env)
    helpers.wait_for(lambda: any(p.name.startswith(".tmp-") for p in folder.glob(".*")),
                     timeout=30, what="the backup's temporary copy")
    run.proc.send_signal(signal.SIGTERM)
    result = run.finish(timeout=60)

    if result.returncode == 0:  # the copy won the race: a whole, recorded backup
        assert len(helpers.backup_files(folder)) == 1, result
        return
    assert one_error_line(result).startswith("Error: terminated by SIGTERM")
    assert helpers.backup_files(folder) == [], sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_before_the_task_runs_ends_in_one_line_and_143(tmp_path, sig):
    # a .py runtime config runs after tasks.py is imported, before the task: a cancelled
    # CI job arriving exactly there died silently by the signal (status -15 / -1)
    (tmp_path / "stop.py").write_text(f"import os\nos.kill(os.getpid(), {int(sig)})\n")
    result = helpers.run_invoke("-f", "stop.py", "backup.list", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        ExitCode.TERMINATED, f"Terminated by {sig.name}: no task had started.\n")


def test_a_second_sigterm_while_the_error_is_printed_is_ignored(wal_db, tmp_path):
    # the first SIGTERM stops the backup; the second arrives while `guarded` prints the
    # failure (--json: its document), after the task's own guard ended: that guard put
    # the default back, and the run died by the signal (status -15) with no line
    (tmp_path / "twice.py").write_text(
        "import os, signal\n"
        "from ops import cli, engine\n"
        "engine.create_backup = lambda *a, _real=engine.create_backup, _pid=os.getpid(),"
        " _kill=os.kill, **k: (_kill(_pid, 15), _real(*a, **k))[1]\n"
        "cli.print_failed_as_json = lambda failure, _real=cli.print_failed_as_json,"
        " _pid=os.getpid(), _kill=os.kill: (_kill(_pid, 15), _real(failure))[1]\n"
        "del os, signal, cli, engine\n")
    result = helpers.run_invoke("-f", "twice.py", "backup", "--json", cwd=tmp_path)
    assert result.returncode == ExitCode.TERMINATED, result
    assert result.error_lines == ["Error: terminated by SIGTERM"], result.stderr
    assert result.json()["error"] == "terminated by SIGTERM", result.stdout
    assert helpers.backup_files(tmp_path / "data" / "backups") == []
