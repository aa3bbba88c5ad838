"""Something a deploy never makes at the machine's deploy lock name (a regular file, a FIFO,
a symlink, dangling or not). Before, the dry run read it as free (exit 0), the run exited 4
saying "another deploy ... holds the lock: unknown" and advised `deploy.unlock --yes`,
which answered "No deploy lock" and changed nothing: every later deploy exited 4
(review-break s21 #2). Now the dry run, the run and `deploy.unlock` say one thing (exit
4), and `deploy.unlock --yes` removes that entry alone (never a directory, never what a
link points to), after which a deploy takes its lock. A deploy's own release never removes
such an entry. Real sh scripts through the flyctl double, and the bare scripts under sh."""

from __future__ import annotations

import os
import subprocess

import pytest

from ops import remote
from ops.errors import ExitCode
from tests.fake_production import error_line

pytestmark = pytest.mark.cli_in_process

SAID = {"file": "holds a regular file of 5 bytes, not a deploy lock",
        "fifo": "holds a FIFO, not a deploy lock",
        "dangling": "holds a symbolic link to nothing, not a deploy lock",
        "symlink": "holds a symbolic link, not a deploy lock"}


def put(lock, kind: str, elsewhere) -> None:
    """``kind`` at the lock's name; a symlink's target is a directory with a holder file
    (a lock by its look), which must outlive the removal of the link."""
    if kind == "file":
        lock.write_text("junk\n")
    elif kind == "fifo":
        os.mkfifo(lock)
    elif kind == "dangling":
        lock.symlink_to(elsewhere / "nothing-here")
    else:
        (elsewhere / "dir").mkdir()
        (elsewhere / "dir" / "holder").write_text("someone\n")
        lock.symlink_to(elsewhere / "dir")


def there(lock) -> bool:
    return lock.is_symlink() or lock.exists()


@pytest.mark.parametrize("kind", list(SAID))
def test_dry_run_run_and_unlock_agree_and_unlock_yes_clears_it(site, tmp_path, kind):
    lock = site.machine_lock
    put(lock, kind, tmp_path)
    dry, run = site.here("deploy", "--dry-run"), site.here("deploy")
    asked = site.here("deploy.unlock")  # without --yes: says what is there, removes nothing
    for result in (dry, run, asked):
        assert result.returncode == ExitCode.LOCKED, result
        error_line(result)  # one Error: line; a dry run says its run's refusal above it
        line = " ".join(result.stderr.split())
        assert SAID[kind] in line and lock.name in line, line
        assert "invoke deploy.unlock --yes" in line and "unknown" not in line, line
        assert there(lock)
    assert "deploy" not in [call[0] for call in site.world.calls()]

    cleared = site.here("deploy.unlock", "--yes")
    assert cleared.returncode == 0, cleared
    assert f"Removed {lock} on the machine: it was a" in " ".join(cleared.stderr.split())
    assert not there(lock)
    if kind == "symlink":  # the link alone: what it pointed to is untouched
        assert (tmp_path / "dir" / "holder").read_text() == "someone\n"
    assert site.here("deploy", "--dry-run").returncode == 0


def test_after_unlock_yes_the_deploy_runs(site):
    site.machine_lock.write_text("junk\n")
    assert site.here("deploy").returncode == ExitCode.LOCKED
    assert site.here("deploy.unlock", "--yes").returncode == 0
    again = site.here("deploy")
    assert again.returncode == 0, again
    assert not there(site.machine_lock)  # taken and released as a directory


def sh(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("kind", list(SAID))
def test_a_deploys_release_and_a_look_never_remove_it(tmp_path, kind):
    lock = tmp_path / remote.DEPLOY_LOCK
    put(lock, kind, tmp_path)
    for script in (remote.deploy_unlock_script(str(lock), holder="me (run 1)"),
                   remote.deploy_unlock_script(str(lock), remove=False),
                   remote.deploy_lock_script(str(lock), "me (run 1)", 0.4)):
        done = sh(script)
        assert done.returncode == remote.NOT_A_LOCK, done
        assert f"{remote.ENTRY_MARK} notlock " in done.stdout and "removed" not in done.stdout
        assert there(lock)


def test_unlock_yes_never_removes_a_directory_made_meanwhile(tmp_path):
    """A lock taken between the look and the removal is a directory: `rm -f` leaves it,
    and nothing says it was removed."""
    lock = tmp_path / remote.DEPLOY_LOCK
    lock.mkdir()
    (lock / "holder").write_text("another deploy\n")
    script = remote.deploy_unlock_script(str(lock))
    forced = script.replace("|| return 0", "|| :", 1)  # as if the look had seen a FIFO
    assert forced != script
    done = sh(forced)
    assert done.returncode == remote.NOT_A_LOCK, done
    assert "removed" not in done.stdout
    assert (lock / "holder").read_text() == "another deploy\n"
