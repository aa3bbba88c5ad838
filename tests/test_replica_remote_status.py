"""replica.status --host / --production: the machine's own litestream asked over its control
socket, through the real sshd (``host``) and through the flyctl double (its ``-C`` commands
run here, so a real litestream runs on the "machine"), against a real S3 endpoint (moto)."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from ops import replica as rp
from ops.errors import ExitCode, OpsError
from tests.replica_world import LITESTREAM, World, moto_endpoint  # noqa: F401

NOW = dt.datetime(2026, 12, 6, 22, 0, 0, tzinfo=dt.UTC)
DB = "/data/steps.db"


def framed(*asks: tuple[str, int, str, str], now: int = 1796594400) -> str:
    """What ``status_script`` prints: the machine's clock, then each framed answer."""
    lines = [f"{rp.ENTRY_MARK} now {now}"]
    for name, rc, out, err in asks:
        lines += ["", f"{rp.ENTRY_MARK} begin {name} {rc}", out, f"{rp.ENTRY_MARK} stderr {name}",
                  err, f"{rp.ENTRY_MARK} end {name}"]
    return "\r\n".join(lines)  # a pty's line ends are read too


LISTED = '{"databases": [{"path": "/data/steps.db", "status": "replicating",\n' \
         ' "last_sync_at": "2026-12-06T21:58:00.5Z"}]}'


def position(*asks):
    return rp.remote_position(rp.remote_answers(framed(*asks)), DB, "the machine")


def test_the_machine_answers_are_read_as_data():
    found = position(("version", 0, "0.5.17", ""), ("list", 0, LISTED, ""),
                     ("sync", 0, '{"db_path": "/data/steps.db", "txid": 12,\n'
                                 ' "replica_txid": 12, "duration_ms": 3}', ""))
    assert found["local"] == 12 and found["replica"].txid == 12
    assert found["last_sync_at"] == "2026-12-06T21:58:00.5Z"
    assert rp.lag(found["local"], found["replica"], found["now"]) == 0.0  # idle: current
    behind = position(("version", 0, "0.5.17", ""), ("list", 0, LISTED, ""),
                      ("sync", 0, '{"txid": 14, "replica_txid": 12}', ""))
    lag = rp.lag(behind["local"], behind["replica"], behind["now"])
    assert lag == 119.5  # the machine's clock (22:00:00) minus its last sync
    assert "(--max-lag 1m, " in rp.staleness(lag, 60)
    nothing = position(("version", 0, "0.5.17", ""), ("list", 0, LISTED, ""),
                       ("sync", 0, '{"txid": 3, "replica_txid": 0}', ""))
    assert nothing["replica"] is None and "no replica" in rp.staleness(
        rp.lag(nothing["local"], nothing["replica"], nothing["now"]), 60)
    never = '{"databases": [{"path": "/data/steps.db", "status": "replicating"}]}'
    with pytest.raises(OpsError) as unknown:  # behind, and no time to measure it from
        position(("version", 0, "0.5.17", ""), ("list", 0, never, ""),
                 ("sync", 0, '{"txid": 14, "replica_txid": 12}', ""))
    assert unknown.value.code == ExitCode.STALE and "is behind" in str(unknown.value)


@pytest.mark.parametrize("asks, words", [
    ((), "did not run litestream's status script"),
    ((("version", 0, "v0.3.13", ""),), "v0.3.13 is not 0.5"),
    ((("version", 0, "0.5.17", ""), ("list", 1, "", "Error: failed to connect to control "
                                                    "socket: dial unix: no such file")),
     "not running for /data/steps.db on the machine, or is stuck"),
    ((("version", 0, "0.5.17", ""), ("list", 0, '{"databases": []}', "")),
     "does not replicate /data/steps.db"),
    ((("version", 0, "0.5.17", ""), ("list", 0, LISTED, ""),
      ("sync", 1, "", "Error: sync: context deadline exceeded")),
     "could not ship to its bucket within 30s: sync: context deadline"),
    ((("version", 0, "0.5.17", ""), ("list", 0, LISTED, ""), ("sync", 0, '{"no": 1}', "")),
     "answered sync of an unexpected shape"),
])
def test_each_machine_failure_is_exit_15_in_one_line(asks, words):
    with pytest.raises(OpsError) as failed:
        position(*asks)
    assert failed.value.code == ExitCode.REPLICA and words in str(failed.value)
    assert "\n" not in str(failed.value)


