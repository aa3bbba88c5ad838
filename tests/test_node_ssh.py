"""The Node engine on a real SSH host (tests/sshd.py) whose PATH has node but neither
python3 nor sqlite3, through the real CLI (issue 17)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ops import engine
from tests import node_env
from tests.helpers import backups_in

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")


@pytest.fixture
def node_host(host):  # noqa: F811
    server = host["server"]
    env = host["env"] | {"INVOKE_MACHINE_APP_DIR": str(node_env.app_dir())}
    return host | {"env": env, "addr": f"{server.user}@127.0.0.1:{server.node_port}"}


def test_every_task_on_a_node_only_ssh_host(node_host, run_invoke):
    env, addr = node_host["env"], node_host["addr"]
    check = run_invoke("machine.check", "--host", addr, "--json", env=env)
    assert check.returncode == 0, check
    facts = check.json()["facts"]
    assert (facts["python3"], facts["sqlite3"], facts["binding"]) == (None, None, "better-sqlite3")
    assert check.json()["engines"] == {"backup": "node", "verify": "node", "restore": "node",
                                       "drill": "node", "counts": "node", "adopt": "node"}

    made = run_invoke("backup", "--host", addr, "--json", env=env)
    assert made.returncode == 0, made
    backup = made.json()["backup"]
    assert backup["strategy"] == "node" and "[node]" in made.stderr
    assert engine.verify_backup(node_host["dir"] / backup["name"]).ok
    checked = run_invoke("backup.verify", "latest", "--host", addr, "--json", env=env)
    assert checked.returncode == 0, checked
    assert [(v["name"], v["ok"]) for v in checked.json()] == [(backup["name"], True)]

    conn = sqlite3.connect(node_host["db"])
    conn.execute("DELETE FROM steps WHERE id > 100")
    conn.commit()
    conn.close()
    restored = run_invoke("restore", backup["name"], "--host", addr, "--yes", "--json", env=env)
    assert restored.returncode == 0, restored
    record = restored.json()
    assert record["strategy"] == "node" and record["proof"]["holds"] == "backup"
    assert engine.describe_file(node_host["db"], live=True)[:2] == (
        backup["tables"], engine.describe_file(Path(node_host["dir"]) / backup["name"])[1])
    assert record["safety_backup"]["name"] in backups_in(node_host["dir"])

    drilled = run_invoke("backup.drill", backup["name"], "--host", addr, "--json", env=env)
    assert drilled.returncode == 0, drilled
    assert (drilled.json()["where"], drilled.json()["strategy"]) == ("machine", "node")

    old = node_host["dir"] / "steps-2026-01-07T00-00-00.db"  # an old npm script's backup
    old.write_bytes((node_host["dir"] / backup["name"]).read_bytes())
    adopted = run_invoke("backup.adopt", old.name, "--host", addr, "--json", env=env)
    assert adopted.returncode == 0, adopted
    assert [(v["name"], v["adopted"]) for v in adopted.json()["adopted"]] == [(old.name, True)]
    assert engine.verify_backup(old).ok
