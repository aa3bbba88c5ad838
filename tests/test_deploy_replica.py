"""The deploy knows the Litestream replica (issue 18 item 5): the preflight reads the
machine's replica lag (a warning, or a stop with replica.deploy_gate = fail), and after
`fly deploy` the new machine's replica must be current. Through the real CLI, the flyctl
double (its machine runs the venv's real litestream, shipping to a real moto S3), and the
decisions as data."""

from __future__ import annotations

import datetime as dt
import shlex
import signal

from ops import replica as rp
from ops import replica_hooks as rh
from ops.config import load_replica
from ops.errors import ExitCode
from tests.fake_production import (
    APP,
    BACKUP,
    DEPLOYED,
    GUARDED,
    MID,
    PREFLIGHT,
    SNAPSHOT,
    error_line,
    label,
)
from tests.replica_machine import labels, replicated  # noqa: F401
from tests.replica_world import moto_endpoint  # noqa: F401

NOW = dt.datetime(2026, 12, 7, 0, 0, 0, tzinfo=dt.UTC)
LAG = ["ssh replica lag"]
CURRENT = ["volumes list", "machine list", "ssh replica sync"]


def test_a_replicating_machine_passes_both_gates_in_this_order(site, replicated):
    replicated.start()
    result = site.run("deploy", "--json", env=replicated.settings)
    assert result.returncode == 0, result
    assert labels(site) == (PREFLIGHT + LAG + BACKUP + SNAPSHOT + DEPLOYED[:2] + CURRENT
                            + DEPLOYED[2:] + ["ssh shape"])  # then the data guard
    steps = {s["step"]: s for s in result.json()["steps"]}
    assert steps["replica"]["outcome"] == "ok", steps["replica"]
    assert steps["replica_current"]["outcome"] == "ok", steps["replica_current"]
    assert result.json()["replica"]["lag"] == "ok"
    replica_calls = [argv for argv in site.world.calls()
                     if argv[:2] == ["ssh", "console"] and rh.MARK in argv[-1]]
    assert len(replica_calls) == 2  # one read before, one sync after: nothing else
    assert all(argv[2:7] == ["-a", APP, "--machine", MID, "-q"] for argv in replica_calls)


def test_a_machine_whose_litestream_is_down_warns_then_fails_the_gate_after_deploy(
        site, replicated):
    result = site.run("deploy", "--json", env=replicated.settings)  # litestream never started
    assert result.returncode == ExitCode.HEALTH_FAILED, result
    assert "litestream is not running on the machine" in result.stderr
    assert "the deploy goes on (replica.deploy_gate = warn" in result.stderr
    line = error_line(result, last=False)
    assert "the new machine's replica is not current" in line, line
    named = labels(site)
    assert named[:len(PREFLIGHT) + 1] == PREFLIGHT + LAG and "deploy" in named
    after = named[named.index("deploy") + 2:]
    assert after[:2] == CURRENT[:2] and set(after[2:-2]) == {"ssh replica sync"}, after
    assert after[-2:] == DEPLOYED[2:]  # the machine's lock released all the same
    record = result.json()
    assert record["steps"][-2]["step"] == "replica_current"


def test_deploy_gate_fail_stops_before_anything_changes(site, replicated):
    before = site.backup_names()
    result = site.run("deploy", "--json",
                      env={**replicated.settings, "INVOKE_REPLICA_DEPLOY_GATE": "fail"})
    assert result.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, result
    line = error_line(result)
    assert "deploy aborted before `fly deploy` (replica failed)" in line
    assert "litestream is not running on the machine" in line
    assert labels(site) == PREFLIGHT + LAG  # no backup, snapshot or deploy
    assert "ssh lock" not in [label(argv) for argv in site.world.calls()]  # nor the lock
    assert [r["Version"] for r in site.world.releases()] == [12, 11]
    assert site.backup_names() == before


def test_a_dry_run_reads_the_lag_and_shows_both_steps(site, replicated):
    replicated.start()
    result = site.run("deploy", "--dry-run", env=replicated.settings)
    assert result.returncode == 0, result
    # reads only, and a look at the backup lock (taking nothing: tests/test_dry_run_locks.py)
    assert labels(site) == PREFLIGHT + LAG + ["ssh look-locks"]
    assert "replica lag 0s" in result.stderr
    assert "the new machine's Litestream replica holds its newest commit" in result.stderr


def test_deploy_gate_off_or_no_litestream_yml_changes_nothing(site, replicated):
    result = site.run("deploy", env={**replicated.settings, "INVOKE_REPLICA_DEPLOY_GATE": "off"})
    assert result.returncode == 0, result
    assert labels(site) == PREFLIGHT + BACKUP + SNAPSHOT + GUARDED


