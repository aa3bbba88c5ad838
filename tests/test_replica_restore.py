"""replica.restore: real litestream restores from a real S3 endpoint (moto) into a new
file, checked; after kill -9 of litestream and the app, and at a point in time."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3

import pytest

from ops import engine, poll
from ops import replica as rp
from ops.commands.replica import describe_without_litestream
from ops.errors import ExitCode
from ops.sample import WriterProcess
from tests.replica_world import moto_endpoint, replica_world  # noqa: F401


def newest_row(path) -> tuple[int, dt.datetime]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row_id, written = conn.execute(
            "SELECT id, written_at FROM writer_log ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    return row_id, dt.datetime.fromisoformat(written)


def test_restore_target_flags_and_refusals():
    assert rp.restore_target(None, None) == []
    assert rp.restore_target("2026-12-06T22:15:00+01:00", None) == [
        "-timestamp", "2026-12-06T21:15:00Z"]
    assert rp.restore_target(None, "0x1f") == ["-txid", "000000000000001f"]
    for timestamp, txid in (("soon", None), (None, "xyz"), ("2026-12-06T22:15:00Z", "1"),
                            (None, "0"), (None, "0x00"), ("9999-12-31T23:59:59-05:00", None),
                            ("0001-01-01T00:00:00+05:00", None)):
        try:
            rp.restore_target(timestamp, txid)
        except rp.OpsError as exc:
            assert exc.code == ExitCode.USAGE
        else:
            raise AssertionError(f"accepted {timestamp!r} {txid!r}")


def test_a_plan_landing_after_the_timestamp_is_refused():
    plan = {"files": [{"max_txid": "0000000000000003", "timestamp": "2026-12-06T22:00:05Z"}]}
    assert rp.reached(plan, "2026-12-06T22:00:07Z")["landed_before_seconds"] == 2.0
    try:
        rp.reached(plan, "2026-12-06T22:00:02Z")
    except rp.OpsError as exc:
        assert exc.code == ExitCode.VERIFY_FAILED
    else:
        raise AssertionError("a restore after the target was accepted")


def test_kill_9_of_litestream_and_the_app_then_restore_loses_seconds_at_most(
        replica_world, run_invoke):
    world = replica_world
    litestream = world.start()
    writer = WriterProcess(world.db, world.tmp / "w", interval=0.05).start()
    world.caught_up(world.local_txid() + 4)  # replicating under the writer for a while
    world.kill(litestream)
    writer.proc.kill()  # the app dies at the same moment, mid-whatever
    writer.proc.wait(timeout=10)
    live_id, live_time = newest_row(world.db)
    out = world.tmp / "restored.db"
    result = run_invoke("replica.restore", "--output", str(out), "--json", env=world.env)
    assert result.returncode == 0, result
    report = result.json()
    assert report["check"] == "integrity" and engine.run_check(out) == []
    restored_id, restored_time = newest_row(out)
    lost = (live_time - restored_time).total_seconds()
    assert restored_id <= live_id
    assert 0 <= lost <= 5, f"lost {live_id - restored_id} commits, {lost:.2f}s"
    assert "_litestream_seq" not in report["tables"]
    assert out.stat().st_mode & 0o777 == 0o600  # private, as every backup is
    assert report["tables"]["writer_log"] == restored_id
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".replica-restore-")]


def test_a_synced_replica_restores_the_live_content_exactly(replica_world, run_invoke):
    world = replica_world
    world.start()
    with WriterProcess(world.db, world.tmp / "w", interval=0.02, duration=0.5):
        pass
    # synced: the bucket holds the writer's last row (litestream's local TXID can lag the
    # WAL by its monitor interval, so waiting for it alone raced the restore's plan)
    last_id, _ = newest_row(world.db)
    probe = world.tmp / "probe.db"

    def holds_last_row():
        for stale in world.tmp.glob("probe.db*"):
            stale.unlink()
        world.litestream("restore", "-config", str(world.render()), "-o", str(probe),
                         str(world.db))
        try:
            return newest_row(probe)[0] == last_id or None
        except sqlite3.OperationalError:  # no writer_log in the replica yet
            return None

    poll.until(holds_last_row, timeout=30, interval=0.2,
               expired=lambda *_: AssertionError("the replica never held the last row"))
    out = world.tmp / "restored.db"
    result = run_invoke("replica.restore", "--output", str(out), "--json", env=world.env)
    assert result.returncode == 0, result
    src, dst = sqlite3.connect(world.db), sqlite3.connect(world.tmp / "live.db")
    src.backup(dst)  # the live database as of now, litestream's tables included
    src.close()
    dst.close()
    counts, digest, _ = describe_without_litestream(world.tmp / "live.db",
                                                    world.tmp / "scratch.db")
    assert result.json()["content_hash"] == digest
    assert result.json()["tables"] == counts


def test_point_in_time_restore_lands_at_or_before_the_target(replica_world, run_invoke):
    world = replica_world
    world.start()
    writer = WriterProcess(world.db, world.tmp / "w", interval=0.05).start()
    try:
        world.caught_up(world.local_txid() + 3)
        target = dt.datetime.now(dt.UTC)
        world.caught_up(world.local_txid() + 3)  # files written after the target too
    finally:
        writer.stop()
    out = world.tmp / "pitr.db"
    stamp = target.isoformat().replace("+00:00", "Z")
    result = run_invoke("replica.restore", "--timestamp", stamp, "--output", str(out),
                        "--json", env=world.env)
    assert result.returncode == 0, result
    report = result.json()
    assert rp.parse_time(report["reached"]["time"]) <= target  # the file litestream chose
    assert "warning" not in report  # the replica goes on past the target
    assert report["landed_before_seconds"] == pytest.approx(
        (target - rp.parse_time(report["reached"]["time"])).total_seconds())
    _, restored_time = newest_row(out)
    assert restored_time <= target
    assert engine.run_check(out) == []


def test_restore_never_writes_over_a_file_or_through_a_symlink(replica_world, run_invoke):
    world = replica_world
    world.start()
    existing = world.tmp / "existing.db"
    existing.write_bytes(b"keep me")
    elsewhere = world.tmp / "elsewhere.db"
    link = world.tmp / "link.db"
    os.symlink(elsewhere, link)  # dangling: a plain exists() check would miss it
    for path in (existing, link):
        result = run_invoke("replica.restore", "--output", str(path), env=world.env)
        assert result.returncode == ExitCode.USAGE, result
        assert "a restore only writes a new file" in result.error_lines[0]
    assert existing.read_bytes() == b"keep me" and not elsewhere.exists()
    beyond = run_invoke("replica.restore", "--output", str(world.tmp / "n.db"), "--txid",
                        "ffffff", env=world.env)
    assert beyond.returncode == ExitCode.NOT_FOUND, beyond
    assert "no point to restore to" in beyond.error_lines[0]
    both = run_invoke("replica.restore", "--output", str(world.tmp / "n.db"), "--txid", "1",
                      "--timestamp", "2026-12-06T00:00:00Z", env=world.env)
    assert both.returncode == ExitCode.USAGE, both


def test_dry_run_names_the_point_and_writes_nothing(replica_world, run_invoke):
    world = replica_world
    world.start()
    out = world.tmp / "dry.db"
    result = run_invoke("replica.restore", "--output", str(out), "--dry-run", "--json",
                        env=world.env)
    assert result.returncode == 0, result
    assert result.json()["dry_run"] is True and int(result.json()["reached"]["txid"], 16) >= 1
    assert result.json()["outcome"] == "dry run"  # the word every dry run's plan has
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".replica-restore-")]


def test_quick_check_and_counts_only_when_asked(replica_world, run_invoke):
    world = replica_world
    world.start()
    out = world.tmp / "quick.db"
    result = run_invoke("replica.restore", "--output", str(out), "--quick", "--json",
                        env={**world.env, "INVOKE_BACKUP_CONTENT_HASH": "false"})
    assert result.returncode == 0, result
    report = result.json()
    assert report["check"] == "quick" and report["content_hash"] is None
    assert report["tables"]["steps"] == 500 and "_litestream_lock" not in report["tables"]
    assert "quick_check, row counts" in result.stderr
    assert "Removed" not in result.stderr  # nothing stale to sweep


def test_stale_scratch_as_data():
    now = 10_000.0
    folders = [(".replica-restore-old", now - 3601), (".replica-restore-new", now - 60),
               ("other-old", now - 99_999)]
    assert rp.stale_scratch(folders, now) == [".replica-restore-old"]


def test_a_later_restore_sweeps_folders_killed_restores_left(replica_world, run_invoke):
    """The review's #7: kill -9 left .replica-restore-*/ (1-2x the database) for good."""
    world = replica_world
    world.start()
    old, recent = world.tmp / ".replica-restore-old", world.tmp / ".replica-restore-recent"
    for folder in (old, recent):
        folder.mkdir()
        (folder / "swept.db").write_bytes(b"a killed restore's copy")
    two_hours_ago = old.stat().st_mtime - 7200
    os.utime(old / "swept.db", (two_hours_ago, two_hours_ago))  # nothing in it moves
    os.utime(old, (two_hours_ago, two_hours_ago))
    out = world.tmp / "after.db"
    result = run_invoke("replica.restore", "--output", str(out), "--quick", env=world.env)
    assert result.returncode == 0, result
    assert not old.exists() and f"Removed {old}" in result.stderr
    assert (recent / "swept.db").exists()  # maybe a restore running now: left alone


