"""`invoke deploy` and `invoke deploy.rollback` through the real CLI.

Each run is ``python -m invoke`` in a subprocess (as a user runs it) against the flyctl
test double (``tests/flyctl_double``) and a local HTTP server on 127.0.0.1 playing the
app's ``/health``: it reports the newest ``steps-*.db`` in the fake volume's backup
folder on every request, so the health gate sees the backup the deploy just made, and
can be switched to answer 503 or to report an older backup.

The "production volume" is ``<site>/vol``: ``steps.db`` (a real WAL database) and
``backups/``, which the remote scripts reach through the double's ``fly ssh console``.
Tests assert what a user sees: exit codes, the JSON on stdout, the audit line, the
rollback hint, and the exact order of the flyctl calls. Independent runs go in parallel.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import threading

import pytest

from ops import remote
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import (
    APP,
    BACKUP,
    DEPLOYED,
    GUARDED,
    MID,
    NEW_IMAGE,
    PREFLIGHT,
    SNAPSHOT,
    USER,
    VOL,
    Site,
    deploy_argv,
    error_line,
    label,
    run_cases,
)
from tests.fake_production import DEPLOY_READS as READS
from tests.flyctl_double import (
    IMAGE_V11,
    IMAGE_V12,
)
from tests.helpers import ANSI, BACKUP_RE, run_parallel

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

ROLLBACK_HINT = "invoke deploy.rollback --to 12"

MUTATING = {"ssh backup", "ssh delete", "volumes snapshots create", "deploy"}


# ---------------------------------------------------------------- the app's /health


# ---------------------------------------------------------------- one production site


def assert_not_deployed(
    site: Site, result, code: int, *, calls: list[str], step: str, one_line: bool = True
):
    """Aborted before `fly deploy`: the code, flyctl calls, nothing released, one audit line."""
    assert result.returncode == code, result
    line = error_line(result, last=one_line)
    assert f"deploy aborted before `fly deploy` ({step} failed)" in line, result
    assert site.labels() == calls, result
    assert [r["Version"] for r in site.world.releases()] == [12, 11]
    assert site.world.machine_image(MID) == IMAGE_V12
    assert ROLLBACK_HINT not in result.stderr  # nothing to roll back
    (entry,) = site.audit()
    assert entry["outcome"] == f"{step} failed" and entry["exit_code"] == code
    assert entry["kind"] == "deploy" and entry["app"] == APP and entry["release"] is None
    assert entry["error"].splitlines()[0] in line
    last = [s for s in entry["steps"] if s["step"] != "record"][-1]  # before the closing one
    assert last["step"] == step and last["outcome"] == "failed"
    assert result.json() == entry  # --json: the same record on stdout
    return entry


# ---------------------------------------------------------------- 1. the happy path


def test_deploy_backs_up_snapshots_deploys_checks_health_and_records(site):
    result = site.run("deploy", "--json")

    assert result.returncode == 0, result
    assert site.labels() == PREFLIGHT + BACKUP + SNAPSHOT + GUARDED
    calls = site.world.calls()
    for argv in calls:
        if argv[:2] == ["ssh", "console"]:  # always the volume's machine, quietly
            assert argv[2:7] == ["-a", APP, "--machine", MID, "-q"], argv
            assert argv[argv.index("-C") + 1].startswith("sh -c "), argv
    # builds from the Dockerfile; then the new release is read, the machine found again,
    # the data guard compares it with the backup, and its lock is released
    assert calls[-6] == ["deploy", "-a", APP, "-c", "fly.toml"]
    assert all(record["token"] for record in site.world.call_records())

    # what the world looks like now
    releases = site.world.releases()
    assert [(r["Version"], r["Status"]) for r in releases[:2]] == [
        (13, "complete"),
        (12, "complete"),
    ]
    assert site.world.machine_image(MID) == releases[0]["ImageRef"] != IMAGE_V12
    snapshots = site.world.snapshots(VOL)
    assert len(snapshots) == 3 and snapshots[-1]["status"] == "created"

    # the record: stdout (the whole of it) and the audit log say the same
    record = result.json()
    assert site.audit() == [record]
    assert record["kind"] == "deploy" and record["app"] == APP
    assert record["who"] == f"{USER}@{socket.gethostname()}"
    when = dt.datetime.fromisoformat(record["when"].replace("Z", "+00:00"))
    assert abs(dt.datetime.now(dt.UTC) - when) < dt.timedelta(minutes=1)
    assert record["finished"] >= record["when"]
    assert record["skipped_backup"] is False
    assert record["outcome"] == "ok" and record["exit_code"] == 0

    backup = record["backup"]
    assert BACKUP_RE.match(backup["name"]), backup
    on_volume = site.backups / backup["name"]
    assert backup["path"] == str(on_volume)
    assert backup["sha256"] == helpers.sha256(on_volume)
    assert backup["size"] == on_volume.stat().st_size
    assert helpers.rows(on_volume, "SELECT count(*) FROM steps") == [(3000,)]
    assert len(site.backup_names()) == 2  # retention keeps the old script's backup too

    assert record["snapshot"] == {
        "id": snapshots[-1]["id"],
        "volume": VOL,
        "size": snapshots[-1]["size"],
    }
    assert record["snapshot"]["id"].startswith("vs_")
    assert record["release"] == {
        "version": 13,
        "image": releases[0]["ImageRef"],
        "status": "complete",
    }
    assert record["previous_release"] == {"version": 12, "image": IMAGE_V12}
    steps = record["steps"]
    assert [s["step"] for s in steps] == [
        "lock", "preflight", "machine_lock", "backup", "snapshot", "full_check", "deploy",
        "health", "data", "record"]  # record: the machine lock's release, the closing step
    assert all(s["outcome"] == "ok" for s in steps), steps
    assert all(isinstance(s["seconds"], float) and s["seconds"] >= 0 for s in steps), steps
    assert steps[2]["detail"].endswith("/vol/.ops-deploy.lock")
    assert backup["name"] in steps[3]["detail"]
    assert record["snapshot"]["id"] in steps[4]["detail"]
    assert steps[5]["detail"].startswith("integrity_check ok, SHA-256 matches")
    assert steps[6]["detail"] == "release v13"
    assert backup["name"] in steps[7]["detail"]  # the gate saw the new backup in /health
    # the data guard: nothing changed since the backup
    assert steps[8]["detail"].endswith(
        f"tables against {backup['name']}: 0 changed, 0 schema changes"), steps[8]
    assert record["data"]["ok"] is True and record["data"]["tables"]["steps"] == [3000, 3000]
    assert all(before == after for before, after in record["data"]["tables"].values())
    assert site.health.requests >= 1

    # people: a line per step, flyctl's output, the way back; no noise
    assert ROLLBACK_HINT in result.stderr
    assert f"--image {IMAGE_V12}" in result.stderr
    assert "Visit your newly deployed app" in result.stderr
    assert "WARNING" not in result.stderr and "Error" not in result.stderr
    assert "Traceback" not in result.stderr and ANSI not in result.stderr


# ---------------------------------------------------------------- 2. nothing deployed when...


def test_no_deploy_when_the_backup_or_the_snapshot_fails(sites):
    ssh_down, corrupt, snap_fails, snap_hangs = (
        sites(name) for name in ("ssh", "corrupt", "snapfail", "snaphang")
    )
    # the tunnel drops on the backup's own call (the exact -C the tool sends for it)
    backup_call = remote.wrap(remote.backup_script(
        str(ssh_down.db), str(ssh_down.backups), check="quick"))  # a deploy publishes quick
    ssh_down.world.fail(["ssh", "console", backup_call], stderr="Error: tunnel unavailable\n")
    with corrupt.db.open("r+b") as raw:  # damage b-tree pages; page 1 still says SQLite
        for page in range(2, corrupt.db.stat().st_size // 4096, 3):
            raw.seek(page * 4096 + 100)
            raw.write(b"\xff" * 200)
    snap_fails.world.fail(["volumes", "snapshots", "create"], stderr="Error: volume is busy\n")
    snap_hangs.world.snapshot_behavior("never")

    results = run_cases([
        (ssh_down, ("deploy", "--json")),
        (corrupt, ("deploy", "--json")),
        (snap_fails, ("deploy", "--json")),
        (snap_hangs, ("deploy", "--json"), {"INVOKE_BACKUP_SNAPSHOT_TIMEOUT": "0.5"}),
    ])  # fmt: skip
    r_ssh, r_corrupt, r_snap_fails, r_snap_hangs = results

    code = int(ExitCode.DEPLOY_ABORTED_BACKUP)
    assert_not_deployed(ssh_down, r_ssh, code, calls=PREFLIGHT + ["ssh backup"], step="backup")
    assert "tunnel unavailable" in error_line(r_ssh)
    assert len(ssh_down.backup_names()) == 1  # only the old script's backup

    assert_not_deployed(
        corrupt, r_corrupt, code, calls=PREFLIGHT + ["ssh backup"], step="backup", one_line=False
    )  # the Error: line is not the last line of stderr here
    assert "the new backup failed quick_check" in error_line(r_corrupt, last=False)
    assert len(corrupt.backup_names()) == 1  # nothing that looks like a backup was left
    assert not list(corrupt.backups.glob(".tmp-*"))

    code = int(ExitCode.DEPLOY_ABORTED_SNAPSHOT)
    assert_not_deployed(snap_fails, r_snap_fails, code, step="snapshot",
                        calls=PREFLIGHT + BACKUP + SNAPSHOT[:2])  # fmt: skip
    assert "volume is busy" in error_line(r_snap_fails)

    labels = snap_hangs.labels()
    polls = labels[len(PREFLIGHT + BACKUP + SNAPSHOT[:3]) :]
    assert polls and set(polls) == {"volumes snapshots list"}, labels  # polled until the end
    assert_not_deployed(snap_hangs, r_snap_hangs, code, step="snapshot", calls=labels)
    assert "not created within 0.5s (status: running)" in error_line(r_snap_hangs)

    for one in (snap_fails, snap_hangs):  # the backup was made and verified all the same
        entry = one.audit()[0]
        assert entry["backup"]["sha256"] == helpers.sha256(one.backups / entry["backup"]["name"])
    assert snap_fails.audit()[0]["snapshot"] is None  # never requested
    # requested and still running on Fly when the wait gave up: recorded (issue 20 #8)
    assert snap_hangs.audit()[0]["snapshot"]["status"] == "running"


def test_a_corrupt_database_is_reported_in_one_line(site):
    with site.db.open("r+b") as raw:
        for page in range(2, site.db.stat().st_size // 4096, 3):
            raw.seek(page * 4096 + 100)
            raw.write(b"\xff" * 200)

    result = site.run("deploy")

    line = helpers.assert_one_line_error(result, ExitCode.DEPLOY_ABORTED_BACKUP, strict=False)
    assert "quick_check" in line and "On tree page" in line, result  # caught before publish
    assert "deploy" not in site.labels()


def test_no_deploy_when_preflight_fails(sites):
    logged_out, stopped, no_flyctl, dirty = (
        sites(name) for name in ("logout", "stopped", "noflyctl", "dirty")
    )
    logged_out.world.unauthenticated()
    stopped.world.set_machine_state(MID, "stopped")
    bare_path = "/usr/bin:/bin"
    assert not (shutil.which("fly", path=bare_path) or shutil.which("flyctl", path=bare_path))
    subprocess.run(["git", "init", "-q", str(dirty.cwd)], check=True, capture_output=True)
    (dirty.cwd / "notes.txt").write_text("not committed\n")

    r_logout, r_stopped, r_missing, r_dirty = run_cases([
        (logged_out, ("deploy", "--json")),
        (stopped, ("deploy", "--json")),
        (no_flyctl, ("deploy", "--json"), {"PATH": bare_path}),
        (dirty, ("deploy", "--json", "--require-clean")),
    ])  # fmt: skip

    code = int(ExitCode.DEPLOY_ABORTED_PREFLIGHT)
    assert_not_deployed(logged_out, r_logout, code, calls=PREFLIGHT[:2], step="preflight")
    assert "authenticated" in error_line(r_logout)
    assert_not_deployed(stopped, r_stopped, code, calls=PREFLIGHT[:4], step="preflight")
    assert f"no started machine has a 'data' volume attached ({VOL}→{MID}, " in error_line(
        r_stopped
    )
    assert_not_deployed(no_flyctl, r_missing, code, calls=[], step="preflight")
    assert "flyctl is not installed" in error_line(r_missing)
    assert_not_deployed(dirty, r_dirty, code, calls=PREFLIGHT, step="preflight")
    assert "--require-clean: the git tree has" in error_line(r_dirty)
    for one in (logged_out, stopped, no_flyctl, dirty):
        assert len(one.backup_names()) == 1 and len(one.world.snapshots(VOL)) == 2


# ---------------------------------------------------------------- 3. --skip-backup


def test_skip_backup_is_loud_recorded_and_touches_no_data(site):
    shutil.rmtree(site.backups)  # /health reports no backups at all: the gate must not care

    result = site.run("deploy", "--skip-backup", "--json", "--image", NEW_IMAGE)

    assert result.returncode == 0, result
    assert "WARNING: --skip-backup: deploying WITHOUT a backup or a volume snapshot" in (
        result.stderr
    )
    assert site.labels() == PREFLIGHT + DEPLOYED  # no ssh console, no snapshots
    assert deploy_argv(site) == ["deploy", "-a", APP, "-c", "fly.toml", "--image", NEW_IMAGE]
    assert site.world.machine_image(MID) == NEW_IMAGE
    assert len(site.world.snapshots(VOL)) == 2 and not site.backups.exists()
    record = result.json()
    assert site.audit() == [record]
    assert record["skipped_backup"] is True and record["outcome"] == "ok"
    assert record["backup"] is None and record["snapshot"] is None
    assert record["release"]["version"] == 13 and record["release"]["image"] == NEW_IMAGE
    outcomes = {s["step"]: (s["outcome"], s["detail"]) for s in record["steps"]}
    assert outcomes["backup"] == outcomes["snapshot"] == ("skipped", "--skip-backup")
    assert outcomes["health"][0] == "ok" and "reports" not in outcomes["health"][1]
    assert ROLLBACK_HINT in result.stderr


# ---------------------------------------------------------------- 4. --dry-run


def dry_run_reads(calls: list[list[str]], runs: int, backups: int = 0) -> list[list[str]]:
    """``calls`` less the looks at the machine's locks ``runs`` dry runs made
    (tests/test_dry_run_locks.py): the deploy lock's, one each (the unlock script with
    nothing removed), and the backup lock's, one per dry run that makes a backup."""
    looks = [argv for argv in calls if label(argv) == "ssh unlock"]
    assert len(looks) == runs and not any("rm -rf" in argv[-1] for argv in looks), looks
    backup_looks = [argv for argv in calls if label(argv) == "ssh look-locks"]
    assert len(backup_looks) == backups, backup_looks
    return [argv for argv in calls if argv not in looks and argv not in backup_looks]


