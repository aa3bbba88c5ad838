"""`invoke emergency.stop` / `emergency.resume` through the real CLI and the flyctl double.

The production site (``tests.test_deploy.make_site``) is the double's world, a checkout
with fly.toml, a live WAL database on the "volume" and the app's /health. Tests assert
the exact flyctl calls and their order, the machine's config in the world before and
after, the marker on the volume, the audit line, and what a user sees on refusals.
"""

from __future__ import annotations

import json
import shlex

import pytest

from ops import emergency
from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import fly, signal_while_hung, ssh_purpose
from tests.flyctl_double import DEFAULT_APP, DEFAULT_MACHINE_ID, DEFAULT_VOLUME_ID

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

APP, MID, VOL = DEFAULT_APP, DEFAULT_MACHINE_ID, DEFAULT_VOLUME_ID
SLEEP = "sleep 2147483647"
LISTS = [["volumes", "list", "-a", APP, "--json"], ["machine", "list", "-a", APP, "--json"]]
READS = [["version", "--json"], *LISTS]  # flyctl's version is checked first (issue 19 #5)
CLEAR = ["-m", "ops_emergency_original="]  # resume clears what the stop's update recorded


def stop_argv(cmd=None, autostop="stop") -> list[str]:
    """The stop's update: it records the original in the machine's metadata, same call."""
    original = json.dumps({"autostop": autostop, "cmd": cmd}, separators=(",", ":"))
    return ["machine", "update", MID, "-a", APP, "--command", SLEEP, "--autostop=off",
            "--skip-health-checks", "-m", f"ops_emergency_original={original}", "--yes"]


STOP = stop_argv()
RESUME = ["machine", "update", MID, "-a", APP, "--command", "", "--autostop=stop", *CLEAR,
          "--yes"]


def marker(site):
    return site.db.parent / emergency.MARKER


def shown(argv: list[str]) -> list[str]:
    """A call with an ssh script named by what it does (the exact scripts are long)."""
    if argv[:2] != ["ssh", "console"]:
        return argv
    script = shlex.split(argv[argv.index("-C") + 1])[2]
    return ["ssh", ssh_purpose(script)]


def calls(site) -> list[list[str]]:
    return [shown(argv) for argv in site.world.calls()]


def config(site) -> dict:
    """The machine's config as `fly machine list --json` shows it."""
    return site.world.machine(MID)["config"]


def set_machine(site, *, cmd=None, autostops=(True,), exec_=None) -> None:
    with site.world._mutate() as state:
        machine = state["apps"][APP]["machines"][0]
        init = machine["config"]["init"]
        for key, value in (("cmd", cmd), ("exec", exec_)):
            if value is not None:
                init[key] = value
        base = machine["config"]["services"][0]
        machine["config"]["services"] = [dict(base, autostop=a) for a in autostops]


# ---------------------------------------------------------------- stop, restore's state, resume


@pytest.mark.parametrize("cmd, autostop", [(None, True), (["node", "src/server.js"], "suspend")])
def test_stop_then_resume_undoes_exactly_what_stop_did(site, cmd, autostop):
    set_machine(site, cmd=cmd, autostops=(autostop,))
    before = config(site)
    word = "stop" if autostop is True else autostop

    stopped = site.run("emergency.stop", "--yes", "--json")

    assert stopped.returncode == 0, stopped
    update = stop_argv(cmd, word)
    assert calls(site) == [*READS, update, ["ssh", "write marker"], LISTS[1],
                           ["ssh", "open handles"]]  # the update itself records the intent
    now = site.world.machine(MID)
    assert now["state"] == "started" and now["config"]["init"]["cmd"] == SLEEP.split()
    assert [s["autostop"] for s in now["config"]["services"]] == [False]
    recorded = json.loads(marker(site).read_text())
    assert recorded["machine"] == MID
    assert recorded["original"] == {"cmd": cmd, "autostop": word}
    record = stopped.json()
    assert record["kind"] == "emergency.stop" and record["outcome"] == "ok"
    assert record["original"] == recorded["original"] and site.audit() == [record]

    site.world.clear_calls()
    resumed = site.run("emergency.resume", "--yes")

    assert resumed.returncode == 0, resumed
    back = ["machine", "update", MID, "-a", APP, "--command", shlex.join(cmd) if cmd else "",
            f"--autostop={word}", *CLEAR, "--yes"]
    assert calls(site) == [*READS, ["ssh", "read marker"], back, LISTS[1],
                           ["ssh", "remove marker"]]
    after = config(site)  # exactly what it was, command and autostop; flyctl cannot delete
    assert after["metadata"].pop("ops_emergency_original") == ""  # a metadata key: emptied
    assert after == before
    assert site.world.machine(MID)["state"] == "started"
    assert not marker(site).exists()
    kinds = [(entry["kind"], entry["outcome"]) for entry in site.audit()]
    assert kinds == [("emergency.stop", "ok"), ("emergency.resume", "ok")]
    assert "200 after" in resumed.stderr