def test_no_litestream_on_the_machine_and_a_hostile_binary_setting():
    with pytest.raises(OpsError) as failed:
        rp.remote_position(rp.remote_answers(f"{rp.ENTRY_MARK} missing\n"), DB, "h")
    assert failed.value.code == ExitCode.REPLICA and "not installed on h" in str(failed.value)
    with pytest.raises(OpsError) as refused:
        rp.status_script("litestream; rm -rf /", DB, "/data/.s.sock")
    assert refused.value.code == ExitCode.USAGE


def replicating(endpoint: str, db: Path, tmp: Path) -> World:
    """A real litestream replicating ``db`` (the host's or machine's database) to a new
    bucket, its socket beside the database as the rendered config puts it."""
    bucket = f"remote-test-{os.getpid()}-{db.stat().st_ino}"
    request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
    (tmp / "ls").mkdir()
    return World(endpoint, bucket, db, tmp / "ls")


def commit(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO users (email, name) VALUES (hex(randomblob(8)), 'later')")
    conn.commit()
    conn.close()


def test_status_over_ssh(host, moto_endpoint, run_invoke, tmp_path):  # noqa: F811
    """The host's own litestream (the real sshd; tmp paths short: a Unix socket holds 104)."""
    world = replicating(moto_endpoint, host["db"], tmp_path)
    env = {**host["env"], "INVOKE_REPLICA_REMOTE_LITESTREAM": LITESTREAM,
           "AWS_CA_BUNDLE": "/no/such/ca.pem"}  # what the shell has; the host needs none
    try:
        proc = world.start()
        commit(host["db"])  # a commit litestream has not shipped yet: sync -wait ships it
        ok = run_invoke("replica.status", "--host", host["addr"], "--json", env=env)
        assert ok.returncode == 0, ok
        report = ok.json()
        assert report["ok"] and report["lag_seconds"] == 0.0 and report["running"]
        assert report["replica"]["txid"] == report["local_txid"]
        assert report["database"] == str(host["db"]) and report["where"].startswith("ssh ")
        assert world.replica_txid() == int(report["local_txid"], 16)  # really in the bucket
        world.kill(proc)
        commit(host["db"])
        dead = run_invoke("replica.status", "--host", host["addr"], env=env)
        assert dead.returncode == ExitCode.REPLICA, dead
        assert len(dead.error_lines) == 1 and "is not running for" in dead.error_lines[0]
        assert "Traceback" not in dead.stderr
    finally:
        world.close()


def test_status_on_the_production_machine_through_fly_ssh(prod, moto_endpoint,  # noqa: F811
                                                          tmp_path):
    prod.world.add_machine_tool("litestream", LITESTREAM)  # the image's pinned litestream
    world = replicating(moto_endpoint, prod.db, tmp_path)
    try:
        world.start()
        commit(prod.db)
        ok = prod.run("replica.status", "--production", "--max-lag", "60s")
        assert ok.returncode == 0, ok
        assert "lag 0s (max 1m)" in ok.stderr and str(prod.db) in ok.stderr
        ssh = [argv for argv in prod.calls() if argv[:2] == ["ssh", "console"]]
        assert len(ssh) == 1 and "# ops: replica-status" in ssh[0][-1]
        world.close()  # litestream stops: the machine has no replication any more
        down = prod.run("replica.status", "--production", "--json")
        assert down.returncode == ExitCode.REPLICA, down
        assert down.json()["exit_code"] == ExitCode.REPLICA
        assert "is not running for" in down.error_lines[0]
    finally:
        world.close()


def test_production_and_host_together_are_refused(run_invoke):
    both = run_invoke("replica.status", "--production", "--host", "a@b")
    assert both.returncode == ExitCode.USAGE and "give one" in both.error_lines[0]
