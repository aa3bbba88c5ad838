"""replica.status against a real litestream replicating to a real S3 endpoint (moto)."""

from __future__ import annotations

import datetime as dt
import json

from ops import poll
from ops import replica as rp
from ops.errors import ExitCode
from ops.sample import WriterProcess
from tests.replica_world import moto_endpoint, replica_world  # noqa: F401

NOW = dt.datetime(2026, 12, 6, 22, 0, 0, tzinfo=dt.UTC)


def test_lag_is_zero_when_the_replica_holds_the_local_txid_even_if_old():
    old = rp.Position(txid=7, time=NOW - dt.timedelta(hours=5))
    assert rp.lag(7, old, NOW) == 0.0  # an idle app is current, not "5 hours old"
    assert rp.lag(8, old, NOW) == 5 * 3600
    assert rp.lag(None, None, NOW) is None


def test_staleness_over_max_lag_and_without_a_replica():
    assert rp.staleness(0.0, 60) is None
    assert rp.staleness(60.0, 60) is None
    assert "1m01s behind (--max-lag 1m, 1s over)" in rp.staleness(61.0, 60)
    assert "no replica" in rp.staleness(None, 60)


def test_only_a_litestream_0_5_is_used():
    assert rp.version_problem("0.5.17\n") is None
    assert rp.version_problem("v0.5.2") is None
    assert "not 0.5" in rp.version_problem("v0.3.13")
    assert "no version" in rp.version_problem("")


def test_an_old_litestream_is_refused_with_exit_15(replica_world, run_invoke, tmp_path):
    old = tmp_path / "old-litestream"
    old.write_text("#!/bin/sh\necho v0.3.13\n")
    old.chmod(0o755)
    result = run_invoke("replica.status", env={**replica_world.env,
                                                "INVOKE_REPLICA_LITESTREAM": str(old)})
    assert result.returncode == ExitCode.REPLICA, result
    assert "v0.3.13 is not 0.5" in result.error_lines[0]


def test_newest_position_from_ltx_json():
    files = [{"level": 0, "min_txid": "0000000000000002", "max_txid": "0000000000000002",
              "timestamp": "2026-12-06T22:18:52Z"},
             {"level": 9, "min_txid": "0000000000000001", "max_txid": "000000000000000a",
              "timestamp": "2026-12-06T22:18:59Z"}]
    assert rp.newest(files) == rp.Position(10, dt.datetime(2026, 12, 6, 22, 18, 59,
                                                           tzinfo=dt.UTC))
    assert rp.newest([]) is None
    assert rp.local_txid([{"local_txid": "000000000000000b"}]) == 11
    assert rp.local_txid([{"local_txid": "-"}]) is None


def test_status_is_ok_while_replicating_and_fails_once_litestream_dies(replica_world,
                                                                      run_invoke):
    world = replica_world
    litestream = world.start()
    writer = WriterProcess(world.db, world.tmp / "w", interval=0.05).start()
    try:
        world.caught_up(world.local_txid())
        ok = run_invoke("replica.status", "--max-lag", "60s", "--json", env=world.env)
        assert ok.returncode == 0, ok
        report = ok.json()
        assert report["ok"] is True and report["running"] is True
        assert report["lag_seconds"] <= 60
        assert "AWS_CA_BUNDLE is set: left out of litestream's environment" in ok.stderr
        assert int(report["replica"]["txid"], 16) >= 1
        shown = run_invoke("replica.status", env=world.env)
        assert shown.returncode == 0, shown
        assert f"Replica of {world.db}: TXID " in shown.stderr and "(max 1m)" in shown.stderr
        world.kill(litestream)  # the app keeps writing with nothing shipping its commits
        dead = run_invoke("replica.status", "--json", env=world.env)
    finally:
        writer.stop()
    assert dead.returncode == ExitCode.REPLICA, dead
    assert "not running" in dead.error_lines[0]
    assert dead.json()["exit_code"] == ExitCode.REPLICA


def test_status_fails_when_litestream_runs_but_ships_nothing(replica_world, run_invoke):
    """Litestream up, its uploads failing: never "current". Measured: while it retries the
    unreachable endpoint its control socket stops answering (exit 15, "stuck"); if it
    answers, the lag against the bucket is over --max-lag (exit 7)."""
    world = replica_world
    world.kill(world.start())  # the bucket has a replica, then litestream is gone
    writer = WriterProcess(world.db, world.tmp / "w", interval=0.05).start()
    try:
        world.start(endpoint="http://127.0.0.1:9")  # runs, answers, uploads nowhere
        newest = rp.newest(json.loads(world.litestream(
            "ltx", "-level", "all", "-json", "-config", str(world.config),
            str(world.db)).stdout))
        poll.until(lambda: True if dt.datetime.now(dt.UTC) - newest.time
                   > dt.timedelta(seconds=3) else None, timeout=30, interval=0.1,
                   expired=lambda polls, waited: AssertionError("no clock"))
        stale = run_invoke("replica.status", "--max-lag", "2s", "--json", env=world.env)
    finally:
        writer.stop()
    assert stale.returncode in (ExitCode.STALE, ExitCode.REPLICA), stale
    if stale.returncode == ExitCode.STALE:
        assert stale.json()["ok"] is False and stale.json()["lag_seconds"] > 2
        assert "behind (--max-lag 2s, " in stale.error_lines[0]
    else:
        assert "or is stuck" in stale.error_lines[0]


def test_status_says_so_when_the_bucket_cannot_be_read(replica_world, run_invoke):
    world = replica_world
    world.start()
    broken = run_invoke("replica.status", env={**world.env, "BUCKET_NAME": "no-such-bucket"})
    assert broken.returncode == ExitCode.REPLICA, broken
    assert "cannot read the replica's bucket" in broken.error_lines[0]


def test_status_refuses_a_bad_max_lag_in_one_line(replica_world, run_invoke):
    for bad in ("nan", "inf", "soon"):
        result = run_invoke("replica.status", "--max-lag", bad, env=replica_world.env)
        assert result.returncode == ExitCode.USAGE, result
        assert len(result.error_lines) == 1 and "--max-lag" in result.error_lines[0]
        assert "Traceback" not in result.stderr