def test_sigterm_during_the_restore_kills_litestream_and_removes_the_folder(replica_world):
    """The review's #6: SIGTERM (a CI timeout, systemd) left the temporary folder with a
    full unchecked copy, exit 143 with no Error: line."""
    import json
    import signal
    import subprocess
    import sys

    from ops import poll
    from tests import helpers
    from tests.replica_world import LITESTREAM, SLOW_RESTORE

    world = replica_world
    world.start()
    marker = world.tmp / "restoring.pid"
    wrapper = world.tmp / "litestream-slow"
    wrapper.write_text(SLOW_RESTORE.format(python=sys.executable, real=LITESTREAM,
                                           marker=str(marker)))
    wrapper.chmod(0o755)
    out = world.tmp / "out" / "r.db"
    out.parent.mkdir()
    env = {**world.env, "INVOKE_REPLICA_LITESTREAM": str(wrapper)}
    argv = [helpers.PYTHON, "-m", "invoke", "--search-root", str(helpers.REPO_ROOT),
            "replica.restore", "--output", str(out), "--json"]
    proc = subprocess.Popen(argv, cwd=world.tmp, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=helpers.clean_env(helpers.project_root(world.tmp, env)))
    try:
        poll.until(lambda: marker.exists() and marker.read_text() or None, timeout=60,
                   interval=0.05, expired=lambda *_: AssertionError("no restore started"))
        child = int(marker.read_text())
        assert [p.name for p in out.parent.iterdir()][0].startswith(".replica-restore-")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "terminated by SIGTERM" in errors[0], stderr
    assert "Traceback" not in stderr
    assert json.loads(stdout)["exit_code"] == 143
    assert list(out.parent.iterdir()) == []  # no folder, no copy, nothing at --output
    assert not os.path.exists(f"/proc/{child}")  # the litestream child is gone too


