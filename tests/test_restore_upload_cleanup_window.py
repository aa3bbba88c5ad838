"""A cleanup on the server between `restore --from FILE --production` publishing the
upload and the server's restore taking its locks cannot remove it (issue 18's leftover,
the server side of tests/test_replica_cleanup_window.py). The upload is published under
the folder's backup lock recorded as kind ``upload``, which retention leaves alone until a
restore of it has begun (a safety backup names it: made under that restore's locks);
then it counts as any backup. Before, `backup.cleanup --keep 1` removed an older upload
in that window and the restore failed "not found" (exit 3). The cleanup is the real CLI
run right after the upload (``tests/hooks/sitecustomize.py``), on the flyctl double's
machine."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from ops import engine, retention
from tests import helpers
from tests.fake_production import days_ago

HOOKS = str(Path(__file__).parent / "hooks")


def dated_backup(folder: Path, when: dt.datetime, db: Path) -> str:
    """A recorded backup of ``db`` named as made at ``when``."""
    path = helpers.old_script_backup(folder, when, db)
    digest = helpers.sha256(path)
    Path(f"{path}.sha256").write_text(f"{digest}  {path.name}\n")
    Path(f"{path}.json").write_text(json.dumps(
        {"name": path.name, "size": path.stat().st_size, "sha256": digest, "check": "integrity",
         "source": str(db)}) + "\n")
    return path.name


def test_a_cleanup_in_the_window_leaves_the_upload_the_restore_takes(served_prod, tmp_path):
    prod = served_prod  # its /health answers: the restore restarts the machine, waits for it
    newer = [dated_backup(prod.remote_dir, days_ago(age), prod.db) for age in (2, 1)]
    upload = dated_backup(tmp_path / "here", days_ago(5), prod.db)  # older than both
    output = tmp_path / "cleanup.txt"
    # the window: the upload published there, the restore there not begun; a real
    # `backup.cleanup --keep 1 --production` runs in it, to its end
    hook = {"wrap": "ops.targets.scripted:ScriptedTarget.upload", "when": "after",
            "run": {"args": ["--search-root", str(helpers.REPO_ROOT), "backup.cleanup",
                             "--keep", "1", "--production"], "output": str(output)}}
    path = os.pathsep.join(filter(None, [HOOKS, os.environ.get("PYTHONPATH")]))
    result = prod.run("restore", "--production", "--from", str(tmp_path / "here" / upload),
                      "--yes", env={"PYTHONPATH": path, "OPS_TEST_HOOK": json.dumps(hook)})
    cleanup = output.read_text()
    assert cleanup.endswith("exit 0\n") and "removed 1, kept 2" in cleanup, cleanup
    assert newer[0] not in prod.remote_backups()  # the cleanup ran: the older one went
    assert result.returncode == 0, result  # was: exit 3, the uploaded backup gone
    # the restore has begun (its safety backup names the upload): now it counts as any
    assert upload in retention.restores_begun(engine.list_backups(prod.remote_dir))
    after = prod.run("backup.cleanup", "--keep", "1", "--production")
    assert after.returncode == 0, after
    assert upload not in prod.remote_backups()


def test_retention_leaves_an_upload_until_a_restore_of_it_begins():
    """The rule as data: an upload is neither counted nor removed until a safety
    backup's record names it; then it is counted like any backup."""

    def item(name: str, kind: str = "backup", restore: dict | None = None):
        return engine.BackupFile(name=name, path=name, created=name[6:25], size=1,
                                 kind=kind, restore=restore)

    upload = item("steps-2026-01-01T00-00-00.db", "upload")
    newer = [item("steps-2026-01-02T00-00-00.db"), item("steps-2026-01-03T00-00-00.db")]
    decisions = retention.plan_retention([upload, *newer], 1)
    assert {d.name: d.reason for d in decisions}[upload.name] == retention.UPLOAD
    assert retention.to_remove(decisions) == [newer[0].name]
    safety = item("steps-2026-01-04T00-00-00.db", "safety",
                  {"when": "2026-01-04T00:00:00Z", "backup": upload.name})
    decisions = retention.plan_retention([upload, *newer, safety], 1)
    assert retention.to_remove(decisions) == [newer[0].name, upload.name]
