"""A `restore --from FILE --production` whose restore waits for its locks keeps its upload
however long it waits (s20 CLOSING: after an hour's wait a cleanup could remove it as
expired, `retention.UPLOAD_GRACE` from its `uploaded` stamp, and the restore exited 3).
The restore script holds its backup (a shared flock(2) on the file, ``remote.hold_backup``)
from before it waits to its end, and the cleanup's delete keeps a held file
(``remote.delete_script``), so a backup still needed is never deleted, and the restore
that then runs restores the uploaded file. Real processes: the CLI run, a lock holder,
a real `backup.cleanup --production`, on the flyctl double's machine. The hour is not
waited for: the upload's record is dated back two hours while its restore waits."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
from pathlib import Path

from ops import engine
from tests import helpers


def uploads(folder: Path) -> list[Path]:
    """The backups there recorded as kind ``upload`` (the file and its record both there)."""
    found = []
    for record in folder.glob("*.db.json"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(record.read_text()).get("kind") == "upload" and \
                    record.with_suffix("").exists():
                found.append(record.with_suffix(""))
    return found


def held_by_a_reader(path: Path) -> bool:
    """Whether /proc/locks lists a shared flock on ``path`` (False once it is gone)."""
    try:
        inode = f":{os.stat(path).st_ino} "
    except FileNotFoundError:
        return False
    return any("FLOCK" in line and "READ" in line and inode in line
               for line in Path("/proc/locks").read_text().splitlines())


def test_a_cleanup_while_the_restore_waits_keeps_its_upload_past_its_grace(served_prod,
                                                                           tmp_path):
    prod = served_prod
    local = helpers.make_wal_db(tmp_path / "here" / "other.db")
    with sqlite3.connect(local) as conn:
        conn.execute("DELETE FROM steps WHERE id > 100")
    day_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)  # never the name of the
    wanted = engine.create_backup(local, tmp_path / "here",  # backup made there below
                                  clock=lambda: day_ago).path
    assert prod.run("backup", "--production").returncode == 0  # one the cleanup stands on
    with helpers.file_lock_held(prod.remote_dir / engine.RESTORE_LOCK, tmp_path / "holder") \
            as (_, release):
        run = helpers.start_invoke("restore", "--production", "--from", str(wanted), "--yes",
                                   "--lock-wait", "120", cwd=prod.cwd, env=prod.env)
        (upload,) = helpers.wait_for(lambda: uploads(prod.remote_dir) or None, 60,
                                     what="the upload")
        helpers.wait_for(lambda: held_by_a_reader(upload), 60, what="the restore's hold")
        record = Path(f"{upload}.json")
        aged = json.loads(record.read_text())  # two hours pass while it waits
        aged["uploaded"] = engine.iso(dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
        record.write_text(json.dumps(aged) + "\n")
        cleanup = prod.run("backup.cleanup", "--keep", "1", "--production")
        assert cleanup.returncode == 0, cleanup
        assert upload.exists() and record.exists(), cleanup  # was: removed as expired
        assert f"kept {upload.name}: a restore on the machine holds it" in " ".join(
            cleanup.stderr.split()), cleanup.stderr
        release.touch()
        result = run.finish(timeout=120)
    assert result.returncode == 0, result  # was: exit 3, its upload gone
    with sqlite3.connect(prod.db) as conn:
        assert conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 100
    assert not held_by_a_reader(upload)  # the hold ended with its script

