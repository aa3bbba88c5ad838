"""A deploy's `--dry-run` plan is what its run does (issue 22: the plan is the program).

For deploy, deploy --skip-backup and deploy.rollback: the dry run's plan (``--json``)
is read first, then the flow runs for real against the flyctl double through the real
CLI, and the double's call log must be exactly the commands the plan showed, in order,
with the machine, volume and image the dry run filled in. A script run over
`fly ssh console` is compared by its purpose (the plan's ``<lock script>``, the run's
lock script: ``tests.fake_production.label``); the snapshot polls are one call in the plan
("waited for until created") and as many as it takes in a run.
"""

from __future__ import annotations

import pytest

from ops.errors import ExitCode
from tests.fake_production import APP, MID, NEW_IMAGE, VOL, concurrent_verify_first, label
from tests.flyctl_double import IMAGE_V11

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

POLL = ["volumes", "snapshots", "list", VOL, "-a", APP, "--json"]


def planned(step: dict) -> list[list[str]]:
    """A plan step's commands, each `fly ssh console` named by its script's purpose."""
    out = []
    for argv in step["commands"]:
        if argv[:2] == ["ssh", "console"]:
            script = argv[argv.index("-C") + 1]
            assert script.startswith("<") and script.endswith(" script>"), argv
            argv = [*argv[:argv.index("-C") + 1], "ssh " + script[1:-len(" script>")]]
        out.append(argv)
    return out


def made(calls: list[list[str]]) -> list[list[str]]:
    """The double's call log in the plan's terms: scripts by purpose, the full check
    where the plan shows it (it runs beside the polls), consecutive polls as one."""
    named = [[*argv[:argv.index("-C") + 1], label(argv)] if argv[:2] == ["ssh", "console"]
             else argv for argv in calls]
    order = concurrent_verify_first([label(argv) for argv in calls])
    by_label: dict[str, list[list[str]]] = {}
    for name, argv in zip([label(argv) for argv in calls], named, strict=True):
        by_label.setdefault(name, []).append(argv)
    ordered = [by_label[name].pop(0) for name in order]
    return [argv for i, argv in enumerate(ordered)
            if not (argv == POLL and i and ordered[i - 1] == POLL)]


EMERGENCY = ("deploy", "--skip-backup", "--image", NEW_IMAGE)


@pytest.mark.parametrize("flow,stopped", [
    (("deploy",), False),
    (EMERGENCY, False),
    (EMERGENCY, True),  # a crashed app: it goes on without the machine and its lock
    (("deploy.rollback",), False),
], ids=["deploy", "skip-backup", "skip-backup-no-machine", "rollback"])  # fmt: skip
def test_the_calls_a_run_makes_are_the_commands_its_dry_run_shows(site, flow, stopped):
    if stopped:
        site.world.set_machine_state(MID, "stopped")
    dry = site.run(*flow, "--dry-run", "--json")
    assert dry.returncode == 0, dry
    plan = dry.json()
    assert plan["warnings"] == [] and plan["outcome"] == "dry run"
    shown = [argv for step in plan["steps"] for argv in planned(step)]
    text = " ".join(" ".join(argv) for argv in shown)
    assert (MID in text) is not stopped and "<" not in text, text
    site.world.clear_calls()

    run = site.run(*flow, "--json")

    assert run.returncode == 0, run
    assert made(site.world.calls()) == shown
    recorded = [step["step"] for step in run.json()["steps"]]
    assert recorded == [step["key"] for step in plan["steps"]  # the closing step too, when
                        if step["key"] != "record" or not stopped]  # a lock was taken
    if flow[0] == "deploy.rollback":  # the release the dry run named is the one redeployed
        deploy = next(step for step in plan["steps"] if step["key"] == "deploy")
        assert deploy["title"] == "redeploy v11" and deploy["commands"][0][-1] == IMAGE_V11
        assert run.json()["rollback_to"] == 11


def test_a_dry_run_stops_where_the_run_stops_an_emergency_deploy_on_a_stopped_machine(site):
    """The dry run's preflight is the run's: --skip-backup goes on without a machine it
    cannot use, but never deploys over an emergency stop (the dry run's own copy of that
    rule let it through)."""
    assert site.run("emergency.stop", "--yes").returncode == 0
    dry = site.run(*EMERGENCY, "--dry-run", "--json")
    run = site.run(*EMERGENCY)

    assert dry.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, dry  # as the run
    (warning,) = dry.json()["warnings"]
    assert f"machine {MID} is emergency-stopped" in warning
    assert f"WARNING: a real run would stop at preflight: {warning}" in dry.stderr
    assert "! preflight would stop" in dry.stderr  # never a ✓ on a line that says stop
    assert "✓ preflight would stop" not in dry.stderr
    assert run.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, run
    assert warning in run.error_lines[0]