def test_dry_run_shows_the_plan_and_runs_nothing(site):
    plain, full, skipping, canary = run_cases([
        (site, ("deploy", "--dry-run")),
        (site, ("deploy", "--dry-run", "--json", "--strategy", "immediate",
                "--wait-timeout", "2m", "--", "--build-arg", "X=1")),
        (site, ("deploy", "--dry-run", "--json", "--skip-backup", "--image", NEW_IMAGE)),
        (site, ("deploy", "--strategy", "canary")),  # flyctl refuses it with volumes
    ])  # fmt: skip

    helpers.assert_one_line_error(canary, ExitCode.USAGE, contains="--strategy canary")

    for result in (plain, full, skipping):
        assert result.returncode == 0, result
        assert "Traceback" not in result.stderr and ANSI not in result.stderr
        assert "WARNING" not in result.stderr
    # preflight's read-only calls, to show the real machine and volume, and a look at the
    # machine's deploy lock (the unlock script, removing nothing); nothing else
    assert sorted(dry_run_reads(site.world.calls(), 3, 2)) == sorted(READS * 3)
    assert site.audit() == [] and not site.audit_log.parent.exists()  # no audit, no lock file
    assert len(site.backup_names()) == 1

    assert plain.stdout == ""
    assert f"Plan for {APP} (dry run: only the reading steps ran" in plain.stderr
    assert f"fly deploy -a {APP} -c fly.toml" in plain.stderr
    assert f"fly ssh console -a {APP} --machine {MID} -q -C '<backup script>'" in plain.stderr
    assert f"fly volumes snapshots create {VOL} -a {APP}" in plain.stderr
    assert "<machine>" not in plain.stderr and "<volume>" not in plain.stderr
    run_time = [line for line in plain.stderr.splitlines()
                if line.startswith("Resolved at run time: ")]
    assert len(run_time) == 1 and "<backup script>" in run_time[0], plain.stderr

    plan = full.json()
    assert plan["dry_run"] is True
    steps = {step["key"]: step for step in plan["steps"]}
    assert list(steps) == [
        "lock", "preflight", "machine_lock", "backup", "snapshot", "full_check", "deploy",
        "health", "data", "record"]
    assert steps["preflight"]["commands"] == [
        ["version", "--json"],
        ["auth", "whoami"],
        ["volumes", "list", "-a", APP, "--json"],
        ["machine", "list", "-a", APP, "--json"],
        ["releases", "-a", APP, "--json"],
    ]
    assert steps["deploy"]["commands"][:1] == [
        ["deploy", "-a", APP, "-c", "fly.toml", "--strategy", "immediate",
         "--wait-timeout", "2m", "--build-arg", "X=1"]
    ]  # fmt: skip
    # backup, retention's list, the list that finds it: the ssh calls a run makes
    assert [c[:2] for c in steps["backup"]["commands"]] == [["ssh", "console"]] * 3
    assert [c[c.index("-C") + 1] for c in steps["backup"]["commands"]] == [
        "<backup script>", "<list script>", "<list script>"]
    assert steps["snapshot"]["commands"] == [
        ["volumes", "snapshots", "list", VOL, "-a", APP, "--json"],
        ["volumes", "snapshots", "create", VOL, "-a", APP],
        ["ssh", "console", "-a", APP, "--machine", MID, "-q", "-C", "<verify script>"],
        ["volumes", "snapshots", "list", VOL, "-a", APP, "--json"],
    ]
    assert plan["warnings"] == []
    # a lock step that cannot even try is a preflight failure; a lock someone holds exits 4
    expected_aborts = {"lock": 10, "preflight": 10, "machine_lock": 10, "backup": 11,
                       "snapshot": 12, "full_check": 11, "deploy": 13, "health": 14}  # fmt: skip
    assert {key: steps[key]["abort"] for key in expected_aborts} == expected_aborts
    assert all(step["skipped"] == "" for step in plan["steps"])
    assert site.health.url in steps["health"]["title"]

    steps = {step["key"]: step for step in skipping.json()["steps"]}
    for key in ("backup", "snapshot"):
        assert steps[key]["skipped"] == "--skip-backup" and steps[key]["commands"] == []
    assert steps["deploy"]["commands"][:1] == [
        ["deploy", "-a", APP, "-c", "fly.toml", "--image", NEW_IMAGE]
    ]
    assert "reports the new backup" not in steps["health"]["title"]


