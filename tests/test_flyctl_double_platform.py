"""The flyctl double is as unkind as flyctl around machines, volumes and remote commands.

Issue 19: each behaviour here follows the flyctl / fly-go source file named in
tests/flyctl_double/README.md ("Fly's platform, round 3").  Every test runs the double as a
real subprocess against a ``default_world``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.flyctl_double.plugin import fly_world  # noqa: F401
from tests.flyctl_double.state import (
    DEFAULT_APP,
    DEFAULT_MACHINE_ID,
    MACHINE_IMAGES,
    FlyWorld,
)
from tests.test_flyctl_double import app_dir, run  # noqa: F401

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
