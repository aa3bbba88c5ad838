"""`invoke restore --from-replica` dates its backup by its data: the name (and so
``created``) is the time litestream gave the point reached, clamped to now when that time
is missing, unparsable, before 1970 or ahead of now (a wrong clock), then the first free
second from there. Was: the run's start, so a `--timestamp` in the past made a backup of
old data the newest one: `latest`, fresh for backup.status and retention, even when the
restore was then declined, so a later plain `invoke restore --yes` put the old point
back. Real litestream and moto, real WAL databases; in-process runs (helpers.run_here)."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from ops import engine, poll
from ops import replica as rp
from tests import helpers
from tests.replica_world import (  # noqa: F401
    LITESTREAM,
    World,
    lose_rows,
    moto_endpoint,
    replica_world,
)

NOW = dt.datetime(2026, 12, 7, 4, 30, 0, tzinfo=dt.UTC)


# ---------------------------------------------------------------- the pure rule

@pytest.mark.parametrize(("point", "dated"), [
    ("2026-12-06T22:15:03Z", dt.datetime(2026, 12, 6, 22, 15, 3, tzinfo=dt.UTC)),
    ("2026-12-07T06:30:00+02:00", dt.datetime(2026, 12, 7, 4, 30, tzinfo=dt.UTC)),  # = now
    ("2026-12-07T04:30:01Z", NOW),  # a second ahead: a clock that is wrong
    ("2099-01-01T00:00:00Z", NOW),
    ("0001-01-01T00:00:00Z", NOW),  # no data is that old (and no name holds year 1)
    ("1969-12-31T23:59:59Z", NOW),
    ("not a time", NOW),
    ("", NOW),
    (None, NOW),
    (5, NOW),
])
def test_a_replica_backup_is_dated_by_its_point_never_after_now(point, dated):
    assert rp.data_time(point, NOW) == dated


# ---------------------------------------------------------------- through the CLI

def replica_backup(folder: Path) -> tuple[engine.BackupFile, dt.datetime]:
    """The one backup in ``folder`` the replica made, and the point time its record names
    (``adopted.by``: "replica.restore TXID … (time)")."""
    (item,) = [item for item in engine.list_backups(folder) if item.kind == "adopted"]
    assert engine.verify_backup(item.path).ok
    record = json.loads((folder / f"{item.name}.json").read_text())
    point = re.fullmatch(r"replica\.restore TXID [0-9a-f]+ \((.+)\)", record["adopted"]["by"])
    return item, rp.parse_time(point[1])


def after(moment: dt.datetime, seconds: int) -> None:
    """Wait until the clock is ``seconds`` whole seconds past ``moment``'s."""
    poll.until(lambda: dt.datetime.now(dt.UTC).replace(microsecond=0)
               >= moment.replace(microsecond=0) + dt.timedelta(seconds=seconds) or None,
               timeout=10, interval=0.05,
               expired=lambda *_: AssertionError(f"the clock never passed {moment}"))


def two_points(world: World) -> tuple[rp.Position, str]:
    """The replica holds an older point and, seconds later, a newer one; litestream is
    then stopped. The older point, and a --timestamp that lands on it (a second after
    it: litestream's file times are finer than the whole seconds it lists)."""
    proc = world.start()
    first = newest(world)
    after(first.time, 2)
    conn = sqlite3.connect(world.db)
    conn.execute("DELETE FROM users WHERE id > 10")
    conn.commit()
    conn.close()
    world.caught_up(first.txid + 1)
    world.kill(proc)
    assert newest(world).time >= first.time + dt.timedelta(seconds=2)
    at = (first.time + dt.timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    return first, at


def newest(world: World) -> rp.Position:
    done = world.litestream("ltx", "-level", "all", "-json", "-config", str(world.render()),
                            str(world.db))
    return rp.newest(json.loads(done.stdout))


def test_a_past_timestamp_s_backup_is_older_than_a_later_backup_which_stays_latest(
        replica_world, tmp_path):
    world = replica_world
    first, at = two_points(world)
    backups = tmp_path / "backups"
    later = engine.create_backup(world.db, backups)  # made after both points
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups)}
    result = helpers.run_here("restore", "--from-replica", "--timestamp", at, "--yes",
                              cwd=world.tmp, env=env)
    assert result.returncode == 0, result
    item, point = replica_backup(backups)
    assert item.name == engine.backup_name(point)  # its data's second (free here)
    assert point <= first.time + dt.timedelta(seconds=1)
    assert engine.parse_iso(item.created) < engine.parse_iso(later.created)
    assert engine.resolve_backup(backups, "latest")[0].name == later.name  # was: the replica's
    plan = helpers.run_here("restore", "--dry-run", cwd=world.tmp, env=env)
    assert plan.returncode == 0, plan
    assert f"latest is {later.name}" in plan.stdout + plan.stderr


