"""A missing or non-SQLite live database is named once in the restore's refusal and in
the dry run's warning (op #9 of the s18 review: `the live database data/steps.db is
missing (data/steps.db does not exist)`), here and on the machine."""

from __future__ import annotations

import pytest

from ops import engine
from tests.helpers import assert_one_line_error

pytestmark = pytest.mark.cli_in_process


def broken(db, how: str) -> None:
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    if how == "not sqlite":
        db.write_text("notes, not a database\n")


@pytest.mark.parametrize("how,state,why", [("missing", "missing", "no file has that name"),
                                           ("not sqlite", "corrupt", "not a SQLite database")])
def test_here_the_refusal_and_the_dry_run_name_it_once(wal_db, backup_dir, run_invoke,
                                                       how, state, why):
    engine.create_backup(wal_db, backup_dir)
    broken(wal_db, how)
    refused = run_invoke("restore", "--yes")
    line = assert_one_line_error(refused, 2, contains=f"is {state} ({why}): ", strict=False)
    assert line.count(wal_db.name) == 1, line
    plan = run_invoke("restore", "--dry-run")  # s20-dry: the run's refusal, no longer a warning
    assert assert_one_line_error(plan, 2, strict=False) == line, plan


@pytest.mark.parametrize("how,state,why", [("missing", "missing", "no file has that name"),
                                           ("not sqlite", "corrupt", "not a SQLite database")])
def test_on_the_machine_the_refusal_names_it_once(prod, how, state, why):
    made = engine.create_backup(prod.db, prod.remote_dir)
    broken(prod.db, how)
    refused = prod.run("restore", made.name, "--production", "--yes")
    line = assert_one_line_error(refused, 2, contains=f"is {state} ({why}): ", strict=False)
    assert line.count(prod.db.name) == 1, line