# ---------------------------------------------------------------- 5. failed deploy, failed gate


def test_failed_fly_deploy_exits_13_with_flyctls_error_and_the_way_back(sites):
    timing_out, refused = sites("timeout"), sites("refused")
    timing_out.world.deploy_health_timeout()
    # more than a pipe buffer on stderr while stdout is read: must not deadlock (95ecb47)
    noise = "".join(f"#{n} building layer {n}: {'.' * 180}\n" for n in range(1500))
    refused.world.fail(
        ["deploy"],
        stdout="==> Building image\n",
        stderr=f"{noise}Error: failed to fetch an image or build from source: error building: "
        "exit code: 1\n",
    )

    r_timeout, r_refused = run_parallel([
        lambda: timing_out.run("deploy", "--json"),
        lambda: refused.run("deploy", "--json", "--skip-backup", timeout=60),  # a deadlock hangs
    ])  # fmt: skip

    for one, result, text, calls, done in (
        (timing_out, r_timeout, "timeout reached waiting for health checks to pass for machine",
         PREFLIGHT + BACKUP + SNAPSHOT + DEPLOYED, ["ok"] * 6),
        (refused, r_refused, "failed to fetch an image or build from source: error building",
         PREFLIGHT + DEPLOYED, ["ok", "ok", "ok", "skipped", "skipped"]),
    ):  # fmt: skip
        assert result.returncode == ExitCode.DEPLOY_FAILED, result
        line = error_line(result)
        assert line.startswith("Error: deploy failed: `fly deploy") and text in line, result
        assert ROLLBACK_HINT in result.stderr
        assert one.labels() == calls
        assert one.health.requests == 0  # no health gate after a failed deploy
        record = result.json()
        assert one.audit() == [record]
        assert record["outcome"] == "deploy failed" and record["exit_code"] == 13
        assert text in record["error"]
        assert record["previous_release"] == {"version": 12, "image": IMAGE_V12}
        assert [s["outcome"] for s in record["steps"]] == done + ["failed", "ok"]  # + record
    assert r_timeout.json()["backup"]["name"] and r_timeout.json()["snapshot"]["id"]
    # flyctl's rolling deploy does not roll back: the failed release is live
    assert timing_out.world.releases()[0]["Status"] == "failed"
    assert timing_out.world.machine_image(MID) != IMAGE_V12
    assert [r["Version"] for r in refused.world.releases()] == [12, 11]
    assert "  #1499 building layer 1499: " in r_refused.stderr  # people saw flyctl's output


