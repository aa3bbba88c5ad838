"""An age over its limit never reads as the limit (review-op s20 #2, review-break s20 #6):
ages are truncated, never rounded up across a unit, the limit is shown as typed and how far
over; and every human duration goes through the one formatter (review-op s20 #3)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from ops import backups, engine
from ops import replica as rp
from ops import replica_hooks as rh
from ops.config import parse_duration
from ops.errors import ExitCode
from ops.ui import human_age, human_seconds

pytestmark = pytest.mark.cli_in_process


@pytest.mark.parametrize(("seconds", "shown"), [
    (84600, "23h30m"), (26 * 3600 + 29 * 60, "1d02h"), (2 * 86400 + 28 * 60, "2d"),
    (3599.9, "59m59s"), (3600 + 25, "1h"), (59.9, "59s"),
])
def test_an_age_is_truncated_never_rounded_up(seconds, shown):
    assert human_age(seconds) == shown


@pytest.mark.parametrize("seconds", [59.5, 3599.5, 84600, 86399, 7199, 172799, 93599])
def test_a_shown_age_is_never_more_than_the_age(seconds):
    assert parse_duration(human_age(seconds)) <= seconds


def report(age_seconds: float) -> dict:
    return {"hasBackups": True, "count": 1,
            "latest": {"name": "x.db", "created": "", "age": age_seconds * 1000}}


@pytest.mark.parametrize(("age", "typed", "says"), [
    (26 * 3600 + 20 * 60, "26h", "is 1d02h old (limit 26h, 20m over)"),
    (3600 + 25, "1h", "is 1h old (limit 1h, 25s over)"),
    (2 * 86400 + 20 * 60, "2d", "is 2d old (limit 2d, 20m over)"),
    (3600.2, "60m", "is 1h old (limit 60m, 1s over)"),  # over by less than a second: 1s
])
def test_a_stale_backup_says_the_limit_as_typed_and_how_far_over(age, typed, says):
    problem = backups.staleness(report(age), parse_duration(typed), typed)
    assert says in problem, problem


def test_backup_status_over_26h_says_how_late(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    name = engine.backup_name(dt.datetime.now(dt.UTC) - dt.timedelta(hours=26, minutes=20))
    for suffix in ("", ".sha256", ".json"):
        (backup_dir / (made.name + suffix)).rename(backup_dir / (name + suffix))
    stale = run_invoke("backup.status", "--max-age", "26h")
    assert stale.returncode == ExitCode.STALE, stale
    line = stale.stderr.strip().splitlines()[-1]
    # the run starts a moment after the backup's name was dated: "20m" or "20m03s" over
    assert re.search(r"is 1d02h old \(limit 26h, 20m(\d\ds)? over\)", line), line
    as_json = run_invoke("backup.status", "--max-age", "26h", "--json")
    assert isinstance(as_json.json()["latest"]["age"], int | float)


def test_replica_lag_is_a_duration_like_every_other():
    assert rp.staleness(7260.0, 3600) == "the replica is 2h01m behind (--max-lag 1h, 1h01m over)"
    assert rh.gate("fail", rh.Reading(lag=7260.0), 3600) == (
        "fail", "the replica is 2h01m behind (replica.max_lag 1h, 1h01m over)")
    assert rh.gate("warn", rh.Reading(lag=95.0), 3600) == ("ok", "replica lag 1m35s (max 1h)")


def test_a_duration_from_ten_seconds_on_is_an_age():
    assert [human_seconds(s) for s in (9.94, 95.3, 125.3, 312)] == ["9.9s", "1m35s", "2m05s",
                                                                   "5m12s"]
