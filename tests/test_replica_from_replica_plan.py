"""`invoke restore --from-replica`: its dry run shows the whole plan (the replica restore,
then the restore's own steps, with flyctl's commands for --production) and changes
nothing; a run checks each file once (the replica file as it is restored, then the
restore's proof of the live database), not three times. Real litestream and moto."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from ops import engine
from tests import helpers
from tests.replica_world import (  # noqa: F401
    World,
    lose_rows,
    moto_endpoint,
    replica_world,
    users,
)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_dry_run_shows_the_replica_restore_then_the_restore_and_changes_nothing(
        replica_world, run_invoke, tmp_path):
    world = replica_world
    lose_rows(world)
    held = digest(world.db)
    backups = tmp_path / "backups"
    result = run_invoke("restore", "--from-replica", "--dry-run", "--json",
                        env={**world.env, "INVOKE_BACKUP_DIR": str(backups)})
    assert result.returncode == 0, result
    plan = result.json()
    assert plan["dry_run"] and plan["from_replica"]["reached"]["txid"] == \
        f"{world.replica_txid():016x}"
    assert [step["key"] for step in plan["steps"]] == [
        "replica", "verify", "safety", "restore", "check", "record"]  # was: no steps at all
    assert plan["options"]["which"] == plan["backup"] and plan["options"]["checked"]
    said = result.stderr
    assert said.index("Would restore the replica's TXID") < said.index("safety backup of")
    assert "prove it: integrity_check of" in said
    assert digest(world.db) == held and users(world.db) == 10
    assert not [p for p in backups.iterdir() if not p.name.startswith(".")]


def test_a_production_dry_run_shows_flyctl_s_commands_and_sends_nothing(
        served_prod, moto_endpoint, tmp_path):  # noqa: F811
    import urllib.request

    prod = served_prod
    with urllib.request.urlopen(urllib.request.Request(
            f"{moto_endpoint}/prod-plan", method="PUT"), timeout=30):
        pass
    (tmp_path / "ls").mkdir()
    world = World(moto_endpoint, "prod-plan", prod.db, tmp_path / "ls")
    try:
        lose_rows(world)
        held, remote = digest(prod.db), prod.remote_backups()
        env = {k: v for k, v in world.env.items() if k != "INVOKE_DB_PATH"}
        result = prod.run("restore", "--from-replica", "--production", "--dry-run", "--json",
                          env=env)
        assert result.returncode == 0, result
        plan = result.json()
        keys = [step["key"] for step in plan["steps"]]
        assert keys == ["replica", "resolve", "verify", "upload", "restore", "restart", "health",
                        "record"], keys
        upload = next(step for step in plan["steps"] if step["key"] == "upload")
        assert any("sftp" in command for command in upload["commands"])
        assert plan["from_replica"]["reached"]["txid"] and plan["backup"].endswith(".db")
        assert "fly ssh sftp put" in result.stderr  # the exact flyctl commands
        calls = prod.world.calls()
        assert not [c for c in calls if "sftp" in c or "restart" in c or "console" in c]
        assert digest(prod.db) == held and prod.remote_backups() == remote
        assert not list((prod.local_dir.parent / "replica").glob("*.db"))
    finally:
        world.close()


def test_each_file_is_checked_once(replica_world, tmp_path, monkeypatch):
    """SQLite's check of the replica file runs once (as it is restored); the restore's
    verify compares its SHA-256 with the record that check wrote; the live database's
    check is the proof's. Was: three full checks of the replica file."""
    world = replica_world
    before = lose_rows(world)
    backups = tmp_path / "backups"
    checked: list[str] = []
    real = engine.run_check

    def counted(path, *args, **kwargs):
        checked.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(engine, "run_check", counted)
    live: list[str] = []
    real_live = engine.check_live
    monkeypatch.setattr(engine, "check_live",
                        lambda path, *a, **k: live.append(str(path)) or real_live(path, *a, **k))
    result = helpers.run_here("restore", "--from-replica", "--yes", "--json", cwd=world.tmp,
                              env={**world.env, "INVOKE_BACKUP_DIR": str(backups)}, timeout=120)
    assert result.returncode == 0, result
    name = result.json()["backup"]["name"]
    assert checked.count(name) == 1, checked  # was 3
    assert str(world.db) in live  # the proof's check of the live database
    assert "(as it was restored)" in result.stderr
    conn = sqlite3.connect(world.db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == before
    finally:
        conn.close()


def test_on_a_host(host, moto_endpoint, run_invoke, tmp_path):  # noqa: F811
    """--from-replica --host --dry-run: the replica's point, then the host's restore steps
    (it connects: a read); nothing sent, the host's database untouched. (A short name:
    the socket path under xdist must fit a Unix socket's 104 bytes.)"""
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(
            f"{moto_endpoint}/host-plan", method="PUT"), timeout=30):
        pass
    (tmp_path / "ls").mkdir()
    world = World(moto_endpoint, "host-plan", host["db"], tmp_path / "ls")
    try:
        lose_rows(world)
        held = digest(host["db"])
        env = {**{k: v for k, v in world.env.items() if k != "INVOKE_DB_PATH"}, **host["env"]}
        result = run_invoke("restore", "--from-replica", "--host", host["addr"], "--dry-run",
                            "--json", env=env)
        assert result.returncode == 0, result
        plan = result.json()
        assert [step["key"] for step in plan["steps"]][-2:] == ["restore", "record"], plan
        assert "upload" in [step["key"] for step in plan["steps"]]
        assert "connected to" in result.stderr
        assert digest(host["db"]) == held and not engine.list_backups(host["dir"])
    finally:
        world.close()
