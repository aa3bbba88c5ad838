"""`invoke restore --from-replica` names its backup file itself, so the name must be free:
here (a file or a sidecar left in backup.dir, by another backup that second or a killed
run) and on the server the restore uploads to (the Fly machine through the flyctl double,
an SSH host over the real sshd). Was: the name was the current second's, and a name in use
ended the run: locally "exists", on a server "a different backup named … already exists"
(exit 2), e.g. a retry in the same second as the safety backup of the run it retries.

The clock the name is read from is frozen (an hour ago, clear of every backup the run's
own restore makes on the server; the replica's point is newer, so its name is clamped to
that clock: tests/test_replica_dated.py) and the names it would pick are made to exist first, so
each case collides every time on the old code. Real litestream and moto, real WAL
databases; in-process runs (helpers.run_here)."""

from __future__ import annotations

import datetime as dt
import json
import types
import urllib.request
from pathlib import Path

import pytest

from ops import engine
from ops import replica as rp
from ops.commands import replica as replica_command
from tests import helpers
from tests import replica_world as rw
from tests.replica_world import moto_endpoint, replica_world  # noqa: F401 (fixtures)

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)


def name_at(seconds: int) -> str:
    return engine.backup_name(NOW + dt.timedelta(seconds=seconds))


@pytest.fixture
def frozen(monkeypatch):
    """The command's clock stopped at ``NOW`` (its ``dt`` only: the engine's and the
    server's clocks run on)."""
    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return NOW

    monkeypatch.setattr(replica_command, "dt", types.SimpleNamespace(
        datetime=Frozen, UTC=dt.UTC, timedelta=dt.timedelta, timezone=dt.timezone))


