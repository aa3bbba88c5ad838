"""Every dry run looks at the locks its run takes, without taking them (issue 22's
leftover, s20 CLOSING: a run meeting another run's lock exits 4, or waits and then exits
4, while its dry run passed with 0). Where the run would refuse at once (no lock wait)
the dry run refuses with the run's own words and exit 4; where the run would wait, the
dry run says for how long at most and whose lock it is. The lock is held by a real
process (``helpers.file_lock_held``), and the dry run must leave it as it was: still
held, its holder's name unchanged, no lock file made where there was none."""

from __future__ import annotations

import contextlib
import json

import pytest

from ops import engine
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import APP

pytestmark = pytest.mark.cli_in_process


@pytest.fixture
def restorable(wal_db, backup_dir, run_invoke):
    assert run_invoke("backup").returncode == 0
    return backup_dir


@pytest.mark.parametrize("name", [engine.RESTORE_LOCK, engine.LOCK_NAME])
def test_a_local_restores_dry_run_refuses_a_held_lock_as_its_run_does(restorable, run_invoke,
                                                                      tmp_path, name):
    lock = restorable / name
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        held = lock.read_text()
        dry = run_invoke("restore", "--dry-run")
        run = run_invoke("restore", "--yes")
        assert lock.read_text() == held  # not taken, not renamed
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = f"holds the lock data/backups/{name}: {held} (use --lock-wait SECONDS to wait for it)"
    assert said in " ".join(dry.stderr.split()), dry.stderr
    assert said in " ".join(run.stderr.split()), run.stderr


def test_a_dry_run_says_how_long_the_run_would_wait(restorable, run_invoke, tmp_path):
    lock = restorable / engine.RESTORE_LOCK
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        held = lock.read_text()
        dry = run_invoke("restore", "--dry-run", "--lock-wait", "90", "--json")
    assert dry.returncode == 0, dry
    line = (f"another restore holds the lock data/backups/{lock.name}: {held}; the run "
            "would wait up to 90s for it, then stop with exit 4 if it is still held")
    assert json.loads(dry.stdout)["lock_waits"] == [line]
    assert line in " ".join(dry.stderr.split()), dry.stderr


