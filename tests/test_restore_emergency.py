"""`restore --production` while the app is emergency-stopped (README "Emergency"): the
machine runs `sleep`, nothing of the app is running. The restore works, never restarts
the machine (that would only bring `sleep` back) nor waits for /health (nothing
answers), and says to run `invoke emergency.resume`. And what emergency.stop writes on
the volume is never written through a planted name."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ops import emergency, engine
from tests import helpers
from tests.fake_production import restore_label as label
from tests.flyctl_double import DEFAULT_MACHINE_ID

SLEEP = ["sleep", "2147483647"]


@pytest.mark.parametrize("tools", ["python3", "sqlite3"])
def test_restore_while_emergency_stopped_neither_restarts_nor_waits(site, tools):
    if tools == "sqlite3":
        site.world.remove_machine_tools("python3")
    stopped = site.run("emergency.stop", "--yes")
    assert stopped.returncode == 0, stopped
    made = engine.create_backup(site.db, site.backups)
    conn = sqlite3.connect(site.db)
    conn.execute("DELETE FROM steps WHERE id > 1000")
    conn.commit()
    conn.close()
    site.world.clear_calls()
    polls = site.health.requests

    result = site.run("restore", "--production", "--yes", "--json")

    assert result.returncode == 0, result
    assert [label(argv) for argv in site.world.calls()] == [
        "version --json", "volumes list", "machine list",  # one: it says it is stopped
        "ssh list", "ssh counts", "ssh restore"]  # no `machine restart`
    assert site.health.requests == polls  # /health was not awaited
    assert engine.describe_file(site.db, live=True)[1] == engine.describe_file(made.path)[1]
    assert site.world.machine(DEFAULT_MACHINE_ID)["config"]["init"]["cmd"] == SLEEP
    assert emergency.is_stopped(site.world.machine(DEFAULT_MACHINE_ID))
    assert "invoke emergency.resume" in result.stderr
    record = result.json()
    assert record["outcome"] == "ok" and record["emergency_stopped"] is True
    assert [(s["step"], s["outcome"]) for s in record["steps"]][-2:] == [
        ("restart", "skipped"), ("health", "skipped")]
    assert site.audit()[-1]["kind"] == "restore"


def test_emergency_stop_never_writes_its_marker_through_a_planted_name(site):
    """The marker beside the database is written to a fresh temporary, then renamed: a
    symlink to the database at the old fixed temporary name, or at the marker's own name,
    leaves the database byte-identical."""
    marker = site.db.parent / emergency.MARKER
    planted = [marker.with_name(marker.name + ".tmp"), marker]
    for link in planted:
        link.symlink_to(site.db.name)
    before = helpers.sha256(site.db)
    stopped = site.run("emergency.stop", "--yes")
    assert stopped.returncode == 0, stopped
    assert helpers.sha256(site.db) == before
    assert planted[0].is_symlink()  # never used
    assert not marker.is_symlink() and json.loads(marker.read_text())["machine"] \
        == DEFAULT_MACHINE_ID
    assert not list(site.db.parent.glob(".ops-emergency.??????"))
