"""`invoke restore --from-replica` stopped (SIGTERM) or killed (kill -9) at each phase,
here, on the Fly machine (the flyctl double, `--production`) and on an SSH host (the real
sshd, `--host`). Whatever the moment: a SIGTERM is exit 143 with one `Error:` line; no
backup-named file is ever without its records (the replica file is published with them
at once, or not at all); the live database is sound and holds either what it held or
the replica's rows; a run after a kill -9 restores. Real litestream and moto, real WAL
databases; each phase is held by a real wait (a hanging litestream, a held restore lock,
a stalled flyctl call), so the signal lands where the test says."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import urllib.request
from pathlib import Path

import pytest

from ops import engine, poll
from ops.errors import ExitCode
from tests import helpers
from tests.flyctl_double.cli.faults import is_subsequence
from tests.replica_world import (  # noqa: F401
    LITESTREAM,
    SLOW_RESTORE,
    World,
    lose_rows,
    moto_endpoint,
    replica_world,
    sound,
    users,
)


def every_backup_recorded(folder: Path) -> list[str]:
    """Each backup-named file in ``folder`` verifies against its records (never a checked
    but unrecorded one); their names."""
    found = engine.list_backups(folder)
    for item in found:
        verdict = engine.verify_backup(item.path)
        assert verdict.ok, (item.name, verdict.problems)
    return [item.name for item in found]


def slow_litestream(tmp: Path) -> tuple[Path, Path]:
    """A litestream whose restore (not its plan) writes half a file and hangs; (wrapper,
    the marker file holding the hanging process's pid once it hangs)."""
    marker, wrapper = tmp / "restoring.pid", tmp / "litestream-slow"
    wrapper.write_text(SLOW_RESTORE.format(python=sys.executable, real=LITESTREAM,
                                           marker=str(marker)))
    wrapper.chmod(0o755)
    return wrapper, marker


def held_in_litestream(marker: Path) -> int:
    return int(poll.until(lambda: marker.exists() and marker.read_text() or None,
                          timeout=60, interval=0.05,
                          expired=lambda *_: AssertionError("no restore started")))


def gone(pid: int) -> None:
    """The hanging litestream killed: a SIGTERMed run stops it, kill -9 of its parent
    leaves it running."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def stopped(run: helpers.Background, sig: int) -> helpers.InvokeResult:
    os.kill(run.proc.pid, sig)
    return run.finish()


def one_error_line(result, *words: str) -> None:
    assert result.returncode == ExitCode.TERMINATED, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "terminated by SIGTERM" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in errors[0], errors[0]


# ---------------------------------------------------------------- here

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_here_stopped_while_litestream_restores(replica_world, tmp_path, sig):
    world = replica_world
    lose_rows(world)
    backups = tmp_path / "backups"
    wrapper, marker = slow_litestream(tmp_path)
    run = helpers.start_invoke("restore", "--from-replica", "--yes", cwd=world.tmp, env={
        **world.env, "INVOKE_BACKUP_DIR": str(backups), "INVOKE_REPLICA_LITESTREAM": str(wrapper)})
    hanging = held_in_litestream(marker)
    try:
        result = stopped(run, sig)
    finally:
        gone(hanging)
    assert every_backup_recorded(backups) == []  # the half file never became a backup
    assert users(world.db) == 10 and sound(world.db)
    if sig == signal.SIGTERM:
        one_error_line(result, "nothing restored", "live database untouched")
        assert [p.name for p in backups.iterdir() if not p.name.startswith(".")] == []


def recording(run: helpers.Background, folder: Path):
    """Until the run, to record the checked replica file, waits for ``folder``'s backup
    lock, which the test holds: it says so at once (the old way linked a backup-named file
    first; then the run said nothing until its step's "still running" line, 10 s on)."""
    run.wait_for_stderr("waiting up to 60s for the backup lock ", timeout=60)
    assert not any(folder.glob("*.db")), list(folder.iterdir())


# The moment, and what holds the run there (a real wait, let go only by the test): while
# the checked replica file is to be recorded, another backup holding the folder's lock
# ("recording") or another restore holding the restore lock, which every restore takes
# first ("restore-locked"): both before the publish; or once the file is a backup and its
# restore waits ("restoring"): the app holds the live database's write lock, so the copy
# waits, the safety backup made. Was, "recording": the file was linked into backup.dir,
# then recorded: kill -9 left a checked but unrecorded backup-*.db, and a SIGTERM died with
# no Error line. "restoring" was held by the restore lock until the run took that lock
# before its publish (s19); then only the lock holder's own 30 s limit let the run go on,
# and the signal hit whatever step it had reached: under load, its safety backup made
# (two backups, "expected one") or the restore done (s20, notes/s20/s20-flake.md).
MOMENTS = ["recording", "restore-locked", "restoring"]


def held_at(moment: str, world: World, backups: Path, tmp_path: Path):
    if moment == "restoring":
        return helpers.app_holds_write_lock(world.db)
    lock = engine.LOCK_NAME if moment == "recording" else engine.RESTORE_LOCK
    return helpers.file_lock_held(backups / lock, tmp_path / "holder")


def reached(run: helpers.Background, moment: str, backups: Path) -> None:
    if moment == "recording":
        recording(run, backups)
    elif moment == "restore-locked":
        run.wait_for_stderr("waiting up to 60s for the restore lock", timeout=60)
    else:  # said from inside the copy's wait
        run.wait_for_stderr("waiting up to 60s for the app's write lock on ", timeout=60)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
@pytest.mark.parametrize("moment", MOMENTS)
def test_here_stopped_while_another_run_holds_a_lock(replica_world, run_invoke, tmp_path,
                                                     moment, sig):
    world = replica_world
    before = lose_rows(world)
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups), "INVOKE_BACKUP_LOCK_WAIT": "60"}
    with held_at(moment, world, backups, tmp_path):
        run = helpers.start_invoke("restore", "--from-replica", "--yes", "--busy-timeout",
                                   "60", cwd=world.tmp, env=env)
        try:
            reached(run, moment, backups)
        finally:  # (a failed wait: the run killed, never left waiting)
            result = stopped(run, sig)
    names = every_backup_recorded(backups)  # published with its records, or not at all
    if moment != "restoring":
        assert names == []  # "recording" was: [the unrecorded replica file]
    else:
        kinds = {item.kind: backups / item.name for item in engine.list_backups(backups)}
        assert sorted(kinds) == ["adopted", "safety"] and len(names) == 2, names
        assert users(kinds["adopted"]) == before and users(kinds["safety"]) == 10
    assert users(world.db) == 10 and sound(world.db)
    if sig == signal.SIGTERM and moment != "restoring":
        one_error_line(result, "nothing restored")
    elif sig == signal.SIGTERM:  # the published backup is named, to restore by hand
        one_error_line(result)
        assert "The live database was not changed" in result.stderr, result.stderr
        assert (f"To restore, run again: `invoke restore {kinds['adopted'].name} --yes`"
                in result.stderr), result.stderr
    again = run_invoke("restore", "--from-replica", "--yes", env=env)
    assert again.returncode == 0, again
    assert users(world.db) == before