def test_a_free_lock_is_not_a_verdict_and_no_lock_file_is_made(restorable, run_invoke):
    (restorable / engine.RESTORE_LOCK).unlink(missing_ok=True)
    dry = run_invoke("restore", "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["lock_waits"] == [], dry
    assert not (restorable / engine.RESTORE_LOCK).exists()


def test_a_lock_left_by_a_killed_holder_is_free(restorable, run_invoke):
    """kill -9 leaves the holder's name in the file but no lock (flock dies with it)."""
    (restorable / engine.LOCK_NAME).write_text("a restore by gone (pid 1 on x) since then")
    dry = run_invoke("restore", "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["lock_waits"] == [], dry


def test_the_verdict_as_data(tmp_path):
    lock = tmp_path / engine.LOCK_NAME
    assert engine.lock_verdict(lock, None, 0) is None
    with pytest.raises(engine.EngineError) as refused:
        engine.lock_verdict(lock, "a restore by ann (pid 7 on h) since T", 0)
    assert refused.value.kind == "locked" and str(refused.value).startswith("a restore holds")
    assert "wait up to 2.5s" in engine.lock_verdict(lock, "bob", 2.5)


# ---------------------------------------------------------------- deploy and deploy.rollback


def machine_lock_held(site, holder: str = "ann deploy since 2026-12-07T09:00:00Z (run ab12cd34)"):
    """Another deploy holds the machine's deploy lock (a directory naming its holder, as
    the lock script makes it)."""
    site.machine_lock.mkdir()
    (site.machine_lock / "holder").write_text(holder + "\n")
    return holder


@pytest.mark.parametrize("task", ["deploy", "deploy.rollback"])
def test_a_deploys_dry_run_refuses_this_computers_held_lock_as_its_run_does(site, tmp_path,
                                                                           task):
    with helpers.file_lock_held(site.lock_file, tmp_path / "holder"):
        held = site.lock_file.read_text()
        dry = site.here(task, "--dry-run")
        run = site.here(task)
        assert site.lock_file.read_text() == held
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = (f"another deploy of {APP} holds the lock {site.lock_file}: {held} (use "
            "--lock-wait SECONDS to wait for it)")
    assert said in " ".join(dry.stderr.split()) and said in " ".join(run.stderr.split())


@pytest.mark.parametrize("task", ["deploy", "deploy.rollback"])
def test_a_deploys_dry_run_refuses_the_machines_held_lock_as_its_run_does(site, task):
    holder = machine_lock_held(site)
    dry = site.here(task, "--dry-run")
    run = site.here(task)
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = (f"another deploy of {APP} holds the lock on the machine ({site.machine_lock}): "
            f"{holder} (use --lock-wait SECONDS to wait for it); if none is running: ")
    assert said in " ".join(dry.stderr.split()) and said in " ".join(run.stderr.split())
    assert (site.machine_lock / "holder").read_text() == holder + "\n"  # left as it was


def test_a_deploys_dry_run_says_how_long_the_run_would_wait_for_each_lock(site, tmp_path):
    holder = machine_lock_held(site)
    with helpers.file_lock_held(site.lock_file, tmp_path / "holder"):
        held = site.lock_file.read_text()
        dry = site.here("deploy", "--dry-run", "--lock-wait", "30", "--json")
    assert dry.returncode == 0, dry
    wait = "the run would wait up to 30s for it, then stop with exit 4 if it is still held"
    assert dry.json()["lock_waits"] == [
        f"another deploy of {APP} holds the lock {site.lock_file}: {held}; {wait}",
        f"another deploy of {APP} holds the lock on the machine ({site.machine_lock}): "
        f"{holder}; {wait}"]
    assert dry.json()["warnings"] == []


def test_a_free_machine_lock_is_not_made_by_the_dry_run(site):
    dry = site.here("deploy", "--dry-run", "--json")
    assert dry.returncode == 0 and dry.json()["lock_waits"] == [], dry
    assert not site.machine_lock.exists() and not site.lock_file.exists()


# ---------------------------------------------------------------- restore --production


@pytest.mark.parametrize("engine_there", ["python3", "sqlite3"])
@pytest.mark.parametrize("name", [engine.RESTORE_LOCK, engine.LOCK_NAME])
def test_a_production_restores_dry_run_refuses_a_held_lock_there_as_its_run_does(
        site, tmp_path, name, engine_there):
    assert site.here("backup", "--production").returncode == 0
    if engine_there == "sqlite3":  # the machine's sh restore, with flock(1)
        site.world.remove_machine_tools("python3", "node")
    lock = site.backups / name
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        held = lock.read_text()
        dry = site.here("restore", "--production", "--dry-run")
        run = site.here("restore", "--production", "--yes")
        assert lock.read_text() == held
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = f"holds the lock {lock}: "
    assert said in " ".join(dry.stderr.split()) and said in " ".join(run.stderr.split())
    assert f"{held} (use --lock-wait SECONDS to wait for it)" in " ".join(dry.stderr.split())


def test_a_production_restores_dry_run_says_how_long_the_run_would_wait(site, tmp_path):
    assert site.here("backup", "--production").returncode == 0
    lock = site.backups / engine.RESTORE_LOCK
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        held = lock.read_text()
        dry = site.here("restore", "--production", "--dry-run", "--lock-wait", "45",
                        "--json")
    assert dry.returncode == 0, dry
    assert dry.json()["lock_waits"] == [
        f"another restore holds the lock {lock}: {held}; the run would wait up to 45s for "
        "it, then stop with exit 4 if it is still held"]


def test_a_deploys_dry_run_refuses_the_machines_held_backup_lock_as_its_run_does(site,
                                                                                 tmp_path):
    lock = site.backups / engine.LOCK_NAME
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        held = lock.read_text()
        dry = site.here("deploy", "--dry-run")
        run = site.here("deploy")
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = f"another backup holds the lock {lock}: {held} (use --lock-wait"
    assert said in " ".join(dry.stderr.split()) and said in " ".join(run.stderr.split())


# ---------------------------------------------------------------- deploy.undo


def deployed(site) -> None:
    """A deploy in the audit log, for deploy.undo to undo."""
    assert site.here("deploy").returncode == 0


@pytest.mark.parametrize("where", ["this computer", "the machine", "the restore's"])
def test_an_undos_dry_run_refuses_each_held_lock_as_its_run_does(site, tmp_path, where):
    deployed(site)
    lock = {"this computer": site.lock_file, "the restore's": site.backups / engine.RESTORE_LOCK,
            "the machine": None}[where]
    with contextlib.ExitStack() as held:
        if lock is None:
            holder = machine_lock_held(site)
        else:
            held.enter_context(helpers.file_lock_held(lock, tmp_path / "holder"))
            holder = lock.read_text()
        dry = site.here("deploy.undo", "--dry-run")
        run = site.here("deploy.undo", "--yes")
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = f"{holder} (use --lock-wait SECONDS to wait for it)"
    assert said in " ".join(dry.stderr.split()) and said in " ".join(run.stderr.split())


def test_an_undos_dry_run_says_how_long_the_run_would_wait(site):
    deployed(site)
    holder = machine_lock_held(site)
    dry = site.here("deploy.undo", "--dry-run", "--lock-wait", "20", "--json")
    assert dry.returncode == 0, dry
    assert dry.json()["lock_waits"] == [
        f"another deploy of {APP} holds the lock on the machine ({site.machine_lock}): "
        f"{holder}; the run would wait up to 20s for it, then stop with exit 4 if it is "
        "still held"]


# ---------------------------------------------------------------- backup.cleanup


def test_a_cleanups_dry_run_refuses_a_held_lock_when_it_would_remove_something(
        wal_db, backup_dir, run_invoke, tmp_path):
    for _ in range(2):  # keep 1 removes one
        assert run_invoke("backup").returncode == 0
    assert len(list(backup_dir.glob("*.db"))) == 2
    lock = backup_dir / engine.LOCK_NAME
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        held = lock.read_text()
        dry = run_invoke("backup.cleanup", "--keep", "1", "--dry-run")
        nothing = run_invoke("backup.cleanup", "--keep", "5", "--dry-run")
        run = run_invoke("backup.cleanup", "--keep", "1")
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = f"another backup holds the lock data/backups/.backup.lock: {held} (use --lock-wait"
    assert said in " ".join(dry.stderr.split()) and said in " ".join(run.stderr.split())
    assert nothing.returncode == 0, nothing  # nothing to remove: its run takes no lock


def test_a_production_cleanups_dry_run_refuses_a_held_lock_there(prod, tmp_path):
    prod.seed(3, 2, 1)
    assert prod.run("backup", "--production").returncode == 0  # one it stands on
    lock = prod.remote_dir / engine.LOCK_NAME
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        held = lock.read_text()
        dry = prod.here("backup.cleanup", "--keep", "1", "--production", "--dry-run")
        run = prod.here("backup.cleanup", "--keep", "1", "--production")
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = f"another backup holds the lock {lock}: {held} (use --lock-wait"
    assert said in " ".join(dry.stderr.split()) and said in " ".join(run.stderr.split())


# ---------------------------------------------------------------- restore --host (real sshd)


@pytest.mark.parametrize("engine_there", ["addr", "no_python"])
def test_a_host_restores_dry_run_refuses_a_held_lock_there_as_its_run_does(
        host, run_invoke, tmp_path, engine_there):
    env, addr = host["env"], host[engine_there]
    assert run_invoke("backup", "--host", addr, env=env).returncode == 0
    lock = host["dir"] / engine.RESTORE_LOCK
    with helpers.file_lock_held(lock, tmp_path / "holder"):
        held = lock.read_text()
        dry = run_invoke("restore", "--host", addr, "--dry-run", env=env)
        run = run_invoke("restore", "--host", addr, "--yes", env=env)
    assert (dry.returncode, run.returncode) == (ExitCode.LOCKED, ExitCode.LOCKED), (dry, run)
    said = f"another restore holds the lock {lock}: "
    assert said in " ".join(dry.stderr.split()) and said in " ".join(run.stderr.split())
    assert held in " ".join(dry.stderr.split())
