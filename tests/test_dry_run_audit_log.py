"""A dry run fails where its run refuses an audit log it cannot write (s20-dry, issue 22's
rule: a dry run gives the run's verdict before anything changes). Every mutating task
refuses to start when its audit line could not be written (exit 2; deploy's lock step,
exit 10); their dry runs passed (exit 0). The dry run now checks the log as the run does,
creating nothing (``audit.check_writable(create=False)``)."""

from __future__ import annotations

import pytest

from ops import engine
from tests.fake_production import error_line

LOG = "INVOKE_DEPLOY_AUDIT_LOG"
CASES = {  # task and arguments; the run's flag that skips its question
    "restore --production": (("restore", "--production"), ("--yes",)),
    "emergency.stop": (("emergency.stop",), ("--yes",)),
    "emergency.resume": (("emergency.resume",), ("--yes",)),
    "restore.volume": (("restore.volume", "--snapshot", "latest"), ("--yes",)),
    "deploy": (("deploy",), ()),
}


def unwritable(tmp_path, how: str) -> str:
    """An audit log the run refuses: a directory in its name, or a symlink."""
    path = tmp_path / "audit" / "deploys.jsonl"
    path.parent.mkdir()
    if how == "directory":
        path.mkdir()
    else:
        (tmp_path / "elsewhere.jsonl").write_text("")
        path.symlink_to(tmp_path / "elsewhere.jsonl")
    return str(path)


@pytest.mark.parametrize("how", ["directory", "symlink"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_dry_run_refuses_an_audit_log_the_run_refuses(site, tmp_path, case, how):
    args, yes = CASES[case]
    engine.create_backup(site.db, site.remote_dir)  # something to restore
    env = {LOG: unwritable(tmp_path, how)}
    dry = site.run(*args, "--dry-run", env=env)
    real = site.run(*args, *yes, env=env)
    assert real.returncode in (2, 10), real
    assert dry.returncode == real.returncode, (dry, real)
    assert "cannot write the audit log" in error_line(real), real
    assert "cannot write the audit log" in dry.stderr, dry
    if case != "deploy":  # deploy's dry run says it among its preflight's problems
        assert error_line(dry) == error_line(real)
    if how == "symlink":  # nothing was written through it
        assert (tmp_path / "elsewhere.jsonl").read_text() == ""


def test_a_local_restores_dry_run_refuses_it_too(wal_db, backup_dir, tmp_path, run_invoke):
    engine.create_backup(wal_db, backup_dir)
    env = {LOG: unwritable(tmp_path, "directory")}
    dry = run_invoke("restore", "--dry-run", env=env)
    real = run_invoke("restore", "--yes", env=env)
    assert dry.returncode == real.returncode == 2, (dry, real)
    assert error_line(dry) == error_line(real)


def test_the_dry_run_creates_no_log_and_no_folder(wal_db, backup_dir, tmp_path, run_invoke):
    engine.create_backup(wal_db, backup_dir)
    log = tmp_path / "new" / "folder" / "deploys.jsonl"
    dry = run_invoke("restore", "--dry-run", env={LOG: str(log)})
    assert dry.returncode == 0, dry
    assert not (tmp_path / "new").exists()  # a dry run writes nothing, not even the folder