def test_a_plan_must_reach_the_txid_asked_for():
    plan = {"files": [{"max_txid": "0000000000000007", "timestamp": "2026-12-06T22:00:05Z"}]}
    assert rp.reached(plan, None, "0000000000000007")["reached"]["txid"] == "0000000000000007"
    for asked, code in (("0000000000000009", ExitCode.NOT_FOUND),
                        ("0000000000000005", ExitCode.VERIFY_FAILED)):
        try:
            rp.reached(plan, None, asked)
        except rp.OpsError as exc:
            assert exc.code == code and asked in str(exc)
        else:
            raise AssertionError(f"a plan reaching 7 was accepted for --txid {asked}")


def test_txid_restores_exactly_that_point_and_zero_is_refused(replica_world, run_invoke):
    """The review's wrong success: --txid 0 restored the newest point, exit 0."""
    world = replica_world
    world.start()
    first = world.replica_txid()
    with WriterProcess(world.db, world.tmp / "w", interval=0.02, duration=0.3):
        pass
    world.caught_up(first + 1)  # the writer's commits are in the bucket after `first`
    zero = run_invoke("replica.restore", "--output", str(world.tmp / "z.db"), "--txid", "0",
                      "--json", env=world.env)
    assert zero.returncode == ExitCode.USAGE, zero
    assert len(zero.error_lines) == 1 and "--txid 0" in zero.error_lines[0]
    assert not (world.tmp / "z.db").exists()
    out = world.tmp / "first.db"
    exact = run_invoke("replica.restore", "--output", str(out), "--txid", f"{first:x}",
                       "--json", env=world.env)
    assert exact.returncode == 0, exact
    assert exact.json()["reached"]["txid"] == f"{first:016x}"
    assert "writer_log" not in exact.json()["tables"]  # the writer came after TXID `first`


