"""kill -9 of replica.drill and replica.restore mid-restore: what is left is a folder of
ours that a later run removes once nothing in it moved for an hour, never before (a long
restore writes deep in its folder while the top folder's time stays old)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ops import poll
from tests import helpers
from tests.replica_world import (  # noqa: F401
    LITESTREAM,
    SLOW_RESTORE,
    moto_endpoint,
    replica_world,
)


def age(folder: Path, seconds: float) -> None:
    """Every entry of ``folder``'s tree as if last touched ``seconds`` ago."""
    when = folder.stat().st_mtime - seconds
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when))
    os.utime(folder, (when, when))


def killed_mid_restore(world, env: dict, *task: str) -> None:
    """Run ``task`` with a litestream that hangs in the restore, then kill -9 it (and the
    hanging litestream, which kill -9 of its parent leaves running)."""
    marker = world.tmp / "restoring.pid"
    marker.unlink(missing_ok=True)
    wrapper = world.tmp / "litestream-slow"
    wrapper.write_text(SLOW_RESTORE.format(python=sys.executable, real=LITESTREAM,
                                           marker=str(marker)))
    wrapper.chmod(0o755)
    argv = [helpers.PYTHON, "-m", "invoke", "--search-root", str(helpers.REPO_ROOT), *task]
    proc = subprocess.Popen(argv, cwd=world.tmp, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=helpers.clean_env(helpers.project_root(
                                world.tmp, {**env, "INVOKE_REPLICA_LITESTREAM": str(wrapper)})))
    try:
        poll.until(lambda: marker.exists() and marker.read_text() or None, timeout=60,
                   interval=0.05, expired=lambda *_: AssertionError("no restore started"))
    finally:
        proc.kill()
        proc.wait()
    os.kill(int(marker.read_text()), 9)


def test_a_drill_killed_mid_restore_leaves_a_folder_the_next_drill_removes(
        replica_world, run_invoke, tmp_path):
    world = replica_world
    world.start()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**world.env, "TMPDIR": str(scratch)}
    killed_mid_restore(world, env, "replica.drill")
    left = {p.name.rsplit("-", 1)[0]: p for p in scratch.iterdir()}
    assert sorted(left) == ["replica-config", "replica-drill"]  # its litestream.yml too
    drill = left["replica-drill"]  # with the partial copy inside
    assert any(name.endswith(world.db.name) for _, _, files in os.walk(drill) for name in files)
    recent = run_invoke("replica.drill", env=env)
    assert recent.returncode == 0, recent
    assert sorted(scratch.iterdir()) == sorted(left.values())  # touched now: maybe running
    for folder in left.values():
        age(folder, 7200)
    swept = run_invoke("replica.drill", env=env)
    assert swept.returncode == 0, swept
    assert f"Removed {drill}" in swept.stderr
    assert list(scratch.iterdir()) == []  # was: kept for good, a full copy in /tmp


def test_a_restore_folder_with_fresh_writes_deep_inside_is_left_alone(replica_world,
                                                                       run_invoke):
    """The top folder's time is old, the copy litestream writes in it is not: a restore
    running for over an hour must not lose its folder to a second restore's sweep."""
    world = replica_world
    world.start()
    out = world.tmp / "out"
    out.mkdir()
    killed_mid_restore(world, world.env, "replica.restore", "--output", str(out / "a.db"))
    (left,) = out.iterdir()
    age(left, 7200)
    (inner,) = left.iterdir()
    os.utime(inner)  # still being written
    result = run_invoke("replica.restore", "--output", str(out / "b.db"), "--quick",
                        env=world.env)
    assert result.returncode == 0, result
    assert left.exists() and (out / "b.db").exists()
    assert not (out / "a.db").exists()  # the killed restore's partial copy never adopted