def test_the_stopped_machine_keeps_the_volume_reachable_for_restore(site):
    """What `restore --production` needs: ssh to the machine, its scripts, no app writing."""
    assert site.here("emergency.stop", "--yes").returncode == 0

    backup = site.here("backup", "--production", "--json")
    verify = site.here("backup.verify", "latest", "--production", "--json")

    assert backup.returncode == 0, backup
    assert verify.returncode == 0 and verify.json()[0]["ok"], verify
    assert site.world.machine(MID)["config"]["init"]["cmd"] == SLEEP.split()
    assert emergency.is_stopped(site.world.machine(MID))
    again = site.here("emergency.stop", "--yes")  # a second stop changes nothing
    assert again.returncode == 0 and "already emergency-stopped" in again.stderr
    assert not any(argv[:2] == ["machine", "update"] for argv in site.world.calls()[-2:])


def test_apps_without_autostop_are_stopped_without_touching_it(site):
    set_machine(site, autostops=(False,))

    assert site.here("emergency.stop", "--yes").returncode == 0
    assert site.here("emergency.resume", "--yes").returncode == 0

    updates = [argv for argv in site.world.calls() if argv[:2] == ["machine", "update"]]
    assert updates == [
        ["machine", "update", MID, "-a", APP, "--command", SLEEP, "--skip-health-checks",
         "-m", 'ops_emergency_original={"autostop":null,"cmd":null}', "--yes"],
        ["machine", "update", MID, "-a", APP, "--command", "", *CLEAR, "--yes"],
    ]


# ---------------------------------------------------------------- dry runs and refusals


def test_dry_run_prints_the_plan_and_makes_no_changing_call(site):
    before = config(site)

    planned = site.here("emergency.stop", "--dry-run", "--json")

    assert planned.returncode == 0, planned
    assert calls(site) == READS
    plan = planned.json()
    assert plan["dry_run"] is True and plan["original"] == {"cmd": None, "autostop": "stop"}
    assert [step["key"] for step in plan["steps"]] == ["update", "record", "verify", "quiet"]
    assert plan["steps"][0]["argv"] == STOP
    assert shlex.join(["fly", *STOP]) in " ".join(planned.stderr.split())
    assert config(site) == before and site.audit() == [] and not marker(site).exists()

    assert site.here("emergency.stop", "--yes").returncode == 0
    site.world.clear_calls()
    resume = site.here("emergency.resume", "--dry-run", "--json")
    assert resume.returncode == 0, resume
    assert calls(site) == [*READS, ["ssh", "read marker"]]
    assert resume.json()["steps"][0]["argv"] == RESUME
    assert site.world.machine(MID)["config"]["init"]["cmd"] == SLEEP.split()


@pytest.mark.parametrize("task", ["emergency.stop", "emergency.resume"])
def test_without_a_terminal_nothing_happens_without_yes(site, task):
    if task == "emergency.resume":
        assert site.run("emergency.stop", "--yes").returncode == 0
        site.world.clear_calls()
    before = site.world.machine(MID)["config"]

    result = site.run(task)

    line = helpers.assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert "--yes" in line
    assert all(argv[:2] != ["machine", "update"] for argv in site.world.calls())
    assert all(shown(argv)[1] in ("list", "read marker", "--json") for argv in site.world.calls())
    assert site.world.machine(MID)["config"] == before


