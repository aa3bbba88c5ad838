"""`invoke restore.volume` through the real CLI and the flyctl double.

The default world has machine ``e2865013c41e86`` with volume ``vol_4y5p…`` ("data", 3 GB,
ams, two finished snapshots) and a spare unattached "data" volume. Tests assert the exact
flyctl calls and their order, what exists in the world afterwards (nothing destroyed),
what a failed step tells the operator to run, and the refusals.
"""

from __future__ import annotations

import shlex

import pytest

from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import autostarts, fly, look, signal_while_hung, started
from tests.flyctl_double import DEFAULT_APP, DEFAULT_MACHINE_ID, DEFAULT_VOLUME_ID
from tests.flyctl_double import SPARE_VOLUME_ID as SPARE

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")

APP, MID, VOL = DEFAULT_APP, DEFAULT_MACHINE_ID, DEFAULT_VOLUME_ID
NEWEST, OLDEST = "vs_M3n4O5p6Q7r8S9t0U1v2W3x4", "vs_A1b2C3d4E5f6G7h8I9j0K1l2"
LISTS = [["volumes", "list", "-a", APP, "--json"], ["machine", "list", "-a", APP, "--json"],
         ["volumes", "snapshots", "list", VOL, "-a", APP, "--json"]]
READS = [["version", "--json"], *LISTS]  # flyctl's version is checked first (issue 19 #5)
GIB = 1024**3


def create_argv(snapshot: str, size: int = 3) -> list[str]:
    """The old volume's retention (14 days) and scheduled snapshots, the old machine's VM."""
    return ["volumes", "create", "data", "--snapshot-id", snapshot, "--size", str(size),
            "--region", "ams", "--require-unique-zone=false", "--snapshot-retention", "14",
            "--scheduled-snapshots=true", "--vm-cpu-kind", "shared", "--vm-cpus", "1",
            "--vm-memory", "512", "-a", APP, "--yes", "--json"]


GUARD = ["machine", "update", MID, "-a", APP, "--autostart=false", "--skip-start",
         "-m", "ops_autostart_before=true", "--yes"]  # what to put back, on the machine


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
    # the guard's record of what to put back (metadata) comes along with the copied config
    assert clone["config"]["metadata"].pop("ops_autostart_before") == "true"
    assert {k: v for k, v in clone["config"].items() if k != "mounts"} == \
        {k: v for k, v in old_config.items() if k != "mounts"}  # autostart back on
    # the old machine and volume: kept, stopped, guarded, still attached to each other
    old = site.world.machine(MID)
    assert old["state"] == "stopped" and autostarts(old) == [False]
    assert old["config"]["metadata"].pop("ops_autostart_before") == "true"
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
    assert "--yes" in line and site.world.calls() == []  # refused before its reads (op #9)


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
        "clone", "autostart", "verify", "health"]
    assert record["manual"][-1].startswith(  # a command, not a comment (review-ox 17)
        f"  until curl -fsS -o /dev/null {site.health.url}; do sleep 5; done")
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


# ---------------------------------------------------------------- issue 19: bugs and risks


def test_bug1_the_proxy_cannot_start_the_old_machine_again(site):
    site.world.proxy_traffic()  # Fly's proxy starts a stopped machine that autostarts

    result = site.run("restore.volume", "--snapshot", "latest", "--yes", "--json")

    assert result.returncode == 0, result
    (clone,) = [m["id"] for m in site.world.machines() if m["id"] != MID]
    look(site)  # a later restart or deploy window: still only the clone serves
    assert started(site) == [clone]
    old = site.world.machine(MID)
    assert old["state"] == "stopped" and autostarts(old) == [False]  # guarded, and it stays
    record = result.json()
    assert record["autostart_before"] is True
    assert [s["step"] for s in record["steps"]][:4] == ["create", "wait", "guard", "stop_old"]
    assert record["steps"][2]["command"] == GUARD  # recorded; undone only by a go-back
    assert "go_back" not in record


