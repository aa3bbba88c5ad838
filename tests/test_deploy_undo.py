"""`invoke deploy.undo` (issue 23 #2): a deploy whose migration destroyed data, caught by
the data guard (exit 16), undone by one command through the real CLI against the flyctl
double: the app's writes stop, a safety backup keeps what was written since, the
pre-deploy backup is restored with its proof, the previous release's image is deployed,
the app resumes, /health and the data guard pass. The dry run's plan is the run's
program: the flyctl calls a run makes are the plan's commands, in its order."""

from __future__ import annotations

import json
import signal
import sqlite3

import pytest

from ops import undo
from ops.errors import ExitCode, OpsError
from tests import node_env
from tests.fake_production import (
    APP,
    MID,
    NEW_IMAGE,
    assert_error,
    flip_bytes,
    label,
    signal_while_hung,
)
from tests.helpers import run_parallel

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

DELETES = "DELETE FROM steps WHERE id > 1000;"  # 2,000 of 3,000 rows
BY_HAND = "To finish by hand, run from the failed step on:"
# a whole undo (stop, restore, redeploy, resume, /health, guard) is some 20 flyctl calls: on
# a loaded 2-core machine it can pass the 30 s a single task gets (a hang guard, not a timing)
UNDO_TIMEOUT = 120


def rows(db, table: str = "steps") -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def kind_of(backup) -> str | None:
    """What a backup's record says it is (None: no record, so never `latest`)."""
    record = backup.with_name(backup.name + ".json")
    return json.loads(record.read_text()).get("kind", "backup") if record.exists() else None


def bad_deploy(site, env=None) -> dict:
    """`invoke deploy` of a release whose migration deletes rows: caught, exit 16."""
    site.world.deploy_migrates(site.db, DELETES)
    result = site.run("deploy", env=env)
    assert result.returncode == ExitCode.DATA_LOST, result
    record = site.audit()[-1]
    assert rows(site.db) == 1000
    return record


def undo_everything(site, env=None):
    """A bad deploy, then `deploy.undo --yes --json`: (the deploy's record, the result)."""
    deployed = bad_deploy(site, env)
    return deployed, site.run("deploy.undo", "--yes", "--json", env=env, timeout=UNDO_TIMEOUT)


def assert_undone(site, deployed: dict, result) -> dict:
    assert result.returncode == 0, result
    assert rows(site.db) == 3000  # the pre-deploy rows are back
    assert site.world.machine_image(MID) == deployed["previous_release"]["image"]
    undo = site.audit()[-1]
    assert undo["kind"] == "undo" and undo["outcome"] == "ok", undo
    assert undo["deploy"] == f"v{deployed['release']['version']}"
    assert undo["backup"] == deployed["backup"]["name"]
    assert undo["data"]["ok"] is True and undo["data"]["lost"] == []
    assert undo["data"]["tables"]["steps"] == [3000, 3000]
    assert undo["written_since"]["steps"] == [3000, 1000]
    kept = undo["safety_backup"]["name"]
    assert rows(site.backups / kept) == 1000  # kept, not lost
    # ... as a safety backup (never `latest`, kept by retention); no ordinary backup holds
    # the damage, so a later `invoke restore --production` cannot put it back
    assert kind_of(site.backups / kept) == "safety"
    ordinary = [db for db in site.backups.glob("steps-*.db") if kind_of(db) == "backup"]
    assert ordinary and all(rows(db) == 3000 for db in ordinary), ordinary
    assert undo["release"]["version"] == deployed["release"]["version"] + 1
    machine = site.world.machine(MID)
    assert machine["state"] == "started" and not machine["config"].get("init", {}).get("cmd")
    assert not machine["config"]["metadata"].get("ops_emergency_original")
    assert not (site.db.parent / ".ops-emergency.json").exists()
    assert not site.machine_lock.exists()
    assert ("(steps 3,000 → 1,000) is kept in the restore's safety backup " + kept
            in result.stderr)
    assert site.token not in site.audit_log.read_text() + result.stderr + result.stdout
    return undo


