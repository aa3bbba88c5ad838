"""`invoke restore.volume` through the real CLI and the flyctl double.

The default world has machine ``e2865013c41e86`` with volume ``vol_4y5p…`` ("data", 3 GB,
ams, two finished snapshots) and a spare unattached "data" volume. Tests assert the exact
flyctl calls and their order, what exists in the world afterwards (nothing destroyed),
what a failed step tells the operator to run, and the refusals.
"""

from __future__ import annotations

import shlex
import subprocess

import pytest

from ops.errors import ExitCode
from tests import helpers
from tests.flyctl_double import DEFAULT_APP, DEFAULT_MACHINE_ID, DEFAULT_VOLUME_ID
from tests.flyctl_double import SPARE_VOLUME_ID as SPARE
from tests.test_deploy import make_site

APP, MID, VOL = DEFAULT_APP, DEFAULT_MACHINE_ID, DEFAULT_VOLUME_ID
NEWEST, OLDEST = "vs_M3n4O5p6Q7r8S9t0U1v2W3x4", "vs_A1b2C3d4E5f6G7h8I9j0K1l2"
LISTS = [["volumes", "list", "-a", APP, "--json"], ["machine", "list", "-a", APP, "--json"],
         ["volumes", "snapshots", "list", VOL, "-a", APP, "--json"]]
READS = [["version", "--json"], *LISTS]  # flyctl's version is checked first (issue 19 #5)
GIB = 1024**3


@pytest.fixture
def site(tmp_path, fly_world):
    made = make_site(tmp_path, fly_world)
    yield made
    made.health.close()


def create_argv(snapshot: str, size: int = 3) -> list[str]:
    """The old volume's retention (14 days) and scheduled snapshots, the old machine's VM."""
    return ["volumes", "create", "data", "--snapshot-id", snapshot, "--size", str(size),
            "--region", "ams", "--require-unique-zone=false", "--snapshot-retention", "14",
            "--scheduled-snapshots=true", "--vm-cpu-kind", "shared", "--vm-cpus", "1",
            "--vm-memory", "512", "-a", APP, "--yes", "--json"]


GUARD = ["machine", "update", MID, "-a", APP, "--autostart=false", "--skip-start", "--yes"]


def autostarts(machine: dict) -> list:
    return [service.get("autostart") for service in machine["config"]["services"]]


def new_volume(site) -> dict:
    (made,) = [v for v in site.world.volumes() if v["id"] not in (VOL, SPARE)]
    return made


def test_restore_volume_creates_stops_clones_and_keeps_the_old(site):
    old_config = site.world.machine(MID)["config"]

    result = site.run("restore.volume", "--snapshot", "latest", "--yes", "--json")

    assert result.returncode == 0, result
    vol = new_volume(site)
    (clone,) = [m for m in site.world.machines() if m["id"] != MID]
    assert site.world.calls() == [
        *READS,
        create_argv(NEWEST),
        LISTS[0], LISTS[0],  # restoring, then created
        GUARD, LISTS[1],  # the autostart guard (it leaves the machine stopped), then a look
        ["machine", "clone", MID, "-a", APP, "--attach-volume", f"{vol['id']}:/data",
         "--region", "ams"],
        ["machine", "update", clone["id"], "-a", APP, "--autostart=true", "--yes"],
        LISTS[1],
    ]
    # the new volume: from the snapshot, same name, size and region, on the clone
    assert (vol["name"], vol["size_gb"], vol["region"], vol["state"]) == ("data", 3, "ams",
                                                                         "created")
    assert vol["attached_machine_id"] == clone["id"] and clone["state"] == "started"
    assert clone["config"]["mounts"][0]["volume"] == vol["id"]
    assert {k: v for k, v in clone["config"].items() if k != "mounts"} == \
        {k: v for k, v in old_config.items() if k != "mounts"}  # autostart back on
    # the old machine and volume: kept, stopped, guarded, still attached to each other
    old = site.world.machine(MID)
    assert old["state"] == "stopped" and autostarts(old) == [False]
    assert {k: v for k, v in old["config"].items() if k != "services"} == \
        {k: v for k, v in old_config.items() if k != "services"}
    assert {v["id"]: v["attached_machine_id"] for v in site.world.volumes()}[VOL] == MID
    record = result.json()
    assert record["kind"] == "restore.volume" and record["outcome"] == "ok"
    assert record["snapshot"] == NEWEST
    assert record["new"] == {"new_volume": vol["id"], "new_machine": clone["id"]}
    assert site.audit() == [record]
    assert f"fly machine destroy {MID} -a {APP} --force" in result.stderr
    assert f"volume {SPARE} is also named 'data' and unattached" in result.stderr