def test_failed_health_gate_exits_14_with_the_way_back(sites):
    unhealthy, stale = sites("unhealthy"), sites("stale")
    unhealthy.health.mode = "503"
    stale.health.mode = "stale"

    r_unhealthy, r_stale = run_parallel([
        lambda: unhealthy.run("deploy", "--json", "--health-timeout", "0.5", "--skip-backup"),
        lambda: stale.run("deploy", "--json", "--health-timeout", "0.5"),
    ])  # fmt: skip

    for one, result, calls in (
        (unhealthy, r_unhealthy, PREFLIGHT + DEPLOYED),
        (stale, r_stale, PREFLIGHT + BACKUP + SNAPSHOT + DEPLOYED),
    ):
        assert result.returncode == ExitCode.HEALTH_FAILED, result
        line = error_line(result)
        assert line.startswith(f"Error: health failed: {one.health.url} not healthy after "), line
        assert "(limit 0.5s, a poll every 0.05s)" in line
        assert ROLLBACK_HINT in result.stderr
        assert one.labels() == calls
        assert one.health.requests >= 2  # it polled, not just asked once
        record = result.json()
        assert one.audit() == [record]
        assert record["outcome"] == "health failed" and record["exit_code"] == 14
        assert record["release"]["version"] == 13  # deployed, but not healthy
        assert record["steps"][-2]["step"] == "health"  # then the closing "record" step
        assert record["steps"][-2]["outcome"] == "failed"
    assert "HTTP 503" in error_line(r_unhealthy)
    old, new = stale.backup_names()
    assert f"/health reports latest backup {old!r}, older than this deploy's {new!r}" in (
        error_line(r_stale))
    assert stale.audit()[0]["backup"]["name"] == new


