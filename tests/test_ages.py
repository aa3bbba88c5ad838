"""Ages and waits read as a person reads them, to the two largest units, in the form a
duration is typed in (review-op s19 #7: "1.9m old" read as months): one formatter for
backup.list, backup.status, the restore's question and the step lines."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from ops import engine
from ops.config import parse_duration
from ops.ui import human_age, human_seconds

pytestmark = pytest.mark.cli_in_process


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0s"), (44.6, "44s"), (59.6, "59s"), (114, "1m54s"), (120, "2m"), (3599, "59m59s"),
    (7500, "2h05m"), (86399, "23h59m"), (90000, "1d01h"), (111 * 86400 + 7200, "111d02h"),
])
def test_an_age_has_two_whole_units(seconds, shown):
    assert human_age(seconds) == shown


@pytest.mark.parametrize("seconds", [45, 114, 7500, 90000, 3 * 86400])
def test_a_shown_age_can_be_typed_back_as_a_duration(seconds):
    assert parse_duration(human_age(seconds)) == pytest.approx(seconds, abs=1800)


def test_a_time_that_is_not_a_number_is_shown_not_raised():
    assert [human_age(x) for x in (float("nan"), float("inf"), -5)] == ["?", "?", "0s"]


def test_a_step_duration_from_a_minute_on_is_an_age():
    assert [human_seconds(s) for s in (0.44, 41.2, 59.7, 187)] == ["0.4s", "41s", "59s",
                                                                    "3m07s"]


def test_backup_list_and_status_say_minutes_and_seconds(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=100)  # 1m40s, read up to 19 s later
    name = engine.backup_name(old)
    for suffix in ("", ".sha256", ".json"):
        (backup_dir / (made.name + suffix)).rename(backup_dir / (name + suffix))
    listed = run_invoke("backup.list")
    assert listed.returncode == 0, listed
    row = next(line for line in listed.stderr.splitlines() if name in line)
    assert re.search(r" 1m[45]\ds", row) and ".7m" not in row and ".8m" not in row, row
    status = run_invoke("backup.status")
    assert status.returncode == 0, status
    assert re.search(rf"latest {name} \(1m[45]\ds", status.stderr), status
