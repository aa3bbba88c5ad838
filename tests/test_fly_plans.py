"""Pure pieces of the production path, as data: argv builders, JSON parsing, choosing the
production machine, finding the new snapshot, the deploy plan, the health verdict."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from ops import deploy, fly, health, remote
from ops.errors import ExitCode, OpsError
from ops.targets.fly.machine import choose_production
from ops.targets.fly.snapshots import new_snapshot

FIXTURES = Path(__file__).parent / "flyctl_double" / "reference"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


# ---------------------------------------------------------------- argv builders


def test_ssh_console_names_the_machine_is_quiet_and_passes_one_command_argument():
    argv = fly.ssh_console("app", "m1", remote.wrap("echo hi | wc -c"))
    assert argv[:7] == ["ssh", "console", "-a", "app", "--machine", "m1", "-q"]
    assert argv[7] == "-C"
    assert shlex.split(argv[8])[:2] == ["sh", "-c"]
    assert len(argv) == 9


def test_snapshot_commands_never_pass_a_config_flag():
    # `fly volumes snapshots` accepts only -a and --json; -c is an unknown-flag error there
    for argv in (fly.snapshots_create("app", "vol_1"), fly.snapshots_list("app", "vol_1")):
        assert "-c" not in argv and "--config" not in argv
    assert fly.snapshots_create("app", "vol_1") == [
        "volumes", "snapshots", "create", "vol_1", "-a", "app"]
    assert fly.snapshots_list("app", "vol_1")[-1] == "--json"


def test_deploy_argv():
    assert fly.deploy("app", "fly.toml") == ["deploy", "-a", "app", "-c", "fly.toml"]
    assert fly.deploy("app", "fly.toml", remote_only=True, strategy="bluegreen",
                      wait_timeout="10m", extra=("--build-arg", "X=1")) == [
        "deploy", "-a", "app", "-c", "fly.toml", "--remote-only", "--strategy", "bluegreen",
        "--wait-timeout", "10m", "--build-arg", "X=1"]
    # an image needs no build, so --remote-only is dropped
    assert fly.deploy("app", "f", image="reg/img:1", remote_only=True) == [
        "deploy", "-a", "app", "-c", "f", "--image", "reg/img:1"]


def test_sftp_get_argv_names_local_path_and_machine():
    assert fly.sftp_get("app", "m1", "/data/backups/x.db", "/tmp/.tmp-x") == [
        "ssh", "sftp", "get", "/data/backups/x.db", "/tmp/.tmp-x", "-a", "app",
        "--machine", "m1", "-q"]


# ---------------------------------------------------------------- JSON parsing


def test_reference_json_parses_into_dataclasses():
    volumes = [fly.Volume.parse(raw) for raw in load("volumes-list.json")]
    assert volumes[0].attached_machine_id == "e2865013c41e86"
    assert volumes[1].attached_machine_id is None
    machines = [fly.Machine.parse(raw) for raw in load("machine-list.json")]
    assert machines[0].state == "started"
    assert machines[0].volumes == ("vol_4y5p2k8qz1m7r3dv",)
    assert machines[0].image.startswith("registry.fly.io/my-app:deployment-")
    snaps = [fly.Snapshot.parse(raw) for raw in load("volume-snapshots-list.json")]
    assert [s.status for s in snaps] == ["created", "created", "running"]
    assert snaps[2].id == ""
    releases = [fly.Release.parse(raw) for raw in load("releases.json")]
    assert releases[0].version == 12 and releases[0].status == "complete"
    assert releases[1].image_ref.startswith("registry.fly.io/my-app@sha256:")


def test_a_time_flyctl_gives_with_an_offset_is_kept_as_utc():
    """Shown by slicing the string ("03:00:00 UTC" for 08:00+05:00) and sorted as strings
    (s27 review-break3 #4): a snapshot's or release's time is UTC once parsed; Go's zero
    time, and what is no time, stay as given."""
    raw = load("volume-snapshots-list.json")
    late, early = dict(raw[0], created_at="2026-08-17T08:00:00+05:00"), \
        dict(raw[1], created_at="2026-08-17T04:00:00Z")
    snaps = fly.by_age([fly.Snapshot.parse(r) for r in (late, early, raw[2])])
    assert [s.created_at for s in snaps] == ["2026-08-17T03:00:00Z", "2026-08-17T04:00:00Z",
                                             raw[2]["created_at"]]  # running: newest
    release = fly.Release.parse(dict(load("releases.json")[0],
                                     CreatedAt="2026-08-17T01:30:00-02:00"))
    assert release.created_at == "2026-08-17T03:30:00Z"
    for kept in ("2026-08-17T02:10:54.123Z", "junk", "", "9999-12-31T23:59:59-05:00"):
        assert fly.utc_time(kept) == kept


def test_error_line_prefers_flyctls_own_error_line():
    stderr = "Connecting to fdaa::2...\nError: ssh shell: Process exited with status 3\n"
    assert fly.error_line(stderr, 1) == "ssh shell: Process exited with status 3"
    assert fly.error_line("something odd\n", 1) == "something odd"
    assert fly.error_line("", 127) == "exit status 127"
    assert fly.error_line("", -9) == "killed by SIGKILL"  # it read "exit status -9"


def test_flyerror_redacts_tokens(monkeypatch):
    monkeypatch.setenv("FLY_API_TOKEN", "FlyV1 secret-token-value")
    err = fly.FlyError("bad token FlyV1 secret-token-value given")
    assert "secret-token-value" not in str(err)
    assert "***" in str(err)


# ---------------------------------------------------------------- production resolution


def volumes_and_machines():
    volumes = [fly.Volume.parse(raw) for raw in load("volumes-list.json")]
    machines = [fly.Machine.parse(raw) for raw in load("machine-list.json")]
    return volumes, machines


def test_choose_production_picks_the_attached_volume_of_the_started_machine():
    volumes, machines = volumes_and_machines()
    volume, machine = choose_production(volumes, machines, "data", "app")
    assert (volume.id, machine.id) == ("vol_4y5p2k8qz1m7r3dv", "e2865013c41e86")


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ("no_volume", ExitCode.NOT_FOUND, "no volume named 'other'"),
        ("stopped", ExitCode.NOT_FOUND, "no started machine"),
        ("two", ExitCode.USAGE, "several started machines"),
        ("no_source", ExitCode.USAGE, "no [mounts] source"),
    ],
)
def test_choose_production_failures_are_clear(change, code, words):
    volumes, machines = volumes_and_machines()
    source = "data"
    if change == "no_volume":
        source = "other"
    elif change == "stopped":
        machines = [fly.Machine(m.id, m.name, "stopped", m.region, m.image, m.volumes)
                    for m in machines]
    elif change == "two":
        machines = machines + [fly.Machine("m2", "n", "started", "ams", "", ())]
        volumes = [volumes[0], fly.Volume("vol_2", "data", "created", 1, "ams", "m2", 5)]
    elif change == "no_source":
        source = ""
    with pytest.raises(OpsError) as caught:
        choose_production(volumes, machines, source, "app")
    assert caught.value.code == code
    assert words in str(caught.value)


def snap(id_, status, created):
    return fly.Snapshot(id_, status, 0, 0, created, 5)


def test_new_snapshot_is_the_entry_that_was_not_there_before():
    zero = fly.ZERO_TIME  # what a running snapshot has as created_at
    before = [snap("vs_old", "created", "2026-08-17T02:10:54Z")]
    pending = before + [snap("vs_new", "running", zero)]
    done = before + [snap("vs_new", "created", "2026-08-20T14:03:12Z")]
    assert new_snapshot(before, before) is None
    assert new_snapshot(before, pending).status == "running"
    assert new_snapshot(before, done).id == "vs_new"
    # one still without an id cannot be told apart yet
    assert new_snapshot(before, before + [snap("", "waiting", zero)]) is None


def test_a_scheduled_snapshot_that_finishes_while_we_wait_is_never_ours():
    zero = fly.ZERO_TIME
    scheduled = snap("vs_daily", "running", zero)
    before = [snap("vs_old", "created", "2026-08-17T02:10:54Z"), scheduled]
    # the daily one is created now, with a fresh created_at; ours is still running
    after = [before[0], snap("vs_daily", "created", "2026-08-20T14:03:30Z"),
             snap("vs_ours", "running", zero)]
    assert new_snapshot(before, after).id == "vs_ours"
    assert new_snapshot(before, after[:2]) is None
    # several new ones: a created one wins, a failed one only when nothing else is left
    failed = snap("vs_ours", "failed", zero)
    assert new_snapshot(before, [failed, snap("vs_x", "created", "2026-08-20T14:04:00Z")]
                        ).id == "vs_x"
    assert new_snapshot(before, [failed, snap("vs_x", "running", zero)]).id == "vs_x"
    assert new_snapshot(before, [failed]).status == "failed"


# ---------------------------------------------------------------- deploy plan


def options(**kw):
    base = dict(app="app", config="fly.toml", health_url="http://h/health")
    return deploy.DeployOptions(**(base | kw))


def test_plan_runs_backup_and_snapshot_before_deploy():
    steps = deploy.plan(options())
    keys = [s.key for s in steps]
    # the lock comes first, so preflight reads the release that is live once we hold it
    assert keys == ["lock", "preflight", "machine_lock", "backup", "snapshot", "full_check",
                    "deploy", "health", "data", "record"]  # data: the guard after /health
    by_key = {s.key: s for s in steps}
    assert by_key["backup"].abort == ExitCode.DEPLOY_ABORTED_BACKUP
    assert by_key["snapshot"].abort == ExitCode.DEPLOY_ABORTED_SNAPSHOT
    assert by_key["full_check"].abort == ExitCode.DEPLOY_ABORTED_BACKUP  # a failed check: 11
    assert by_key["snapshot"].commands[1] == (
        "volumes", "snapshots", "create", deploy.VOLUME, "-a", "app")
    assert by_key["deploy"].commands[:1] == (("deploy", "-a", "app", "-c", "fly.toml"),)
    assert "reports the new backup" in by_key["health"].title
    assert by_key["data"].commands[-1][:2] == ("ssh", "console")  # the shape script
    assert by_key["data"].abort is None  # only lost data is exit 16; a broken guard is not


def test_plan_with_skip_backup_marks_both_steps_skipped():
    steps = {s.key: s for s in deploy.plan(options(skip_backup=True))}
    assert steps["backup"].skipped == "--skip-backup" and not steps["backup"].commands
    assert steps["snapshot"].skipped == "--skip-backup"
    assert steps["data"].skipped and not steps["data"].commands  # nothing to compare with
    assert "reports the new backup" not in steps["health"].title


def test_plan_for_rollback_never_touches_data():
    keys = [s.key for s in deploy.plan(options(rollback_to=11))]
    assert "backup" not in keys and "snapshot" not in keys and "data" not in keys


def test_plan_passes_flags_and_remainder_to_fly_deploy():
    steps = {s.key: s for s in deploy.plan(options(
        remote_only=True, strategy="bluegreen", wait_timeout="9m", extra=("--now",)))}
    assert steps["deploy"].commands[0] == (
        "deploy", "-a", "app", "-c", "fly.toml", "--remote-only", "--strategy", "bluegreen",
        "--wait-timeout", "9m", "--now")


def test_previous_version_is_the_newest_complete_release_before_the_newest():
    releases = [fly.Release("r3", 3, "failed", "img3", "", ""),
                fly.Release("r2", 2, "complete", "img2", "", ""),
                fly.Release("r1", 1, "complete", "img1", "", "")]
    # v3 failed but a rolling deploy left its image live: going back means v2
    assert deploy.previous_version(releases) == 2
    assert deploy.previous_version(releases[1:]) == 1
    with pytest.raises(OpsError):
        deploy.previous_version(releases[2:])


# ---------------------------------------------------------------- health verdict


def test_health_judge():
    body = {"backup": {"hasBackups": True, "latest": {"name": "steps-a.db"}}}
    assert health.judge(200, body, None) is None
    assert health.judge(200, body, "steps-a.db") is None
    assert "expected 'steps-b.db'" in health.judge(200, body, "steps-b.db")
    assert health.judge(503, None, None) == "HTTP 503"
    assert health.judge(None, None, None) == "no answer"
    ahead = {"backup": {"latest": {"name": "steps-2099-01-01T00-00-00.db"}}}
    assert health.judge(200, ahead, "steps-2026-11-29T00-00-00.db") is None  # cannot hold
    assert health.future_dated(ahead["backup"]) == "steps-2099-01-01T00-00-00.db"
    assert health.future_dated(body.get("backup")) is None


# ---------------------------------------------------------------- remote protocol


def run_sh(command: str, tmp_path: Path, stdin: str = "") -> remote.RemoteOutput:
    """Run a `-C` value the way the machine does: split, no shell of ours."""
    done = subprocess.run(shlex.split(command), input=stdin, capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # the wrapper itself always exits 0
    return remote.parse_output(done.stdout)


def test_wrap_reports_the_real_exit_status(tmp_path):
    assert run_sh(remote.wrap("exit 3"), tmp_path).status == 3
    assert run_sh(remote.wrap("true"), tmp_path).status == 0
    quoted = run_sh(remote.wrap("printf '%s\\n' \"it's; here\" && exit 0"), tmp_path)
    assert "it's; here" in quoted.stdout and quoted.status == 0


def test_remote_paths_are_plain_absolute_paths():
    assert remote.remote_path("/data/backups/", "backup.remote_dir") == "/data/backups"
    for bad in ("data/backups", "/data/$(rm -rf /)", "/data/x'y", "/data/../etc"):
        with pytest.raises(OpsError) as caught:
            remote.remote_path(bad, "backup.remote_dir")
        assert caught.value.code == ExitCode.USAGE


def test_delete_script_refuses_names_outside_the_pattern():
    from ops.engine import EngineError

    with pytest.raises(EngineError):
        remote.delete_script("/data/backups", ["../steps.db"])
    script = remote.delete_script("/data/backups", ["steps-2026-01-01T00-00-00.db"])
    assert "steps-2026-01-01T00-00-00.db.sha256" in script


# ---------------------------------------------------------------- flyctl's version


@pytest.mark.parametrize(
    ("stdout", "numbers", "old"),
    [
        ('{"Name":"fly","Version":"0.4.87","Commit":"x"}\n', (0, 4, 87), False),
        ('{"Name":"fly","Version":"0.4.80"}\n', (0, 4, 80), False),
        ('{"Name":"fly","Version":"0.4.79"}\n', (0, 4, 79), True),
        ('{"Version":"0.3.191-pr1234.2"}\n', (0, 3, 191), True),
        ('{"Version":"2023.10.12-pr2893.4"}\n', (2023, 10, 12), True),  # a calendar build
        ("fly v0.4.81 linux/amd64 Commit: abc BuildDate: 2026-08-10T00:00:00Z\n", (0, 4, 81),
         False),
    ],
)
def test_flyctl_versions_are_read_and_judged(stdout, numbers, old):
    assert fly.parse_version(stdout)[1] == numbers
    assert fly.too_old(numbers) is old


@pytest.mark.parametrize("stdout", ['{"Version":"0.0.0-dev"}', "[]", '{"Version": 5}',
                                    "garbage", '{"Version":"v1"}'])
def test_an_unreadable_flyctl_version_is_unknown_not_old(stdout):
    assert fly.parse_version(stdout)[1] is None


# ---------------------------------------------------------------- hostile JSON shapes


@pytest.mark.parametrize(
    ("kind", "raw", "words"),
    [
        (fly.Volume, [], "expected an object, got a list"),
        (fly.Volume, {"name": "data"}, "`id` is missing"),
        (fly.Volume, {"id": "v", "size_gb": "3"}, "`size_gb` is a string, expected a number"),
        (fly.Volume, {"id": "v", "size_gb": True}, "`size_gb` is true/false"),
        (fly.Machine, {"id": "m", "config": "x"}, "`config` is a string, expected an object"),
        (fly.Machine, {"id": "m", "config": {"mounts": ["vol"]}}, "got a string"),
        (fly.Snapshot, {"id": "vs", "created_at": 5}, "`created_at` is a number"),
        (fly.Release, {"Version": 3, "User": "x"}, "`User` is a string, expected an object"),
        (fly.Release, {"Version": 1.5}, "`Version` is float"),
    ],
)
def test_json_of_the_wrong_shape_is_one_clear_sentence(kind, raw, words):
    with pytest.raises(fly.ShapeError) as caught:
        kind.parse(raw)
    assert words in str(caught.value)


def test_null_fields_are_their_go_zero_values():
    volume = fly.Volume.parse({"id": "v", "name": None, "size_gb": None,
                               "attached_machine_id": None, "snapshot_retention": None})
    assert (volume.name, volume.size_gb, volume.attached_machine_id,
            volume.snapshot_retention) == ("", 0, None, None)
    machine = fly.Machine.parse({"id": "m", "config": None})
    assert machine.volumes == () and machine.image == ""


# ---------------------------------------------------------------- the machine's deploy lock


def test_the_deploy_lock_is_idempotent_for_its_holder_and_removed_only_by_it(tmp_path):
    lock = str(tmp_path / ".ops-deploy.lock")
    take = remote.deploy_lock_script(lock, "alice@laptop deploy (run 1)", 0)
    assert run_sh(remote.wrap(take), tmp_path).status == 0
    again = run_sh(remote.wrap(take), tmp_path)  # the same holder asks again: still ours
    assert again.status == 0 and again.entries[-1][0] == "acquired"
    other = run_sh(remote.wrap(remote.deploy_lock_script(lock, "bob@ci deploy", 0)), tmp_path)
    assert other.status == 4 and other.entries == [["held", "alice@laptop", "deploy", "(run",
                                                    "1)"]]
    not_mine = run_sh(remote.wrap(remote.deploy_unlock_script(lock, holder="bob@ci deploy")),
                      tmp_path)
    assert not_mine.status == 5 and (tmp_path / ".ops-deploy.lock").is_dir()
    mine = remote.deploy_unlock_script(lock, holder="alice@laptop  deploy\n(run 1)")
    assert run_sh(remote.wrap(mine), tmp_path).status == 0
    assert not (tmp_path / ".ops-deploy.lock").exists()
    assert run_sh(remote.wrap(mine), tmp_path).status == 3  # nothing left to remove


@pytest.mark.parametrize("line", ["__OPS_EXIT__=", "__OPS_EXIT__=abc", "__OPS_EXIT__=-1",
                                  "__OPS_EXIT__=99999"])
def test_a_malformed_sentinel_is_refused_never_guessed_at(line):
    with pytest.raises(OpsError) as caught:
        remote.parse_output(f"x\n{line}\n")
    assert "a line this tool did not print" in str(caught.value)


@pytest.mark.parametrize("doc", ["[1, 2]", "null", '"ok"', "{bad"])
def test_a_result_line_that_is_not_an_object_is_a_failure_not_a_crash(doc):
    with pytest.raises(OpsError) as caught:
        remote.parse_output(f"__OPS_RESULT__ {doc}\n__OPS_EXIT__=0\n")
    assert "a line this tool did not print" in str(caught.value)
