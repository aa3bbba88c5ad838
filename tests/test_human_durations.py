"""Every time span printed for a person reads as ui.human_age / human_seconds writes it
(``1h30m``, ``3d04h``), never raw seconds (``5400s``, ``259200.0 seconds``); JSON keeps
its numbers (issue 22 leftover 3)."""

from __future__ import annotations

import datetime as dt

import pytest

from ops import replica as rp

NOW = dt.datetime(2026, 12, 6, 22, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("ahead", "shown"), [(5400, "1h30m"), (3 * 86400 + 4 * 3600, "3d04h"),
                                               (125, "2m05s")])
def test_the_replicas_clock_skew_reads_as_a_person_writes_it(ahead, shown):
    future = rp.Position(txid=20, time=NOW + dt.timedelta(seconds=ahead))
    why = rp.lag_unknown(25, future, NOW)
    assert f", {shown} after now (2026-12-06T22:00:00Z): a clock is wrong" in why, why
    when = (NOW + dt.timedelta(seconds=ahead)).isoformat().replace("+00:00", "Z")
    report = rp.drill_report({"reached": {"txid": "000000000000000a", "time": when}}, NOW)
    assert f", {shown} after now: a clock is wrong" in report["warning"]
    assert report["age_seconds"] is None  # the number stays a number where there is one


def test_a_restore_landing_before_its_timestamp_says_by_how_much(monkeypatch):
    """``replica.restore --timestamp``: the gap as a person reads it; the JSON report's
    ``landed_before_seconds`` stays the number."""
    from ops.commands import replica as command
    from ops.ui import UI

    said = []
    monkeypatch.setattr(UI, "info", lambda self, message: said.append(message))
    report = {"reached": {"txid": "000000000000000a", "time": "2026-12-06T20:30:00Z"},
              "tables": {"steps": 3}, "landed_before_seconds": 5400.0}
    monkeypatch.setattr(command, "restored", lambda *args, **kwargs: (report, "quick"))
    command.restore_replica(None, "/tmp/nowhere/out.db", "2026-12-06T22:00:00Z", None,
                            True, False, False)
    assert said == ["Restored /tmp/nowhere/out.db: TXID 000000000000000a "
                    "(2026-12-06T20:30:00Z, 1h30m before --timestamp); quick check ok; "
                    "3 rows in 1 tables"], said
    assert report["landed_before_seconds"] == 5400.0
