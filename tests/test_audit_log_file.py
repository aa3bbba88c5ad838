"""The audit log (the one file the tool appends to) is never written through a symlink,
a hard link, a FIFO or a directory: a planted ``data/deploys.jsonl -> steps.db`` must not
append JSON to the live database. Refused in one line before anything happens."""

from __future__ import annotations

import os

import pytest

from ops import engine
from tests import helpers
from tests.fake_production import Site
from tests.helpers import assert_one_line_error


def plant(log, db, how: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    if how == "symlink":
        log.symlink_to(os.path.relpath(db, log.parent))
    elif how == "hard link":
        os.link(db, log)
    else:
        os.mkfifo(log)


@pytest.mark.parametrize("how", ["symlink", "hard link", "fifo"])
def test_a_restore_never_appends_through_a_planted_audit_log(tmp_path, wal_db, backup_dir,
                                                               run_invoke, how):
    engine.create_backup(wal_db, backup_dir)
    log = tmp_path / "data" / "deploys.jsonl"
    plant(log, wal_db, how)
    before, files = helpers.sha256(wal_db), helpers.snapshot(backup_dir, (".backup.lock",))
    result = run_invoke("restore", "--yes", timeout=30)
    assert_one_line_error(result, 2, contains="cannot write the audit log")
    assert "refusing to write through it" in result.error_lines[0]
    assert helpers.sha256(wal_db) == before
    assert helpers.snapshot(backup_dir, (".backup.lock",)) == files  # not even a safety backup
    assert os.path.lexists(log) and (how != "symlink" or log.is_symlink())


@pytest.mark.parametrize("how", ["symlink", "hard link"])
def test_a_deploy_never_appends_through_a_planted_audit_log(site: Site, how):
    plant(site.audit_log, site.db, how)
    before = helpers.sha256(site.db)
    result = site.run("deploy")
    line = assert_one_line_error(result, 10, contains="cannot write the audit log",
                                 strict=False)
    assert "refusing to write through it" in line
    assert helpers.sha256(site.db) == before
    assert site.world.calls() == []  # nothing happened, so nothing went unrecorded
