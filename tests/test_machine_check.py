"""`invoke machine.check` without --production or --host: this computer, whose tasks run
in the toolkit's own Python, in-process."""

from __future__ import annotations

import shutil
import sys

from ops import machine
from tests import helpers


def test_a_local_check_reports_the_toolkits_own_python_not_the_paths(tmp_path):
    """A PATH without python3 changes nothing for local tasks: they never start one. The
    check said "python3 no" there, and named another engine for the restore."""
    helpers.make_wal_db(tmp_path / "data" / "steps.db")
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sh", "sed", "tr", "head", "wc", "df", "dirname", "cat"):
        (tools / tool).symlink_to(shutil.which(tool))
    result = helpers.run_invoke("machine.check", "--json", cwd=tmp_path,
                                env={"PATH": str(tools), "COLUMNS": "80"})
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
