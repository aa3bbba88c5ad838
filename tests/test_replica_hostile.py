"""replica.status against hostile or impossible litestream answers: a bucket ahead of the
live TXID, a newest file dated in the future, TXIDs of the wrong JSON type, a machine clock
too big for a datetime. Never lag 0 when it cannot be known, never a traceback."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from ops import replica as rp
from ops import replica_hooks
from ops.errors import ExitCode, OpsError
from tests.replica_world import LITESTREAM, moto_endpoint, replica_world  # noqa: F401

NOW = dt.datetime(2026, 12, 6, 22, 0, 0, tzinfo=dt.UTC)
DB = "/data/steps.db"
LISTED = ('{"databases": [{"path": "/data/steps.db", "status": "replicating", '
          '"last_sync_at": "2026-12-06T21:58:00Z"}]}')


def framed(sync: str, now: str = "1796594400") -> str:
    """What ``status_script`` prints on the machine, with ``sync`` as sync -wait's JSON."""
    lines = [f"{rp.ENTRY_MARK} now {now}"]
    for name, out in (("version", "0.5.17"), ("list", LISTED), ("sync", sync)):
        lines += [f"{rp.ENTRY_MARK} begin {name} 0", out, f"{rp.ENTRY_MARK} stderr {name}",
                  "", f"{rp.ENTRY_MARK} end {name}"]
    return "\n".join(lines)


def test_a_bucket_ahead_of_the_live_txid_is_no_lag_0():
    ahead = rp.Position(txid=20, time=NOW - dt.timedelta(seconds=5))
    assert rp.lag(12, ahead, NOW) is None  # was 0.0: "current" for another history
    why = rp.lag_unknown(12, ahead, NOW)
    assert "after the live database's 000000000000000c" in why
    assert rp.staleness(None, 60, why) == why
    assert rp.lag(20, ahead, NOW) == 0.0 and rp.lag_unknown(20, ahead, NOW) is None


@pytest.mark.parametrize("local", [None, 25])
def test_a_newest_file_dated_in_the_future_is_no_lag_0(local):
    future = rp.Position(txid=20, time=NOW + dt.timedelta(hours=3))
    assert rp.lag(local, future, NOW) is None  # was max(0, negative) = 0.0
    assert "after now (2026-12-06T22:00:00Z): a clock is wrong" in rp.lag_unknown(
        local, future, NOW)
    assert rp.lag(20, future, NOW) == 0.0  # holds the live TXID: current whatever its date
    same_second = rp.Position(txid=20, time=NOW + dt.timedelta(seconds=1))
    assert rp.lag(local, same_second, NOW) == 0.0  # litestream's times are whole seconds


@pytest.mark.parametrize("sync", [
    '{"txid": true, "replica_txid": true}',   # was read as TXIDs 1 and 1: lag 0
    '{"txid": 5.7, "replica_txid": 5}',       # was 5 and 5: lag 0 with a commit unshipped
    '{"txid": 1e999, "replica_txid": 1}',     # was a traceback (float infinity)
    '{"txid": "10", "replica_txid": "9"}',    # text: decimal or hex? not litestream's form
    '{"txid": -3, "replica_txid": 1}',
    '{"txid": 18446744073709551616, "replica_txid": 1}',
    '{"txid": 14, "replica_txid": false}',
])
def test_sync_txids_of_the_wrong_json_type_are_exit_15(sync):
    with pytest.raises(OpsError) as failed:
        rp.remote_position(rp.remote_answers(framed(sync)), DB, "the machine")
    assert failed.value.code == ExitCode.REPLICA
    assert "answered sync of an unexpected shape" in str(failed.value)


def test_a_missing_or_null_replica_txid_is_nothing_shipped():
    for sync in ('{"txid": 3}', '{"txid": 3, "replica_txid": null}'):
        found = rp.remote_position(rp.remote_answers(framed(sync)), DB, "the machine")
        assert found["local"] == 3 and found["replica"] is None


def test_a_machine_clock_too_big_for_a_datetime_is_not_a_traceback():
    found = rp.remote_answers(framed('{"txid": 3, "replica_txid": 3}',
                                     now="99999999999999999999"))
    assert "now" not in found  # was OverflowError: timestamp out of range for time_t
    hooks = replica_hooks.reading({"list": (0, ""), "ltx": (0, "[]"),
                                   "now": (0, "99999999999999999999")})
    assert hooks.problem == "the machine's litestream printed something unexpected"