def test_bug2_go_back_names_the_clone_to_stop_first_and_the_order(site):
    site.world.clones_unhealthy()  # the clone is created and runs, but never gets healthy

    result = site.run("restore.volume", "--snapshot", "latest", "--yes", "--json")

    assert result.returncode == ExitCode.FLY, result
    (clone,) = [m["id"] for m in site.world.machines() if m["id"] != MID]
    assert site.world.machine(clone)["state"] == "started"  # two copies if we only started OLD
    guard_clone = shlex.join(["fly", "machine", "update", clone, "-a", APP,
                              "--autostart=false", "--skip-start", "--yes"])
    stop_clone = shlex.join(["fly", "machine", "stop", clone, "-a", APP])
    back = shlex.join(["fly", "machine", "update", MID, "-a", APP, "--autostart=true", "--yes"])
    text = result.stderr
    assert "To go back to the old machine instead, in this order:" in text
    assert f"1. {guard_clone}" in text and f"2. {stop_clone}" in text and f"3. {back}" in text
    assert f"fly machine destroy {clone} -a {APP} --force" in text
    assert result.json()["go_back"] == [guard_clone, stop_clone, back]
    # following the hint, in order, leaves exactly one copy running: the old one
    for line in result.json()["go_back"]:
        assert fly(site, *shlex.split(line)[1:]).returncode == 0
    look(site)
    assert started(site) == [MID] and autostarts(site.world.machine(MID)) == [True]
    # review-op #4: the clone never runs again on the snapshot's data, even when Fly's
    # proxy finds no machine running that it may start (here the old one, later guarded
    # and stopped: a next restore.volume, an emergency)
    assert autostarts(site.world.machine(clone)) == [False]
    site.world.proxy_traffic()
    for argv in (["update", MID, "-a", APP, "--autostart=false", "--skip-start", "--yes"],
                 ["stop", MID, "-a", APP]):
        assert fly(site, "machine", *argv).returncode == 0
    look(site, times=4)
    assert site.world.machine(clone)["state"] != "started", site.world.machine(clone)


def test_risk3_the_new_volume_keeps_the_old_volumes_snapshot_settings(site):
    with site.world._mutate() as state:
        old = next(v for v in state["apps"][APP]["volumes"] if v["id"] == VOL)
        old["auto_backup_enabled"] = False  # 14 days' retention, no daily snapshots

    result = site.run("restore.volume", "--snapshot", "latest", "--yes")

    assert result.returncode == 0, result
    vol = new_volume(site)
    assert (vol["snapshot_retention"], vol["auto_backup_enabled"]) == (14, False)


def test_risk4_the_clone_has_fly_timeout_as_its_deadline(site, tmp_path):
    site.world.hang(["machine", "clone"], seconds=15, until=tmp_path / "never")

    result = site.run("restore.volume", "--snapshot", "latest", "--yes",
                      env={"INVOKE_FLY_TIMEOUT": "4"})

    line = helpers.assert_one_line_error(result, ExitCode.TIMEOUT, strict=False)
    assert "raise fly.timeout" in line
    assert "To go back to the old machine instead, in this order:" in result.stderr
    assert f"fly machine list -a {APP} --json" in result.stderr  # a clone may exist unnamed


def test_risk5_an_old_flyctl_is_refused_before_anything_changes(site):
    site.world.set_flyctl_version("0.4.79")

    result = site.run("restore.volume", "--snapshot", "latest", "--yes")

    line = helpers.assert_one_line_error(result, ExitCode.FLY, strict=False)
    assert "v0.4.79 is too old" in line and "fly version upgrade" in line
    assert site.world.calls() == [["version", "--json"]]


def test_risk6_a_machine_slower_than_60s_to_stop_is_waited_for(site):
    site.world.machine_takes(MID, 90)  # more than fly-go's 60 s clamp on --wait-timeout

    result = site.run("restore.volume", "--snapshot", "latest", "--yes", "--json")

    assert result.returncode == 0, result
    assert "stopped" in result.json()["steps"][3]["detail"]
    assert site.world.machine(MID)["state"] == "stopped"


def test_risk7_no_room_for_the_machine_fails_while_the_old_still_serves(site):
    site.world.host_room("ams", 256)  # hosts with volume space: room for 256 MB machines

    result = site.run("restore.volume", "--snapshot", "latest", "--yes", "--json")

    line = helpers.assert_one_line_error(result, ExitCode.FLY, strict=False)
    assert "insufficient resources" in line
    old = site.world.machine(MID)
    assert old["state"] == "started" and autostarts(old) == [True]  # never touched
    assert not any(argv[:2] in (["machine", "update"], ["machine", "stop"], ["machine", "clone"])
                   for argv in site.world.calls())
    assert "To go back" not in result.stderr  # nothing to go back from


def test_risk8_a_restore_in_an_undocumented_state_fails_at_once_saying_what_it_saw(site):
    site.world.volume_restore_ends("restore_failed")

    result = site.run("restore.volume", "--snapshot", "latest", "--yes",
                      env={"INVOKE_BACKUP_SNAPSHOT_TIMEOUT": "30"})

    line = helpers.assert_one_line_error(result, ExitCode.ERROR, strict=False)
    assert "is restore_failed (seen: restoring -> restore_failed)" in line
    assert "expected creating or restoring or created" in line
    assert site.world.machine(MID)["state"] == "started"
    assert sum(argv[:2] == ["volumes", "list"] for argv in site.world.calls()) == 3