def test_a_terminal_is_asked_and_no_changes_nothing(site):
    answer_no = on_terminal(site, ["emergency.stop"], "n")
    assert answer_no.returncode == ExitCode.ERROR, answer_no
    assert "Error: not confirmed; nothing was changed" in answer_no.stdout  # restore's words
    assert calls(site) == READS

    answer_yes = on_terminal(site, ["emergency.stop"], "yes")
    assert answer_yes.returncode == 0, answer_yes.stdout
    assert site.world.machine(MID)["config"]["init"]["cmd"] == SLEEP.split()


@pytest.mark.parametrize("setup, words", [
    ({"exec_": ["/app/run.sh"]}, "init.exec"),
    ({"autostops": (True, False)}, "autostop differently"),
])
def test_a_stop_resume_could_not_undo_is_refused_before_anything(site, setup, words):
    set_machine(site, **setup)

    result = site.here("emergency.stop", "--yes")

    line = helpers.assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert words in line
    assert calls(site) == READS


def test_resume_of_a_running_app_changes_nothing(site):
    result = site.here("emergency.resume", "--yes")

    assert result.returncode == 0 and "nothing to resume" in result.stderr, result
    assert calls(site) == READS
    dry = site.here("emergency.resume", "--dry-run", "--json")  # a dry run's JSON says so
    assert dry.returncode == 0 and dry.json()["changed"] is False, dry  # (s27 op2 #7)
    assert dry.json()["outcome"] == "dry run" and dry.json()["dry_run"] is True, dry.json()


# ---------------------------------------------------------------- failures


def test_a_failed_update_says_what_to_run_by_hand(site):
    site.world.fail(["machine", "update"], stderr="Error: could not update machine "
                    f"{MID}: failed to acquire lease\n")

    result = site.here("emergency.stop", "--yes", "--json")

    assert result.returncode == ExitCode.FLY, result
    assert helpers.assert_one_line_error(result, ExitCode.FLY, strict=False)
    assert "failed to acquire lease" in result.error_lines[0]
    text = result.stderr
    assert "To finish by hand, run from the failed step on:" in text
    assert shlex.join(["fly", *STOP]) in text
    manual = result.json()["manual"]
    assert [line.rsplit("# ", 1)[1] for line in manual] == ["update", "record", "verify",
                                                             "quiet"]
    record_line = manual[1].rsplit("   #", 1)[0].strip()
    argv = shlex.split(record_line)[1:]  # the exact ssh command, runnable as printed
    assert argv[:8] == ["ssh", "console", "-a", APP, "--machine", MID, "-q", "-C"]
    assert json.dumps(MID) in argv[8]
    assert site.audit()[0]["outcome"] == "update failed"
    assert calls(site) == [*READS, STOP]


def test_a_process_still_holding_the_database_fails_the_stop_loudly(site, tmp_path):
    writer = helpers.Writer(site.db, tmp_path / "writer").start()  # an app ignoring its CMD
    try:
        result = site.run("emergency.stop", "--yes")
    finally:
        writer.stop()

    line = helpers.assert_one_line_error(result, ExitCode.ERROR, strict=False)
    assert "still open" in line and "invoke emergency.resume" in line
    assert site.audit()[0]["outcome"] == "quiet failed"


def test_resume_that_does_not_bring_health_back_exits_14(site):
    assert site.here("emergency.stop", "--yes").returncode == 0
    site.health.mode = "503"

    result = site.here("emergency.resume", "--yes")

    line = helpers.assert_one_line_error(result, ExitCode.HEALTH_FAILED, strict=False)
    assert "not healthy" in line
    assert site.world.machine(MID)["config"]["init"] == {}  # resumed all the same
    assert not marker(site).exists()
    assert site.audit()[-1]["outcome"] == "health failed"