# ---------------------------------------------------------------- 6. the deploy lock


def test_a_held_deploy_lock_stops_a_second_deploy(site, tmp_path):
    with helpers.file_lock_held(site.lock_file, tmp_path / "holder") as (pid, _release):
        result = site.run("deploy", "--json")

    assert result.returncode == ExitCode.LOCKED, result
    line = error_line(result)
    assert f"another deploy of {APP} holds the lock {site.lock_file}" in line
    assert f"(pid {pid} on " in line and " since " in line
    assert "--lock-wait" in line
    labels = site.labels()
    assert "deploy" not in labels and not MUTATING & set(labels)
    assert set(labels) <= set(PREFLIGHT)
    assert len(site.backup_names()) == 1 and len(site.world.snapshots(VOL)) == 2
    record = result.json()
    assert site.audit() == [record]
    assert record["outcome"] == "lock failed" and record["exit_code"] == 4


def test_lock_wait_waits_for_the_other_deploy_then_deploys(site, tmp_path):
    with helpers.file_lock_held(site.lock_file, tmp_path / "holder") as (_pid, release):
        run = site.start("deploy", "--json", "--lock-wait", "5")
        run.wait_for_stderr("waiting up to 5s for the deploy lock")
        threading.Timer(0.6, release.touch).start()
        result = run.finish()

    assert result.returncode == 0, result
    assert site.labels() == PREFLIGHT + BACKUP + SNAPSHOT + GUARDED
    record = result.json()
    lock = next(s for s in record["steps"] if s["step"] == "lock")
    assert lock["outcome"] == "ok" and lock["seconds"] >= 0.5, record["steps"]
    assert record["outcome"] == "ok" and site.audit() == [record]


def test_waiting_for_the_machines_lock_says_whose_it_is_first(site):
    """The machine's answer only comes when a call ends: a first try that does not wait
    names the holder, then the wait starts (issue 9 #5)."""
    site.machine_lock.mkdir()
    other = "bob@ci deploy since 2026-11-29T10:00:00Z (run 0badc0de)"
    (site.machine_lock / "holder").write_text(other + "\n")
    run = site.start("deploy", "--json", "--lock-wait", "20")
    run.wait_for_stderr("waiting up to 20s for the deploy lock on the machine")
    shutil.rmtree(site.machine_lock)  # the other deploy ends
    result = run.finish()

    assert result.returncode == 0, result
    assert f"held by {other}" in result.stderr
    assert site.labels(locks=True).count("ssh lock") == 2  # the try, then the wait
    assert not site.machine_lock.exists()  # released at the end


def test_after_waiting_for_the_lock_the_deploy_sees_the_release_the_other_one_made(site, tmp_path):
    with helpers.file_lock_held(site.lock_file, tmp_path / "holder") as (_pid, release):
        run = site.start(
            "deploy", "--json", "--lock-wait", "10", "--skip-backup", "--image", NEW_IMAGE
        )
        run.wait_for_stderr("waiting up to 10s for the deploy lock")
        # meanwhile the deploy holding the lock finishes: v13 is the current release
        other = "registry.fly.io/step-app-4x-yhw:deployment-01OTHERDEPLOY0000000000000"
        site.world.add_release(APP, 13, image_ref=other)
        release.touch()
        result = run.finish()

    assert result.returncode == 0, result
    record = result.json()
    assert record["release"]["version"] == 14
    assert record["previous_release"] == {"version": 13, "image": other}
    assert "invoke deploy.rollback --to 13" in result.stderr


# ---------------------------------------------------------------- 7. rollback


