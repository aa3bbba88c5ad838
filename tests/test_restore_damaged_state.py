"""What an adversarial review broke in the restore (issue 16 follow-up), each through the
real CLI on real databases: a safety backup's record too large or lost (it must never
become `latest`), a stale -wal beside a missing database, index corruption quick_check
misses, and what an interrupted restore says."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from ops import engine
from tests import helpers, node_env

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process

# NAME.json lists every table's row count: 700 names of 157 characters make ~120 KB, over
# the old 64 KiB (2,500 names of 37 made the same; each table costs every step that reads
# the database, its counts, its content hash and a row of the table the restore prints)
TABLES = 700
FIRST = f"t_{'with_a_rather_long_table_name_' * 5}00000"


def many_tables(db: Path, count: int = TABLES) -> None:
    """``count`` more tables with long names, one row 'A' each (a record over 64 KiB)."""
    conn = sqlite3.connect(db)
    with conn:
        for i in range(count):
            name = f"{FIRST[:-5]}{i:05d}"
            conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)")
            conn.execute(f"INSERT INTO {name} (v) VALUES ('A')")
    conn.close()


def first_table(db: Path) -> str:
    return helpers.live_rows(db, f"SELECT v FROM {FIRST}")[0][0]


def spoil(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(f"UPDATE {FIRST} SET v = 'BAD'")
    conn.close()


def audit(path: Path) -> dict:
    return json.loads(path.read_text().splitlines()[-1])


# ------------------------------------------- 1. a safety backup never becomes `latest`


def test_a_safety_backup_with_a_large_record_never_becomes_latest(
        wal_db, backup_dir, run_invoke, tmp_path):
    many_tables(wal_db)
    made = run_invoke("backup", "--json")
    assert made.returncode == 0, made
    name = made.json()["backup"]["name"]
    assert (backup_dir / f"{name}.json").stat().st_size > 1 << 16
    spoil(wal_db)
    first = run_invoke("restore", "latest", "--yes")
    assert first.returncode == 0, first
    assert first_table(wal_db) == "A"
    safety = audit(tmp_path / "data" / "deploys.jsonl")["safety_backup"]["name"]
    assert [b.kind for b in engine.list_backups(backup_dir) if b.name == safety] == ["safety"]
    # the safety backup (holding 'BAD') is newer; a retry must still choose the backup
    second = run_invoke("restore", "latest", "--yes")
    assert second.returncode == 0, second
    assert audit(tmp_path / "data" / "deploys.jsonl")["backup"]["name"] == name
    assert first_table(wal_db) == "A"
    # the confirmation never prints 700 row counts
    assert max(len(line) for line in (second.stdout + second.stderr).splitlines()) < 2000


def test_a_backup_whose_record_is_lost_is_never_latest_and_the_run_says_so(
        wal_db, backup_dir, run_invoke, tmp_path):
    made = run_invoke("backup", "--json")
    assert made.returncode == 0, made
    name = made.json()["backup"]["name"]
    conn = sqlite3.connect(wal_db)
    with conn:
        conn.execute("DELETE FROM steps WHERE id > 100")
    conn.close()
    first = run_invoke("restore", "latest", "--yes")
    assert first.returncode == 0, first
    safety = audit(tmp_path / "data" / "deploys.jsonl")["safety_backup"]["name"]
    (backup_dir / f"{safety}.json").unlink()  # its record is lost: the .sha256 still verifies
    dry = run_invoke("restore", "--dry-run")
    assert f"latest is {safety}" not in dry.stdout + dry.stderr, dry
    second = run_invoke("restore", "latest", "--yes")
    assert second.returncode == 0, second
    assert audit(tmp_path / "data" / "deploys.jsonl")["backup"]["name"] == name
    assert helpers.live_rows(wal_db, "SELECT count(*) FROM steps") == [(3000,)]
    notice = [line for line in second.stderr.splitlines() if safety in line and "NOTE" in line]
    assert len(notice) == 1 and "backup.adopt" in notice[0], second


def test_on_the_machine_a_large_safety_record_never_becomes_latest(site):  # noqa: F811
    """The machine's python3 engine writes the same ~120 KB record; the listing (plain sh)
    must read it whole and the retry must choose the backup, not the safety backup."""
    many_tables(site.db)
    made = site.run("backup", "--production", "--json", timeout=120)
    assert made.returncode == 0, made
    name = made.json()["backup"]["name"]
    assert (site.backups / f"{name}.json").stat().st_size > 1 << 16
    spoil(site.db)
    for _ in range(2):
        result = site.run("restore", "latest", "--production", "--yes", timeout=120)
        assert result.returncode == 0, result
        assert site.audit()[-1]["backup"]["name"] == name
        assert first_table(site.db) == "A"


def test_on_the_machine_without_python_a_lost_record_is_never_latest(site):  # noqa: F811
    """The sqlite3 CLI engine: the safety backup's NAME.json is removed on the volume."""
    site.world.remove_machine_tools("python3")
    made = site.run("backup", "--production", "--json", timeout=60)
    assert made.returncode == 0, made
    name = made.json()["backup"]["name"]
    conn = sqlite3.connect(site.db)
    with conn:
        conn.execute("DELETE FROM steps WHERE id > 100")
    conn.close()
    first = site.run("restore", "latest", "--production", "--yes", timeout=60)
    assert first.returncode == 0, first
    safety = site.audit()[-1]["safety_backup"]["name"]
    (site.backups / f"{safety}.json").unlink()
    second = site.run("restore", "latest", "--production", "--yes", timeout=60)
    assert second.returncode == 0, second
    assert site.audit()[-1]["backup"]["name"] == name
    assert helpers.live_rows(site.db, "SELECT count(*) FROM steps") == [(3000,)]
    assert any(safety in line and "backup.adopt" in line for line in second.stderr.splitlines())