def test_resume_without_the_marker_uses_the_metadata_then_the_audit_log(site, tmp_path):
    set_machine(site, cmd=["node", "src/server.js"])
    assert site.here("emergency.stop", "--yes").returncode == 0
    marker(site).unlink()
    elsewhere = {"INVOKE_DEPLOY_AUDIT_LOG": str(tmp_path / "other.jsonl")}

    resumed = site.here("emergency.resume", "--yes", env=elsewhere)  # what the update wrote
    assert resumed.returncode == 0, resumed
    assert "using what the stop recorded in the machine's metadata" in resumed.stderr
    assert config(site)["init"]["cmd"] == ["node", "src/server.js"]

    set_machine(site, cmd=[])
    with site.world._mutate() as state:
        del state["apps"][APP]["machines"][0]["config"]["init"]["cmd"]
    assert site.here("emergency.stop", "--yes").returncode == 0
    marker(site).unlink()
    with site.world._mutate() as state:  # and the metadata gone too
        state["apps"][APP]["machines"][0]["config"]["metadata"].pop("ops_emergency_original")
    unknown = site.here("emergency.resume", "--yes", env=elsewhere)
    line = helpers.assert_one_line_error(unknown, ExitCode.NOT_FOUND, strict=False)
    assert f"fly machine update {MID} -a {APP} --command 'THAT COMMAND' --yes" in line
    assert "--command '' only if it ran the image's own CMD" in line
    assert emergency.is_stopped(site.world.machine(MID))

    resumed = site.here("emergency.resume", "--yes")
    assert resumed.returncode == 0, resumed
    assert "using the stop recorded in" in resumed.stderr
    assert site.world.machine(MID)["config"]["init"] == {}


def test_a_marker_an_earlier_resume_left_never_beats_this_stops_own_record(site):
    """A resume that could not remove the marker (its `clear` failed, or it was killed
    after the update) left it; a later stop, after a deploy changed the command, failed at
    its `record` step: the next resume put back the earlier command, with no warning, and
    emptied the metadata that held the right one (s27 review-break #1)."""
    set_machine(site, cmd=["node", "old.js"])
    assert site.here("emergency.stop", "--yes").returncode == 0
    stale = marker(site).read_text()
    assert site.here("emergency.resume", "--yes").returncode == 0
    marker(site).write_text(stale)  # what a resume whose `clear` never ran leaves
    set_machine(site, cmd=["node", "new.js"])  # a deploy since
    site.world.fail(["ssh", "console"], times=None)  # this stop's `record` step fails
    stopped = site.here("emergency.stop", "--yes")
    site.world.clear_faults()
    assert stopped.returncode != 0 and emergency.is_stopped(site.world.machine(MID)), stopped
    assert json.loads(marker(site).read_text()) == json.loads(stale)

    resumed = site.here("emergency.resume", "--yes", "--json")

    assert resumed.returncode == 0, resumed
    assert config(site)["init"]["cmd"] == ["node", "new.js"]
    (warning,) = [line for line in resumed.stderr.splitlines() if "WARNING" in line]
    assert "it holds an earlier stop's record (node old.js, autostop stop; written" in warning
    assert "machine's metadata (ops_emergency_original): node new.js" in warning, warning
    assert resumed.json()["recorded_in"] == "metadata ops_emergency_original"
    assert not marker(site).exists()


def test_a_marker_that_agrees_with_the_metadata_is_read_without_a_word(site):
    set_machine(site, cmd=["node", "src/server.js"])
    assert site.here("emergency.stop", "--yes").returncode == 0
    resumed = site.here("emergency.resume", "--yes", "--json")
    assert resumed.returncode == 0, resumed
    assert "WARNING" not in resumed.stderr, resumed.stderr
    assert resumed.json()["recorded_in"].endswith(".ops-emergency.json")

    # metadata it cannot read: the marker serves, and the run says why
    assert site.here("emergency.stop", "--yes").returncode == 0
    with site.world._mutate() as state:
        state["apps"][APP]["machines"][0]["config"]["metadata"]["ops_emergency_original"] = "{"
    resumed = site.here("emergency.resume", "--yes")
    assert resumed.returncode == 0, resumed
    assert config(site)["init"]["cmd"] == ["node", "src/server.js"]
    assert "metadata ops_emergency_original: is unusable" in resumed.stderr, resumed.stderr


def test_a_tampered_marker_is_not_trusted(site):
    assert site.here("emergency.stop", "--yes").returncode == 0
    marker(site).write_text(json.dumps({"machine": MID, "original": {"cmd": "rm -rf /"}}))

    resumed = site.here("emergency.resume", "--yes")

    assert resumed.returncode == 0, resumed
    assert "unusable" in resumed.stderr  # it fell back to the stop's own record
    assert site.world.machine(MID)["config"]["init"] == {}


