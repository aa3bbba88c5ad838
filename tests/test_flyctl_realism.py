"""What the real flyctl does that a kind double would hide (issue 8 items 5-9 and 11; issue 7
items 10 and 18), through the real CLI against the flyctl double made as unkind as flyctl.

Each test names the flyctl behaviour it stands on; ``tests/flyctl_double/README.md`` cites
the flyctl source of each. The sites and production worlds are the ones of
``test_deploy.py`` and ``test_production.py``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ops import engine, remote
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import (
    MID,
    VOL,
    assert_error,
    error_line,
    label,
    make_prod,
    make_site,
    run_deferred,
)
from tests.flyctl_double.state import real_python3
from tests.helpers import assert_one_line_error, run_parallel

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")

REPO = Path(__file__).resolve().parent.parent
NEW_MID = "9080e6f4a3d2b1"
FAST = {"INVOKE_FLY_TIMEOUT": "3", "INVOKE_FLY_MIN_RATE": "1e12"}  # deadlines of ~3 s


alive = helpers.alive


def double_processes(world) -> list[int]:
    """flyctl double processes still running for this world: a Python launcher (its command
    line), a zygote client (its executable) or a zygote worker (it holds the client's
    executable open: tests/zygote.py), all under the world's bin folder."""
    launcher, python = str(world.bin_dir), os.path.realpath(real_python3())
    found = []
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            exe = os.readlink(f"{proc}/exe")
            if exe != python and not exe.startswith(launcher):
                continue  # neither a client nor a Python (launcher or worker)
            with open(f"{proc}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            continue
        links = [exe]
        for link in glob.glob(f"{proc}/fd/*"):
            with contextlib.suppress(OSError):  # gone meanwhile
                links.append(os.readlink(link))
        if (any(arg.startswith(launcher.encode()) for arg in args)
                or any(link.startswith(launcher) for link in links)):
            found.append(int(proc.split("/")[2]))
    return [pid for pid in found if alive(pid)]


def lock_calls(site) -> list[list[str]]:
    return [argv for argv in site.world.calls() if label(argv) in ("ssh lock", "ssh unlock")]


# ---------------------------------------------------------------- 5. the lost sentinel


def test_flyctl_older_than_0_4_80_is_refused_with_the_upgrade_command(sites, tmp_path):
    old_deploy, old_backup = sites("deploy"), make_prod(tmp_path / "backup")
    for world in (old_deploy.world, old_backup.world):
        world.set_flyctl_version("0.4.79")
    r_deploy, r_backup = run_parallel([
        lambda: old_deploy.run("deploy", "--json"),
        lambda: old_backup.run("backup", "--production"),
    ])  # fmt: skip

    line = error_line(r_deploy)
    assert r_deploy.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, r_deploy
    assert "flyctl v0.4.79 is too old: v0.4.80 or newer" in line
    assert "upgrade with: fly version upgrade" in line
    assert old_deploy.world.calls() == [["version", "--json"]]  # nothing else was asked
    line = assert_error(r_backup, ExitCode.FLY, contains="upgrade with: fly version upgrade")
    assert old_backup.world.calls() == [["version", "--json"]]


def test_an_unreadable_flyctl_version_is_a_warning_not_a_refusal(tmp_path):
    dev, garbled = make_prod(tmp_path / "dev"), make_prod(tmp_path / "garbled")
    dev.world.set_flyctl_version("0.0.0-dev")
    garbled.world.garbage(["version"], stdout='["v?"]\n')
    results = run_parallel([dev.later("backup.list", "--production", "--json"),
                            garbled.later("backup.list", "--production", "--json")])
    for result in results:
        assert result.returncode == 0, result
        assert result.json() == []
        assert "WARNING: cannot tell which flyctl this is" in result.stderr, result


def test_a_lock_step_whose_answer_was_lost_leaves_no_lock_and_blocks_no_later_deploy(site_a):
    # flyctl < 0.4.80 could return before printing the last line: our sentinel. The first
    # `fly ssh console` of a deploy is the machine lock; the script runs, its status is lost.
    site_a.world.drop_output_tail(["ssh", "console"])
    lost = site_a.run("deploy", "--json")

    assert lost.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, lost
    line = error_line(lost)
    assert "machine_lock failed" in line and "status line never arrived" in line
    assert "deploy" not in site_a.labels()
    assert not site_a.machine_lock.exists()  # it was ours: removed on the way out
    assert [label(argv) for argv in lock_calls(site_a)] == ["ssh lock", "ssh unlock"]

    site_a.world.clear_calls()
    later = site_a.run("deploy", "--json")
    assert later.returncode == 0, later  # not blocked by a lock nobody holds
    assert not site_a.machine_lock.exists()


@pytest.fixture
def site_a(tmp_path):
    made = make_site(tmp_path)
    yield made
    made.health.close()


# ---------------------------------------------------------------- 6. deadlines


def test_a_stalled_backup_call_times_out_names_the_key_and_releases_both_locks(site_a):
    backup_call = remote.wrap(remote.backup_script(  # a deploy publishes after quick_check
        str(site_a.db), str(site_a.backups), check="quick"))
    site_a.world.hang(["ssh", "console", backup_call], 60)  # a stalled WireGuard tunnel

    result = site_a.run("deploy", "--json", env=FAST)

    assert result.returncode == ExitCode.DEPLOY_ABORTED_BACKUP, result
    line = error_line(result)
    assert f"`fly ssh console` (backup on machine {MID}) did not finish within" in line
    assert "raise fly.timeout (or lower fly.min_rate)" in line
    assert site_a.labels(locks=True)[-2:] == ["ssh backup", "ssh unlock"]
    assert not site_a.machine_lock.exists()
    helpers.wait_for(lambda: not double_processes(site_a.world), what="the stalled flyctl killed")
    with helpers.file_lock_held(site_a.lock_file, site_a.root / "probe"):
        pass  # this computer's deploy lock is free again
    assert "deploy" not in site_a.labels()


def test_a_timed_out_call_kills_flyctls_whole_process_group(tmp_path):
    prod = make_prod(tmp_path)
    pid_file = tmp_path / "remote.pid"
    fake = tmp_path / "fake-sqlite3"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec {shutil.which('sleep')} 60\n")
    fake.chmod(0o755)
    prod.world.remove_machine_tools("python3")
    prod.world.add_machine_tool("sqlite3", fake)

    result = prod.run("backup", "--production", env=FAST)

    line = assert_error(result, ExitCode.TIMEOUT, contains="did not finish within")
    assert f"`fly ssh console` (backup on machine {MID})" in line
    assert "raise fly.timeout" in line
    pid = int(pid_file.read_text())
    helpers.wait_for(lambda: not alive(pid), what="the remote command killed with flyctl")
    assert not double_processes(prod.world)


def test_flyctl_calls_have_a_deadline_from_fly_timeout(tmp_path):
    prod = make_prod(tmp_path)
    prod.world.hang(["machine", "list"], 60)
    result = prod.run("backup.list", "--production", env={"INVOKE_FLY_TIMEOUT": "1"})
    line = assert_error(result, ExitCode.TIMEOUT)
    # the whole command, the app's name too (review-ox 14: it was cut after three words)
    assert re.search(r"`fly machine list -a [\w-]+ --json` did not finish within 1s", line)
    assert "raise fly.timeout" in line


def test_ctrl_c_stops_flyctl_too_although_it_runs_in_its_own_process_group(tmp_path):
    # flyctl gets its own process group (so a deadline can kill all of it): a Ctrl-C at the
    # terminal no longer reaches it directly, so the tool must pass it on
    prod = make_prod(tmp_path)
    prod.world.hang(["machine", "list"], 60)
    run = helpers.start_invoke("backup.list", "--production", cwd=prod.cwd, env=prod.env)
    helpers.wait_for(lambda: double_processes(prod.world), what="flyctl started")
    run.proc.send_signal(signal.SIGINT)
    result = run.finish()
    assert result.returncode == ExitCode.INTERRUPTED, result
    helpers.wait_for(lambda: not double_processes(prod.world), what="flyctl stopped")


# ---------------------------------------------------------------- 7. unlock after a deploy


def test_the_unlock_finds_the_machine_a_deploy_replaced(sites):
    replaced, stopped = sites("replaced"), sites("stopped")
    replaced.world.deploy_replaces_machine(new_id=NEW_MID)
    stopped.world.deploy_replaces_machine(new_id=NEW_MID, state="stopped")
    r_replaced, r_stopped = run_parallel([
        lambda: replaced.run("deploy", "--json"),
        lambda: stopped.run("deploy", "--json"),
    ])  # fmt: skip

    assert r_replaced.returncode == 0, r_replaced
    assert "Replacing" in r_replaced.stderr
    unlock = lock_calls(replaced)[-1]
    assert label(unlock) == "ssh unlock" and unlock[5] == NEW_MID
    assert not replaced.machine_lock.exists()
    assert "WARNING" not in r_replaced.stderr

    # the new machine did not come up: nothing to reach, so say what to run later
    # the data guard could not reach it either: unknown is not ok (exit 14, the release out)
    assert r_stopped.returncode == 14, r_stopped
    assert "the data guard could not compare" in r_stopped.stderr.splitlines()[-1]
    warning = next(line for line in r_stopped.stderr.splitlines() if "WARNING" in line)
    assert "could not release this deploy's lock" in warning
    assert "once the machine is running, run: invoke deploy.unlock --yes" in warning
    assert stopped.machine_lock.exists()
    stopped.world.set_machine_state(NEW_MID, "started")
    done = stopped.run("deploy.unlock", "--yes")
    assert done.returncode == 0, done
    assert not stopped.machine_lock.exists()


# ---------------------------------------------------------------- issue 7 #18: only the owner


def test_a_deploy_that_ends_after_a_forced_unlock_leaves_the_next_deploys_lock(site_a, tmp_path):
    go_on = tmp_path / "tunnel-back"
    backup_call = remote.wrap(remote.backup_script(  # a deploy publishes after quick_check
        str(site_a.db), str(site_a.backups), check="quick"))
    site_a.world.hang(["ssh", "console", backup_call], 30, until=go_on)
    first = site_a.start("deploy", "--json")
    helpers.wait_for(site_a.machine_lock.exists, what="the first deploy's machine lock")

    # an operator decides the first deploy is dead, and the next one takes the lock
    forced = site_a.run("deploy.unlock", "--yes")
    assert forced.returncode == 0, forced
    site_a.machine_lock.mkdir()
    (site_a.machine_lock / "holder").write_text("bob@ci deploy since 2026-11-29T10:00:00Z\n")
    go_on.touch()
    result = first.finish()

    assert result.returncode == 0, result
    assert (site_a.machine_lock / "holder").read_text().startswith("bob@ci")  # still bob's
    assert "held by bob@ci" in result.stderr and "left in place" in result.stderr


# ---------------------------------------------------------------- 8. snapshots by id


def test_a_scheduled_snapshot_finishing_while_we_wait_is_never_taken_for_ours(tmp_path):
    prod = make_prod(tmp_path)
    daily = prod.world.start_scheduled_snapshot(VOL, lists_before_created=1)
    prod.world.snapshot_behavior("progress", lists_before_created=3)

    result = prod.run("backup.volume", "--json")

    assert result.returncode == 0, result
    ours = [s for s in prod.world.snapshots(VOL) if s["id"] not in (
        daily, "vs_A1b2C3d4E5f6G7h8I9j0K1l2", "vs_M3n4O5p6Q7r8S9t0U1v2W3x4")]
    assert len(ours) == 1
    assert result.json()["id"] == ours[0]["id"] != daily
    assert result.json()["status"] == "created"


def test_a_failed_snapshot_fails_at_once_not_at_the_timeout(sites, tmp_path):
    prod, site = make_prod(tmp_path / "prod"), sites("deploy")
    for world in (prod.world, site.world):
        world.snapshot_behavior("fail", lists_before_created=1)
    slow = {"INVOKE_BACKUP_SNAPSHOT_TIMEOUT": "600"}  # it must not be what ends the wait
    r_volume, r_deploy = run_parallel([
        prod.later("backup.volume", env=slow),
        lambda: site.run("deploy", "--json", env=slow),
    ])  # fmt: skip

    line = assert_error(r_volume, ExitCode.ERROR, contains="ended as failed")
    assert "not created within" not in line
    assert prod.flow().count("snapshots list") == 3  # before, pending, failed
    assert r_deploy.returncode == ExitCode.DEPLOY_ABORTED_SNAPSHOT, r_deploy
    assert "ended as failed" in error_line(r_deploy)
    assert "deploy" not in site.labels()


# ---------------------------------------------------------------- 9. flyctl's output and env


def test_log_level_debug_in_the_users_environment_never_reaches_flyctl(tmp_path):
    prod = make_prod(tmp_path)
    prod.seed(1)
    result = prod.run("backup.list", "--production", "--json", env={"LOG_LEVEL": "debug"})
    assert result.returncode == 0, result
    assert len(result.json()) == 1


def test_bytes_that_are_not_utf8_never_raise(tmp_path):
    from_fly, from_machine = make_prod(tmp_path / "fly"), make_prod(tmp_path / "machine")
    from_fly.world.garbage(["volumes", "list"], stdout=b"\xff\xfe[\x80 not json\n")
    # the machine's listing: a file name that is not UTF-8, then the real status
    from_machine.world.garbage(["ssh", "console"], times=3, stdout=(
        b"__OPS_ENTRY__ steps-\xff\xfe.db 4096 - 0\n\n__OPS_EXIT__=0\n"))
    r_fly, r_machine = run_parallel([
        from_fly.later("backup.list", "--production", "--json"),
        from_machine.later("backup.list", "--production", "--json"),
    ])
    assert_error(r_fly, ExitCode.FLY, contains=" --json` did not print JSON")
    assert "`fly volumes list -a " in r_fly.stderr
    # the listing never prints such a name: the line is refused (one line), never a crash
    assert_error(r_machine, ExitCode.ERROR, contains="this tool did not print")
    assert r"'steps-\ufffd\ufffd.db 4096 - 0'" in r_machine.stderr  # shown escaped


SHAPES = [
    (["volumes", "list"], '{"id": "vol_1"}', "an object where a list belongs"),
    (["volumes", "list"], "[null]", "entry 0: expected an object, got null"),
    (["volumes", "list"], '[{"id": "vol_1", "name": "data", "size_gb": "3"}]',
     "`size_gb` is a string, expected a number"),
    (["volumes", "list"], '[{"name": "data"}]', "entry 0: `id` is missing"),
    (["machine", "list"], '[{"id": "m1", "config": "x"}]', "`config` is a string"),
    (["machine", "list"], '[{"id": "m1", "config": {"mounts": [7]}}]', "got a number"),
    (["machine", "list"], '[{"id": ["m1"]}]', "`id` is a list, expected a string"),
    (["snapshots", "list"], '[{"id": "vs_1", "created_at": 1755000000}]',
     "`created_at` is a number"),
    (["snapshots", "list"], '[{"id": "vs_1", "retention_days": "14"}]',
     "`retention_days` is a string"),
]


def test_every_json_shape_flyctl_could_print_is_checked(tmp_path):
    prods = []
    for number, (match, stdout, _) in enumerate(SHAPES):
        prod = make_prod(tmp_path / str(number))
        prod.world.garbage(match, stdout=stdout + "\n")
        prods.append(prod)
    results = run_deferred([prod.later("backup.snapshots", "--json") for prod in prods])
    for (match, _, words), result in zip(SHAPES, results, strict=True):
        line = assert_error(result, ExitCode.FLY, contains="printed unexpected JSON")
        assert words in line, (match, line)


def test_null_where_flyctl_has_go_zero_values_is_accepted(tmp_path):
    prod = make_prod(tmp_path)
    prod.world.garbage(["snapshots", "list"], stdout=json.dumps([
        {"id": "vs_1", "status": "created", "size": 4096, "volume_size": None,
         "created_at": None, "retention_days": None, "digest": None},
        {"id": "vs_2", "status": "created", "size": 8192, "volume_size": 3,
         "created_at": "2026-08-17T02:10:54Z", "retention_days": 5, "digest": "ab"},
    ]) + "\n")
    result = prod.run("backup.snapshots", "--json")
    assert result.returncode == 0, result
    assert {snap["id"] for snap in result.json()} == {"vs_1", "vs_2"}


# ---------------------------------------------------------------- 11. Python 3.8 on the machine


def python38() -> str | None:
    """A real Python 3.8 on this computer, if there is one (pyenv or the system's)."""
    candidates = [shutil.which("python3.8") or "", "/usr/bin/python3.8",
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))]
    for candidate in candidates:
        if not candidate or not os.path.isfile(candidate):
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sqlite3, sys; assert sys.version_info[:2] == (3, 8)"],
            capture_output=True, env={"PATH": "/nonexistent"})
        if probe.returncode == 0:
            return os.path.realpath(candidate)
    return None