def test_sigterm_during_the_clone_records_it_and_says_how_to_finish_or_go_back(site, tmp_path):
    """16 #13: a cancelled CI job (SIGTERM to invoke) during restore.volume."""

    result = signal_while_hung(site, tmp_path, ["machine", "clone"], "restore.volume",
                               "--snapshot", "latest", "--yes", "--json")

    assert result.returncode == ExitCode.TERMINATED, result
    assert "terminated by SIGTERM" in result.error_lines[0]
    assert "To finish by hand, run from the failed step on:" in result.stderr
    assert "To go back to the old machine instead, in this order:" in result.stderr
    (entry,) = site.audit()
    assert entry == result.json()
    assert entry["outcome"] == "terminated by SIGTERM during clone"
    assert entry["exit_code"] == ExitCode.TERMINATED
    assert entry["go_back"][-1] == shlex.join(["fly", "machine", "update", MID, "-a", APP,
                                               "--autostart=true", "--yes"])
    vol = new_volume(site)
    assert any(f"{vol['id']}:/data" in line for line in entry["manual"])


# ---------------------------------------------------------------- issue 19, also: earlier volumes


def test_after_a_volume_restore_the_earlier_volumes_snapshots_are_listed_and_accepted(site):
    assert site.run("restore.volume", "--snapshot", "latest", "--yes").returncode == 0
    vol = new_volume(site)
    site.world.add_snapshot(vol["id"], "vs_New000000000000000000000", size=10,
                            created_at="2026-08-21T02:00:00Z")

    listed = site.run("backup.snapshots", "--json")

    assert listed.returncode == 0, listed
    assert [(s["id"], s["volume"]) for s in listed.json()] == [
        ("vs_New000000000000000000000", vol["id"]), (NEWEST, VOL), (OLDEST, VOL)]
    table = site.run("backup.snapshots")
    assert OLDEST in table.stderr + table.stdout and VOL in table.stderr + table.stdout

    # an earlier volume's snapshot is accepted by id; `latest` stays the current volume's
    planned = site.run("restore.volume", "--snapshot", OLDEST, "--dry-run", "--json")
    assert planned.returncode == 0, planned
    assert planned.json()["snapshot"] == OLDEST and planned.json()["volume"] == vol["id"]
    assert f"a snapshot of the earlier volume {VOL}" in planned.stderr
    latest = site.run("restore.volume", "--snapshot", "latest", "--dry-run", "--json")
    assert latest.json()["snapshot"] == "vs_New000000000000000000000"


def test_a_run_killed_after_the_guard_is_rerun_with_the_autostart_the_guard_recorded(site,
                                                                                    tmp_path):
    """kill -9 after the autostart guard (no audit line): the rerun still knows the old
    machine autostarted, so the clone autostarts and the go-back turns it back on."""
    import signal

    signal_while_hung(site, tmp_path, ["machine", "clone"], "restore.volume", "--snapshot",
                      "latest", "--yes", sig=signal.SIGKILL)
    site.world.clear_faults()
    assert autostarts(site.world.machine(MID)) == [False] and site.audit() == []

    result = site.run("restore.volume", "--snapshot", "latest", "--yes", "--json")

    assert result.returncode == 0, result
    assert result.json()["autostart_before"] is True
    (clone,) = [m for m in site.world.machines() if m["id"] != MID]
    assert autostarts(clone) == [True]
    assert f"fly machine update {MID} -a {APP} --autostart=true --yes" in result.stderr


def test_a_guard_refused_for_a_lease_changes_nothing_and_offers_no_go_back(site):
    site.world.hold_lease(MID, holder="deploy@example.com")

    result = site.run("restore.volume", "--snapshot", "latest", "--yes")

    line = helpers.assert_one_line_error(result, ExitCode.FLY, strict=False)
    assert "failed to obtain lease" in line and "deploy@example.com" in line
    old = site.world.machine(MID)
    assert old["state"] == "started" and autostarts(old) == [True]
    assert "To go back" not in result.stderr  # it never stopped serving
    assert "To finish by hand, run from the failed step on:" in result.stderr


# ---------------------------------------------------------------- stop_old's wait, as data


class Recorder:
    """A stand-in for ``fly.Fly`` that only records the argv it is asked to run."""

    def __init__(self):
        self.ran: list[list[str]] = []

    def run(self, argv, **_):
        self.ran.append(argv)