@pytest.mark.parametrize("machine", [
    {"id": MID, "config": {"init": {"cmd": "sleep 1"}}},  # a string, not a list
    {"id": MID, "config": {"services": [{"autostop": "sometimes"}]}},
    {"config": {}},  # no id
])
def test_hostile_machine_json_is_one_line_and_changes_nothing(site, machine):
    site.world.garbage(["machine", "list"], stdout=json.dumps([machine]) + "\n")

    result = site.here("emergency.stop", "--yes")

    line = helpers.assert_one_line_error(result, ExitCode.FLY)
    assert f"`fly machine list -a {APP} --json` printed unexpected JSON" in line  # fly.Machine's
    assert calls(site) == READS


# ---------------------------------------------------------------- the double's `machine update`


def test_the_double_updates_like_flyctl(site):
    no_yes = fly(site, "machine", "update", MID, "-a", APP, "--command", SLEEP)
    assert no_yes.returncode == 1
    assert no_yes.stderr == "Error: yes flag must be specified when not running interactively\n"
    assert no_yes.stdout.startswith(f"Configuration changes to be applied to machine: {MID}")

    spaced = fly(site, "machine", "update", MID, "-a", APP, "--autostop", "off", "--yes")
    assert spaced.returncode == 1  # --autostop takes no separate value: `off` is an argument
    assert spaced.stderr == "Error: accepts between 0 and 1 arg(s), received 2\n"

    unhealthy = fly(site, "machine", "update", MID, "-a", APP, "--command", SLEEP, "--yes")
    assert unhealthy.returncode == 126, unhealthy  # nothing answers the checks any more
    assert unhealthy.stderr.endswith(
        "Error: failed to wait for health checks to pass: context deadline exceeded\n")

    no_id = fly(site, "machine", "update", "-a", APP, "--yes")
    assert no_id.stderr == "Error: a machine ID must be specified when not running " \
                           "interactively\n"
    missing = fly(site, "machine", "stop", "0123456789abcd", "-a", APP)
    assert missing.stderr == f"Error: machine 0123456789abcd was not found in app '{APP}'\n"


# ---------------------------------------------------------------- a terminal


