"""Every folder the tool creates for backups is private (0700), whichever task creates it
(review-op 12; docs/backups.md: "the folders are created 0700"): `backup.download` into a
missing backup.dir made backup.dir 0755 around its private `fly-<app>` folder, while
`invoke backup` made its folder 0700. Missing folders above it are made 0700 as well;
an existing folder keeps its mode."""

from __future__ import annotations

import stat

from ops import engine
from tests import helpers
from tests.fake_production import APP, make_prod


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_download_and_backup_make_their_missing_folders_0700(fly_world, tmp_path):
    prod = make_prod(tmp_path, fly_world)
    made = engine.create_backup(prod.db, prod.remote_dir)
    fetched_into = tmp_path / "new" / "dl"
    local_into = tmp_path / "other" / "bk"
    helpers.make_wal_db(prod.cwd / "data" / "steps.db")
    fetched, backed_up = helpers.run_parallel([
        prod.later("backup.download", "latest", env={"INVOKE_BACKUP_DIR": str(fetched_into)}),
        prod.later("backup", env={"INVOKE_BACKUP_DIR": str(local_into)}),
    ])  # fmt: skip
    assert fetched.returncode == 0, fetched
    assert backed_up.returncode == 0, backed_up
    assert (fetched_into / f"fly-{APP}" / made.name).is_file()
    for folder in (fetched_into.parent, fetched_into, fetched_into / f"fly-{APP}",
                   local_into.parent, local_into):
        assert mode(folder) == 0o700, folder


def test_an_existing_folder_above_keeps_its_mode(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    mine.chmod(0o755)
    engine.mkdir_private(mine / "a" / "b")
    assert (mode(mine), mode(mine / "a"), mode(mine / "a" / "b")) == (0o755, 0o700, 0o700)
    engine.mkdir_private(mine / "a" / "b")  # already there: nothing changes
    assert mode(mine / "a" / "b") == 0o700