def test_undo_runs_exactly_the_dry_runs_plan_and_puts_back_code_and_data(site):
    deployed = bad_deploy(site)
    site.world.clear_calls()
    dry = site.run("deploy.undo", "--dry-run", "--json")
    assert dry.returncode == 0, dry
    plan = json.loads(dry.stdout)
    assert plan["backup"] == deployed["backup"]["name"] and plan["deploy"] == "v13"
    assert plan["outcome"] == "dry run"
    assert plan["image"] == deployed["previous_release"]["image"] and plan["release"] == 12
    assert plan["written_since"] == {"steps": [3000, 1000]}
    shown = dry.stderr
    assert ("(the rows in the live database since the deploy: the migration's changes and "
            "users' writes; kept in the restore's safety backup)") in shown
    assert "what users wrote" not in shown
    assert f"--image {plan['image']}" in shown and plan["backup"] in shown
    first_change = next(i for i, step in enumerate(plan["steps"]) if not step["reads_only"])
    reads = [c for step in plan["steps"][:first_change] for c in step["commands"]]
    assert rows(site.db) == 1000 and len(site.audit()) == 1  # nothing changed
    calls = site.world.calls()  # the reads, then the looks at the locks the run takes
    assert [label(c) for c in calls[-2:]] == ["ssh unlock", "ssh look-locks"]  # (taking
    # nothing: tests/test_dry_run_locks.py)
    assert [c[:-1] if c[:2] == ["ssh", "console"] else c for c in calls[:-2]] == [
        c[:-1] if c[:2] == ["ssh", "console"] else c for c in reads]
    assert "<machine>" not in dry.stdout

    site.world.clear_calls()
    result = site.run("deploy.undo", "--yes", "--json")
    undo = assert_undone(site, deployed, result)
    planned = [c for step in plan["steps"] for c in step["commands"]]
    # every flyctl call, in order, is the plan's; a machine script is shown by its purpose
    assert [c[:-1] if c[:2] == ["ssh", "console"] else c for c in site.world.calls()] == [
        c[:-1] if c[:2] == ["ssh", "console"] else c for c in planned]
    assert [s["step"] for s in undo["steps"]] == [s["key"] for s in plan["steps"]]

    # undone once: a second undo (which would restore the backup again over what was
    # written since) is refused, also by name, and never suggested
    for again in (site.run("deploy.undo", "--dry-run"),
                  site.run("deploy.undo", "--dry-run", "--deploy", "v13")):
        assert_error(again, ExitCode.USAGE, contains="deploy v13 was already undone: undo at ")
        assert "made release v14 (ok); nothing to undo" in again.error_lines[0]
        assert "--deploy" not in again.stderr


def test_the_node_only_machine_undoes_the_same(site):
    site.world.set_machine_image("node")
    env = {"INVOKE_MACHINE_APP_DIR": str(node_env.app_dir())}
    deployed, result = undo_everything(site, env)
    undo = assert_undone(site, deployed, result)
    assert deployed["backup"]["strategy"] == "node"
    assert [s["detail"] for s in undo["steps"] if s["step"] == "restore"][0].startswith("[node]")


# ---------------------------------------------------------------- which deploy, as data


def deployed(version: int, **extra) -> dict:
    return {"kind": "deploy", "app": APP, "when": f"2026-12-0{version % 9}T10:00:00Z",
            "release": {"version": version}, "backup": {"name": f"b{version}", "sha256": "ab"},
            "previous_release": {"version": version - 1, "image": f"img{version - 1}"},
            **extra}


def test_pick_takes_the_last_deploy_and_survives_a_hand_edited_log():
    junk = ["text", 7, None, {"kind": "deploy"}, {"kind": "deploy", "app": APP,
                                                  "release": {"version": "13"}},
            {"kind": "deploy", "app": APP, "release": 13}, {"kind": "rollback", "when": 5}]
    chosen = undo.pick([deployed(12), *junk, deployed(13, app="other"), deployed(13)], APP,
                       None)
    assert (chosen.release, chosen.backup, chosen.image, chosen.previous) == (13, "b13",
                                                                            "img12", 12)
    assert undo.pick([deployed(12), deployed(13)], APP, "v12").later == (
        "deploy at 2026-12-04T10:00:00Z made release v13 (?)",)
    broken = deployed(13, previous_release=["x"], when=99)
    with pytest.raises(OpsError, match="no previous release") as caught:
        undo.pick([broken], APP, None)
    assert caught.value.code == ExitCode.NOT_FOUND
    # a later run that made no newer release (an undo stopped before its redeploy) is no
    # reason to refuse
    stopped = {"kind": "undo", "app": APP, "outcome": "terminated by SIGTERM during deploy"}
    assert undo.pick([deployed(13), stopped], APP, None).later == ()
    # an undo that redeployed but did not finish: refused, saying what is left
    half = {**stopped, "deploy": "v13", "when": "2026-12-06T10:00:00Z",
            "release": {"version": 14}}
    with pytest.raises(OpsError, match=r"deploy v13 was already undone: undo at "
                       r"2026-12-06T10:00:00Z made release v14 \(terminated by SIGTERM "
                       r"during deploy\); it did not finish: .*emergency.resume") as caught:
        undo.pick([deployed(13), half], APP, "v13")
    assert caught.value.code == ExitCode.USAGE