def occupy(folder: Path, *names: str) -> dict[str, bytes]:
    """Entries that are not the replica's file under the names it would pick; their bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name in names:
        made[name] = f"not the replica's file: {name}\n".encode()
        (folder / name).write_bytes(made[name])
    return made


def untouched(folder: Path, made: dict[str, bytes]) -> None:
    for name, data in made.items():
        assert (folder / name).read_bytes() == data, name


def one_new_backup(folder: Path, before: set[str]) -> str:
    """The one backup (not a restore's safety backup) the run added to ``folder``,
    verified against its records."""
    (name,) = {item.name for item in engine.list_backups(folder)
               if item.kind != "safety"} - before
    verdict = engine.verify_backup(folder / name)
    assert verdict.ok, verdict.problems
    return name


def bucket(endpoint: str, name: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{name}", method="PUT"),
                                timeout=30):
        pass
    return name


# ---------------------------------------------------------------- the pure rule

def test_the_first_free_second_from_now():
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    first, second = engine.backup_name(at), engine.backup_name(at + dt.timedelta(seconds=1))
    third = engine.backup_name(at + dt.timedelta(seconds=2))
    assert rp.free_backup_name(at, set(), engine.backup_name) == first
    # a backup, or only a sidecar a killed run left: both keep the name
    assert rp.free_backup_name(at, {first, f"{second}.json"}, engine.backup_name) == third
    assert rp.free_backup_name(at, {f"{first}.sha256"}, engine.backup_name) == second
    assert rp.free_backup_name(at, {"other.db", ".tmp-x"}, engine.backup_name) == first
    assert rp.free_backup_name(at, {first, second}, engine.backup_name, tries=2) is None


# ---------------------------------------------------------------- the three places

def test_here_a_name_in_use_is_skipped(replica_world, frozen, tmp_path):
    world = replica_world
    before = rw.lose_rows(world)
    backups = tmp_path / "backups"
    made = occupy(backups, name_at(0), f"{name_at(1)}.sha256")  # a backup; a killed run's
    result = helpers.run_here("restore", "--from-replica", "--yes", cwd=world.tmp,
                              env={**world.env, "INVOKE_BACKUP_DIR": str(backups)})
    assert result.returncode == 0, result
    assert one_new_backup(backups, {name_at(0)}) == name_at(2)
    untouched(backups, made)
    assert rw.users(world.db) == before and rw.sound(world.db)


def test_production_a_name_on_the_machine_is_skipped(served_prod, moto_endpoint, frozen,
                                                     tmp_path):
    """Was: exit 2, "a different backup named … already exists on" the machine."""
    prod = served_prod
    (tmp_path / "ls").mkdir()
    world = rw.World(moto_endpoint, bucket(moto_endpoint, "names-prod"), prod.db,
                     tmp_path / "ls")
    try:
        before = rw.lose_rows(world)
        there = {item.name for item in engine.list_backups(prod.remote_dir)}
        made = occupy(prod.remote_dir, name_at(0), name_at(1))
        local = prod.local_dir.parent / "replica"
        env = {k: v for k, v in world.env.items() if k != "INVOKE_DB_PATH"}
        result = prod.here("restore", "--from-replica", "--production", "--yes", env=env,
                           timeout=120)
        assert result.returncode == 0, result
        assert one_new_backup(local, set()) == name_at(2)  # free here too: machine's names
        assert name_at(2) in {item.name for item in engine.list_backups(prod.remote_dir)}
        assert engine.verify_backup(prod.remote_dir / name_at(2)).ok
        untouched(prod.remote_dir, made)
        assert there <= {item.name for item in engine.list_backups(prod.remote_dir)}
        assert rw.users(prod.db) == before and rw.sound(prod.db)
    finally:
        world.close()


def test_host_names(host, moto_endpoint, frozen, tmp_path):
    (tmp_path / "ls").mkdir()
    world = rw.World(moto_endpoint, bucket(moto_endpoint, "names-host"), host["db"],
                  tmp_path / "ls")
    try:
        before = rw.lose_rows(world)
        made = occupy(host["dir"], name_at(0))
        local = Path(host["env"]["INVOKE_BACKUP_DIR"]) / "replica"
        here = occupy(local, name_at(1))  # and one taken here: both sides count
        env = {**{k: v for k, v in world.env.items() if k != "INVOKE_DB_PATH"},
               **host["env"]}
        result = helpers.run_here("restore", "--from-replica", "--host", host["addr"],
                                  "--yes", cwd=tmp_path, env=env, timeout=120)
        assert result.returncode == 0, result
        assert one_new_backup(local, {name_at(1)}) == name_at(2)
        assert engine.verify_backup(host["dir"] / name_at(2)).ok
        untouched(host["dir"], made)
        untouched(local, here)
        assert rw.users(host["db"]) == before and rw.sound(host["db"])
    finally:
        world.close()


# ---------------------------------------------------------------- records left behind

SHA = "ab" * 32


def record(name: str, **changes) -> bytes:
    data = {"name": name, "sha256": SHA, "kind": "adopted", "strategy": "adopted",
            "adopted": {"when": "2026-01-02T03:04:05Z", "by": "replica.restore TXID 9 (…)"}}
    return json.dumps({**data, **changes}).encode()


@pytest.mark.parametrize(("entries", "json_text", "checksum", "ours"), [
    (set(), record("N"), f"{SHA}  N\n".encode(), True),
    (set(), record("N"), None, True),  # killed between its two records
    ({"N"}, record("N"), None, False),  # its file is there: not an orphan
    (set(), None, f"{SHA}  N\n".encode(), False),  # a lone .sha256: any backup's line
    (set(), record("N"), f"{'cd' * 32}  N\n".encode(), False),  # not the line written with it
    (set(), record("M"), None, False),  # names another file
    (set(), record("N", kind="backup", strategy="engine"), None, False),  # a backup's
    (set(), record("N", adopted={"when": "x", "by": "backup.adopt"}), None, False),
    (set(), record("N", sha256="x"), None, False),
    (set(), b"{not json", None, False),
    (set(), b"[]", None, False),
])
def test_which_orphan_records_are_the_replicas(entries, json_text, checksum, ours):
    assert rp.replica_orphan("N", entries, json_text, checksum) is ours


def test_the_next_run_removes_only_its_own_orphan_records(replica_world, tmp_path):
    """A kill -9 between the records and the file (``engine.publish`` links them first)
    leaves NAME.json and NAME.sha256 of a file that never appeared: the state made here by
    removing a replica backup's file. The next --from-replica removes those records, and
    nothing of another backup's (an engine backup's records, a lone .sha256)."""
    world = replica_world
    rw.lose_rows(world)
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups)}
    first = helpers.run_here("restore", "--from-replica", "--yes", cwd=world.tmp, env=env)
    assert first.returncode == 0, first
    ours = one_new_backup(backups, set())
    (backups / ours).unlink()
    other = engine.create_backup(world.db, backups, clock=lambda: NOW).name
    (backups / other).unlink()  # an engine backup's records without their file: kept
    lone = occupy(backups, f"{name_at(-1)}.sha256")
    kept = {entry: (backups / entry).read_bytes()
            for entry in (f"{other}.json", f"{other}.sha256", *lone)}
    again = helpers.run_here("restore", "--from-replica", "--yes", cwd=world.tmp, env=env)
    assert again.returncode == 0, again
    assert f"Removed {ours}'s records" in again.stderr
    # the same point is the same name (a backup is dated by its data): the orphan records
    # went, and this run's backup took the freed name whole, its file with its own records
    assert engine.verify_backup(backups / ours).ok  # publish never writes over a record
    untouched(backups, kept)