# ------------------------------------------- 2. a missing database's stale -wal is kept aside


def address(host: dict, where: str) -> str:  # noqa: F811
    """``--host`` for the python3 engine (addr), the sqlite3 CLI (no_python) or node."""
    server = host["server"]
    return f"{server.user}@127.0.0.1:{server.node_port}" if where == "node" else host[where]


def node_env_of(host: dict, where: str) -> dict:  # noqa: F811
    return host["env"] | ({"INVOKE_MACHINE_APP_DIR": str(node_env.app_dir())}
                          if where == "node" else {})


def stale_wal(db: Path) -> bytes:
    """A -wal holding committed changes (steps > 100 deleted, a 'stale-wal' team), then
    the database and its -shm gone: only that -wal is left beside the missing name."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    with conn:
        conn.execute("DELETE FROM steps WHERE id > 100")
        conn.execute("INSERT INTO teams (name) VALUES ('stale-wal')")
    kept = Path(f"{db}-wal").read_bytes()
    conn.close()
    for path in db.parent.glob(f"{db.name}*"):
        path.unlink()
    Path(f"{db}-wal").write_bytes(kept)
    return kept


@pytest.mark.parametrize("where", ["local", "addr", "no_python", "node"])
def test_a_stale_wal_beside_a_missing_database_is_moved_aside_not_replayed(
        where, host, run_invoke, tmp_path):  # noqa: F811
    if where == "local":
        db, folder = helpers.make_wal_db(tmp_path / "data" / "steps.db"), None
        flags, env = [], None
    else:
        db, folder = host["db"], host["dir"]
        flags, env = ["--host", address(host, where)], node_env_of(host, where)
    made = engine.create_backup(db, folder or tmp_path / "data" / "backups")
    kept = stale_wal(db)
    done = run_invoke("restore", made.name, *flags, "--yes", "--app-stopped", "--json",
                      env=env)
    assert done.returncode == 0, done
    assert engine.describe_file(db, live=True)[1] == engine.describe_file(made.path)[1]
    assert helpers.live_rows(db, "SELECT count(*) FROM steps") == [(3000,)]
    aside = [p for p in db.parent.iterdir() if ".stale-" in p.name]
    assert [p.read_bytes() for p in aside] == [kept]  # kept, byte for byte, never replayed
    assert aside[0].name.startswith("steps.db.stale-") and aside[0].name.endswith("-wal")


# ------------------------------------------- 3. corruption only integrity_check finds


@pytest.mark.parametrize("where", ["local", "addr", "no_python", "node"])
def test_a_broken_index_is_a_corrupt_live_database_restored_with_app_stopped(
        where, host, run_invoke, tmp_path):  # noqa: F811
    if where == "local":
        db, folder = helpers.make_wal_db(tmp_path / "data" / "steps.db"), None
        flags, env = [], None
    else:
        db, folder, flags, env = host["db"], host["dir"], ["--host", address(host, where)], \
            node_env_of(host, where)
    made = engine.create_backup(db, folder or tmp_path / "data" / "backups")
    helpers.break_an_index(db)
    assert engine.live_state(db)[0] == "ok"  # quick_check misses it
    refused = run_invoke("restore", made.name, *flags, "--yes", env=env)
    line = helpers.assert_one_line_error(refused, 2, contains="is corrupt (",
                                         strict=False)
    assert "--app-stopped" in line and "new backup" not in line
    done = run_invoke("restore", made.name, *flags, "--yes", "--app-stopped", "--json",
                      env=env)
    assert done.returncode == 0, done
    assert done.json()["live_state"] == "corrupt"
    assert engine.describe_file(db, live=True)[1] == engine.describe_file(made.path)[1]
    assert engine.check_live(db) == []
    assert [p for p in db.parent.iterdir() if p.name.startswith("steps.db.corrupt-")]


# ------------------------------------------- 4-5. what an interrupted restore says

HOOKS = str(Path(__file__).parent / "hooks")


def hooked(**spec) -> dict:
    path = os.pathsep.join(filter(None, [HOOKS, os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "OPS_TEST_HOOK": json.dumps(spec)}


def test_sigterm_after_the_copy_while_the_app_writes_says_it_was_restored(
        wal_db, backup_dir, run_invoke, tmp_path):
    """The app commits right after the copy, then SIGTERM (during the proof): the copy's
    own read proves the backup; the app's write since is said, not counted as 'neither'."""
    made = engine.create_backup(wal_db, backup_dir)
    conn = sqlite3.connect(wal_db)
    with conn:
        conn.execute("DELETE FROM steps WHERE id > 100")
    conn.close()
    result = run_invoke("restore", made.name, "--yes", env=hooked(
        wrap="restore_live", when="after", tamper=str(wal_db), signal="SIGTERM"))
    assert result.returncode == 143, result
    record = audit(tmp_path / "data" / "deploys.jsonl")
    assert record["outcome"] == "ok" and record["holds"] == "backup", record
    assert record["proof"]["app_wrote"] is True
    assert "the app has committed since" in result.stderr
    assert result.error_lines[-1].endswith("the restore itself was done and proven "
                                             "(see above)")
    assert helpers.live_rows(wal_db, "SELECT count(*) FROM steps") == [(3000,)]


