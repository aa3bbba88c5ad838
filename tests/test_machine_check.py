"""`invoke machine.check` without --production or --host: this computer, whose tasks run
in the toolkit's own Python, in-process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops import machine
from tests import helpers


def check_here(tmp_path, **env):
    """``invoke machine.check --json`` here, with a PATH of a few shell tools only."""
    helpers.make_wal_db(tmp_path / "data" / "steps.db")
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sh", "sed", "tr", "head", "wc", "df", "dirname", "cat"):
        (tools / tool).symlink_to(shutil.which(tool))
    return helpers.run_invoke("machine.check", "--json", cwd=tmp_path,
                              env={"PATH": str(tools), "COLUMNS": "80", **env})


def test_a_local_check_reports_the_toolkits_own_python_not_the_paths(tmp_path):
    """A PATH without python3 changes nothing for local tasks: they never start one. The
    check said "python3 no" there, and named another engine for the restore."""
    result = check_here(tmp_path)
    assert result.returncode == 0, result
    report = result.json()
    assert report["facts"]["python3"] == ".".join(map(str, sys.version_info[:3]))
    assert report["facts"]["python3_own"] is True and report["facts"]["python3_problem"] is None
    assert report["facts"]["sqlite3"] is None and report["facts"]["node"] is None
    assert set(report["engines"].values()) == {"python3"} and report["cannot"] == {}
    assert "this toolkit's own: local tasks run in it" in result.stderr


def test_a_machines_python3_is_never_called_the_toolkits_own():
    facts = machine.parse([["python3", "3.12.3", "3.45.1", "1"]])
    assert facts["python3"] == "3.12.3" and facts["python3_own"] is False
    assert "this toolkit's own" not in machine.render(facts, machine.plan(facts))[0]


def test_a_local_check_reports_the_litestream_the_replica_tasks_run(tmp_path):
    """Not on PATH, the replica tasks run the one pip put beside this Python (and
    replica.litestream when set): the check said "litestream no" for it."""
    beside = Path(sys.executable).parent / "litestream"
    version = subprocess.run([beside, "version"], capture_output=True, text=True, check=True)
    result = check_here(tmp_path)
    assert result.returncode == 0, result
    assert result.json()["facts"]["litestream"] == version.stdout.split()[0]
    assert f"litestream {version.stdout.split()[0]}" in result.stderr


@pytest.mark.parametrize("setting", ["/no/such/litestream", "false"])
def test_a_litestream_setting_that_cannot_run_is_reported_as_none(tmp_path, setting):
    if setting == "false":  # runs, says nothing, exits 1
        setting = shutil.which("false")
    result = check_here(tmp_path, INVOKE_REPLICA_LITESTREAM=setting)
    assert result.returncode == 0, result
    assert result.json()["facts"]["litestream"] is None
    assert "litestream no" in result.stderr
