"""A check that could not run (sqlite3 killed by the OOM killer, SQLite out of memory, an
I/O error, a full disk) is no verdict on the backup: it must not read as "backup X
failed verification" (exit 5) with "restore another backup instead", which loses the
writes since when the chosen backup was sound (review-break s19 #2)."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from ops.engine import check_could_not_run, check_failure_kind
from tests import helpers
from tests.fake_production import changed_after_backup, site  # noqa: F401  (a fixture)


@pytest.mark.parametrize(("exc", "not_run", "kind"), [
    (MemoryError(), True, "check_failed"),
    (sqlite3.OperationalError("disk I/O error"), True, "check_failed"),
    (sqlite3.OperationalError("database or disk is full"), True, "no_space"),
    (sqlite3.OperationalError("unable to open database file"), True, "check_failed"),
    (sqlite3.OperationalError("interrupted"), True, "check_failed"),
    (sqlite3.DatabaseError("database disk image is malformed"), False, None),
    (sqlite3.DatabaseError("file is not a database"), False, None),
])
def test_which_failures_are_the_check_not_running(exc, not_run, kind):
    assert check_could_not_run(exc) is not_run
    if not_run:
        assert check_failure_kind(exc) == kind


def test_a_real_corrupt_file_is_still_a_verdict(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x01" * 4000)
    with pytest.raises(sqlite3.DatabaseError) as raised:
        sqlite3.connect(bad).execute("PRAGMA integrity_check").fetchall()
    assert not check_could_not_run(raised.value)


DIES = {  # what the machine's sqlite3 does on the chosen backup's integrity_check
    "killed": "kill -9 $$",
    "out of memory": "echo 'Error: out of memory' >&2; exit 1",
    "disk i/o": "echo 'Error: disk I/O error' >&2; exit 1",
}


@pytest.mark.parametrize("how", list(DIES))
def test_a_check_that_died_on_the_machine_is_not_a_damaged_backup(how, site, tmp_path):  # noqa: F811
    site.world.remove_machine_tools("python3")  # the sqlite3-only engine
    made = changed_after_backup(site)
    wrapper = tmp_path / "sqlite3-wrapper"
    wrapper.write_text("#!/bin/sh\ncase \"$*\" in *immutable=1*integrity_check*) "
                       f"{DIES[how]};; esac\nexec {shutil.which('sqlite3')} \"$@\"\n")
    wrapper.chmod(0o755)
    site.world.remove_machine_tools("sqlite3")
    site.world.add_machine_tool("sqlite3", wrapper)
    before = helpers.content(site.db)
    result = site.run("restore", made.name, "--production", "--yes", timeout=60)
    assert result.returncode == 1, result
    assert "could not run" in result.stderr and "was not judged" in result.stderr, result.stderr
    assert "failed verification" not in result.stderr, result.stderr
    assert "restore another backup" not in result.stderr, result.stderr
    assert helpers.content(site.db) == before
