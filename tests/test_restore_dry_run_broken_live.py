"""A local restore's dry run over a missing or corrupt live database fails as its run
does (review-break s20 #7): exit 2 with the run's own refusal, where it used to warn and
exit 0 (the server's dry run already did, s20-dry). With --app-stopped the run goes on,
so the dry run only says what the run will do."""

from __future__ import annotations

import pytest

from ops import engine
from ops.errors import ExitCode

pytestmark = pytest.mark.cli_in_process


def error_line(result) -> str:
    return next(line for line in result.stderr.splitlines() if line.startswith("Error:"))


@pytest.mark.parametrize("how", ["missing", "corrupt"])
def test_the_dry_run_refuses_what_the_run_refuses(wal_db, backup_dir, run_invoke, how):
    made = engine.create_backup(wal_db, backup_dir)
    for suffix in ("-wal", "-shm"):
        wal_db.with_name(wal_db.name + suffix).unlink(missing_ok=True)
    if how == "missing":
        wal_db.unlink()
    else:
        wal_db.write_bytes(b"junk, not SQLite " * 100)
    before = sorted(p.name for p in backup_dir.iterdir())
    dry = run_invoke("restore", made.name, "--dry-run")
    as_json = run_invoke("restore", made.name, "--dry-run", "--json")
    run = run_invoke("restore", made.name, "--yes")
    assert dry.returncode == run.returncode == ExitCode.USAGE, (dry, run)
    assert error_line(dry) == error_line(run), (dry, run)
    assert f"is {how}" in error_line(dry) and "--app-stopped" in error_line(dry)
    assert as_json.returncode == ExitCode.USAGE and as_json.json()["exit_code"] == 2
    assert sorted(p.name for p in backup_dir.iterdir()) == before  # nothing was made


def test_with_the_app_stopped_the_dry_run_says_what_the_run_will_do(wal_db, backup_dir,
                                                                     run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    for suffix in ("", "-wal", "-shm"):
        wal_db.with_name(wal_db.name + suffix).unlink(missing_ok=True)
    dry = run_invoke("restore", made.name, "--app-stopped", "--dry-run")
    assert dry.returncode == 0, dry
    assert "the real run restores into its place" in dry.stderr