# ---------------------------------------------------------------- refusals: one line


def test_the_refusals_say_what_is_possible_instead(sites):
    none, skipped, gone, damaged, later, ci = (sites(n) for n in (
        "none", "skipped", "gone", "damaged", "later", "ci"))
    for site in (gone, damaged, later, ci):
        site.world.deploy_migrates(site.db, DELETES)
    run_parallel([lambda: skipped.run("deploy", "--skip-backup", "--image", NEW_IMAGE),
                  *(lambda s=s: s.run("deploy") for s in (gone, damaged, later, ci))])
    # a deploy from CI: its audit line is in CI's artifact, not in this computer's log
    ci.world.add_release(APP, 14, image_ref=NEW_IMAGE)
    gone_name, damaged_name = gone.audit()[-1]["backup"]["name"], \
        damaged.audit()[-1]["backup"]["name"]
    (gone.backups / gone_name).unlink()
    flip_bytes(damaged.backups / damaged_name, 5000, 8)
    assert later.run("deploy.rollback").returncode == 0
    results = run_parallel([lambda s=s: s.run("deploy.undo", "--yes") for s in (
        none, skipped, gone, damaged, later, ci)])
    artifact = ("a CI deploy's is in its `deploy-record` artifact: download it and run with "
                "INVOKE_DEPLOY_AUDIT_LOG=PATH")
    expected = [
        (ExitCode.NOT_FOUND, f"nothing to undo; this computer's audit log is "
                             f"{none.audit_log}; {artifact}"),
        (ExitCode.USAGE, "was made with --skip-backup: there is no pre-deploy backup to put "
                         "back; code only: `invoke deploy.rollback`; data only: `invoke "
                         "restore NAME --production`"),
        (ExitCode.NOT_FOUND, f"the pre-deploy backup {gone_name} is gone"),
        (ExitCode.VERIFY_FAILED, f"the pre-deploy backup {damaged_name} "),
        (ExitCode.USAGE, "the last deploy (v13) is not what runs now: rollback at"),
        (ExitCode.USAGE, f"release v14 is live, not v13 (the deploy to undo), and no run in "
                         f"this audit log made v14: this computer's audit log is "
                         f"{ci.audit_log}; {artifact}; to undo v13 all the same: --deploy "
                         "v13"),
    ]
    for site, result, (code, words) in zip((none, skipped, gone, damaged, later, ci), results,
                                           expected, strict=True):
        assert_error(result, code, contains=words)
        assert all(c[:2] != ["machine", "update"] and c[0] != "deploy" or c in before
                   for c in site.world.calls() for before in [site.world.calls()])
        assert [r["kind"] for r in site.audit()] in ([], ["deploy"], ["deploy", "rollback"])
    assert "--deploy v13" in results[-1].error_lines[0]
    assert rows(later.db) == 1000 and rows(damaged.db) == 1000 and rows(ci.db) == 1000

    # naming the deploy goes on, saying what the later run did
    dry = later.run("deploy.undo", "--deploy", "v13", "--dry-run")
    assert dry.returncode == 0, dry
    assert "WARNING: after deploy v13: rollback at" in dry.stderr
    assert "made release v14" in dry.stderr and "release v14 is live, not v13" in dry.stderr
    assert "still v13" not in dry.stderr
    assert "machine; release v14 is live (not v13: --deploy named it)" in dry.stderr


def test_bad_input_is_one_line(site):
    result = site.run("deploy.undo", "--deploy", "v99", "--dry-run")
    assert_error(result, ExitCode.NOT_FOUND, contains="no deploy of")


# ---------------------------------------------------------------- a signal in the middle