def test_rollback_redeploys_an_earlier_image_without_touching_data(sites):
    default, to_11, to_10 = sites("default"), sites("to11"), sites("to10")
    image_v10 = "registry.fly.io/step-app-4x-yhw:deployment-01V10IMAGE0000000000000000"
    to_10.world.add_release(APP, 10, image_ref=image_v10, created_at="2026-08-18T09:00:00Z")

    r_default, r_11, r_10 = run_cases([
        (default, ("deploy.rollback", "--json")),
        (to_11, ("deploy.rollback", "--to", "v11", "--json")),
        (to_10, ("deploy.rollback", "--to", "10", "--json")),
    ])  # fmt: skip

    for one, result, version, image in (
        (default, r_default, 11, IMAGE_V11),
        (to_11, r_11, 11, IMAGE_V11),
        (to_10, r_10, 10, image_v10),
    ):
        assert result.returncode == 0, result
        assert one.labels() == PREFLIGHT + DEPLOYED  # no ssh console, no snapshots
        assert deploy_argv(one) == ["deploy", "-a", APP, "-c", "fly.toml", "--image", image]
        assert one.world.machine_image(MID) == image
        assert one.world.releases()[0]["ImageRef"] == image
        assert len(one.backup_names()) == 1 and len(one.world.snapshots(VOL)) == 2
        record = result.json()
        assert one.audit() == [record]
        assert record["kind"] == "rollback" and record["outcome"] == "ok"
        assert record["rollback_to"] == version
        assert record["backup"] is None and record["snapshot"] is None
        assert record["release"] == {"version": 13, "image": image, "status": "complete"}
        assert [s["step"] for s in record["steps"]] == [
            "lock", "preflight", "machine_lock", "deploy", "health", "record"]
        assert ROLLBACK_HINT in result.stderr  # and back again, if this was wrong


def test_a_failed_rollback_says_retry_first_and_never_calls_the_bad_release_a_rollback(site):
    """s28 review-op2 #4: a rollback whose `fly deploy` failed ended with "rollback  invoke
    deploy.rollback --to 12", the release it was leaving; the retry comes first now, and
    the way back to v12 is called the undo it is."""
    site.world.fail(["deploy"], times=1)
    result = site.run("deploy.rollback")
    assert result.returncode == ExitCode.DEPLOY_FAILED, result
    said = [" ".join(line.split()) for line in result.stderr.splitlines()]
    retry = next(i for i, line in enumerate(said) if line.startswith("retry "))
    assert said[retry] == "retry invoke deploy.rollback --to 11", said
    # its fly deploy failed: v12 is live still, and a way "back" to it is none (break4 #8)
    assert not [line for line in said if line.startswith(("rollback invoke", "undo "))], said


def test_a_rollback_that_went_out_names_the_way_back_as_its_undo(site):
    result = site.run("deploy.rollback")
    assert result.returncode == 0, result
    said = [" ".join(line.split()) for line in result.stderr.splitlines()]
    assert any(line.startswith("undo invoke deploy.rollback --to 12 (back to v12, live before "
                               "this rollback)") for line in said), said
    assert not [line for line in said if line.startswith(("retry ", "rollback invoke"))], said


def test_rollback_to_an_unknown_release_and_dry_run_deploy_nothing(sites):
    unknown, dry = sites("unknown"), sites("dry")

    r_unknown, r_dry, r_dry_to, r_live = run_cases([
        (unknown, ("deploy.rollback", "--to", "99", "--json")),
        (dry, ("deploy.rollback", "--dry-run", "--json")),
        (dry, ("deploy.rollback", "--dry-run", "--json", "--to", "11")),
        (dry, ("deploy.rollback", "--dry-run", "--json", "--to", "12")),
    ])  # fmt: skip

    assert r_unknown.returncode != 0, r_unknown
    assert "no release v99 (recent: v12, v11)" in error_line(r_unknown)
    assert "deploy" not in unknown.labels() and set(unknown.labels()) <= set(PREFLIGHT)
    assert unknown.world.machine_image(MID) == IMAGE_V12
    assert [entry["kind"] for entry in unknown.audit()] == ["rollback"]

    assert sorted(dry_run_reads(dry.world.calls(), 3)) == sorted(READS * 3)
    assert dry.audit() == []
    for result in (r_dry, r_dry_to):  # the image is known: releases is a read
        assert result.returncode == 0, result
        steps = {step["key"]: step for step in result.json()["steps"]}
        assert list(steps) == ["lock", "preflight", "machine_lock", "deploy", "health",
                               "record"]
        assert steps["deploy"]["commands"][:1] == [
            ["deploy", "-a", APP, "-c", "fly.toml", "--image", IMAGE_V11]
        ]
        assert steps["deploy"]["title"] == "redeploy v11"
        assert "WARNING" not in result.stderr
    # a --to naming the live release (a typo for v11, say) is planned, and said (review-op s28 #6)
    assert r_live.returncode == 0, r_live
    assert "WARNING: v12's image is the one v12 runs now: this rollback redeploys what is " \
           "live and goes back nowhere" in " ".join(r_live.stderr.split()), r_live.stderr


def test_rollback_to_an_unknown_release_exits_not_found(site):
    result = site.run("deploy.rollback", "--to", "99")
    dry = site.run("deploy.rollback", "--to", "99", "-n")  # review-ox 19: it exited 0

    for ran in (result, dry):
        assert ran.returncode == ExitCode.NOT_FOUND, ran
        line = error_line(ran)
        assert "no release v99 (recent: v12, v11)" in line
        assert "deploy aborted" not in line  # a rollback was asked for, not a deploy
    assert "deploy" not in site.labels()
    assert "redeploy v99" not in dry.stderr  # no plan for a release that does not exist


def test_rollback_after_a_failed_deploy_goes_back_to_the_last_good_release(site):
    site.world.deploy_health_timeout()
    failed = site.run("deploy", "--skip-backup", "--image", NEW_IMAGE)
    assert failed.returncode == ExitCode.DEPLOY_FAILED, failed
    assert ROLLBACK_HINT in failed.stderr  # what the user is told to do...
    assert site.world.machine_image(MID) == NEW_IMAGE  # ...because the failed image is live
    site.world.clear_calls()

    result = site.run("deploy.rollback", "--json")  # ...or, the same, without --to

    assert result.returncode == 0, result
    assert deploy_argv(site)[-2:] == ["--image", IMAGE_V12]
    assert site.world.machine_image(MID) == IMAGE_V12
    assert result.json()["rollback_to"] == 12