def test_dry_run_prints_every_command_and_changes_nothing(site):
    before = (site.world.volumes(), site.world.machines())

    result = site.run("restore.volume", "--snapshot", OLDEST, "--dry-run", "--json")

    assert result.returncode == 0, result
    assert site.world.calls() == READS
    plan = result.json()
    assert [s["key"] for s in plan["steps"]] == ["create", "wait", "guard", "stop_old", "clone",
                                                 "autostart", "verify", "health"]
    assert plan["steps"][0]["argv"] == create_argv(OLDEST)
    assert plan["steps"][2]["argv"] == GUARD
    assert "--attach-volume" in plan["steps"][4]["argv"]
    assert "<new_volume>:/data" in plan["steps"][4]["argv"]
    assert shlex.join(["fly", *create_argv(OLDEST)]) in result.stderr
    assert "<new_volume> (the id `fly volumes create` prints)" in result.stderr
    assert (site.world.volumes(), site.world.machines()) == before and site.audit() == []


def test_the_size_covers_the_snapshots_volume(site):
    site.world.add_snapshot(VOL, "vs_Big0000000000000000000000", size=10, volume_size=5 * GIB,
                            created_at="2026-08-18T02:00:00Z")

    result = site.run("restore.volume", "--snapshot", "latest", "--dry-run", "--json")

    assert result.json()["steps"][0]["argv"] == create_argv("vs_Big0000000000000000000000", 5)


@pytest.mark.parametrize("snapshot, code, words", [
    ("vs_nope", ExitCode.NOT_FOUND, "no snapshot vs_nope of volume"),
    ("vs_Pending00000000000000000", ExitCode.USAGE, "is running, not created"),
    ("", ExitCode.USAGE, "--snapshot is required"),
])
def test_a_bad_snapshot_is_refused_before_anything_changes(site, snapshot, code, words):
    site.world.add_snapshot(VOL, "vs_Pending00000000000000000", size=0, status="running",
                            created_at="0001-01-01T00:00:00Z")
    result = site.run("restore.volume", "--snapshot", snapshot, "--yes")

    line = helpers.assert_one_line_error(result, code, strict=False)
    assert words in line
    assert all(argv[:2] in (["volumes", "list"], ["machine", "list"], ["volumes", "snapshots"],
                            ["version", "--json"])
               for argv in site.world.calls())


def test_without_yes_off_a_terminal_nothing_changes(site):
    result = site.run("restore.volume", "--snapshot", "latest")

    line = helpers.assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert "--yes" in line and site.world.calls() == READS


def test_an_emergency_stopped_machine_is_not_cloned(site):
    assert site.run("emergency.stop", "--yes").returncode == 0
    site.world.clear_calls()

    result = site.run("restore.volume", "--snapshot", "latest", "--yes")

    line = helpers.assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert "emergency.resume" in line and site.world.calls() == READS


def test_a_stopped_machine_is_cloned_without_a_stop(site):
    site.world.set_machine_state(MID, "stopped")

    result = site.run("restore.volume", "--snapshot", "latest", "--yes")

    assert result.returncode == 0, result
    assert not any(argv[:2] == ["machine", "stop"] for argv in site.world.calls())


