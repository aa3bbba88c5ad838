"""A step about backups names their folder, never the database, when the folder is elsewhere
(issue 20 #8), through the real CLI."""

from __future__ import annotations

import shutil


def test_adopts_header_names_the_backup_folder_not_the_database(wal_db, tmp_path, run_invoke):
    folder = tmp_path / "elsewhere" / "backups"
    folder.mkdir(parents=True)
    shutil.copy(wal_db, folder / "steps-2020-01-01T00-00-00.db")  # an old-script backup
    env = {"INVOKE_BACKUP_DIR": str(folder)}
    for args in (("backup.adopt", "all", "--dry-run"), ("backup.adopt", "all")):
        result = run_invoke(*args, env=env)
        assert result.returncode == 0, result.stderr
        header = next(line for line in result.stderr.splitlines() if " adopt all" in line)
        assert f"adopt all in {folder}" in header and "steps.db" not in header, header