WRAPPER = """#!{python}
# litestream, but after planning a restore it commits to the live database and waits until
# the bucket holds that commit: the replica moves on between the plan and the restore
import json, sqlite3, subprocess, sys, time
real, db, args = {real!r}, {db!r}, sys.argv[1:]
done = subprocess.run([real, *args], capture_output=True, text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
if done.returncode == 0 and args[:1] == ["restore"] and "-dry-run" in args:
    planned = max(int(f["max_txid"], 16) for f in json.loads(done.stdout)["files"])
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE after_the_plan (x)")
    conn.commit()
    conn.close()
    ltx = [real, "ltx", "-level", "all", "-json", "-config", args[args.index("-config") + 1], db]
    for _ in range(300):
        listed = subprocess.run(ltx, capture_output=True, text=True)
        if listed.returncode == 0 and max(
                int(f["max_txid"], 16) for f in json.loads(listed.stdout)) > planned:
            break
        time.sleep(0.1)
    else:
        sys.exit("the replica did not move on after the plan")
sys.exit(done.returncode)
"""


def test_the_restore_is_pinned_to_the_planned_txid(replica_world, run_invoke):
    """The review's #3: the real restore ran unpinned after the plan, so it could hold
    commits later than the TXID and time the report names."""
    import sys

    from tests.replica_world import LITESTREAM

    world = replica_world
    world.start()
    wrapper = world.tmp / "litestream-moves-on"
    wrapper.write_text(WRAPPER.format(python=sys.executable, real=LITESTREAM,
                                      db=str(world.db)))
    wrapper.chmod(0o755)
    out = world.tmp / "pinned.db"
    result = run_invoke("replica.restore", "--output", str(out), "--json",
                        env={**world.env, "INVOKE_REPLICA_LITESTREAM": str(wrapper)})
    assert result.returncode == 0, result
    assert world.replica_txid() > int(result.json()["reached"]["txid"], 16)  # it moved on
    assert "after_the_plan" not in result.json()["tables"]
    conn = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "after_the_plan" not in names


def test_ends_before_as_data():
    end = rp.Position(9, rp.parse_time("2026-12-06T22:00:05Z"))
    assert rp.ends_before(end, "2026-12-06T22:00:06Z") is None  # the same second, near enough
    assert rp.ends_before(end, "2026-12-06T22:00:00Z") is None
    assert rp.ends_before(end, "2026-12-06T23:00:05Z") == 3600
    assert rp.ends_before(None, "2026-12-06T23:00:05Z") is None


def test_a_timestamp_after_the_replica_restores_the_newest_and_warns(replica_world,
                                                                       run_invoke):
    """The review's #4: a target past the replica's end (litestream died at 10:00, restore
    me 14:00) said only "…s before --timestamp", exit 0, no warning."""
    world = replica_world
    world.start()
    newest = world.replica_txid()
    out = world.tmp / "future.db"
    result = run_invoke("replica.restore", "--output", str(out), "--timestamp",
                        "2030-01-01T00:00:00Z", "--json", env=world.env)
    assert result.returncode == 0, result
    report = result.json()
    assert report["reached"]["txid"] == f"{newest:016x}"
    assert report["replica_ends_at"] == report["reached"]["time"]
    assert report["warning"].startswith(f"the replica ends at {report['replica_ends_at']}, ")
    assert "before the --timestamp asked" in report["warning"]
    assert "WARNING: the replica ends at" in result.stderr


def test_replica_restores_at_once_into_one_file_leave_one_whole_file(replica_world):  # noqa: F811
    """Three replica.restore runs into the same --output at once: one publishes it, the
    others refuse and leave it alone (the file is linked into place, never replaced); two
    drills at once both pass, each in its own scratch folder (s27: not reached by a review)."""
    from tests import helpers

    world = replica_world
    litestream = world.start()
    world.caught_up(world.local_txid())
    world.kill(litestream)
    out = world.tmp / "same.db"
    runs = helpers.run_parallel(
        lambda: helpers.run_invoke("replica.restore", "--output", str(out), "--json",
                                   cwd=world.tmp, env=world.env) for _ in range(3))
    assert sorted(run.returncode for run in runs) == [0, ExitCode.USAGE, ExitCode.USAGE], runs
    for run in runs:
        if run.returncode:
            assert "appeared during the restore: left alone" in run.error_lines[-1], run
    assert engine.run_check(out) == [] and not [p for p in os.listdir(world.tmp)
                                                 if p.startswith(".")]
    drills = helpers.run_parallel(
        lambda: helpers.run_invoke("replica.drill", "--json", cwd=world.tmp, env=world.env)
        for _ in range(2))
    assert [run.returncode for run in drills] == [0, 0], drills