# ---------------------------------------------------------------- the Fly machine

def bucket(endpoint: str, name: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{name}", method="PUT"),
                                timeout=30):
        pass
    return name


def test_production_killed_while_the_replica_file_is_recorded(served_prod, moto_endpoint,
                                                              tmp_path):
    prod = served_prod
    (tmp_path / "ls").mkdir()
    world = World(moto_endpoint, bucket(moto_endpoint, "prod-kill-record"), prod.db,
                  tmp_path / "ls")
    try:
        lose_rows(world)
        env = {**{k: v for k, v in world.env.items() if k != "INVOKE_DB_PATH"},
               "INVOKE_BACKUP_LOCK_WAIT": "60"}
        local = prod.local_dir.parent / "replica"
        with helpers.file_lock_held(local / engine.LOCK_NAME, tmp_path / "holder"):
            run = helpers.start_invoke("restore", "--from-replica", "--production", "--yes",
                                       cwd=prod.cwd, env={**prod.env, **env})
            recording(run, local)
            stopped(run, signal.SIGKILL)
        assert every_backup_recorded(local) == []
        assert users(prod.db) == 10 and not prod.world.calls()  # the machine never asked
    finally:
        world.close()


# (phase, flyctl argv words the run stalls in): each after the replica was checked; the
# machine is resolved (to read its backups' names: the file's name must be free there too,
# tests/test_replica_names.py) before the file becomes a backup, the others after
FLY_PHASES = [
    ("resolve", ["version"]),
    ("upload", ["ssh", "sftp", "put"]),
    ("restart", ["machine", "restart"]),
]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
@pytest.mark.parametrize(("phase", "words"), FLY_PHASES, ids=[p for p, _ in FLY_PHASES])
def test_production_stopped_at_each_phase(served_prod, moto_endpoint, tmp_path, phase, words,
                                          sig):
    prod = served_prod
    (tmp_path / "ls").mkdir()
    world = World(moto_endpoint, bucket(moto_endpoint, f"prod-stop-{phase}-{int(sig)}"),
                  prod.db, tmp_path / "ls")
    try:
        before = lose_rows(world)
        env = {k: v for k, v in world.env.items() if k != "INVOKE_DB_PATH"}
        release = tmp_path / f"release-{phase}"
        prod.world.hang(words, seconds=60, until=release)
        run = helpers.start_invoke("restore", "--from-replica", "--production", "--yes",
                                   cwd=prod.cwd, env={**prod.env, **env})
        poll.until(lambda: any(is_subsequence(words, call) for call in prod.world.calls())
                   or None, timeout=60, interval=0.05,
                   expired=lambda *_: AssertionError(f"no {words} call"))
        try:
            result = stopped(run, sig)
        finally:
            release.touch()  # the stalled flyctl call goes on (kill -9 leaves it running)
        local = prod.local_dir.parent / "replica"
        if phase == "resolve":  # while its name is chosen: not published, nothing sent
            assert every_backup_recorded(local) == [] and users(prod.db) == 10
        else:
            (name,) = every_backup_recorded(local)
            assert users(local / name) == before
        assert sound(prod.db) and users(prod.db) in (10, before)
        every_backup_recorded(prod.remote_dir)
        if sig == signal.SIGTERM:
            one_error_line(result, *(["nothing restored"] if phase == "resolve" else []))
            return
        prod.world.clear_faults()
        again = prod.run("restore", "--from-replica", "--production", "--yes", env=env,
                         timeout=120)
        assert again.returncode == 0, again
        assert users(prod.db) == before
    finally:
        world.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_production_stopped_while_litestream_restores(served_prod, moto_endpoint, tmp_path,
                                                      sig):
    prod = served_prod
    (tmp_path / "ls").mkdir()
    world = World(moto_endpoint, bucket(moto_endpoint, f"prod-stop-ls-{int(sig)}"), prod.db,
                  tmp_path / "ls")
    try:
        lose_rows(world)
        wrapper, marker = slow_litestream(tmp_path)
        env = {**{k: v for k, v in world.env.items() if k != "INVOKE_DB_PATH"},
               "INVOKE_REPLICA_LITESTREAM": str(wrapper)}
        run = helpers.start_invoke("restore", "--from-replica", "--production", "--yes",
                                   cwd=prod.cwd, env={**prod.env, **env})
        hanging = held_in_litestream(marker)
        try:
            result = stopped(run, sig)
        finally:
            gone(hanging)
        assert every_backup_recorded(prod.local_dir.parent / "replica") == []
        assert users(prod.db) == 10 and sound(prod.db)
        assert not [call for call in prod.world.calls() if "sftp" in call]  # nothing sent
        if sig == signal.SIGTERM:
            one_error_line(result, "nothing restored")
    finally:
        world.close()