@pytest.mark.parametrize("states, stop_sent, outcome", [
    (["stopped"], False, "stopped"),
    (["started", "stopping", "stopping", "stopped"], True, "started -> stopping -> stopped"),
    (["stopping", "stopped"], False, "stopping -> stopped"),
    (["suspended", "stopped"], True, "suspended -> stopped"),
    (["started", "failed"], True, "failed"),
    (["started"] * 50, True, "timeout"),
])
def test_stop_old_sends_a_stop_only_when_needed_and_polls_until_stopped(states, stop_sent,
                                                                        outcome):
    from ops import fly as flymod
    from ops import runbook
    from ops import volume_restore as vr
    from ops.errors import OpsError

    machine = flymod.Machine.parse({"id": MID, "state": states[0], "config": {
        "mounts": [{"volume": VOL, "path": "/data"}]}})
    import itertools

    seen = itertools.chain(states, itertools.repeat(states[-1]))
    recorder = Recorder()
    run = vr.Execution(
        vr.Resolved(APP, "data", "/data", machine, None, None, 3), recorder, 1.0, 0.0,
        stop_timeout=0.05,
        machines=lambda: [flymod.Machine.parse({"id": MID, "state": next(seen)})])
    step = runbook.Step("stop_old", "", commands=(("machine", "list", "-a", APP, "--json"),))
    if outcome in ("failed", "timeout"):
        with pytest.raises(OpsError) as raised:
            run.stop_old(step)
        assert (raised.value.code == ExitCode.TIMEOUT) is (outcome == "timeout")
        assert ("is failed" in str(raised.value)) is (outcome == "failed")
    else:
        assert run.stop_old(step) == f"{MID} {outcome}"
    assert (recorder.ran == [["machine", "stop", MID, "-a", APP]]) is stop_sent


def _resolved(autostart, guest=True, metadata=None):
    from ops import fly as flymod
    from ops import volume_restore as vr

    config = {"mounts": [{"volume": VOL, "path": "/data"}],
              "services": [{"autostart": autostart}], "metadata": metadata or {}}
    if guest:
        config["guest"] = {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096}
    machine = flymod.Machine.parse({"id": MID, "state": "started", "config": config})
    volume = flymod.Volume(VOL, "data", "created", 3, "ams", MID, None, None)
    snap = flymod.Snapshot(NEWEST, "created", 1, 3 * GIB, "2026-08-17T02:10:54Z", 14)
    return vr.resolve(APP, "data", volume, machine, [snap], "latest", [volume])


@pytest.mark.parametrize("autostart, keys, back", [
    (True, ["create", "wait", "guard", "stop_old", "clone", "autostart", "verify", "health"],
     ["machine", "update", MID, "-a", APP, "--autostart=true", "--yes"]),
    (False, ["create", "wait", "guard", "stop_old", "clone", "verify", "health"],
     ["machine", "start", MID, "-a", APP]),
])
def test_the_plan_and_the_go_back_follow_the_old_autostart(autostart, keys, back):
    from ops import volume_restore as vr

    resolved = _resolved(autostart)
    steps = vr.plan(resolved, "https://x.fly.dev/health")
    assert [s.key for s in steps] == keys
    create = list(steps[0].commands[0])
    assert create[create.index("--vm-cpu-kind"):create.index("-a")] == [
        "--vm-cpu-kind", "performance", "--vm-cpus", "2", "--vm-memory", "4096"]
    assert "--snapshot-retention" not in create  # the old volume says nothing: flyctl's 5
    assert vr.go_back(resolved, "clone1", True) == [
        ["machine", "update", "clone1", "-a", APP, "--autostart=false", "--skip-start", "--yes"],
        ["machine", "stop", "clone1", "-a", APP], back]
    assert vr.go_back(resolved, None, False) == [back]
    assert vr.go_back(resolved, None, True)[0] == ["machine", "list", "-a", APP, "--json"]


def test_a_guard_left_by_an_earlier_run_is_read_from_the_metadata_and_guest_may_be_absent():
    from ops import volume_restore as vr

    resolved = _resolved(False, guest=False, metadata={"ops_autostart_before": "true"})
    assert resolved.autostart is True
    steps = vr.plan(resolved, "https://x.fly.dev/health")
    assert "--vm-memory" not in steps[0].commands[0] and "autostart" in [s.key for s in steps]
    # while the services autostart, an inherited record says nothing
    assert _resolved(True, metadata={"ops_autostart_before": "false"}).autostart is True