def test_a_failed_clone_says_what_to_run_by_hand_and_destroys_nothing(site):
    site.world.fail(["machine", "clone"], stderr="Error: failed to launch VM: "
                    "insufficient resources\n")

    result = site.run("restore.volume", "--snapshot", "latest", "--yes", "--json")

    assert result.returncode == ExitCode.FLY, result
    assert "insufficient resources" in result.error_lines[0]
    vol = new_volume(site)
    clone = ["fly", "machine", "clone", MID, "-a", APP, "--attach-volume", f"{vol['id']}:/data",
             "--region", "ams"]
    assert "To finish by hand, run from the failed step on:" in result.stderr
    assert shlex.join(clone) in result.stderr  # the real volume id, ready to paste
    assert "To go back to the old machine instead, in this order:" in result.stderr
    assert f"fly machine update {MID} -a {APP} --autostart=true --yes" in result.stderr
    record = result.json()
    assert record["outcome"] == "clone failed" and record["new"]["new_volume"] == vol["id"]
    assert [line.rsplit("# ", 1)[1] for line in record["manual"]] == [
        "clone", "autostart", "verify", f"health: poll {site.health.url} until 200"]
    # nothing destroyed: the old pair is intact, the new volume waits unattached
    assert {v["id"] for v in site.world.volumes()} == {VOL, SPARE, vol["id"]}
    assert vol["attached_machine_id"] is None
    assert site.world.machine(MID)["state"] == "stopped"


def test_a_volume_that_never_finishes_restoring_times_out_before_the_old_stops(site):
    with site.world._mutate() as state:
        state["features"]["volume_restore_lists"] = 10_000  # stays `restoring`

    result = site.run("restore.volume", "--snapshot", "latest", "--yes",
                      env={"INVOKE_BACKUP_SNAPSHOT_TIMEOUT": "0.3"})

    line = helpers.assert_one_line_error(result, ExitCode.TIMEOUT, strict=False)
    assert "still restoring" in line
    assert not any(argv[:2] in (["machine", "stop"], ["machine", "clone"])
                   for argv in site.world.calls())
    assert site.world.machine(MID)["state"] == "started"  # the app never went down
    assert "fly machine stop " + MID in result.stderr  # the rest, to run by hand


# ---------------------------------------------------------------- the double, as flyctl


def fly(site, *args: str, env: dict | None = None):
    return subprocess.run(["fly", *args], cwd=site.cwd,
                          env=site.world.subprocess_env(**(env or {})),
                          capture_output=True, text=True, timeout=30)


def test_the_double_creates_and_clones_like_flyctl(site):
    no_region = fly(site, "volumes", "create", "data", "--snapshot-id", NEWEST, "-s", "3",
                    "-a", APP, "--yes")
    assert no_region.stderr == "Error: region code must be specified when not running " \
                               "interactively\n"
    first_of_its_name = fly(site, "volumes", "create", "other", "-r", "ams", "-a", APP)
    assert first_of_its_name.returncode == 1
    assert first_of_its_name.stderr.endswith(
        "Error: yes flag must be specified when not running interactively\n")
    assert first_of_its_name.stderr.startswith("Warning! Every volume is pinned")
    too_small = fly(site, "volumes", "create", "data", "--snapshot-id", NEWEST, "-r", "ams",
                    "-a", APP, "--yes")  # the default size is 1 GB
    assert too_small.returncode == 1 and "at least 3GB" in too_small.stderr
    region_from_env = fly(site, "volumes", "create", "data", "--snapshot-id", NEWEST, "-s", "3",
                          "-a", APP, "--yes", "--json", env={"FLY_REGION": "ams"})
    assert region_from_env.returncode == 0, region_from_env
    assert region_from_env.stdout.startswith('{\n    "id": "vol_')

    attached = fly(site, "machine", "clone", MID, "-a", APP, "--attach-volume", f"{VOL}:/data")
    assert attached.returncode == 1
    assert attached.stderr == f"Error: volume {VOL} is already attached to a machine\n"
    assert "Info: --attach-volume is overriding previous mount point from `/data` to `/data`." \
        in attached.stdout
    wrong_region = fly(site, "machine", "clone", MID, "-a", APP, "--attach-volume",
                       f"{SPARE}:/data", "-r", "fra")
    assert wrong_region.stderr == ("Error: specified region fra but volume is in region ams, "
                                   "use the same region as the volume\n")