def test_sigterm_between_moving_a_corrupt_database_aside_and_placing_says_it_is_missing(
        wal_db, backup_dir, run_invoke, tmp_path):
    made = engine.create_backup(wal_db, backup_dir)
    wal_db.write_bytes(b"not a database at all" * 100)
    result = run_invoke("restore", made.name, "--yes", "--app-stopped", env=hooked(
        wrap="place_restored", when="before", signal="SIGTERM"))
    assert result.returncode == 143, result
    assert not wal_db.exists()
    record = audit(tmp_path / "data" / "deploys.jsonl")
    aside = sorted(p.name for p in wal_db.parent.glob("steps.db.corrupt-*"))
    assert record["live_missing"] is True and record["holds"] == "missing"
    assert sorted(Path(p).name for p in record["moved_aside"]) == aside and aside
    assert "is MISSING now" in result.stderr and aside[0] in result.stderr
    finish = f"invoke restore {made.name} --app-stopped --yes"
    assert f"To finish the restore: `{finish}`" in result.stderr
    assert result.error_lines[-1].endswith("see above for what to finish by hand")
    # and that command does finish it
    done = run_invoke("restore", made.name, "--app-stopped", "--yes")
    assert done.returncode == 0, done
    assert engine.describe_file(wal_db, live=True)[1] == engine.describe_file(made.path)[1]


# ------------------------------------------- 6. a restore's lock names the restore


def test_a_cleanup_during_a_restore_is_refused_naming_the_restore(
        wal_db, backup_dir, run_invoke):
    made = [engine.create_backup(wal_db, backup_dir) for _ in range(2)]
    env = {"USER": None, "GITHUB_ACTOR": None}
    os.environ.pop("GITHUB_ACTOR", None)
    saved = os.environ.pop("USER", None)
    try:  # the lock a restore holds from its backup's check to the end (a real flock)
        with engine.held_backup_lock(backup_dir):
            refused = run_invoke("backup.cleanup", "--keep", "1", env=env)
    finally:
        if saved is not None:
            os.environ["USER"] = saved
    line = helpers.assert_one_line_error(refused, 4, contains="a restore holds the lock")
    assert "a restore by " in line and "unknown" not in line and f"pid {os.getpid()}" in line
    assert all((backup_dir / item.name).exists() for item in made)
