"""SIGTERM (a cancelled CI job) to the real `invoke` process during emergency.stop,
emergency.resume and restore.volume, at a step where the double blocks (an ssh call that
hangs) or where the run itself sleeps (a poll): exit 143, one honest audit line naming
the step, the same record on stdout, and the lines to finish by hand (issue 22)."""

from __future__ import annotations

import signal

from ops.errors import ExitCode
from tests import helpers
from tests.fake_production import signal_while_hung


def terminated(site, run: helpers.Background) -> helpers.InvokeResult:
    run.proc.send_signal(signal.SIGTERM)
    return run.finish(timeout=40)


def assert_honest(site, result: helpers.InvokeResult, kind: str, step: str) -> dict:
    assert result.returncode == ExitCode.TERMINATED, result
    assert "terminated by SIGTERM" in result.error_lines[0]
    assert "Traceback" not in result.stderr
    assert "To finish by hand, run from the failed step on:" in result.stderr
    entry = site.audit()[-1]
    assert entry["kind"] == kind and entry == result.json()
    assert entry["outcome"] == f"terminated by SIGTERM during {step}"
    assert entry["exit_code"] == ExitCode.TERMINATED
    assert (entry["steps"][-1]["step"], entry["steps"][-1]["outcome"]) == (step, "interrupted")
    assert entry["manual"][0].endswith(f"# {step}") and entry["manual"][0] in result.stderr
    return entry


def test_stop_terminated_while_ssh_hangs_writing_the_record(site, tmp_path):
    result = signal_while_hung(site, tmp_path, ["ssh", "console"], "emergency.stop", "--yes",
                               "--json")
    entry = assert_honest(site, result, "emergency.stop", "record")
    assert entry["manual"][0].startswith("  fly ssh console ")  # the real script, runnable


def test_resume_terminated_while_it_polls_health(site):
    assert site.run("emergency.stop", "--yes").returncode == 0
    site.health.mode = "503"
    polls = site.health.requests
    run = site.start("emergency.resume", "--yes", "--json",
                     env={"INVOKE_HEALTH_TIMEOUT": "300", "INVOKE_HEALTH_INTERVAL": "1"})
    helpers.wait_for(lambda: site.health.requests > polls, timeout=30, what="a /health poll")

    entry = assert_honest(site, terminated(site, run), "emergency.resume", "health")
    assert entry["manual"] == [f"  until curl -fsS -o /dev/null {site.health.url}; "
                               "do sleep 5; done   # health"]


def test_restore_volume_terminated_while_it_waits_for_the_new_volume(site):
    with site.world._mutate() as state:
        state["features"]["volume_restore_lists"] = 10_000  # stays `restoring`
    run = site.start("restore.volume", "--snapshot", "latest", "--yes", "--json",
                     env={"INVOKE_BACKUP_SNAPSHOT_TIMEOUT": "300"})
    calls = site.world.calls

    def polled():
        made = [n for n, argv in enumerate(calls()) if argv[:2] == ["volumes", "create"]]
        return made and sum(argv[:2] == ["volumes", "list"] for argv in calls()[made[0]:]) >= 2

    helpers.wait_for(polled, timeout=30, what="the new volume polled twice")

    result = terminated(site, run)
    entry = assert_honest(site, result, "restore.volume", "wait")
    assert "go_back" not in entry and "To go back" not in result.stderr  # still serving
    assert entry["new"]["new_volume"]