def on_terminal(site, args: list[str], answer: str) -> helpers.InvokeResult:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; answer its prompt."""
    code, shown = helpers.on_terminal(args, cwd=site.cwd, env=site.env(), answer=answer,
                                      timeout=30)
    return helpers.InvokeResult(args, code, shown, "")


# ---------------------------------------------------------------- issue 19 #4-5, issue 16 #12-13


@pytest.mark.parametrize("hung", [["ssh", "console"], ["machine", "update"]])
def test_a_stop_killed_at_any_call_never_loses_the_original_command(site, tmp_path, hung):
    """kill -9 of `invoke emergency.stop` while a flyctl call hangs: afterwards the machine
    runs its own command, or `emergency.resume` puts it back exactly (16 #12)."""
    import signal

    set_machine(site, cmd=["node", "src/server.js"], autostops=(True,))
    signal_while_hung(site, tmp_path, hung, "emergency.stop", "--yes", sig=signal.SIGKILL)
    site.world.clear_faults()

    if emergency.is_stopped(site.world.machine(MID)):
        resumed = site.run("emergency.resume", "--yes")
        assert resumed.returncode == 0, resumed
    assert config(site)["init"]["cmd"] == ["node", "src/server.js"]
    assert [s["autostop"] for s in config(site)["services"]] == [True]


@pytest.mark.parametrize("task, hung", [("emergency.stop", "update"),
                                        ("emergency.resume", "update")])
def test_sigterm_leaves_an_honest_audit_line_and_the_finish_by_hand_lines(site, tmp_path,
                                                                          task, hung):

    if task == "emergency.resume":
        assert site.run("emergency.stop", "--yes").returncode == 0
    site.world.clear_calls()
    result = signal_while_hung(site, tmp_path, ["machine", "update"], task, "--yes", "--json")

    assert result.returncode == ExitCode.TERMINATED, result
    assert "terminated by SIGTERM" in result.error_lines[0]
    assert "To finish by hand, run from the failed step on:" in result.stderr
    entry = site.audit()[-1]
    assert entry["kind"] == task and entry == result.json()
    assert entry["outcome"] == f"terminated by SIGTERM during {hung}"
    assert entry["exit_code"] == ExitCode.TERMINATED
    assert entry["steps"][-1]["step"] == hung and entry["steps"][-1]["outcome"] == "interrupted"
    assert entry["manual"][0].endswith(f"# {hung}")


@pytest.mark.parametrize("task", ["emergency.stop", "emergency.resume"])
def test_an_old_flyctl_is_refused_before_anything_changes(site, task):
    if task == "emergency.resume":
        assert site.here("emergency.stop", "--yes").returncode == 0
        site.world.clear_calls()
    site.world.set_flyctl_version("0.4.79")

    result = site.here(task, "--yes")

    line = helpers.assert_one_line_error(result, ExitCode.FLY, strict=False)
    assert "too old" in line and "fly version upgrade" in line
    assert site.world.calls() == [["version", "--json"]]


def test_the_update_has_fly_timeout_as_its_deadline(site, tmp_path):
    site.world.hang(["machine", "update"], seconds=15, until=tmp_path / "never")

    result = site.run("emergency.stop", "--yes", env={"INVOKE_FLY_TIMEOUT": "4"})

    line = helpers.assert_one_line_error(result, ExitCode.TIMEOUT, strict=False)
    assert "raise fly.timeout" in line
    assert site.audit()[-1]["outcome"] == "update failed"


def test_a_stopped_machine_is_emergency_stopped_too(site):
    """A crashed app's machine may be stopped: the update starts it in maintenance, and the
    record follows on the volume (the update's metadata holds it from the start)."""
    set_machine(site, cmd=["node", "src/server.js"])
    site.world.set_machine_state(MID, "stopped")

    stopped = site.here("emergency.stop", "--yes")

    assert stopped.returncode == 0, stopped
    assert [shown(argv)[:2] for argv in site.world.calls()][3:5] == [
        ["machine", "update"], ["ssh", "write marker"]]
    assert json.loads(marker(site).read_text())["original"]["cmd"] == ["node", "src/server.js"]
    assert site.here("emergency.resume", "--yes").returncode == 0
    assert config(site)["init"]["cmd"] == ["node", "src/server.js"]


@pytest.mark.parametrize("where", ["marker", "metadata"])
def test_a_deeply_nested_record_is_unusable_not_a_crash(site, where):
    assert site.run("emergency.stop", "--yes").returncode == 0
    if where == "marker":
        marker(site).write_text("[" * 50_000)
    else:
        marker(site).unlink()
        with site.world._mutate() as state:
            meta = state["apps"][APP]["machines"][0]["config"]["metadata"]
            meta["ops_emergency_original"] = "[" * 50_000

    resumed = site.run("emergency.resume", "--yes")

    assert resumed.returncode == 0, resumed  # the next record down is used
    assert "Traceback" not in resumed.stderr
    assert ("the machine's metadata" if where == "marker" else "using the stop recorded in") \
        in resumed.stderr


def test_a_failed_health_gate_says_so_first_then_how_to_finish_with_a_command(site):
    """review-ox 17: "To finish by hand" came before the ✗ line, its health "command" was a
    comment, and a DNS error after one poll claimed a wait of the whole limit."""
    assert site.run("emergency.stop", "--yes").returncode == 0
    unresolvable = "http://no-such-host.invalid/health"
    result = site.run("emergency.resume", "--yes", "--json", env={
        "INVOKE_HEALTH_URL": unresolvable, "INVOKE_HEALTH_TIMEOUT": "3",
        "INVOKE_HEALTH_INTERVAL": "5"})
    assert result.returncode == ExitCode.HEALTH_FAILED, result
    lines = result.stderr.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.startswith("✗ poll "))
    by_hand = lines.index("To finish by hand, run from the failed step on:")
    assert failed < by_hand, lines
    health = f"  until curl -fsS -o /dev/null {unresolvable}; do sleep 5; done   # health"
    assert result.json()["manual"][-1] == health and health in lines
    assert f"{unresolvable} not healthy after 1 poll(s) in " in result.error_lines[0]
    assert "(limit 3s, a poll every 5s)" in result.error_lines[0]
