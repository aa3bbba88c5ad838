"""Every backup task with ``--host`` against a real OpenSSH server (``tests/sshd.py``).

The host's filesystem is this machine's: ``db.remote_path`` and ``backup.remote_dir``
point at tmp paths, and what the host did is checked on disk. Through the real CLI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ops import engine
from tests.helpers import backups_in, change

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")


def test_backup_list_verify_status_cleanup_over_ssh(host, run_invoke):
    env, addr = host["env"], host["addr"]
    made = run_invoke("backup", "--host", addr, "--json", env=env)
    assert made.returncode == 0, made.stderr
    name = made.json()["backup"]["name"]
    assert backups_in(host["dir"]) == [name]
    assert made.json()["backup"]["strategy"] == "python3"
    assert "[python3]" in made.stderr
    assert engine.verify_backup(host["dir"] / name, "integrity").ok

    listed = run_invoke("backup.list", "--host", addr, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [item["name"] for item in listed.json()] == [name]

    checked = run_invoke("backup.verify", "all", "--host", addr, "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    assert [(r["name"], r["ok"]) for r in checked.json()] == [(name, True)]

    status = run_invoke("backup.status", "--host", addr, "--json", "--max-age", "1h", env=env)
    assert status.returncode == 0, status.stderr
    assert status.json()["latest"]["name"] == name

    older = "steps-2020-01-01T00-00-00.db"  # an old-script backup: no records
    shutil.copy(host["dir"] / name, host["dir"] / older)
    kept = run_invoke("backup.cleanup", "--host", addr, "--keep", "1", "--json", env=env)
    assert kept.returncode == 0, kept.stderr
    assert backups_in(host["dir"]) == [name]


def test_a_configured_ssh_host_is_the_target_and_production_with_host_is_a_usage_error(
        host, run_invoke):
    env = host["env"] | {"INVOKE_SSH_HOST": host["addr"]}
    made = run_invoke("backup", "--json", env=env)
    assert made.returncode == 0, made.stderr
    assert backups_in(host["dir"]) == [made.json()["backup"]["name"]]
    both = run_invoke("backup.list", "--production", "--host", host["addr"], env=host["env"])
    assert both.returncode == 2
    assert both.error_lines == ["Error: --production (the Fly machine) and --host (an SSH "
                                "host) name two different targets: give one"]


def test_download_round_trip_restore_and_drill_over_ssh(host, run_invoke, tmp_path):
    env, addr = host["env"], host["addr"]
    name = run_invoke("backup", "--host", addr, "--json", env=env).json()["backup"]["name"]
    got = run_invoke("backup.download", "latest", "--host", addr, "--json", env=env)
    assert got.returncode == 0, got.stderr
    # downloads have a folder of their own, named after the host (issue 16 #3)
    folder = tmp_path / "local" / f"ssh-{addr.replace(':', '_')}"
    local = folder / name
    assert engine.sha256_file(local) == engine.sha256_file(host["dir"] / name)
    assert (folder / f"{name}.sha256").is_file()
    again = run_invoke("backup.download", name, "--host", addr, env=env)
    assert again.returncode == 0 and "is already here" in again.stderr  # review-ox 22

    drilled = run_invoke("backup.drill", "--host", addr, "--json", env=env)
    assert drilled.returncode == 0, drilled.stderr
    assert drilled.json()["name"] == name and drilled.json()["ok"]

    plan = run_invoke("restore", "--host", addr, "--dry-run", "--json", env=env)
    assert plan.returncode == 0, plan.stderr
    assert [step["key"] for step in plan.json()["steps"]] == [
        "connect", "choose", "restore", "record"]

    change(host["db"])  # the restore changes it: its safety backup is the undo
    restored = run_invoke("restore", name, "--host", addr, "--yes", "--json", env=env)
    assert restored.returncode == 0, restored.stderr
    record = restored.json()
    assert record["outcome"] == "ok" and record["backup"]["name"] == name
    safety = record["safety_backup"]["name"]
    assert safety in backups_in(host["dir"])
    assert f"invoke restore {safety} --host {addr} --yes" in restored.stderr


def test_a_host_without_python3_uses_the_sqlite3_cli(host, run_invoke):
    if shutil.which("sqlite3") is None:
        pytest.fail("the tests need the sqlite3 CLI (apt-get install sqlite3)")
    env, addr = host["env"], host["no_python"]
    made = run_invoke("backup", "--host", addr, "--json", env=env)
    assert made.returncode == 0, made.stderr
    assert made.json()["backup"]["strategy"] == "sqlite3"
    name = made.json()["backup"]["name"]
    checked = run_invoke("backup.verify", "latest", "--host", addr, "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    assert [(r["name"], r["ok"]) for r in checked.json()] == [(name, True)]


def test_an_unknown_host_key_is_refused_with_nothing_made_on_the_host(host, run_invoke):
    known = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    known.write_text(host["server"].known_hosts_line(host["server"].no_python_port))
    result = run_invoke("backup", "--host", host["addr"], env=host["env"])
    assert result.returncode == 8
    assert len(result.error_lines) == 1
    assert f"host key of [127.0.0.1]:{host['server'].port} is not known" in result.stderr
    assert "Traceback" not in result.stderr
    assert not host["dir"].exists()
    assert known.read_text() == host["server"].known_hosts_line(host["server"].no_python_port)


def test_restore_from_a_local_file_uploads_it_over_sftp(host, run_invoke, tmp_path):
    env, addr = host["env"], host["addr"]
    run_invoke("backup", "--host", addr, env=env)
    assert run_invoke("backup.download", "latest", "--host", addr, env=env).returncode == 0
    local = next((tmp_path / "local").glob("ssh-*/steps-*.db"))  # the host's own folder
    kept = tmp_path / "kept" / local.name  # with its records: the same backup the host has
    kept.parent.mkdir()
    for suffix in ("", ".sha256", ".json"):
        shutil.copy(f"{local}{suffix}", f"{kept}{suffix}")
    restored = run_invoke("restore", "--host", addr, "--from", str(kept), "--yes", "--json",
                          env=env)
    assert restored.returncode == 0, restored.stderr
    assert restored.json()["backup"]["name"] == kept.name
    assert engine.sha256_file(host["dir"] / kept.name) == engine.sha256_file(kept)
    assert not [p for p in host["dir"].iterdir() if p.name.startswith(".upload-")]


def test_one_connection_serves_the_whole_run(host, run_invoke):
    log = host["server"].log
    logins = log.read_text().count("Accepted publickey")
    made = run_invoke("backup", "--host", host["addr"], env=host["env"])  # backup + retention
    assert made.returncode == 0, made.stderr
    assert log.read_text().count("Accepted publickey") == logins + 1


@pytest.mark.parametrize("port", ["addr", "no_python"])  # python3 engine, sqlite3 CLI
def test_a_missing_database_on_an_ssh_host_needs_app_stopped(host, run_invoke, port):
    made = engine.create_backup(host["db"], host["dir"])
    for path in host["db"].parent.glob("steps.db*"):
        path.unlink()
    refused = run_invoke("restore", made.name, "--host", host[port], "--yes", env=host["env"])
    assert refused.returncode == 2, refused
    assert "is missing" in refused.stderr and "--app-stopped" in refused.stderr
    assert not host["db"].exists()
    done = run_invoke("restore", made.name, "--host", host[port], "--yes", "--app-stopped",
                      "--json", env=host["env"])
    assert done.returncode == 0, done
    assert done.json()["proof"]["ok"] and done.json()["live_state"] == "missing"
    assert engine.describe_file(host["db"], live=True)[1] == engine.describe_file(made.path)[1]