PYTHON38 = python38()  # looked up once, before any test gives HOME a scratch folder


def test_the_engine_and_the_remote_snippets_need_no_python_newer_than_3_8(tmp_path):
    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    snippets = []
    for script in (remote.backup_script("/d/x.db", "/d/b", check="integrity"),
                   remote.verify_script("/d/b", ["steps-2026-01-01T00-00-00.db"], "quick")):
        for code in re.findall(re.escape(engine.PYTHON3) + r" -c '([^']*)'", script):
            snippets.append(code)
    assert snippets, "the remote scripts probe python3 with a snippet"
    files = [REPO / "ops" / "engine.py"]
    for number, code in enumerate(snippets):
        files.append(tmp_path / f"snippet{number}.py")
        files[-1].write_text(code + "\n")
    done = subprocess.run([vermin, "-t=3.8-", "--no-tips", "--violations", *map(str, files)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(PYTHON38 is None, reason="no Python 3.8 on this computer")
def test_an_unreadable_database_on_a_python_3_8_machine_is_reported_as_corrupt(tmp_path):
    prod = make_prod(tmp_path)
    prod.world.add_machine_tool("python3", PYTHON38)
    with prod.db.open("r+b") as raw:  # page 1 (the schema) unreadable; the header intact
        raw.seek(100)
        raw.write(b"\xff" * 300)
    result = prod.run("backup", "--production")
    line = assert_error(result, ExitCode.VERIFY_FAILED, contains="database disk image is malformed")
    assert "[python3]" not in line
    assert not prod.remote_backups()


def test_a_flyctl_that_cannot_say_its_version_is_a_flyctl_error(tmp_path):
    prod = make_prod(tmp_path)
    prod.world.fail(["version"], stderr="Error: boom\n", times=None)
    result = prod.run("backup.list", "--production")
    assert_one_line_error(result, ExitCode.FLY, contains="`fly version --json` failed: boom",
                          strict=False)
