"""backup.cleanup --production (and --host) sweeps the hidden staged uploads a stopped
`restore --from` left on the server (``.upload-NAME.PID``, remote.upload_staging), as a
backup run there does: only one unwritten for engine.STAGED_AGE, a regular file of ours
with exactly our name; listed in its dry run, removed under the folder's backup lock
(issue 22 leftover 2). Locally the same rule (engine._leftover_entries)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from ops import engine, remote
from ops.errors import OpsError
from tests import helpers
from tests.fake_production import RESOLVE

NAME = "steps-2026-01-01T00-00-00.db"
STALE = f".upload-{NAME}.4242"  # a run killed an hour and more ago
YOUNG = f".upload-{NAME}.4243"  # one still being sent, or just stopped
NOBODY = 65534


def aged(path: Path, seconds: float) -> Path:
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def staged_folder(folder: Path) -> dict[str, Path]:
    """Every kind of hidden upload-like file: only ``stale`` is ours to sweep."""
    folder.mkdir(parents=True, exist_ok=True)
    old = engine.STAGED_AGE + 120
    outside = folder.parent / "outside.db"  # what a planted symlink points to
    outside.write_bytes(b"o" * 5)
    files = {"stale": folder / STALE, "young": folder / YOUNG,
             "theirs": folder / f".upload-{NAME}.4244",
             "hostile": folder / f".upload-{NAME}.1 2",
             "newline": folder / f".upload-{NAME}.1\n2",
             "not ours": folder / ".upload-notes.txt.1",
             "long pid": folder / f".upload-{NAME}.{'9' * 11}"}
    for key, path in files.items():
        path.write_bytes(b"u" * 7)
        aged(path, 600 if key == "young" else old)
    os.chown(files["theirs"], NOBODY, NOBODY)  # another user's (the tests run as root)
    link = folder / f".upload-{NAME}.4245"
    link.symlink_to(outside)
    aged(link, old)
    files["symlink"] = link
    return files


def sh_with_find(tmp_path: Path) -> str:
    """A machine with plain sh and find (which judges the age, as the backup's own sweep
    does; a machine without find has no file swept, nothing more)."""
    path = helpers.machine_path(tmp_path, python=False, sqlite=False)
    (Path(path.split(os.pathsep)[0]) / "find").symlink_to(shutil.which("find"))
    return path


def test_the_listing_names_only_a_stale_staged_upload_of_ours(tmp_path):
    folder = tmp_path / "b"
    staged_folder(folder)
    path = sh_with_find(tmp_path)
    entries = helpers.run_remote(remote.list_script(str(folder)), path).entries
    assert entries == [["staged", STALE, "7"]]


def test_the_removal_judges_each_again_under_the_lock(tmp_path):
    folder = tmp_path / "b"
    files = staged_folder(folder)
    path = sh_with_find(tmp_path)
    out = helpers.run_remote(remote.remove_staged_script(str(folder), [STALE, YOUNG]), path)
    assert out.entries == [["removed", STALE]]
    left = {p.name for p in folder.iterdir()}
    assert left == {p.name for key, p in files.items() if key != "stale"} | {engine.LOCK_NAME}
    assert (tmp_path / "outside.db").read_bytes() == b"o" * 5


def test_a_name_that_is_not_a_staged_upload_is_never_sent():
    for name in (".upload-x.1", f".upload-{NAME}.1; rm -rf /", "steps-2026-01-01T00-00-00.db",
                 f".upload-{NAME}.{'9' * 11}"):
        with pytest.raises(OpsError, match="not a staged upload's name"):
            remote.remove_staged_script("/data/backups", [name])


def test_cleanup_production_lists_then_removes_a_stale_staged_upload(prod):
    names = prod.seed(2, 1)
    files = staged_folder(prod.remote_dir)

    dry = prod.run("backup.cleanup", "--production", "--keep", "5", "--dry-run", "--json")
    assert dry.returncode == 0, dry
    assert dry.json()["leftovers"] == [{"name": STALE, "size": 7}]
    assert "would remove 1 (7 B): " + STALE in dry.stderr, dry.stderr
    assert files["stale"].exists()
    # the listing's sweep adds no call; the dry run of a cleanup that would remove something
    # looks at the locks its run takes (s21-left), as every other dry run does
    assert prod.flow() == [*RESOLVE, "ssh list", "ssh look-locks"]

    prod.world.clear_calls()
    real = prod.run("backup.cleanup", "--production", "--keep", "5", "--json")
    assert real.returncode == 0, real
    assert real.json()["leftovers"] == [{"name": STALE, "size": 7}]
    assert not files["stale"].exists() and not files["stale"].is_symlink()
    assert all(p.exists() or p.is_symlink() for key, p in files.items() if key != "stale")
    assert prod.remote_backups() == names
    assert prod.flow() == [*RESOLVE, "ssh list", "ssh cleanup-staged"]  # then retention's

    prod.world.clear_calls()
    again = prod.run("backup.cleanup", "--production", "--keep", "5", "--json")
    assert again.returncode == 0 and again.json()["leftovers"] == [], again
    assert prod.flow() == [*RESOLVE, "ssh list"]


def test_backup_list_production_warns_of_one_in_its_one_listing(prod):
    prod.seed(1)
    staged_folder(prod.remote_dir)
    listed = prod.run("backup.list", "--production")
    assert listed.returncode == 0, listed
    assert STALE in listed.stderr and "`invoke backup.cleanup --production` removes them" in (
        " ".join(listed.stderr.split())), listed.stderr  # pasted, it cleans the machine
    assert "restore --from upload" in " ".join(listed.stderr.split()), listed.stderr
    assert prod.flow().count("ssh list") == 1


def test_cleanup_here_keeps_another_users_staged_file(wal_db, backup_dir, run_invoke):
    engine.create_backup(wal_db, backup_dir)
    files = staged_folder(backup_dir)
    result = run_invoke("backup.cleanup", "--json")
    assert result.returncode == 0, result
    assert [item["name"] for item in result.json()["leftovers"]] == [STALE]
    assert not files["stale"].exists()
    assert files["theirs"].exists() and files["young"].exists() and files["symlink"].is_symlink()


def test_the_engines_own_sweep_follows_the_same_rule(tmp_path):
    """What a backup here (or python3 on the machine) sweeps as it runs."""
    folder = tmp_path / "b"
    files = staged_folder(folder)
    assert engine.remove_stale_temporaries(folder) == [STALE]
    assert all(p.exists() or p.is_symlink() for key, p in files.items() if key != "stale")


def test_cleanup_on_an_ssh_host_sweeps_it_too(host, run_invoke):
    """The real sshd: the same listing and removal over SSH (--host)."""
    env, addr = host["env"], host["addr"]
    made = run_invoke("backup", "--host", addr, "--json", env=env)
    assert made.returncode == 0, made.stderr
    files = staged_folder(host["dir"])
    dry = run_invoke("backup.cleanup", "--host", addr, "--dry-run", "--json", env=env)
    assert dry.returncode == 0 and dry.json()["leftovers"] == [{"name": STALE, "size": 7}], dry
    assert files["stale"].exists()
    real = run_invoke("backup.cleanup", "--host", addr, "--json", env=env)
    assert real.returncode == 0, real.stderr
    assert not files["stale"].exists() and files["young"].exists() and files["theirs"].exists()
    assert made.json()["backup"]["name"] in {p.name for p in host["dir"].iterdir()}