# ---------------------------------------------------------------- an SSH host

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_on_a_host(host, moto_endpoint, run_invoke,
                                                          tmp_path, sig):
    """Over the real sshd: stopped while litestream restores (nothing sent, nothing
    recorded), then a run stopped after its replica became a backup, waiting for the
    host's restore lock (held there by another restore). A short name: the socket path
    under xdist must fit a Unix socket's 104 bytes."""
    (tmp_path / "ls").mkdir()
    world = World(moto_endpoint, bucket(moto_endpoint, f"host-stop-{int(sig)}"), host["db"],
                  tmp_path / "ls")
    try:
        before = lose_rows(world)
        env = {**{k: v for k, v in world.env.items() if k != "INVOKE_DB_PATH"},
               **host["env"]}
        local = Path(host["env"]["INVOKE_BACKUP_DIR"]) / "replica"
        wrapper, marker = slow_litestream(tmp_path)
        run = helpers.start_invoke("restore", "--from-replica", "--host", host["addr"],
                                   "--yes", cwd=tmp_path,
                                   env={**env, "INVOKE_REPLICA_LITESTREAM": str(wrapper)})
        hanging = held_in_litestream(marker)
        try:
            result = stopped(run, sig)
        finally:
            gone(hanging)
        assert every_backup_recorded(local) == [] and users(host["db"]) == 10
        if sig == signal.SIGTERM:
            one_error_line(result, "nothing restored")
        with helpers.file_lock_held(host["dir"] / engine.RESTORE_LOCK, tmp_path / "holder"):
            run = helpers.start_invoke("restore", "--from-replica", "--host", host["addr"],
                                       "--yes", cwd=tmp_path,
                                       env={**env, "INVOKE_BACKUP_LOCK_WAIT": "60"})
            run.wait_for_stderr("restoring it", timeout=60)
            result = stopped(run, sig)
        (name,) = every_backup_recorded(local)
        assert users(local / name) == before
        assert sound(host["db"]) and users(host["db"]) in (10, before)
        if sig == signal.SIGTERM:
            one_error_line(result)
        again = run_invoke("restore", "--from-replica", "--host", host["addr"], "--yes",
                           env=env, timeout=120)
        assert again.returncode == 0, again
        assert users(host["db"]) == before
    finally:
        world.close()


def test_here_the_folder_locked_by_another_backup_is_its_exit_code(replica_world, run_invoke,
                                                                   tmp_path):
    """Another backup holds the folder (backup.lock_wait 0): the checked file is not
    recorded, nothing is left, the exit is the lock's (4), one line."""
    world = replica_world
    lose_rows(world)
    backups = tmp_path / "backups"
    with helpers.file_lock_held(backups / engine.LOCK_NAME, tmp_path / "holder"):
        result = run_invoke("restore", "--from-replica", "--yes",
                            env={**world.env, "INVOKE_BACKUP_DIR": str(backups)})
    assert result.returncode == ExitCode.LOCKED, result
    assert len(result.error_lines) == 1 and "cannot record" in result.error_lines[0]
    locks = (engine.LOCK_NAME, engine.RESTORE_LOCK)  # its locks, as every restore's stay
    assert [p.name for p in backups.iterdir() if p.name not in locks] == []
    assert users(world.db) == 10
