"""Litestream's failures read as one ``Error:`` line, never "Error: …: Error: …" (issue 18,
s18-repop left the whole class but NoSuchBucket): litestream starts its own line with
``Error:``, and the CLI adds one. The pure picker as data, then real litestream failures
(a stopped litestream's socket, a missing config, a bucket whose files are garbage) and
the machine's answers (status, the deploy's hooks). Real litestream, real S3 (moto)."""

from __future__ import annotations

import pytest

from ops import replica as rp
from ops import replica_hooks as rh
from ops.errors import ExitCode, OpsError
from tests.helpers import assert_one_line_error
from tests.replica_world import (  # noqa: F401
    LITESTREAM,
    garbage_replica,
    moto_endpoint,
    replica_world,
)


@pytest.mark.parametrize("text, line", [
    ("Error: config file not found: /x.yml\n", "config file not found: /x.yml"),
    ("time=1 level=INFO msg=start\nError: sync: context deadline exceeded\n",
     "sync: context deadline exceeded"),
    ("ERROR: Error: twice over\n", "twice over"),
    ("error:lower case\n", "lower case"),
    ("no prefix at all\nthe last line\n", "the last line"),
    ("level=ERROR msg=boom\n", "level=ERROR msg=boom"),
    ("", ""),
    ("   \n\n", ""),
])
def test_said_picks_the_failure_without_litestreams_prefix(text, line):
    assert rp.said(text) == line


def test_said_keeps_a_line_short():
    assert rp.said("Error: " + "x" * 900) == "x" * 300
    assert rp.said("Error: " + "x" * 900, 200) == "x" * 200


def test_a_real_litestream_failure_through_run_has_no_second_error(tmp_path):
    missing = tmp_path / "no-such.yml"
    with pytest.raises(OpsError) as failed:
        rp.run([LITESTREAM, "ltx", "-json", "-config", str(missing), str(tmp_path / "a.db")],
               {}, timeout=30, what="cannot read the replica's bucket")
    message = str(failed.value)
    assert failed.value.code == ExitCode.REPLICA
    assert message == f"cannot read the replica's bucket: config file not found: {missing}"


def test_a_litestream_killed_by_a_signal_is_not_the_replicas_answer(tmp_path):
    """It read "exit -9" with the replica's exit code, 15 (s27 review-break3): a kill -9,
    the OOM killer, is this computer's failure, 1, and says so."""
    killed = tmp_path / "litestream"
    killed.write_text("#!/bin/sh\nkill -9 $$\n")
    killed.chmod(0o755)
    with pytest.raises(OpsError) as failed:
        rp.run([str(killed), "version"], {}, timeout=30, what="litestream restore failed")
    assert str(failed.value) == ("litestream restore failed: litestream was killed by "
                                 "SIGKILL, before it answered")
    assert failed.value.code == ExitCode.ERROR


def test_a_stopped_litestream_is_one_error_line(replica_world, run_invoke):
    result = run_invoke("replica.status", env=replica_world.env)
    line = assert_one_line_error(result, ExitCode.REPLICA, contains="not running",
                                 strict=False)
    assert "failed to connect to control socket" in line, line  # litestream's own words
    assert line.count("Error:") == 1, line


def test_a_restore_that_litestream_fails_is_one_error_line(replica_world, run_invoke,
                                                            tmp_path):
    world = replica_world
    garbage_replica(world)  # every replica file now garbage: litestream's restore fails
    result = run_invoke("replica.restore", "--output", str(tmp_path / "out.db"),
                        env=world.env)
    line = assert_one_line_error(result, ExitCode.REPLICA, strict=False)  # was 1, undocumented
    assert line.startswith("Error: litestream restore failed: invalid ltx file"), line
    assert line.count("Error:") == 1, line
    assert not (tmp_path / "out.db").exists(), line


def test_the_machines_litestream_failures_are_one_error_each():
    found = {"list": (1, "Error: failed to connect to control socket: dial unix"),
             "ltx": (1, "Error: NoSuchBucket: not there"),
             "sync": (1, "Error: sync: context deadline exceeded")}
    down = rh.reading(rh.sections(_found(list=found["list"])))
    bucket = rh.reading(rh.sections(_found(list=(0, "{}"), ltx=found["ltx"])))
    for problem in (down.problem, bucket.problem):
        assert "Error:" not in problem, problem
    assert "bucket cannot be read from the machine: NoSuchBucket: not there" in bucket.problem
    ok, reason = rh.current(rh.sections(_found(sync=found["sync"])))
    assert not ok and reason == "litestream sync: sync: context deadline exceeded"
    with pytest.raises(OpsError) as failed:
        rp.answer(1, "", "Error: sync: context deadline exceeded", "could not ship", 15)
    assert str(failed.value) == "could not ship: sync: context deadline exceeded"


def _found(**answers) -> str:
    """The machine's hook script output, as ``replica_hooks.sections`` reads it."""
    lines = []
    for name, (status, text) in answers.items():
        lines += [f"{rh.MARK} {name}", *text.splitlines(), f"{rh.MARK} rc {status}"]
    return "\n".join(lines)
