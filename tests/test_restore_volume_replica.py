"""restore.volume offers the Litestream replica when it reaches later than the snapshot
(issue 18 item 5): a read step on the machine (real litestream, real moto S3), a WARNING
line with the command, the same in the JSON; nothing changes without litestream.yml."""

from __future__ import annotations

import datetime as dt

from ops import replica as rp
from ops import replica_hooks as rh
from tests.replica_machine import labels, replicated  # noqa: F401
from tests.replica_world import moto_endpoint  # noqa: F401

READS = ["version", "volumes list", "machine list", "volumes snapshots list"]


def test_a_replica_newer_than_the_snapshot_is_offered_with_its_command(site, replicated):
    replicated.start()
    result = site.run("restore.volume", "--snapshot", "latest", "--dry-run", "--json",
                      env=replicated.settings)
    assert result.returncode == 0, result
    assert labels(site) == READS + ["ssh replica lag"]  # reads only, the replica's last
    warning = [line for line in result.stderr.splitlines()
               if "the Litestream replica is newer than this snapshot" in line]
    assert warning and rh.FROM_REPLICA in warning[0], result.stderr
    offer = result.json()["replica"]
    assert offer["offer"] == warning[0].removeprefix("WARNING: ")
    assert int(offer["replica"]["txid"], 16) >= 1


def test_without_litestream_yml_restore_volume_reads_as_before(site, replicated):
    (site.cwd / "litestream.yml").unlink()
    result = site.run("restore.volume", "--snapshot", "latest", "--dry-run",
                      env=replicated.settings)
    assert result.returncode == 0, result
    assert labels(site) == READS and "Litestream" not in result.stderr


def test_a_machine_that_cannot_be_asked_is_said_not_a_stop(site, replicated):
    result = site.run("restore.volume", "--snapshot", "latest", "--dry-run",
                      env=replicated.settings)  # litestream not running there
    assert result.returncode == 0, result
    assert "replica not read" in result.stderr
    assert "litestream is not running on the machine" in result.stderr
    assert "newer than this snapshot" not in result.stderr


def test_the_offer_only_when_the_replica_reaches_later():
    made = "2026-12-06T10:00:00Z"
    later = rp.Position(0x2A, dt.datetime(2026, 12, 6, 13, 0, tzinfo=dt.UTC))
    line = rh.volume_offer(made, later)
    assert line == ("the Litestream replica is newer than this snapshot: TXID "
                    "000000000000002a at 2026-12-06T13:00:00Z, 3h later. To lose less, "
                    "restore from it instead: invoke replica.restore --output FILE && invoke "
                    "restore --production --from FILE (FILE: a new file, e.g. restored.db)")
    assert rh.volume_offer(made, rp.Position(1, dt.datetime(2026, 12, 6, 9, tzinfo=dt.UTC))) \
        is None
    assert rh.volume_offer(made, None) is None
    assert rh.volume_offer("0001-01-01T00:00:00Zgarbage", later) is None