def test_sigterm_during_the_redeploy_leaves_an_honest_line_and_the_rest_by_hand(site, tmp_path):
    deployed = bad_deploy(site)
    site.world.clear_calls()
    result = signal_while_hung(site, tmp_path, ["deploy", "-a"], "deploy.undo", "--yes")
    assert result.returncode == ExitCode.TERMINATED, result
    assert "terminated by SIGTERM" in result.error_lines[0]
    undo = site.audit()[-1]
    assert undo["kind"] == "undo" and undo["outcome"] == "terminated by SIGTERM during deploy"
    assert [s["outcome"] for s in undo["steps"] if s["step"] == "restore"] == ["ok"]
    assert rows(site.db) == 3000  # the data is back; the old image may not be
    image = deployed["previous_release"]["image"]
    by_hand = undo["manual"]
    assert by_hand[0] == f"  fly releases -a {APP}   # is v12's image out? if not:"
    assert by_hand[1] == f"  fly deploy -a {APP} -c fly.toml --image {image}   # deploy"
    assert any("machine update" in line and "resume.update" in line for line in by_hand)
    marker = site.db.parent / ".ops-emergency.json"
    assert f"  fly ssh console -a {APP} --machine {MID} -C 'rm -f {marker}'   # resume.clear" \
        in by_hand
    assert all("\n" not in line for line in by_hand)  # each one pasteable
    assert by_hand[-1] == "  invoke deploy.unlock --yes   # unlock" or \
        not site.machine_lock.exists()
    shown = result.stderr.splitlines()
    at = shown.index(BY_HAND)
    assert shown[at + 1:at + 1 + len(by_hand)] == by_hand, result.stderr

    # nothing was deployed (flyctl was stopped with it): running it again goes on, from
    # the emergency-stopped machine (what it ran comes from the stop's metadata)
    assert site.world.releases()[0]["Version"] == 13
    again = site.run("deploy.undo", "--yes", timeout=UNDO_TIMEOUT)
    assert again.returncode == 0, again
    last = site.audit()[-1]
    assert last["outcome"] == "ok" and rows(site.db) == 3000
    assert {s["step"]: s["outcome"] for s in last["steps"]}["stop.update"] == "skipped"
    assert site.world.machine_image(MID) == image


def test_after_kill_9_the_machine_lock_says_who_and_the_undo_runs_again(site, tmp_path):
    deployed = bad_deploy(site)
    site.world.clear_calls()
    killed = signal_while_hung(site, tmp_path, ["deploy", "-a"], "deploy.undo", "--yes",
                               sig=signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL and site.audit()[-1]["kind"] == "deploy"
    held = site.run("deploy.undo", "--yes")
    assert held.returncode == ExitCode.LOCKED, held
    assert "undo since" in held.error_lines[0]  # whose lock it is, from the machine
    assert site.run("deploy.unlock", "--yes").returncode == 0
    again = site.run("deploy.undo", "--yes", timeout=UNDO_TIMEOUT)
    assert again.returncode == 0, again
    assert rows(site.db) == 3000
    assert site.world.machine_image(MID) == deployed["previous_release"]["image"]


def test_a_redeploy_that_replaces_the_machine_resumes_the_new_one(site):
    deployed = bad_deploy(site)
    site.world.deploy_replaces_machine(new_id="e2865013c41e99")
    result = site.run("deploy.undo", "--yes", "--json")
    assert result.returncode == 0, result
    assert rows(site.db) == 3000
    assert site.world.machine_image("e2865013c41e99") == deployed["previous_release"]["image"]
    updates = [c for c in site.world.calls() if c[:2] == ["machine", "update"]]
    assert [c[2] for c in updates] == [MID, "e2865013c41e99"]  # stopped the old, resumed the new
    assert site.audit()[-1]["outcome"] == "ok" and not site.machine_lock.exists()


def test_an_undo_killed_after_its_redeploy_is_never_restored_twice(site):
    """kill -9 after the undo's redeploy leaves no audit line of it; the app then runs the
    old image on the restored data and takes writes. Neither a plain re-run nor `--deploy`
    may restore the pre-deploy backup over those writes (review-break #2)."""
    deployed = bad_deploy(site)
    assert site.run("deploy.undo", "--yes", timeout=UNDO_TIMEOUT).returncode == 0
    lines = site.audit_log.read_text().splitlines()
    site.audit_log.write_text("\n".join(lines[:-1]) + "\n")  # as kill -9 leaves the log
    conn = sqlite3.connect(site.db)
    conn.execute("INSERT INTO steps (user_id, date, count, updated_at) "
                 "VALUES (1, '2026-12-07', 5, '2026-12-07T02:00:00Z')")
    conn.commit()
    conn.close()
    calls = len(site.world.calls())
    for args in ((), ("--deploy", f"v{deployed['release']['version']}")):
        result = site.run("deploy.undo", "--yes", *args)
        assert result.returncode == ExitCode.USAGE, result
        line = result.error_lines[0]
        assert f"release v{deployed['release']['version'] + 1} already runs v12's image" \
            in line, line
        assert f"invoke restore {deployed['backup']['name']} --production" in line
    assert rows(site.db) == 3001  # the write after the undo is still live
    assert not any(c[:2] in (["machine", "update"], ["deploy", "-a"])
                   for c in site.world.calls()[calls:])  # nothing changed on Fly