def test_a_declined_restore_leaves_the_later_backup_latest(replica_world, tmp_path):
    world = replica_world
    first, at = two_points(world)
    backups = tmp_path / "backups"
    later = engine.create_backup(world.db, backups)
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups)}
    held = world.db.read_bytes()
    # declined at the question (without a terminal it is now refused before any work)
    code, shown = helpers.on_terminal(["restore", "--from-replica", "--timestamp", at],
                                      cwd=world.tmp, env=env, answer="no")
    assert code == 1 and "not confirmed" in shown, shown
    assert world.db.read_bytes() == held
    item, _ = replica_backup(backups)  # kept, as the docs say, but dated by its data
    assert engine.parse_iso(item.created) < engine.parse_iso(later.created)
    status = helpers.run_here("backup.status", "--json", cwd=world.tmp, env=env)
    assert later.name in status.stdout, status
    plan = helpers.run_here("restore", "--dry-run", cwd=world.tmp, env=env)
    assert plan.returncode == 0, plan
    assert f"latest is {later.name}" in plan.stdout + plan.stderr  # was: the replica's


def test_the_newest_point_is_dated_at_its_own_time(replica_world, tmp_path):
    world = replica_world
    lose_rows(world)
    point = newest(world)
    after(point.time, 2)  # the run's clock is seconds past the point: the old name differs
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups)}
    plan = helpers.run_here("restore", "--from-replica", "--dry-run", "--json",
                            cwd=world.tmp, env=env)
    assert plan.returncode == 0, plan
    result = helpers.run_here("restore", "--from-replica", "--yes", cwd=world.tmp, env=env)
    assert result.returncode == 0, result
    item, reached = replica_backup(backups)
    assert item.name == engine.backup_name(reached)
    assert abs((reached - point.time).total_seconds()) <= 1
    assert json.loads(plan.stdout)["backup"] == item.name  # the plan named it the same way
    assert engine.resolve_backup(backups, "latest")[0].name == item.name


FUTURE_PLAN = """#!{python}
# litestream, but its restore plan dates every file in 2099 (a clock far ahead)
import json, os, subprocess, sys
args = sys.argv[1:]
if args[:1] == ["restore"] and "-dry-run" in args:
    done = subprocess.run([{real!r}, *args], capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        sys.exit(done.returncode)
    plan = json.loads(done.stdout)
    for item in plan.get("files") or []:
        item["timestamp"] = "2099-01-01T00:00:00Z"
    print(json.dumps(plan))
    sys.exit(0)
os.execv({real!r}, [{real!r}, *args])
"""


def test_a_point_dated_in_the_future_is_clamped_to_now(replica_world, tmp_path):
    world = replica_world
    lose_rows(world)
    wrapper = tmp_path / "litestream-ahead"
    wrapper.write_text(FUTURE_PLAN.format(python=sys.executable, real=LITESTREAM))
    wrapper.chmod(0o755)
    backups = tmp_path / "backups"
    env = {**world.env, "INVOKE_BACKUP_DIR": str(backups),
           "INVOKE_REPLICA_LITESTREAM": str(wrapper)}
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = helpers.run_here("restore", "--from-replica", "--yes", cwd=world.tmp, env=env)
    assert result.returncode == 0, result
    item, point = replica_backup(backups)
    assert point.year == 2099  # the time litestream gave, kept in its record
    created = engine.parse_iso(item.created)
    assert started <= created <= dt.datetime.now(dt.UTC)  # was: named 2099, never latest
    assert engine.resolve_backup(backups, "latest")[0].name == item.name
