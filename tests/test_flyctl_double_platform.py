"""The flyctl double is as unkind as flyctl around machines, volumes and remote commands.

Issue 19: each behaviour here follows the flyctl / fly-go source file named in
tests/flyctl_double/README.md ("Fly's platform, round 3").  Every test runs the double as a
real subprocess against a ``default_world``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.flyctl_double.plugin import fly_world  # noqa: F401
from tests.flyctl_double.state import (
    DEFAULT_APP,
    DEFAULT_MACHINE_ID,
    MACHINE_IMAGES,
    FlyWorld,
)
from tests.helpers import fly_run as run

APP = DEFAULT_APP
MID = DEFAULT_MACHINE_ID


def ssh(world: FlyWorld, command: str, cwd: Path, machine: str = MID):
    return run(world, "ssh", "console", "--machine", machine, "-q", "-C", command, cwd=cwd)


# ---------------------------------------------------------------- the machine's image


def test_the_machines_tools_are_its_images_not_the_hosts(fly_world, app_dir):
    w = fly_world
    state = w.raw_state_machine(MID)["_runtime"]
    assert state["image"] == "default"
    assert "python3" in state["tools"] and "python3" in w.machine_tools(MID)
    # The state field is the truth: a tool taken out of it is gone from the next command's
    # PATH, although the symlink is still in the folder when the command starts.
    with w._mutate() as s:
        rt = next(m for m in s["apps"][APP]["machines"] if m["id"] == MID)["_runtime"]
        del rt["tools"]["sqlite3"]
    assert (w.machine_bin_dir(MID) / "sqlite3").is_symlink()
    p = ssh(w, "sqlite3 -version", app_dir)
    assert p.returncode == 1 and "executable file not found in $PATH" in p.stderr
    assert not (w.machine_bin_dir(MID) / "sqlite3").exists()
    # A host tool that is not in the image is not reachable, even by absolute /usr/bin path.
    p = ssh(w, "sh -c 'command -v python3 && /usr/bin/env sqlite3 -version'", app_dir)
    assert p.returncode == 1 and p.stdout.strip().endswith("/python3")


def test_a_clone_runs_the_same_image(fly_world, app_dir):
    w = fly_world
    MACHINE_IMAGES["lean"] = ("sh", "cat", "echo")
    try:
        w.set_machine_image("lean", MID)
    finally:
        del MACHINE_IMAGES["lean"]
    assert w.machine_tools(MID) == ["cat", "echo", "sh"]
    vol = w.add_volume(APP, "vol_c1c1c1c1c1c1c1c1", size_gb=3)
    p = run(w, "machine", "clone", MID, "--attach-volume", f"{vol['id']}:/data", "--detach",
            cwd=app_dir)
    assert p.returncode == 0, p.stderr
    clone = next(m["id"] for m in w.machines() if m["id"] != MID)
    assert w.machine_tools(clone) == ["cat", "echo", "sh"]
    assert w.raw_state_machine(clone)["_runtime"]["image"] == "lean"
    p = ssh(w, "sh -c 'python3 -V'", app_dir, machine=clone)
    assert p.returncode == 1 and "status 127" in p.stderr


def test_unknown_image_is_refused(fly_world):
    with pytest.raises(ValueError, match="unknown machine image 'nope'"):
        fly_world.set_machine_image("nope")


def machine_list(w, app_dir) -> dict:
    p = run(w, "machine", "list", "--json", cwd=app_dir)
    assert p.returncode == 0, p.stderr
    return {m["id"]: m for m in json.loads(p.stdout)}


def autostart(machine: dict) -> list:
    return [s.get("autostart") for s in machine["config"]["services"]]


# ---------------------------------------------------------------- Fly's proxy


def test_the_proxy_starts_a_stopped_machine_unless_autostart_is_off(fly_world, app_dir):
    w = fly_world
    w.proxy_traffic()
    assert run(w, "machine", "stop", MID, cwd=app_dir).returncode == 0
    states = [machine_list(w, app_dir)[MID]["state"] for _ in range(3)]
    # stopping, then stopped; then requests find no started machine: started again
    assert states == ["stopping", "stopped", "started"]

    p = run(w, "machine", "update", MID, "--autostart=false", "--skip-start", "--yes",
            cwd=app_dir)
    assert p.returncode == 0, p.stderr
    for _ in range(3):
        machine = machine_list(w, app_dir)[MID]
        assert machine["state"] == "stopped" and autostart(machine) == [False]


def test_a_started_machine_running_sleep_is_left_alone(fly_world, app_dir):
    w = fly_world
    w.proxy_traffic()
    p = run(w, "machine", "update", MID, "--command", "sleep 99", "--skip-health-checks",
            "--yes", cwd=app_dir)
    assert p.returncode == 0, p.stderr
    assert machine_list(w, app_dir)[MID]["config"]["init"]["cmd"] == ["sleep", "99"]


# ---------------------------------------------------------------- leases


@pytest.mark.parametrize("args", [["machine", "stop", MID], ["machine", "start", MID],
                                  ["machine", "restart", MID],
                                  ["machine", "update", MID, "--autostart=false", "--yes"]])
def test_a_lease_held_elsewhere_fails_the_command(fly_world, app_dir, args):
    w = fly_world
    w.hold_lease(MID, holder="deploy@example.com")
    before = w.machine(MID)
    p = run(w, *args, cwd=app_dir)
    assert p.returncode == 1
    assert f"Waiting on lease for machine {MID}...\n" in p.stdout
    assert p.stderr.startswith(f"Error: failed to obtain lease: failed to get lease on VM {MID}")
    assert "deploy@example.com" in p.stderr
    assert w.machine(MID)["state"] == before["state"]
    assert w.machine(MID)["config"] == before["config"]


# ---------------------------------------------------------------- stop, start


def test_stop_returns_before_the_machine_is_stopped(fly_world, app_dir):
    w = fly_world
    w.transition_lists(2)
    p = run(w, "machine", "stop", MID, cwd=app_dir)
    assert p.stdout == (f"Sending kill signal to machine {MID}...\n"
                        f"{MID} has been successfully stopped\n")
    states = [machine_list(w, app_dir)[MID]["state"] for _ in range(3)]
    assert states == ["stopping", "stopping", "stopped"]


def test_stop_wait_timeout_is_clamped_to_60_seconds(fly_world, app_dir):
    w = fly_world
    w.machine_takes(MID, 90)
    p = run(w, "machine", "stop", MID, "--wait-timeout", "2m", cwd=app_dir)
    assert p.returncode == 1
    assert p.stderr.startswith(f"Error: machine {MID} did not stop within the wait timeout: "
                               f"failed to wait for VM {MID} in [stopped] state")
    assert "1m0s" in p.stderr
    assert w.machine(MID)["state"] == "stopping"
    w.machine_takes(MID, 30)
    p = run(w, "machine", "stop", MID, "-w", "45s", cwd=app_dir)
    assert p.returncode == 0 and w.machine(MID)["state"] == "stopped"
    p = run(w, "machine", "stop", MID, "-w", "soon", cwd=app_dir)
    assert p.stderr == ('Error: invalid argument "soon" for "-w, --wait-timeout" flag: '
                        'time: invalid duration "soon"\n')


def test_start_returns_before_started_and_can_fail_for_capacity(fly_world, app_dir):
    w = fly_world
    w.set_machine_state(MID, "stopped")
    w.no_capacity("ams")
    p = run(w, "machine", "start", MID, cwd=app_dir)
    assert p.stderr == ("Error: could not start machine due to lack of capacity. Try "
                        f"'flyctl machine clone {MID} -a {APP}'\n")
    w.no_capacity()
    p = run(w, "machine", "start", MID, cwd=app_dir)
    assert p.stdout == f"{MID} has been started\n"
    assert [machine_list(w, app_dir)[MID]["state"] for _ in range(2)] == ["starting",
                                                                          "started"]


# ---------------------------------------------------------------- update, restart


def test_update_fails_when_the_new_command_exits(fly_world, app_dir):
    w = fly_world
    p = run(w, "machine", "update", MID, "--command", "no-such-program --serve", "--yes",
            cwd=app_dir)
    assert p.returncode == 1
    assert p.stderr == f'Error: machine {MID} update failed: machine entered "failed" state\n'
    assert w.machine(MID)["state"] == "failed"


def test_update_that_never_settles_honours_wait_timeout(fly_world, app_dir):
    w = fly_world
    w.update_never_settles(MID)
    p = run(w, "machine", "update", MID, "--autostart=false", "--yes", "--wait-timeout", "90",
            cwd=app_dir)
    assert p.returncode == 1
    assert p.stderr == ("Error: timeout reached waiting for machine's state to change\n"
                        f'The machine {MID} took more than 1m30s to reach "settled"\n\n'
                        "Try increasing the --wait-timeout\n\n")
    p = run(w, "machine", "update", MID, "--restart", "bogus", "--yes", cwd=app_dir)
    assert p.stderr == "Error: invalid restart provided\n"


def test_restart_waits_for_health_checks_that_never_pass(fly_world, app_dir):
    w = fly_world
    p = run(w, "machine", "update", MID, "--command", "sleep 99", "--skip-health-checks",
            "--yes", cwd=app_dir)
    assert p.returncode == 0, p.stderr
    p = run(w, "machine", "restart", MID, cwd=app_dir)
    assert p.returncode == 126
    assert p.stderr.endswith(f"Error: failed to restart machine {MID}: failed to wait for "
                             "health checks to pass: context deadline exceeded\n")
    assert "Restarted successfully" not in p.stdout


# ---------------------------------------------------------------- clone


def test_clone_refuses_a_restoring_volume_and_sends_only_volume_and_path(fly_world, app_dir):
    w = fly_world
    snap = "vs_M3n4O5p6Q7r8S9t0U1v2W3x4"
    p = run(w, "volumes", "create", "data", "--snapshot-id", snap, "-s", "3", "-r", "ams",
            "--yes", "--json", cwd=app_dir)
    assert p.returncode == 0, p.stderr
    vol = json.loads(p.stdout)["id"]
    p = run(w, "machine", "clone", MID, "--attach-volume", f"{vol}:/data", cwd=app_dir)
    assert p.returncode == 1 and "not ready to be attached (state: restoring)" in p.stderr
    run(w, "volumes", "list", "--json", cwd=app_dir)  # restored now
    run(w, "volumes", "list", "--json", cwd=app_dir)
    # strings.Split: a path with a colon is three parts, so the source's path stays
    p = run(w, "machine", "clone", MID, "--attach-volume", f"{vol}:/da:ta", cwd=app_dir)
    assert p.returncode == 0, p.stderr
    assert "overriding previous mount point" not in p.stdout
    clone = next(m for m in w.machines() if m["id"] != MID)
    assert clone["config"]["mounts"] == [{"path": "/data", "volume": vol}]


def test_clone_onto_a_volume_whose_host_lacks_room(fly_world, app_dir):
    w = fly_world
    w.host_room("ams", 256)
    snap = "vs_M3n4O5p6Q7r8S9t0U1v2W3x4"
    p = run(w, "volumes", "create", "data", "--snapshot-id", snap, "-s", "3", "-r", "ams",
            "--vm-memory", "512", "--yes", cwd=app_dir)
    assert p.returncode == 1 and "insufficient resources" in p.stderr
    p = run(w, "volumes", "create", "data", "--snapshot-id", snap, "-s", "3", "-r", "ams",
            "--yes", "--json", cwd=app_dir)
    assert p.returncode == 0, p.stderr  # room for the default 256 MB guest only
    vol = json.loads(p.stdout)["id"]
    for _ in range(2):
        run(w, "volumes", "list", "--json", cwd=app_dir)
    p = run(w, "machine", "clone", MID, "--attach-volume", f"{vol}:/data", cwd=app_dir)
    assert p.returncode == 1 and "insufficient memory" in p.stderr


# ---------------------------------------------------------------- volumes create


def test_volumes_create_checks_the_region_and_honours_scheduled_snapshots(fly_world, app_dir):
    w = fly_world
    p = run(w, "volumes", "create", "data", "-r", "xyz", "--yes", cwd=app_dir)
    assert p.stderr == "Error: region xyz not found\n"
    p = run(w, "volumes", "create", "data", "-r", "ams", "--yes", "--json",
            "--scheduled-snapshots=false", "--snapshot-retention", "30", cwd=app_dir)
    made = json.loads(p.stdout)
    assert (made["auto_backup_enabled"], made["snapshot_retention"]) == (False, 30)
    p = run(w, "volumes", "create", "data", "-r", "ams", "--yes", "--json", cwd=app_dir)
    made = json.loads(p.stdout)
    assert (made["auto_backup_enabled"], made["snapshot_retention"]) == (True, 5)


def test_a_restore_can_fail(fly_world, app_dir):
    w = fly_world
    w.volume_restore_ends("restore_failed")
    p = run(w, "volumes", "create", "data", "--snapshot-id", "vs_M3n4O5p6Q7r8S9t0U1v2W3x4",
            "-s", "3", "-r", "ams", "--yes", "--json", cwd=app_dir)
    vol = json.loads(p.stdout)["id"]
    states = []
    for _ in range(3):
        listed = json.loads(run(w, "volumes", "list", "--json", cwd=app_dir).stdout)
        states.append(next(v["state"] for v in listed if v["id"] == vol))
    assert states == ["restoring", "restore_failed", "restore_failed"]


# ---------------------------------------------------------------- remote commands split


@pytest.mark.parametrize("text, words", [
    ("sh -c 'echo x' # a comment", ["sh", "-c", "echo x"]),
    ('echo "a\\nb" c#d', ["echo", "anb", "c#d"]),
    ("echo '' \"\"", ["echo", "", ""]),
    ("a\\ b 'it'\"'\"'s'", ["a b", "it's"]),
])
def test_remote_commands_are_split_like_google_shlex(fly_world, app_dir, tmp_path, text, words):
    import shlex

    from tests.flyctl_double.cli.platform import go_shlex_split

    assert go_shlex_split(text) == words
    script = tmp_path / "argv.py"
    script.write_text("import json, sys; print(json.dumps(sys.argv[1:]))\n")
    p = ssh(fly_world, f"python3 {shlex.quote(str(script))} {text}", app_dir)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == words


def test_an_unterminated_quote_is_refused(fly_world, app_dir):
    p = ssh(fly_world, "echo 'oops", app_dir)
    assert p.returncode == 1 and "EOF found when expecting closing quote" in p.stderr


def test_volumes_create_places_a_volume_in_a_unique_zone(fly_world, app_dir):
    w = fly_world
    w.zones("ams", ["a1c7", "9f02"])  # both used by the two "data" volumes already
    p = run(w, "volumes", "create", "data", "-r", "ams", "--yes", cwd=app_dir)
    assert p.returncode == 1 and "no zone left in ams" in p.stderr
    p = run(w, "volumes", "create", "other", "-r", "ams", "--yes", "--json", cwd=app_dir)
    assert json.loads(p.stdout)["zone"] == "a1c7"  # another name may share a zone
    p = run(w, "volumes", "create", "data", "-r", "ams", "--yes", "--json",
            "--require-unique-zone=false", cwd=app_dir)
    assert p.returncode == 0 and json.loads(p.stdout)["zone"] == "a1c7"


@pytest.mark.parametrize("script", [
    "echo 'it''s' \"$HOME\" # not a comment inside quotes",
    "printf '%s\\n' a\\\\b; exit 3",
    "#!/bin/sh\nset -eu\necho \"x\"\n",
    "",
    "'\"'\"'",
    "a\tb\r\nc",
])
def test_what_the_toolkit_sends_survives_flyctls_split(script):
    """ops.remote.wrap builds ``sh -c '<script>'`` with Python's shlex.join: google/shlex
    (flyctl's splitter) must give back the same three words, whatever the script holds."""
    import shlex

    from tests.flyctl_double.cli.platform import go_shlex_split

    assert go_shlex_split(shlex.join(["sh", "-c", script])) == ["sh", "-c", script]