# ---------------------------------------------------------------- the decisions as data

def found(**parts) -> str:
    lines = []
    for name, (rc, text) in parts.items():
        lines += [f"{rh.MARK} {name}", *text.splitlines(), f"{rh.MARK} rc {rc}"]
    return "\n".join(lines + [f"{rh.MARK} now {int(NOW.timestamp())}"])


LTX = ('[{"level": 0, "min_txid": "0000000000000005", "max_txid": "0000000000000005", '
       '"timestamp": "2026-12-06T23:58:00Z"}]')


def test_the_lag_is_read_from_the_machines_three_answers():
    read = rh.reading(rh.sections(found(list=(0, "{}"), ltx=(0, LTX),
                                        status=(0, '[{"local_txid": "0000000000000005"}]'))))
    assert read == rh.Reading(None, 0.0, rp.Position(5, NOW - dt.timedelta(minutes=2)), 5)
    behind = rh.reading(rh.sections(found(list=(0, "{}"), ltx=(0, LTX),
                                          status=(0, '[{"local_txid": "0000000000000009"}]'))))
    assert behind.lag == 120.0
    assert rh.gate("warn", behind, 60) == ("warn", "the replica is 2m behind "
                                                   "(replica.max_lag 1m, 1m over)")
    assert rh.gate("fail", behind, 60)[0] == "fail"
    assert rh.gate("fail", behind, 180) == ("ok", "replica lag 2m (max 3m)")
    empty = rh.reading(rh.sections(found(list=(0, "{}"), ltx=(0, ""), status=(0, "[]"))))
    assert rh.gate("warn", empty, 60) == ("warn", "the bucket holds no replica of the "
                                                  "database yet")


def test_what_stops_the_read_is_named():
    assert "not installed" in rh.reading(rh.sections(f"{rh.MARK} missing")).problem
    down = rh.reading(rh.sections(found(list=(1, "Error: dial unix: no such file"))))
    assert down.problem.startswith("litestream is not running on the machine")
    assert "dial unix" in down.problem
    bucket = rh.reading(rh.sections(found(list=(0, "{}"),
                                          ltx=(1, "Error: NoSuchBucket: not there"))))
    assert "bucket cannot be read from the machine: NoSuchBucket" in bucket.problem
    odd = rh.reading(rh.sections(found(list=(0, "{}"), ltx=(0, '[{"max_txid": 3}]'))))
    assert "unexpected" in odd.problem


def test_current_means_the_replica_holds_the_machines_txid():
    def sync(rc, text):
        return rh.current(rh.sections(found(sync=(rc, text))))
    assert sync(0, '{"txid": 7, "replica_txid": 7}') == (True, "replica holds TXID "
                                                               "0000000000000007")
    assert sync(0, '{"txid": 8, "replica_txid": 7}')[0] is False
    assert sync(1, "Error: failed to connect to control socket")[1].endswith("control socket")
    assert sync(0, '{"txid": "8"}') == (False, "litestream sync printed no TXIDs")
    # JSON true is an int to Python: never a TXID (review-break)
    assert sync(0, '{"txid": true, "replica_txid": true}') == (
        False, "litestream sync printed no TXIDs")


def test_the_scripts_quote_what_they_are_given():
    settings = load_replica({"replica": {"socket": "/tmp/s p'ace.sock"}})
    script = rh.lag_script(settings, "/data/it's.db")
    assert "db='/data/it'\"'\"'s.db'" in script and shlex.quote("/tmp/s p'ace.sock") in script
    assert "unset AWS_CA_BUNDLE" in script and "litestream sync" not in script
    assert "litestream sync -wait -json" in rh.sync_script(settings, "/data/x.db")


def test_sigterm_while_waiting_for_the_replica_says_the_release_is_out(site, replicated):
    run = site.start("deploy", "--json", env={**replicated.settings,
                                              "INVOKE_HEALTH_TIMEOUT": "120"})
    run.wait_for_stderr("replica: not yet", timeout=60)
    run.proc.send_signal(signal.SIGTERM)
    result = run.finish()
    assert result.returncode == ExitCode.TERMINATED, result
    assert "the release may be out" in result.stderr, result
    (entry,) = site.audit()
    assert entry["fly_deploy_started"] is True and entry["release"]["version"] == 13
    assert entry["steps"][-1]["step"] == "record"  # the machine's lock was released
    assert not site.machine_lock.exists()
