"""A production restore over a missing or corrupt live database is refused before the
operator is asked (as locally), its dry run warns, and the question shows the backup's
recorded counts and the live database's state (review-op s19 #2), on every engine."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ops import engine
from tests import node_env
from tests.fake_production import changed_after_backup, site, use_engine  # noqa: F401

ENGINES = ["python3", "sqlite3", "node"]


def broken(site, state: str) -> None:
    for side in (site.db, site.db.with_name(site.db.name + "-wal"),
                 site.db.with_name(site.db.name + "-shm")):
        side.unlink(missing_ok=True)
    if state == "corrupt":
        site.db.write_text("this is not a database\n" * 100)


@pytest.mark.parametrize("state", ["corrupt", "missing"])
@pytest.mark.parametrize("name", ENGINES)
def test_refused_before_the_question(site, name, state):  # noqa: F811
    use_engine(site, name)
    made = changed_after_backup(site)
    broken(site, state)
    before = site.db.read_bytes() if state == "corrupt" else None
    result = site.run("restore", made.name, "--production", "--yes", timeout=60)
    assert result.returncode == 2, result
    assert "Replace the live database" not in result.stderr, result.stderr  # never asked
    assert f"is {state} (" in result.stderr and "emergency.stop" in result.stderr
    assert "count rows on the machine: count rows" not in result.stderr, result.stderr
    assert (site.db.read_bytes() if state == "corrupt" else site.db.exists()) == (
        before if state == "corrupt" else False)


@pytest.mark.parametrize("name", ENGINES)
def test_the_dry_run_refuses_as_the_run(site, name):  # noqa: F811
    # s20-dry: it warned and exited 0; it now gives the run's refusal (issue 22's rule)
    use_engine(site, name)
    made = changed_after_backup(site)
    broken(site, "corrupt")
    result = site.run("restore", made.name, "--production", "--dry-run", timeout=60)
    assert result.returncode == 2, result
    assert "is corrupt (" in result.stderr and "emergency.stop" in result.stderr, result.stderr


@pytest.mark.parametrize("name", ENGINES)
def test_emergency_stopped_the_question_shows_both_sides(site, name):  # noqa: F811
    use_engine(site, name)
    made = changed_after_backup(site)
    assert site.run("emergency.stop", "--yes", timeout=60).returncode == 0
    broken(site, "corrupt")
    result = site.run("restore", made.name, "--production", "--yes", timeout=60)
    assert result.returncode == 0, result
    asked = result.stderr[result.stderr.index("Replace the live database"):]
    assert "(corrupt: not a SQLite database)" in asked, asked
    assert "row counts not recorded" not in asked and "steps " in asked, asked


HOSTS = ["addr", "no_python", "node"]  # the host fixture's python3, sqlite3-only, node


def host_flags(host: dict, where: str) -> tuple[list[str], dict]:
    server = host["server"]
    to = f"{server.user}@127.0.0.1:{server.node_port}" if where == "node" else host[where]
    return ["--host", to], host["env"] | (
        {"INVOKE_MACHINE_APP_DIR": str(node_env.app_dir())} if where == "node" else {})


@pytest.mark.parametrize("where", HOSTS)
def test_host_refused_before_the_question(host, run_invoke, where):
    flags, env = host_flags(host, where)
    made = engine.create_backup(host["db"], host["dir"])
    for side in (host["db"], Path(f"{host['db']}-wal"), Path(f"{host['db']}-shm")):
        side.unlink(missing_ok=True)
    result = run_invoke("restore", made.name, *flags, "--yes", env=env)
    assert result.returncode == 2, result
    assert "Replace the live database" not in result.stderr, result.stderr
    assert "is missing (" in result.stderr and "--app-stopped" in result.stderr


@pytest.mark.parametrize("where", HOSTS)
def test_host_busy_timeout_gives_no_undo_line(host, run_invoke, where):
    flags, env = host_flags(host, where)
    made = engine.create_backup(host["db"], host["dir"])
    holder = sqlite3.connect(host["db"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = run_invoke("restore", made.name, *flags, "--yes", "--busy-timeout", "1",
                            env=env)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 6, result
    assert "To undo" not in result.stderr and "restore another backup" not in result.stderr
