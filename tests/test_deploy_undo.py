"""`invoke deploy.undo` (issue 23 #2): a deploy whose migration destroyed data, caught by
the data guard (exit 16), undone by one command through the real CLI against the flyctl
double: the app's writes stop, a safety backup keeps what was written since, the
pre-deploy backup is restored with its proof, the previous release's image is deployed,
the app resumes, /health and the data guard pass. The dry run's plan is the run's
program: the flyctl calls a run makes are the plan's commands, in its order."""

from __future__ import annotations

import json
import signal
import sqlite3

from ops.errors import ExitCode
from tests import helpers, node_env
from tests.fake_production import APP, MID
from tests.helpers import run_parallel

DELETES = "DELETE FROM steps WHERE id > 1000;"  # 2,000 of 3,000 rows
BY_HAND = "To finish by hand, run from the failed step on:"


def rows(db, table: str = "steps") -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def bad_deploy(site, env=None) -> dict:
    """`invoke deploy` of a release whose migration deletes rows: caught, exit 16."""
    site.world.deploy_migrates(site.db, DELETES)
    result = site.run("deploy", env=env)
    assert result.returncode == ExitCode.DATA_LOST, result
    record = site.audit()[-1]
    assert rows(site.db) == 1000
    return record


def test_undo_puts_back_the_rows_and_the_previous_image_and_keeps_the_new_rows(site):
    deployed = bad_deploy(site)
    previous = deployed["previous_release"]
    result = site.run("deploy.undo", "--yes", "--json")
    assert result.returncode == 0, result
    assert rows(site.db) == 3000
    assert site.world.machine_image(MID) == previous["image"]
    undo = site.audit()[-1]
    assert undo["kind"] == "undo" and undo["outcome"] == "ok", undo
    assert undo["deploy"] == f"v{deployed['release']['version']}"
    assert undo["backup"] == deployed["backup"]["name"]
    assert undo["data"]["ok"] is True and undo["data"]["lost"] == []
    assert undo["written_since"]["steps"] == [3000, 1000]
    safety = site.backups / undo["safety_backup"]["name"]
    assert rows(safety) == 1000  # what the bad release left is kept
    machine = site.world.machine(MID)
    assert machine["state"] == "started" and not machine["config"].get("init", {}).get("cmd")
    assert not machine["config"]["metadata"].get("ops_emergency_original")
    assert not (site.db.parent / ".ops-emergency.json").exists()
    assert not site.machine_lock.exists()