def test_a_second_rollback_never_redeploys_the_release_the_first_left(site):
    """v12 is bad: the first rollback redeploys v11 as v13; run again (a retry, or a
    second person), "the release before the newest" is v12, the bad one. The audit log
    knows the first rollback left v12: never v12 again; and v11's image is the one
    running (v13), so the second says so and refuses, naming --to (review-op #12)."""
    first = site.run("deploy.rollback", "--json")
    assert first.returncode == 0, first
    assert first.json()["rollback_to"] == 11 and first.json()["rolled_back_from"] == 12
    site.world.clear_calls()

    second = site.run("deploy.rollback")

    line = helpers.assert_one_line_error(second, 2, strict=False)
    assert "already runs v11's image" in line and "--to N" in line, line
    assert not [call for call in site.world.calls() if call[:1] == ["deploy"]]
    assert site.world.machine_image(MID) == IMAGE_V11  # never IMAGE_V12 again
    dry = site.run("deploy.rollback", "--dry-run")  # the plan says the same
    assert "already runs v11's image" in dry.stderr, dry
    named = site.run("deploy.rollback", "--to", "12", "--json")  # unless --to names it
    assert named.returncode == 0 and site.world.machine_image(MID) == IMAGE_V12, named


def test_rolled_back_from_reads_only_rollbacks_that_deployed():
    from ops.deploy import rolled_back_from

    ran = [{"step": "deploy", "outcome": "ok"}]
    records = [
        {"kind": "rollback", "app": APP, "rolled_back_from": 12, "steps": ran},
        {"kind": "rollback", "app": APP, "previous_release": {"version": 9}, "steps": ran},
        {"kind": "rollback", "app": APP, "rolled_back_from": 8,
         "steps": [{"step": "preflight", "outcome": "failed"}]},  # never deployed
        {"kind": "deploy", "app": APP, "previous_release": {"version": 7}, "steps": ran},
        {"kind": "rollback", "app": "other", "rolled_back_from": 6, "steps": ran},
        {"kind": "rollback", "app": APP, "rolled_back_from": "5", "steps": ran},
        "junk", {"kind": "rollback", "app": APP, "steps": "x"},
    ]
    assert rolled_back_from(records, APP) == {12, 9}


# ---------------------------------------------------------------- 8. CI


def test_ci_builds_remotely_prints_only_json_and_never_the_token(sites):
    token = "FlyV1 fm2_lJPECAAAAAAAAMm3xBBCI6ZXhzY2VyZXQtdG9rZW4tZm9yLXRlc3Rz"
    full, dry, leaky = sites("full"), sites("dry"), sites("leaky")
    for one in (full, leaky):
        one.token = token
        one.world.add_token(token)
    leaky.world.fail(  # flyctl echoing the token must not put it in front of anyone
        ["deploy"],
        stdout=f"using access token {token}\n",
        stderr=f"Error: token {token} is not allowed to deploy {APP}\n",
    )
    ci = {"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat",
          "GITHUB_RUN_ID": "4242", "NO_COLOR": None}  # fmt: skip

    r_full, r_dry, r_leaky = run_parallel([
        lambda: full.run("deploy", "--json", env=ci),
        lambda: dry.run("deploy", "--dry-run", "--json", "--image", NEW_IMAGE, env=ci),
        lambda: leaky.run("deploy", "--json", "--skip-backup", env=ci),
    ])  # fmt: skip

    assert r_full.returncode == 0, r_full
    assert full.labels() == PREFLIGHT + BACKUP + SNAPSHOT + GUARDED
    assert deploy_argv(full) == ["deploy", "-a", APP, "-c", "fly.toml", "--remote-only"]
    record = json.loads(r_full.stdout)  # stdout is exactly one JSON document
    assert r_full.stdout.startswith("{") and r_full.stdout.endswith("}\n")
    assert record["who"] == "octocat (GitHub Actions run 4242)"
    assert full.audit() == [record]

    assert r_dry.returncode == 0, r_dry  # an image is deployed as is: nothing to build
    (deploy,) = [s for s in r_dry.json()["steps"] if s["key"] == "deploy"]
    assert deploy["commands"][:1] == [["deploy", "-a", APP, "-c", "fly.toml", "--image", NEW_IMAGE]]

    assert r_leaky.returncode == ExitCode.DEPLOY_FAILED, r_leaky
    assert "--remote-only" in deploy_argv(leaky)
    assert ("Error: deploy failed: `fly deploy -a step-app-4x-yhw -c fly.toml --remote-only` "
            "failed: token *** is not") in (
        r_leaky.stderr
    )
    assert "using access token ***" in r_leaky.stderr
    assert "token *** is not allowed" in leaky.audit()[0]["error"]

    for one, result in ((full, r_full), (dry, r_dry), (leaky, r_leaky)):
        assert ANSI not in result.stdout and ANSI not in result.stderr, result
        logged = one.audit_log.read_text() if one.audit_log.exists() else ""
        for text in (result.stdout, result.stderr, logged):
            assert token not in text and "fm2_" not in text


def test_ci_false_is_not_ci(site):
    result = site.run("deploy", "--dry-run", "--json", env={"CI": "false"})

    assert result.returncode == 0, result
    (deploy,) = [s for s in result.json()["steps"] if s["key"] == "deploy"]
    assert deploy["commands"][:1] == [["deploy", "-a", APP, "-c", "fly.toml"]]


