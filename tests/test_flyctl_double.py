"""The flyctl test double behaves like the reference (/work/shared/reference/flyctl.md).

Each test runs the double as a real subprocess against a ``default_world``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.flyctl_double import flyctl_cli
from tests.flyctl_double.plugin import fly_world  # noqa: F401
from tests.flyctl_double.state import (
    DEFAULT_APP,
    DEFAULT_MACHINE_ID,
    DEFAULT_PRIVATE_IP,
    DEFAULT_TOKEN,
    DEFAULT_VOLUME_ID,
    IMAGE_V11,
    IMAGE_V12,
    PACKAGE_DIR,
    SPARE_VOLUME_ID,
    FlyWorld,
    real_python3,
)
from tests.helpers import fly_run as run

REFERENCE = PACKAGE_DIR / "reference"
APP = DEFAULT_APP
MID = DEFAULT_MACHINE_ID
NO_STARTED = (
    f"Error: app {APP} has no started VMs.\nIt may be unhealthy or not have been deployed yet.\n"
    "Try the following command to verify:\n\nfly status\n"
)


def reference(name: str):
    return json.loads((REFERENCE / name).read_text())


@pytest.fixture
def world(fly_world: FlyWorld) -> FlyWorld:
    return fly_world


# ---------------------------------------------------------------- binary names, globals


def test_both_binary_names_and_the_package_script_work(world, app_dir):
    for binary in ("fly", "flyctl"):
        p = run(world, "version", cwd=app_dir, binary=binary)
        assert p.returncode == 0
        assert p.stdout.startswith(f"{binary} v0.4.87 linux/amd64 Commit: ")
    p = run(world, "nope", cwd=app_dir, binary="flyctl")
    assert (p.returncode, p.stdout) == (1, "Run 'flyctl --help' for usage.\n")
    assert p.stderr == 'Error: unknown command "nope" for "flyctl"\n'
    # the checked-in script itself (#!/usr/bin/env python3) and its flyctl symlink
    script = PACKAGE_DIR / "flyctl"
    assert os.access(PACKAGE_DIR / "fly", os.X_OK) and script.is_symlink()
    p = run(world, "version", "--json", cwd=app_dir, binary=str(script))
    assert p.returncode == 0
    data = json.loads(p.stdout)
    assert list(data) == ["Name", "Version", "Commit", "BranchName", "BuildDate", "OS",
                          "Architecture", "Environment"]
    assert data["Name"] == "flyctl"


def test_only_flyctl_installed(world, app_dir):
    world.set_binaries(["flyctl"])
    with pytest.raises(FileNotFoundError):
        run(world, "version", cwd=app_dir, binary="fly")
    assert run(world, "version", cwd=app_dir, binary="flyctl").returncode == 0


def test_missing_state_env_is_a_harness_error(world, app_dir):
    p = run(world, "version", cwd=app_dir, env={"FLY_DOUBLE_STATE": None})
    assert p.returncode == 2 and "FLY_DOUBLE_STATE" in p.stderr


def test_unknown_flags_and_shorthands(world, app_dir):
    p = run(world, "volumes", "list", "--x", cwd=app_dir)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "Error: unknown flag: --x\n")
    p = run(world, "volumes", "snapshots", "list", DEFAULT_VOLUME_ID, "-c", "fly.toml",
            cwd=app_dir)
    assert (p.returncode, p.stderr) == (1, "Error: unknown shorthand flag: 'c' in -c\n")
    p = run(world, "volumes", "snapshots", "create", DEFAULT_VOLUME_ID, "--config", "fly.toml",
            cwd=app_dir)
    assert (p.returncode, p.stderr) == (1, "Error: unknown flag: --config\n")
    # --json is per command: ssh console has none
    p = run(world, "ssh", "console", "--json", "-C", "true", cwd=app_dir)
    assert (p.returncode, p.stderr) == (1, "Error: unknown flag: --json\n")
    p = run(world, "volumes", "list", "-a", cwd=app_dir)
    assert p.stderr == "Error: flag needs an argument: 'a' in -a\n"
    p = run(world, "ssh", "console", "-q=maybe", cwd=app_dir)
    assert p.stderr.startswith('Error: invalid argument "maybe" for "-q, --quiet" flag')
    assert world.calls()[0] == ["volumes", "list", "--x"]  # logged even when rejected


def test_arg_counts_and_help(world, app_dir):
    p = run(world, "volumes", "snapshots", "create", cwd=app_dir)
    assert (p.returncode, p.stderr) == (1, "Error: accepts 1 arg(s), received 0\n")
    p = run(world, "volumes", "list", "extra", cwd=app_dir)
    assert p.returncode == 1
    assert p.stderr == 'Error: unknown command "extra" for "fly volumes list"\n'
    p = run(world, "ssh", "console", "a", "b", cwd=app_dir)
    assert p.stderr == "Error: accepts at most 1 arg(s), received 2\n"
    p = run(world, "volumes", "list", "--help", cwd=app_dir)
    assert p.returncode == 0 and "fly volumes list [flags]" in p.stdout


def test_flags_anywhere_and_equals_forms(world, app_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run(world, "--verbose", "volumes", f"--app={APP}", "snapshots", "list", "-j",
            DEFAULT_VOLUME_ID, "--debug", cwd=empty)
    assert p.returncode == 0, p.stderr
    assert [s["id"] for s in json.loads(p.stdout)][0] == "vs_A1b2C3d4E5f6G7h8I9j0K1l2"


# ---------------------------------------------------------------- tokens


def test_token_precedence_and_errors(world, app_dir):
    ok = ("auth", "whoami")
    p = run(world, *ok, cwd=app_dir)
    assert (p.returncode, p.stdout) == (0, "ci@example.com\n")
    p = run(world, *ok, "--json", cwd=app_dir)
    assert p.stdout == '{\n    "email": "ci@example.com"\n}\n'

    no_token = "Error: No access token available. Please login with 'flyctl auth login'\n"
    p = run(world, *ok, cwd=app_dir, token=None)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", no_token)
    # -t beats the env; FLY_ACCESS_TOKEN beats FLY_API_TOKEN
    assert run(world, *ok, "-t", DEFAULT_TOKEN, cwd=app_dir, token="bogus").returncode == 0
    p = run(world, *ok, cwd=app_dir, env={"FLY_ACCESS_TOKEN": "bogus"})
    assert (p.returncode, p.stderr) == (1, "Error: You must be authenticated to view this.\n")
    assert run(world, *ok, cwd=app_dir, token="x",
               env={"FLY_ACCESS_TOKEN": DEFAULT_TOKEN}).returncode == 0
    # set-but-empty FLY_ACCESS_TOKEN shadows FLY_API_TOKEN; then the logged-in token counts
    p = run(world, *ok, cwd=app_dir, env={"FLY_ACCESS_TOKEN": ""})
    assert p.stderr == no_token
    world.login(DEFAULT_TOKEN)
    assert run(world, *ok, cwd=app_dir, env={"FLY_ACCESS_TOKEN": ""}).returncode == 0
    world.login(DEFAULT_TOKEN, expired=True)
    assert run(world, *ok, cwd=app_dir, token=None).stderr == no_token
    # a token the platform rejects
    world.unauthenticated()
    p = run(world, "volumes", "list", cwd=app_dir)
    assert (p.returncode, p.stderr) == (1, "Error: You must be authenticated to view this.\n")
    # version needs no session
    assert run(world, "version", cwd=app_dir, token=None).returncode == 0


def test_calls_are_logged_in_order_and_never_hold_the_token(world, app_dir):
    run(world, "version", cwd=app_dir, token=None)
    run(world, "volumes", "list", "--json", "-t", DEFAULT_TOKEN, cwd=app_dir, token=None)
    run(world, "releases", f"--access-token={DEFAULT_TOKEN}", cwd=app_dir)
    p = run(world, "ssh", "console", "-C", f"echo {DEFAULT_TOKEN}", cwd=app_dir)
    assert world.calls() == [
        ["version"],
        ["volumes", "list", "--json", "-t", "[REDACTED]"],
        ["releases", "--access-token=[REDACTED]"],
        ["ssh", "console", "-C", "echo [REDACTED]"],
    ]
    assert [r["token"] for r in world.call_records()] == [False, True, True, True]
    assert DEFAULT_TOKEN not in world.calls_path.read_text()
    # the double itself never prints a token (the remote command above echoed it itself)
    p = run(world, "auth", "whoami", "-t", "secret-token-123", cwd=app_dir)
    assert "secret-token-123" not in p.stdout + p.stderr


# ---------------------------------------------------------------- app resolution


def test_app_resolution_precedence(world, app_dir, tmp_path):
    world.add_app("other-app")
    world.add_volume("other-app", "vol_other000000001", name="other")
    world.add_app("env-app")

    def vol_ids(*args: str, cwd: Path = app_dir, env=None) -> list[str]:
        p = run(world, "volumes", "list", "--json", *args, cwd=cwd, env=env)
        assert p.returncode == 0, p.stderr
        return [v["id"] for v in json.loads(p.stdout)]

    assert vol_ids() == [DEFAULT_VOLUME_ID, SPARE_VOLUME_ID]  # ./fly.toml
    assert vol_ids(env={"FLY_APP": "other-app"}) == ["vol_other000000001"]  # env beats toml
    assert vol_ids("-a", APP, env={"FLY_APP": "other-app"}) == [DEFAULT_VOLUME_ID,
                                                                  SPARE_VOLUME_ID]
    empty = tmp_path / "nowhere"
    empty.mkdir()
    assert vol_ids("-c", str(app_dir), cwd=empty) == [DEFAULT_VOLUME_ID, SPARE_VOLUME_ID]
    assert vol_ids("-c", str(app_dir / "fly.toml"), cwd=empty)[0] == DEFAULT_VOLUME_ID
    assert vol_ids(env={"FLY_APP": "env-app"}) == []  # `[]`, not null

    p = run(world, "volumes", "list", cwd=empty)
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == (
        "Error: the config for your app is missing an app name, add an app field to the "
        "fly.toml file or specify with the -a flag\n")
    p = run(world, "volumes", "list", "-c", "missing.toml", cwd=empty)
    assert p.stderr == "Error: config file not found at specified path: missing.toml\n"
    p = run(world, "machine", "list", "-a", "nope", cwd=empty)
    assert (p.returncode, p.stderr) == (1, 'Error: Could not find App "nope"\n')
    (empty / "fly.toml").write_text("app = [broken\n")
    p = run(world, "volumes", "list", "-a", APP, cwd=empty)  # a broken fly.toml fails anyway
    assert p.returncode == 1 and p.stderr.startswith("Error: failed loading app config from ")


def test_snapshot_commands_find_the_app_from_the_volume(world, tmp_path):
    p = run(world, "volumes", "snapshots", "list", DEFAULT_VOLUME_ID, "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = run(world, "volumes", "snapshots", "create", "vol_unknown", cwd=tmp_path)
    assert (p.returncode, p.stderr) == (1, 'Error: Could not find Volume "vol_unknown"\n')


# ---------------------------------------------------------------- JSON shapes


def _assert_go_json(text: str):
    data = json.loads(text)
    assert text == json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    return data


def test_volumes_list_json_matches_the_reference_shape(world, app_dir):
    p = run(world, "volumes", "list", "--json", cwd=app_dir)
    assert p.returncode == 0 and p.stderr == ""
    vols = _assert_go_json(p.stdout)
    ref = reference("volumes-list.json")
    assert [list(v) for v in vols] == [list(v) for v in ref]
    assert vols[0]["attached_machine_id"] == MID and vols[1]["attached_machine_id"] is None
    assert [v["name"] for v in vols] == ["data", "data"]
    # hidden states only with --all; FLY_JSON turns JSON on
    world.add_volume(APP, "vol_gone0000000001", state="pending_destroy")
    p = run(world, "volumes", "list", cwd=app_dir, env={"FLY_JSON": "1"})
    assert len(json.loads(p.stdout)) == 2
    p = run(world, "volumes", "list", "--all", "-j", cwd=app_dir)
    assert len(json.loads(p.stdout)) == 3
    p = run(world, "volumes", "list", cwd=app_dir)
    assert p.stdout.splitlines()[0].split() == ["ID", "STATE", "NAME", "SIZE", "REGION", "ZONE",
                                                "ENCRYPTED", "ATTACHED", "VM", "CREATED", "AT"]


def test_machine_list_json_matches_the_reference_shape(world, app_dir):
    p = run(world, "machine", "list", "--json", cwd=app_dir)
    machines = _assert_go_json(p.stdout)
    ref = reference("machine-list.json")[0]
    m = machines[0]
    assert list(m) == list(ref)
    assert list(m["config"]) == list(ref["config"])
    assert list(m["image_ref"]) == list(ref["image_ref"]) and isinstance(m["image_ref"], dict)
    assert m["config"]["image"] == IMAGE_V12
    assert m["config"]["mounts"] == [{"encrypted": True, "path": "/data", "size_gb": 3,
                                      "volume": DEFAULT_VOLUME_ID, "name": "data"}]
    assert (m["id"], m["state"], m["region"], m["private_ip"]) == (MID, "started", "ams",
                                                                   DEFAULT_PRIVATE_IP)
    assert list(m["config"]["env"]) == sorted(m["config"]["env"])  # Go map keys are sorted
    assert run(world, "m", "ls", "-q", cwd=app_dir).stdout == f"{MID}\n"


def test_releases_json_pascal_case_newest_first(world, app_dir):
    p = run(world, "releases", "--json", cwd=app_dir)
    rels = _assert_go_json(p.stdout)
    assert [list(r) for r in rels] == [list(r) for r in reference("releases.json")]
    assert [(r["Version"], r["Status"], r["ImageRef"]) for r in rels] == [
        (12, "complete", IMAGE_V12), (11, "complete", IMAGE_V11)]
    p2 = run(world, "apps", "releases", "-j", "--image", cwd=app_dir)
    assert json.loads(p2.stdout) == rels


def test_json_is_html_escaped_like_go():
    expected = '{\n    "a": "\\u003cb\\u003e\\u0026\u2713"\n}\n'
    assert flyctl_cli.go_json({"a": "<b>&\u2713"}) == expected


# ---------------------------------------------------------------- snapshots


def test_snapshot_create_then_list_progresses_to_created(world, app_dir):
    before = dt.datetime.now(dt.UTC)
    p = run(world, "volumes", "snapshots", "create", DEFAULT_VOLUME_ID, "--json", cwd=app_dir)
    assert (p.returncode, p.stdout, p.stderr) == (
        0, f"Scheduled to snapshot volume {DEFAULT_VOLUME_ID}\n", "")
    seen = []
    for _ in range(3):
        p = run(world, "volumes", "snaps", "ls", DEFAULT_VOLUME_ID, "--json", cwd=app_dir)
        snaps = _assert_go_json(p.stdout)
        assert [list(s) for s in snaps] == [list(reference("volume-snapshots-list.json")[0])] * 3
        # flyctl sorts by created_at: a running one (zero time) comes first
        seen.append(snaps[0] if snaps[0]["status"] != "created" else snaps[-1])
    # running: the id is there already, created_at is Go's zero time
    assert [(s["status"], s["size"], s["digest"], s["created_at"]) for s in seen[:2]] == [
        ("waiting", 0, "", flyctl_cli.ZERO_TIME), ("running", 0, "", flyctl_cli.ZERO_TIME)]
    assert seen[0]["id"].startswith("vs_") and seen[0]["id"] == seen[1]["id"] == seen[2]["id"]
    assert seen[2]["status"] == "created"
    assert seen[2]["size"] > 0 and seen[2]["digest"]
    assert seen[2]["volume_size"] == 3 * 1024**3 and seen[2]["retention_days"] == 14
    created = flyctl_cli.parse_time(seen[2]["created_at"])
    assert before - dt.timedelta(seconds=2) <= created <= dt.datetime.now(dt.UTC)
    # oldest -> newest; the new one is last once created
    assert world.snapshots(DEFAULT_VOLUME_ID)[-1]["id"] == seen[2]["id"]


def test_snapshot_never_completes_or_fails(world, app_dir):
    world.snapshot_behavior("never")
    run(world, "volumes", "snapshots", "create", DEFAULT_VOLUME_ID, cwd=app_dir)
    for _ in range(4):
        p = run(world, "volumes", "snapshots", "list", DEFAULT_VOLUME_ID, "-j", cwd=app_dir)
    pending = json.loads(p.stdout)[0]
    assert (pending["status"], pending["created_at"]) == ("running", flyctl_cli.ZERO_TIME)
    world.snapshot_behavior("fail", lists_before_created=0, volume_id=SPARE_VOLUME_ID)
    run(world, "volumes", "snapshots", "create", SPARE_VOLUME_ID, cwd=app_dir)
    p = run(world, "volumes", "snapshots", "list", SPARE_VOLUME_ID, "-j", cwd=app_dir)
    assert [s["status"] for s in json.loads(p.stdout)] == ["failed"]


def test_a_scheduled_snapshot_runs_like_one_we_asked_for(world, app_dir):
    daily = world.start_scheduled_snapshot(DEFAULT_VOLUME_ID, lists_before_created=1)
    p = run(world, "volumes", "snapshots", "list", DEFAULT_VOLUME_ID, "--json", cwd=app_dir)
    first = json.loads(p.stdout)[0]
    assert (first["id"], first["status"], first["created_at"]) == (
        daily, "running", flyctl_cli.ZERO_TIME)
    p = run(world, "volumes", "snapshots", "list", DEFAULT_VOLUME_ID, "--json", cwd=app_dir)
    last = json.loads(p.stdout)[-1]
    assert (last["id"], last["status"]) == (daily, "created")
    assert last["created_at"] != flyctl_cli.ZERO_TIME


def test_snapshot_list_empty_and_unknown_volume(world, app_dir):
    p = run(world, "volumes", "snapshots", "list", SPARE_VOLUME_ID, cwd=app_dir)
    assert (p.returncode, p.stdout) == (0, "")
    assert p.stderr == f"No snapshots available for volume {SPARE_VOLUME_ID}\n"
    p = run(world, "volumes", "snapshots", "list", SPARE_VOLUME_ID, "--json", cwd=app_dir)
    assert (p.returncode, p.stdout, p.stderr) == (0, "[]\n", "")
    p = run(world, "volumes", "snapshots", "create", "vol_nope", cwd=app_dir)
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == "Error: failed to snapshot vol_nope: volume not found\n"


def test_concurrent_snapshot_creates_are_all_recorded(world, app_dir):
    with ThreadPoolExecutor(max_workers=6) as pool:
        procs = list(pool.map(
            lambda _: run(world, "volumes", "snapshots", "create", SPARE_VOLUME_ID,
                          cwd=app_dir), range(6)))
    assert all(p.returncode == 0 for p in procs)
    assert len(world.snapshots(SPARE_VOLUME_ID)) == 6
    assert len(world.calls()) == 6


# ---------------------------------------------------------------- ssh console


def ssh(world, command: str, *extra: str, cwd: Path, **kw):
    return run(world, "ssh", "console", "--machine", MID, "-C", command, *extra, cwd=cwd, **kw)


def test_ssh_console_exit_statuses(world, app_dir):
    p = ssh(world, "true", cwd=app_dir)
    assert (p.returncode, p.stdout) == (0, "")
    assert p.stderr == f"Connecting to {DEFAULT_PRIVATE_IP}...\n"
    p = ssh(world, "sh -c 'echo out; echo err >&2; exit 3'", "-q", cwd=app_dir)
    assert (p.returncode, p.stdout) == (1, "out\n")
    assert p.stderr == "err\nError: ssh shell: Process exited with status 3\n"
    p = ssh(world, "sh -c 'kill -9 $$'", "-q", cwd=app_dir)
    assert p.stderr == "Error: ssh shell: Process exited with status 137 from signal KILL\n"


def test_ssh_console_runs_without_a_shell_but_honours_quotes(world, app_dir, tmp_path):
    p = ssh(world, "echo a && echo b", "-q", cwd=app_dir)
    assert (p.returncode, p.stdout) == (0, "a && echo b\n")
    p = ssh(world, "echo $HOME | wc", "-q", cwd=app_dir)
    assert p.stdout == "$HOME | wc\n"
    target = tmp_path / "data dir" / "out.txt"
    script = f"mkdir -p {shlex.quote(str(target.parent))} && echo 'two  words' | tr a-z A-Z " \
             f"> {shlex.quote(str(target))}; cat {shlex.quote(str(target))}"
    p = ssh(world, shlex.join(["sh", "-c", script]), "-q", cwd=app_dir)
    assert (p.returncode, p.stdout) == (0, "TWO  WORDS\n")
    assert target.read_text() == "TWO  WORDS\n"


def test_ssh_console_environment_is_the_machines_not_ours(world, app_dir):
    p = ssh(world, "env", "-q", cwd=app_dir, env={"LEAKY": "1"})
    env = dict(line.split("=", 1) for line in p.stdout.splitlines())
    assert sorted(env) == ["HOME", "LANG", "PATH"]
    assert env["PATH"] == str(world.machine_bin_dir(MID))
    assert env["HOME"] == str(world.machine_home(MID)) and env["LANG"] == "C.UTF-8"


def test_ssh_console_stdin_passthrough(world, app_dir):
    p = ssh(world, "cat", "-q", cwd=app_dir, input="line 1\nline 2\n")
    assert (p.returncode, p.stdout) == (0, "line 1\nline 2\n")
    blob = os.urandom(300_000)  # binary-safe both ways, no PTY, no CRLF
    p = ssh(world, "cat", "-q", cwd=app_dir, input=blob, text=False)
    assert (p.returncode, p.stdout) == (0, blob)
    p = ssh(world, "sh -s", "-q", cwd=app_dir, input="echo from-stdin; exit 4\n")
    assert (p.returncode, p.stdout) == (1, "from-stdin\n")
    assert p.stderr.endswith("Error: ssh shell: Process exited with status 4\n")


def test_machine_python_and_sqlite_are_real_and_removable(world, app_dir, tmp_path):
    db = tmp_path / "m.db"
    code = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('create table t(x)'); c.commit(); print(sys.version_info >= (3, 11))")
    p = ssh(world, shlex.join(["python3", "-c", code, str(db)]), "-q", cwd=app_dir)
    assert (p.returncode, p.stdout, p.stderr) == (0, "True\n", "")
    p = ssh(world, f"sqlite3 {db} 'select count(*) from t'", "-q", cwd=app_dir)
    assert (p.returncode, p.stdout) == (0, "0\n")
    assert Path(real_python3()).resolve() == Path(real_python3())

    world.remove_machine_tools("python3", "sqlite3")  # the Node.js image
    p = ssh(world, "python3 -c 'print(1)'", "-q", cwd=app_dir)
    assert p.returncode == 1
    assert p.stderr.splitlines()[-1] == "Error: ssh shell: Process exited with status 127"
    p = ssh(world, "/usr/bin/sqlite3 -version", "-q", cwd=app_dir)
    assert p.stderr.splitlines()[-1] == "Error: ssh shell: Process exited with status 127"
    p = ssh(world, "sh -c 'python3 -V'", "-q", cwd=app_dir)
    assert p.stderr.splitlines()[-1] == "Error: ssh shell: Process exited with status 127"


def test_ssh_console_machine_selection(world, app_dir):
    p = ssh(world, "true", cwd=app_dir)
    assert p.returncode == 0
    world.add_machine(APP, "148e0d1ab02778", state="stopped", region="fra")
    p = run(world, "ssh", "console", "--machine", "148e0d1ab02778", "-C", "true", cwd=app_dir)
    assert (p.returncode, p.stderr) == (1, 'Error: --machine="148e0d1ab02778" not found/started\n')
    p = run(world, "ssh", "console", "--machine", "nope", "-C", "true", cwd=app_dir)
    assert p.stderr == 'Error: --machine="nope" not found/started\n'
    # several started machines and no --machine: the first one, announced on stdout
    world.add_machine(APP, "3d8d9e1bc45e28", region="lhr")
    p = run(world, "ssh", "console", "-q", "-C", "echo hi", cwd=app_dir)
    assert p.stdout == f"No machine specified, using {MID} in region ams\nhi\n"
    # a positional is an address, not a command
    p = run(world, "ssh", "console", "ls", cwd=app_dir)
    assert (p.returncode, p.stderr) == (
        1, "Error: host unavailable at ls: host was not found in DNS\n")
    p = run(world, "ssh", "console", "-s", cwd=app_dir)
    assert p.stderr == "Error: selecting VM: prompt: non interactive\n"
    world.set_machine_state(MID, "stopped")
    world.set_machine_state("3d8d9e1bc45e28", "stopped")
    p = run(world, "ssh", "console", "-C", "true", cwd=app_dir)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", NO_STARTED)


def test_ssh_console_shells_need_a_pty(world, app_dir):
    p = ssh(world, "sh", "-q", cwd=app_dir, env={"NO_COLOR": "1"})
    assert p.returncode == 1
    assert p.stdout.startswith("WARN Allocating a pseudo-terminal since the command provided")
    assert p.stderr.startswith("Error: ssh shell: ")
    p = run(world, "ssh", "console", "-q", cwd=app_dir)
    assert p.returncode == 1 and p.stdout == ""
    p = ssh(world, "sh -c 'echo out; echo err >&2'", "-q", "--pty", cwd=app_dir, text=False)
    assert (p.returncode, p.stdout) == (0, b"out\r\nerr\r\n")


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_ssh_interrupt_leaves_the_remote_running(world, app_dir, tmp_path):
    started, marker = tmp_path / "started", tmp_path / "marker"
    proc = subprocess.Popen(
        ["fly", "ssh", "console", "-q", "--machine", MID, "-C",
         shlex.join(["sh", "-c", f"touch {started}; "
                                 "while kill -0 $PPID 2>/dev/null; do sleep 0.05; done; "
                                 f"touch {marker}"])],
        cwd=app_dir, env=world.subprocess_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(started.exists)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert stderr == ("Error: ssh shell: session forcibly closed; the remote process may still "
                      "be running\n")
    wait_for(marker.exists)  # the "remote" command outlived flyctl


# ---------------------------------------------------------------- sftp


@pytest.fixture
def remote_file(tmp_path: Path) -> Path:
    f = tmp_path / "remote" / "backup.db"
    f.parent.mkdir()
    f.write_bytes(os.urandom(100_000))
    return f


def test_sftp_get_success(world, app_dir, remote_file):
    p = run(world, "ssh", "sftp", "get", str(remote_file), "-a", APP, "--machine", MID, "-q",
            cwd=app_dir)
    assert (p.returncode, p.stdout, p.stderr) == (0, "100000 bytes written to backup.db\n", "")
    local = app_dir / "backup.db"
    assert local.read_bytes() == remote_file.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(local.stat().st_mode) == 0o644 & ~umask
    # top-level alias, explicit local path; -C/--pty/-u are accepted and ignored
    p = run(world, "sftp", "get", str(remote_file), "copy.db", "-C", "x", "--pty", "-u", "app",
            cwd=app_dir)
    assert (p.returncode, p.stdout) == (0, "100000 bytes written to copy.db\n")
    p = run(world, "ssh", "sftp", "get", cwd=app_dir)
    assert (p.returncode, p.stdout) == (0, "get <remote-path> [local-path]\n")


def test_sftp_get_refuses_to_overwrite_before_connecting(world, app_dir, remote_file):
    (app_dir / "backup.db").write_text("keep me")
    world.set_machine_state(MID, "stopped")  # would fail later; the check comes first
    p = run(world, "ssh", "sftp", "get", str(remote_file), cwd=app_dir)
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == ("Error: file backup.db is already there. `fly ssh` doesn't override "
                        "existing files for safety.\n")
    assert (app_dir / "backup.db").read_text() == "keep me"


def test_sftp_get_partial_failure_leaves_the_file(world, app_dir, remote_file):
    world.sftp_fail_after(40_000)
    p = run(world, "ssh", "sftp", "get", str(remote_file), "out.db", cwd=app_dir)
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == "Error: get: copy file: connection lost (40000 bytes written)\n"
    assert (app_dir / "out.db").read_bytes() == remote_file.read_bytes()[:40_000]
    p = run(world, "ssh", "sftp", "get", str(remote_file), "out.db", cwd=app_dir)
    assert "is already there" in p.stderr  # a retry must delete the partial file first


def test_sftp_get_missing_remote_and_directories(world, app_dir, tmp_path):
    p = run(world, "ssh", "sftp", "get", "/no/such/file.db", cwd=app_dir)
    assert (p.returncode, p.stderr) == (
        1, "Error: get: remote path /no/such/file.db: file does not exist\n")
    assert not (app_dir / "file.db").exists()
    p = run(world, "ssh", "sftp", "get", str(tmp_path), "d", cwd=app_dir)
    assert p.stderr == (f"Error: remote path {tmp_path} is a directory. Use -R/--recursive "
                        "flag to download directories\n")


# ---------------------------------------------------------------- deploy


def test_deploy_success_adds_a_release_and_updates_machines(world, app_dir):
    image = f"registry.fly.io/{APP}:deployment-01K9ZZZZZZZZZZZZZZZZZZZZZZ"
    p = run(world, "deploy", "-c", "fly.toml", "--image", image, "--strategy", "rolling",
            "--wait-timeout", "10m", "-y", cwd=app_dir, env={"FLY_EMIT_RELEASE_JSON": "1"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    for expected in (f"Watch your deployment at https://fly.io/apps/{APP}/monitoring",
                     f"Updating existing machines in '{APP}' with rolling strategy",
                     f"Visit your newly deployed app at https://{APP}.fly.dev/"):
        assert expected in lines
    emitted = [json.loads(x) for x in lines if x.startswith('{"id"')]
    rel = world.releases()[0]
    assert emitted == [{"id": rel["ID"], "version": 13, "image_ref": image}]
    assert (rel["Version"], rel["Status"], rel["ImageRef"]) == (13, "complete", image)
    assert world.machine_image(MID) == image
    assert world.machine(MID)["image_ref"]["tag"] == "deployment-01K9ZZZZZZZZZZZZZZZZZZZZZZ"
    p = run(world, "releases", "--json", cwd=app_dir)
    assert [r["Version"] for r in json.loads(p.stdout)] == [13, 12, 11]


def test_deploy_builds_from_a_dockerfile_only(world, app_dir):
    p = run(world, "deploy", "--remote-only", cwd=app_dir)
    assert p.returncode == 1 and "app does not have a Dockerfile" in p.stderr
    assert [r["Version"] for r in world.releases()] == [12, 11]
    (app_dir / "Dockerfile").write_text("FROM scratch\n")
    p = run(world, "deploy", "--remote-only", cwd=app_dir)
    assert p.returncode == 0, p.stderr
    ref = world.releases()[0]["ImageRef"]
    assert ref.startswith(f"registry.fly.io/{APP}:deployment-") and len(ref.split("-")[-1]) == 26
    p = run(world, "deploy", "--image-label", "v42", cwd=app_dir)
    assert world.machine_image(MID) == f"registry.fly.io/{APP}:v42"


def test_deploy_validates_only_fly_tomls_strategy(world, app_dir):
    # fly.toml's strategy is validated (appconfig/validation.go)...
    world.write_fly_toml(app_dir, extra='\n[deploy]\n  strategy = "canary"\n')
    p = run(world, "deploy", "--image", IMAGE_V11, cwd=app_dir)
    assert p.returncode == 1
    assert "canary deployment strategy is not supported when using mounted volumes" in p.stderr
    assert p.stderr.endswith("Error: App configuration is not valid\n")
    world.write_fly_toml(app_dir)
    # ...the flag never is: an unknown one deploys as rolling (machines_deploymachinesapp.go)
    p = run(world, "deploy", "--image", IMAGE_V11, "--strategy", "fast", cwd=app_dir)
    assert p.returncode == 0, p.stderr
    assert f"Updating existing machines in '{APP}' with fast strategy" in p.stdout
    assert world.machine_image(MID) == IMAGE_V11


def test_deploy_with_a_volume_fails_bluegreen_and_canary_after_making_a_release(world, app_dir):
    p = run(world, "deploy", "--image", IMAGE_V11, "--strategy", "bluegreen", cwd=app_dir)
    assert p.returncode == 1
    assert p.stderr.startswith(f"Error: failed to launch VM: volume {DEFAULT_VOLUME_ID} is "
                               f"already attached to machine {MID}")
    assert "Creating green machines" in p.stdout and "Rolling back failed deployment" in p.stdout
    assert world.releases()[0]["Version"] == 13 and world.releases()[0]["Status"] == "failed"
    assert world.machine_image(MID) == IMAGE_V12
    # canary first spawns a machine that needs an unattached volume of the same name
    p = run(world, "deploy", "--image", IMAGE_V11, "--strategy", "canary", cwd=app_dir)
    assert p.returncode == 0, p.stderr  # the default world has one (the spare volume)
    world.remove_volume(SPARE_VOLUME_ID)
    p = run(world, "deploy", "--image", IMAGE_V12, "--strategy", "canary", cwd=app_dir)
    assert p.returncode == 1
    assert "needs an unattached volume named 'data' in region 'ams'" in p.stderr
    assert world.releases()[0]["Status"] == "failed"
    assert world.machine_image(MID) == IMAGE_V11


def test_deploy_parses_wait_timeout_after_the_build_like_flyctl(world, app_dir):
    for value in ("none", "0", "0s", "-5s", "+0", "00"):
        p = run(world, "deploy", "--image", IMAGE_V11, "--wait-timeout", value, cwd=app_dir)
        assert p.returncode == 1, (value, p.stderr)
        assert "timeout reached waiting for machine's state to change" in p.stderr
        assert world.releases()[0]["Status"] == "failed"
    p = run(world, "deploy", "--image", IMAGE_V11, "--wait-timeout", "5 min", cwd=app_dir)
    assert p.returncode == 1
    assert "invalid duration value 5 min used for --wait-timeout flag" in p.stderr
    assert "==> Building image" in p.stdout  # parsed only after the image was found
    for value in ("300", "1m30s", "1.5h", "90s"):
        p = run(world, "deploy", "--image", IMAGE_V11, "--wait-timeout", value, cwd=app_dir)
        assert p.returncode == 0, (value, p.stderr)


def test_deploy_builds_the_working_directory_not_fly_tomls_folder(world, app_dir):
    other = app_dir.parent / "elsewhere"
    other.mkdir()
    world.write_fly_toml(other)
    (other / "Dockerfile").write_text("FROM scratch\n")
    p = run(world, "deploy", "-c", str(other / "fly.toml"), cwd=app_dir)
    assert p.returncode == 1 and "app does not have a Dockerfile" in p.stderr
    p = run(world, "deploy", str(other), "-c", "fly.toml", cwd=app_dir)  # chdir first
    assert p.returncode == 0, p.stderr


def test_deploy_health_timeout_fault(world, app_dir):
    world.deploy_health_timeout()
    p = run(world, "deploy", "--image", IMAGE_V11, cwd=app_dir)
    assert p.returncode == 1
    assert p.stderr.startswith(
        f"Error: failed to update machine {MID}: Unrecoverable error: timeout reached waiting "
        f"for health checks to pass for machine {MID}: ")
    assert "Visit your newly deployed app" not in p.stdout
    assert world.releases()[0]["Status"] == "failed"
    assert world.machine_image(MID) == IMAGE_V11  # rolling: no rollback
    world.deploy_health_timeout()
    p = run(world, "deploy", "--image", IMAGE_V12, "--strategy", "bluegreen", cwd=app_dir)
    assert p.returncode == 1 and "Rolling back failed deployment" in p.stdout
    assert world.machine_image(MID) == IMAGE_V11
    world.deploy_health_timeout()
    p = run(world, "deploy", "--image", IMAGE_V12, "--detach", cwd=app_dir)  # no health gate
    assert p.returncode == 0 and world.machine_image(MID) == IMAGE_V12


# ---------------------------------------------------------------- generic faults


def test_injected_failures_garbage_and_times(world, app_dir):
    world.fail(["volumes", "list"], stderr="Error: boom\n", exit=1, times=1)
    p = run(world, "--verbose", "volumes", "list", "--json", cwd=app_dir)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "Error: boom\n")
    assert run(world, "volumes", "list", "--json", cwd=app_dir).returncode == 0
    world.garbage(["releases"], times=None)
    for _ in range(2):
        p = run(world, "releases", "--json", cwd=app_dir)
        assert (p.returncode, p.stdout) == (0, "not json\n")
    assert world.calls()[-1] == ["releases", "--json"]


def test_hang_for_timeouts_and_sigterm(world, app_dir):
    world.hang(["snapshots", "list"], seconds=30, times=None)
    with pytest.raises(subprocess.TimeoutExpired):
        run(world, "volumes", "snapshots", "list", DEFAULT_VOLUME_ID, cwd=app_dir, timeout=0.3)
    proc = subprocess.Popen(["fly", "volumes", "snapshots", "list", DEFAULT_VOLUME_ID],
                            cwd=app_dir, env=world.subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    wait_for(lambda: len(world.calls()) == 2)  # its SIGTERM trapped before the call is
    proc.terminate()  # logged (was: a 0.1 s sleep "into the hang", under load too short)
    out, err = proc.communicate(timeout=10)
    assert (proc.returncode, out, err) == (127, b"", b"")  # context.Canceled: silent 127
    world.clear_faults()
    world.hang(["version"], seconds=0.2)
    t = time.monotonic()
    assert run(world, "version", cwd=app_dir).returncode == 0
    assert time.monotonic() - t >= 0.2


def test_status_json(world, app_dir):
    p = run(world, "status", "--json", cwd=app_dir)
    data = _assert_go_json(p.stdout)
    assert list(data) == ["ID", "Name", "Deployed", "Status", "Hostname", "Version", "AppURL",
                          "Organization", "PlatformVersion", "Machines"]
    assert (data["Name"], data["Version"], data["Machines"][0]["id"]) == (APP, 12, MID)


def test_not_emulated_commands_say_so(world, app_dir):
    p = run(world, "machine", "exec", MID, "ls", "--json", cwd=app_dir)
    assert p.returncode == 1
    assert p.stderr == "Error: flyctl test double: 'fly machine exec' is not emulated " \
                       "(see README.md)\n"


def test_python_for_the_double_is_usable(tmp_path):
    assert sys.version_info >= (3, 11)
    py = real_python3()
    link = tmp_path / "python3"
    link.symlink_to(py)
    p = subprocess.run([str(link), "-c", "import sqlite3, tomllib; print('ok')"],
                       env={"PATH": str(tmp_path)}, capture_output=True, text=True)
    assert p.stdout == "ok\n"


# ---------------------------------------------------------------- issue 8: what flyctl does to us


def test_version_json_is_one_compact_line_and_the_version_is_configurable(world, app_dir):
    p = run(world, "version", "--json", cwd=app_dir)
    assert p.stdout.count("\n") == 1 and p.stdout.startswith('{"Name":"fly","Version":"0.4.87"')
    world.set_flyctl_version("0.4.79")
    assert json.loads(run(world, "version", "--json", cwd=app_dir).stdout)["Version"] == "0.4.79"
    text = run(world, "version", cwd=app_dir).stdout
    assert text.startswith("fly v0.4.79 linux/amd64 Commit: ") and "BranchName: master" in text


def test_log_level_debug_writes_debug_lines_to_stdout(world, app_dir):
    p = run(world, "volumes", "list", "--json", cwd=app_dir, env={"LOG_LEVEL": "debug"})
    first, rest = p.stdout.split("\n", 1)
    assert first.startswith("\x1b[2mDEBUG\x1b[0m Loaded flyctl config from")
    assert json.loads(rest)[0]["id"] == DEFAULT_VOLUME_ID
    with pytest.raises(json.JSONDecodeError):
        json.loads(p.stdout)


def test_drop_output_tail_runs_the_command_and_loses_its_last_line(world, app_dir, tmp_path):
    marker = tmp_path / "ran"
    world.drop_output_tail(["ssh", "console"])
    script = f"touch {marker}; echo one; echo two"
    p = run(world, "ssh", "console", "-q", "-C", f"sh -c {shlex.quote(script)}", cwd=app_dir)
    assert p.returncode == 0 and p.stdout == "one\n" and marker.exists()
    p = run(world, "ssh", "console", "-q", "-C", "echo whole", cwd=app_dir)  # once only
    assert p.stdout == "whole\n"


def test_garbage_can_be_bytes_that_are_not_utf8(world, app_dir):
    world.garbage(["releases"], stdout=b"\xff\xfe[\x80]\n")
    p = run(world, "releases", "--json", cwd=app_dir, text=False)
    assert (p.returncode, p.stdout) == (0, b"\xff\xfe[\x80]\n")


def test_a_deploy_can_replace_the_machine(world, app_dir):
    (app_dir / "Dockerfile").write_text("FROM scratch\n")
    world.deploy_replaces_machine(new_id="9080e6f4a3d2b1", state="stopped")
    p = run(world, "deploy", "--detach", cwd=app_dir)
    assert p.returncode == 0, p.stderr
    assert f"Replacing {MID} by new machine" in p.stdout
    (machine,) = world.machines()
    assert (machine["id"], machine["state"]) == ("9080e6f4a3d2b1", "stopped")
    assert world.volumes()[0]["attached_machine_id"] == "9080e6f4a3d2b1"
    assert world.machine_home("9080e6f4a3d2b1").is_dir()


def test_a_deploy_rebuilds_the_command_from_fly_toml_and_keeps_the_metadata(world, app_dir):
    """internal/appconfig/machines.go: a `machine update --command` override (emergency.stop's
    sleep) does not survive `fly deploy`; the metadata is merged, so it does."""
    p = run(world, "machine", "update", MID, "--command", "sleep 2147483647",
            "--metadata", "ops_original={}", "--skip-health-checks", "--yes", cwd=app_dir)
    assert p.returncode == 0, p.stderr
    assert world.machine(MID)["config"]["init"]["cmd"] == ["sleep", "2147483647"]
    p = run(world, "deploy", "-c", "fly.toml", "--image", "registry.fly.io/x:y", "-y",
            cwd=app_dir)
    assert p.returncode == 0, p.stderr
    config = world.machine(MID)["config"]
    assert "cmd" not in config["init"] and config["metadata"]["ops_original"] == "{}"
    (app_dir / "fly.toml").write_text((app_dir / "fly.toml").read_text()
                                      + '\n[processes]\n  app = "node server.js --port 8080"\n')
    p = run(world, "deploy", "-c", "fly.toml", "--image", "registry.fly.io/x:z", "-y",
            cwd=app_dir)
    assert p.returncode == 0, p.stderr
    assert world.machine(MID)["config"]["init"]["cmd"] == ["node", "server.js", "--port", "8080"]
