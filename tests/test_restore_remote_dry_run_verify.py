"""A production (or --host) restore's dry run verifies the backup there, as the run does
(s20: the local dry run already ran the engine's read-only verify). The plan's restore
step starts by reading (``Step.reads_first``): the dry run runs that part alone, the
restore's ``verified`` phase on the machine's own engine (python3, node or the sqlite3
shell: ``remote.restore_verify_script``), with no lock and nothing written. Before, the
dry run only listed: a backup the run refuses (a bad checksum, another page size, not
SQLite) passed it with exit 0."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from ops import engine
from tests import helpers
from tests.fake_production import (
    APP,
    MACHINE,
    RESTORE_RESOLVE,
    STOPPED,
    changed_after_backup,
    error_line,
    flip_bytes,
    use_engine,
)
from tests.fake_production import restore_label as label

pytestmark = pytest.mark.cli_in_process(per="module")

SCRIPT = "<restore script>"  # how a plan shows the restore's own script


def broken_backup(kind: str, db: Path, folder: Path, scratch: Path) -> tuple[str, int]:
    """A backup the run refuses, and the exit code it refuses it with."""
    if kind == "page-size":
        return helpers.backup_of_other_page_size(folder, scratch).name, 2
    made = engine.create_backup(db, folder)
    if kind == "checksum":  # a byte changed after its record was written
        flip_bytes(made.path, made.size // 2, 4)
    else:  # not SQLite at all, its records still naming it
        Path(made.path).write_bytes(b"not a database" * 300)
    return made.name, 5


def machine_files(db: Path, folder: Path) -> dict:
    """The backup folder (its lock files too) and the live database's folder, but for
    the -shm and an empty -wal, which SQLite makes for any reader of a WAL database."""
    files = helpers.snapshot(folder, set()) | helpers.snapshot(db.parent, set())
    empty = helpers.sha256(Path(os.devnull))
    return {name: digest for name, digest in files.items() if not name.endswith("-shm")
            and not (name.endswith("-wal") and digest == empty)}


@pytest.mark.parametrize("kind", ["checksum", "page-size", "not-sqlite"])
@pytest.mark.parametrize("machine_engine", ["python3", "sqlite3", "node"])
def test_the_dry_run_refuses_what_the_run_refuses_on_every_engine(prod, tmp_path, kind,
                                                                   machine_engine):
    use_engine(prod, machine_engine)
    name, code = broken_backup(kind, prod.db, prod.remote_dir, tmp_path)
    before = machine_files(prod.db, prod.remote_dir)
    other = ("--other-source",) if kind == "page-size" else ()  # another database's backup
    dry = prod.run("restore", name, "--production", "--dry-run", *other)
    assert dry.returncode == code, dry
    # only reads on the machine, and nothing there changed: no lock file, no temporary
    assert [label(a) for a in prod.calls()] == [
        *RESTORE_RESOLVE, *STOPPED, "ssh list", "ssh counts", "ssh restore.verify"]
    assert machine_files(prod.db, prod.remote_dir) == before
    assert f"[{machine_engine}]" not in dry.stderr and "Restore plan" not in dry.stderr
    real = prod.run("restore", name, "--production", "--yes", *other)
    assert real.returncode == code, real
    assert error_line(dry) == error_line(real)  # the same refusal, word for word


@pytest.mark.parametrize("machine_engine", ["python3", "sqlite3", "node"])
def test_a_sound_backups_dry_run_makes_exactly_its_plans_reads(prod, machine_engine):
    use_engine(prod, machine_engine)
    made = changed_after_backup(prod)
    before = machine_files(prod.db, prod.remote_dir)
    dry = prod.run("restore", "--production", "--dry-run", "--json")
    assert dry.returncode == 0, dry
    steps = dry.json()["steps"]
    # every flyctl call the dry run made is a command of the plan's steps up to the
    # restore's verify, in the plan's order, and nothing else (plan == calls made)
    upto = [s["key"] for s in steps].index("restore") + 1
    shown = [argv for step in steps[:upto] for argv in step["commands"]]
    # the restore step's read is the restore's own verify (the plan shows the restore)
    made_calls = [[*argv[:-1], f"<{label(argv)[4:].removesuffix('.verify')} script>"]
                  if argv[:2] == ["ssh", "console"] else argv for argv in prod.calls()]
    assert made_calls == shown, "\n".join(shlex.join(a) for a in made_calls)
    assert [label(a) for a in prod.calls()] == [
        *RESTORE_RESOLVE, *STOPPED, "ssh list", "ssh counts", "ssh restore.verify"]
    assert machine_files(prod.db, prod.remote_dir) == before
    assert not (prod.remote_dir / ".restore.lock").exists()  # never taken there
    (line,) = [ln for ln in dry.stderr.splitlines() if ln.startswith("✓ verify")]
    assert f"verify {made.name} on the machine, as the restore does" in line
    assert f"[{machine_engine}] {made.name}  sha256 {made.sha256[:12]}" in line
    assert steps[upto - 1]["commands"] == [["ssh", "console", "-a", APP, "--machine", MACHINE,
                                             "-q", "-C", SCRIPT]]


def test_an_ssh_hosts_dry_run_refuses_what_its_run_refuses(ssh_host, tmp_path, run_invoke):
    db = helpers.make_wal_db(tmp_path / "host" / "data" / "steps.db")
    folder = tmp_path / "host" / "backups"
    name, code = broken_backup("page-size", db, folder, tmp_path)
    env = {"HOME": os.environ["HOME"], "INVOKE_DB_REMOTE_PATH": str(db),
           "INVOKE_BACKUP_REMOTE_DIR": str(folder), "INVOKE_SSH_CONNECT_TIMEOUT": "5"}
    addr = f"{ssh_host.user}@127.0.0.1:{ssh_host.port}"
    before = machine_files(db, folder)
    dry = run_invoke("restore", name, "--host", addr, "--dry-run", "--other-source", env=env)
    assert dry.returncode == code == 2, dry
    assert machine_files(db, folder) == before  # no lock file, nothing written there
    assert f"verify {name} on {addr}, as the restore does" in dry.stderr
    real = run_invoke("restore", name, "--host", addr, "--yes", "--other-source", env=env)
    assert real.returncode == code, real
    assert error_line(dry) == error_line(real)


def test_another_databases_backup_fails_the_dry_run_as_it_fails_the_run(prod, tmp_path,
                                                                        run_invoke):
    """Without --other-source the run refuses another database's backup (exit 2) before
    its question; the dry runs, here and on the machine, said nothing of it (exit 0)."""
    other = helpers.make_wal_db(tmp_path / "other" / "steps.db")  # a sound backup of it
    name = engine.create_backup(other, prod.remote_dir).name
    dry = prod.run("restore", name, "--production", "--dry-run")
    real = prod.run("restore", name, "--production", "--yes")
    assert real.returncode == dry.returncode == 2, (dry, real)
    assert error_line(dry) == error_line(real) and "--other-source" in error_line(real)
    db = helpers.make_wal_db(tmp_path / "local" / "steps.db")
    env = {"INVOKE_DB_PATH": str(db), "INVOKE_BACKUP_DIR": str(prod.remote_dir)}
    dry = run_invoke("restore", name, "--dry-run", env=env)
    real = run_invoke("restore", name, "--yes", env=env)
    assert real.returncode == dry.returncode == 2, (dry, real)
    assert error_line(dry) == error_line(real) and "--other-source" in error_line(real)