def test_local_only_builds_with_the_local_docker(site):
    result = site.run("deploy", "--dry-run", "--json", "--local-only", env={"CI": "true"})

    assert result.returncode == 0, result
    (deploy,) = [s for s in result.json()["steps"] if s["key"] == "deploy"]
    assert deploy["commands"][:1] == [["deploy", "-a", APP, "-c", "fly.toml", "--local-only"]]


# ---------------------------------------------------------------- the lock on the machine


def test_the_machine_lock_is_taken_after_preflight_and_always_released(sites):
    ok, failing = sites("ok"), sites("failing")
    failing.world.fail(["volumes", "snapshots", "create"], stderr="Error: volume is busy\n")
    r_ok, r_failing = run_parallel([
        lambda: ok.run("deploy", "--json"),
        lambda: failing.run("deploy", "--json"),
    ])  # fmt: skip

    assert r_ok.returncode == 0, r_ok
    assert ok.labels(locks=True) == (
        PREFLIGHT + ["ssh lock"] + BACKUP + SNAPSHOT + GUARDED + ["ssh unlock"])
    assert r_failing.returncode == ExitCode.DEPLOY_ABORTED_SNAPSHOT, r_failing
    assert failing.labels(locks=True)[-1] == "ssh unlock"  # released on the way out too
    for site, result in ((ok, r_ok), (failing, r_failing)):
        assert not site.machine_lock.exists()
        steps = [s["step"] for s in result.json()["steps"]]
        assert steps[:3] == ["lock", "preflight", "machine_lock"]


def test_a_deploy_lock_held_on_the_machine_stops_a_deploy_from_anywhere(site):
    # another laptop (or CI) is deploying: its lock is on the volume, not on this computer
    site.machine_lock.mkdir()
    (site.machine_lock / "holder").write_text("alice@laptop deploy since 2026-11-25T10:00:00Z\n")
    result = site.run("deploy", "--json")

    assert result.returncode == ExitCode.LOCKED, result
    line = error_line(result)
    assert "holds the lock on the machine" in line and "alice@laptop" in line
    assert "invoke deploy.unlock --yes" in line
    assert "deploy" not in site.labels() and not MUTATING & set(site.labels())
    assert site.machine_lock.exists()  # someone else's lock is never removed by a deploy
    assert result.json()["outcome"] == "machine_lock failed"


def test_deploy_unlock_shows_then_removes_a_stale_lock(site):
    site.machine_lock.mkdir()
    (site.machine_lock / "holder").write_text("bob@ci deploy since 2026-11-25T09:00:00Z\n")

    shown = site.run("deploy.unlock")
    assert shown.returncode == ExitCode.LOCKED, shown
    assert "bob@ci" in error_line(shown) and site.machine_lock.exists()

    removed = site.run("deploy.unlock", "--yes")
    assert removed.returncode == 0, removed
    assert "Removed the deploy lock held by bob@ci" in removed.stderr
    assert not site.machine_lock.exists()
    again = site.run("deploy.unlock", "--yes")
    assert again.returncode == 0 and "No deploy lock" in again.stderr, again


def test_emergency_deploy_and_rollback_go_on_when_the_machine_is_down(sites):
    emergency, rollback = sites("emergency"), sites("rollback")
    for site in (emergency, rollback):
        site.world.set_machine_state(MID, "stopped")  # the app crashed: no ssh possible
    r_emergency, r_rollback = run_cases([
        (emergency, ("deploy", "--skip-backup", "--image", NEW_IMAGE, "--json")),
        (rollback, ("deploy.rollback", "--to", "11", "--json")),
    ])  # fmt: skip

    for site, result in ((emergency, r_emergency), (rollback, r_rollback)):
        assert "the production machine is not usable" in result.stderr, result
        assert "deploy" in site.labels(locks=True), result
        assert not any(name.startswith("ssh") for name in site.labels(locks=True)), result
    # a normal deploy would not go on: it needs the machine for its backup
    normal = sites("normal")
    normal.world.set_machine_state(MID, "stopped")
    blocked = normal.run("deploy", "--json")
    assert blocked.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, blocked
    assert "deploy" not in normal.labels()


def test_an_unwritable_audit_log_stops_the_deploy_before_anything_happens(site):
    blocker = site.root / "blocker"
    blocker.write_text("a file where the audit folder should be")
    result = site.run("deploy", env={"INVOKE_DEPLOY_AUDIT_LOG": str(blocker / "deploys.jsonl")})
    assert result.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, result
    assert "cannot write the audit log" in error_line(result)
    assert site.world.calls() == []  # not even preflight: nothing may happen unrecorded


def test_flags_fly_deploy_would_refuse_are_refused_before_any_backup(sites):
    bad_strategy, bad_wait, bad_rollback = sites("s"), sites("w"), sites("r")
    results = run_cases([
        (bad_strategy, ("deploy", "--strategy", "fast")),
        (bad_wait, ("deploy", "--wait-timeout", "5 minutes")),
        (bad_rollback, ("deploy.rollback", "--strategy", "canary")),
    ])  # fmt: skip
    for site, result, words in zip(
        (bad_strategy, bad_wait, bad_rollback), results,
        ("--strategy must be one of", "--wait-timeout must be a duration", "canary"),
        strict=True,
    ):
        assert result.returncode == ExitCode.USAGE, result
        assert words in error_line(result)
        assert site.world.calls() == [] and site.audit() == []
        assert len(site.backup_names()) == 1  # no backup spent on a deploy that cannot run
