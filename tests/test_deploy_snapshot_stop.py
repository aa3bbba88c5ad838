"""A deploy stopped while it waits for its volume snapshot still says which snapshot it
asked for (issue 20 #8, review-op P3): the snapshot keeps running on Fly, so the summary
and the audit record name it instead of "none" / null.

Through the real CLI against the flyctl double (``tests/fake_production.py``).
"""

from __future__ import annotations

import signal

from ops.deploy import snapshot_summary
from ops.errors import ExitCode
from tests.fake_production import NEW_IMAGE, VOL


def test_a_deploy_stopped_in_the_snapshot_wait_records_and_shows_the_snapshot(site):
    site.world.snapshot_behavior("never")  # listed as running, never created
    run = site.start("deploy", "--image", NEW_IMAGE)
    run.wait_for_stderr(": running after")  # the wait's line once Fly lists ours
    run.proc.send_signal(signal.SIGTERM)
    result = run.finish(timeout=40)

    assert result.returncode == ExitCode.TERMINATED, result
    ours = [s for s in site.world.snapshots(VOL) if s.get("status") != "created"]
    assert len(ours) == 1, site.world.snapshots(VOL)
    snap_id = ours[0]["id"]
    (entry,) = site.audit()
    assert entry["outcome"] == "terminated by SIGTERM during snapshot"
    assert entry["snapshot"] == {"id": snap_id, "volume": VOL, "size": None,
                                 "status": "running"}
    line = next(x for x in result.stderr.splitlines() if x.startswith("  snapshot  "))
    assert line == (f"  snapshot  {snap_id} requested, last seen running: "
                    "see invoke backup.snapshots"), result.stderr
    assert "snapshot  none" not in result.stderr


def test_the_summary_names_a_snapshot_in_every_state():
    created = {"id": "vs_1", "volume": VOL, "size": 5}
    assert snapshot_summary(created) == "vs_1"
    assert snapshot_summary(created | {"status": "created"}) == "vs_1"
    assert snapshot_summary({"id": None, "status": "requested"}) == (
        "one requested, not listed yet: see invoke backup.snapshots")
    assert snapshot_summary({"id": "vs_2", "status": "failed"}) == (
        "vs_2 requested, last seen failed: see invoke backup.snapshots")