@pytest.mark.parametrize("max_txid", ["-1", "+5", "1_0", " 1f ", "0x10", "11112222333344445"])
def test_ltx_max_txid_is_1_to_16_hex_digits(max_txid):
    with pytest.raises(OpsError) as failed:  # Python's int(x, 16) took all of these
        rp.newest([{"max_txid": max_txid, "timestamp": "2026-12-06T21:00:00Z"}])
    assert failed.value.code == ExitCode.REPLICA


def test_the_deploy_gate_never_passes_a_replica_it_cannot_measure():
    ltx = '[{"max_txid": "0000000000000014", "timestamp": "2026-12-06T21:59:59Z"}]'
    read = replica_hooks.reading({"list": (0, ""), "ltx": (0, ltx), "now": (0, "1796594400"),
                                  "status": (0, '[{"local_txid": "000000000000000c"}]')})
    verdict, line = replica_hooks.gate("fail", read, 60)
    assert verdict == "fail" and "after the live database's" in line


@pytest.mark.parametrize("size", ['"abc"', "1e999", "-5", "true", "1.5"])
def test_a_restore_plan_with_a_hostile_file_size_is_exit_15(size, replica_world, run_invoke):
    """A litestream whose ``restore -dry-run -json`` prints a size that is no byte count:
    was a traceback (ValueError, OverflowError) or a wrong total, now one Error: line."""
    world = replica_world
    world.start()
    wrapper = world.tmp / "litestream-hostile-plan"
    wrapper.write_text(HOSTILE_PLAN.format(python=sys.executable, real=LITESTREAM, size=size))
    wrapper.chmod(0o755)
    result = run_invoke("replica.restore", "--output", str(world.tmp / "r.db"), "--dry-run",
                        env={**world.env, "INVOKE_REPLICA_LITESTREAM": str(wrapper)})
    assert result.returncode == ExitCode.REPLICA, result
    assert "file size of an unexpected shape" in result.error_lines[0]
    assert "Traceback" not in result.stderr


HOSTILE_PLAN = """#!{python}
# the real litestream, but its restore plan's file sizes replaced by {size}
import json, subprocess, sys
args = sys.argv[1:]
done = subprocess.run([{real!r}, *args], capture_output=True, text=True)
if args[:1] == ["restore"] and "-dry-run" in args and done.returncode == 0:
    plan = json.loads(done.stdout)
    text = json.dumps(plan)
    for item in plan.get("files") or []:
        text = text.replace('"size": ' + json.dumps(item.get("size")), '"size": {size}', 1)
    sys.stdout.write(text)
else:
    sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
sys.exit(done.returncode)
"""


def test_a_drill_reaching_a_point_dated_in_the_future_says_its_age_is_unknown():
    restored = {"output": "/tmp/x/steps.db", "reached": {"txid": "000000000000000a",
                                                         "time": "2026-12-07T01:00:00Z"}}
    report = rp.drill_report(restored, NOW)  # was age_seconds 0.0: "0s old", the freshest
    assert report["age_seconds"] is None and report["ok"] is True
    assert "3h after now: a clock is wrong, its age is unknown" in report["warning"]  # ui.human_age
    same_second = {"reached": {"txid": "000000000000000a", "time": "2026-12-06T22:00:01Z"}}
    assert rp.drill_report(same_second, NOW)["age_seconds"] == 0.0


@pytest.mark.parametrize("listing", ['[{"path": "/data/steps.db"}]', '{"databases": "x"}',
                                     '{"databases": [1, null, {"path": 7}]}'])
def test_a_list_answer_of_another_shape_replicates_nothing(listing):
    with pytest.raises(OpsError) as failed:  # was AttributeError: 'list' has no 'get'
        rp.remote_position(rp.remote_answers(framed('{"txid": 3}').replace(LISTED, listing)),
                           DB, "the machine")
    assert failed.value.code == ExitCode.REPLICA and "does not replicate" in str(failed.value)


HOSTILE_LIST = """#!{python}
# the real litestream, but `list` answers {listing}
import os, sys
if sys.argv[1:2] == ["list"]:
    print({listing!r})
    sys.exit(0)
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""


def test_status_with_a_list_answer_that_is_an_array_is_exit_15(replica_world, run_invoke):
    world = replica_world
    world.start()
    wrapper = world.tmp / "litestream-hostile-list"
    wrapper.write_text(HOSTILE_LIST.format(python=sys.executable, real=LITESTREAM,
                                           listing=f'[{{"path": "{world.db}"}}]'))
    wrapper.chmod(0o755)
    result = run_invoke("replica.status", env={**world.env,
                                                "INVOKE_REPLICA_LITESTREAM": str(wrapper)})
    assert result.returncode == ExitCode.REPLICA, result
    assert "does not replicate" in result.error_lines[0] and "Traceback" not in result.stderr
