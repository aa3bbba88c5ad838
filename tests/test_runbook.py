"""The one runner every mutating task runs through (issue 22): what it records, prints,
maps to exit codes and leaves to do by hand, whatever stops it."""

from __future__ import annotations

import contextlib
import os
import re
import signal

import pytest

from ops import runbook
from ops.errors import ExitCode, OpsError
from ops.runbook import Done, Step
from ops.signals import Terminated
from tests import helpers

runner = helpers.make_runner  # (runner, its step lines' buffer)
audit_lines = helpers.audit_lines


def test_steps_run_in_order_and_the_record_says_what_each_did(tmp_path):
    ran = []
    steps = [Step("look", "look around", lambda: ran.append("look") or "2 machines",
                  commands=(("machine", "list"),), reads_only=True),
             Step("act", "act", lambda: ran.append("act") or Done("acted", "in 1 try"))]
    run, shown = runner(tmp_path)
    record = run.run(steps)
    assert ran == ["look", "act"] and record["outcome"] == "ok"
    assert [(s["step"], s["outcome"], s["detail"]) for s in record["steps"]] == [
        ("look", "ok", "2 machines"), ("act", "ok", "in 1 try")]
    assert record["steps"][0]["command"] == ["machine", "list"]
    assert "acted" in shown.getvalue()
    assert audit_lines(tmp_path)[0]["outcome"] == "ok"


def test_a_dry_run_runs_only_what_reads_and_fills_what_it_learnt(tmp_path):
    ran = []
    run, _ = runner(tmp_path)

    def find():
        ran.append("find")
        run.learn(machine="m-42")
        return "m-42"

    steps = [Step("find", "find the machine", find, reads_only=True),
             Step("stop", "stop <machine>", lambda: ran.append("stop"),
                  commands=(("machine", "stop", "<machine>"),))]
    record = run.run(steps, dry_run=True)
    assert ran == ["find"] and record["outcome"] == "dry run"
    assert not (tmp_path / "audit.log").exists()  # a dry run leaves nothing behind
    shown = runbook.render("Plan", [s.filled(run.values) for s in steps])
    assert "       $ fly machine stop m-42" in shown
    assert "  2. stop: stop m-42" in shown


def test_a_failure_takes_the_step_code_keeps_a_lock_and_lists_what_is_left(tmp_path):
    def fail(code):
        def action():
            raise OpsError("it broke", code)
        return action

    steps = [Step("a", "a", fail(ExitCode.ERROR), abort=ExitCode.DEPLOY_ABORTED_BACKUP),
             Step("b", "b", commands=(("deploy", "--app", "x"),))]
    run, shown = runner(tmp_path, message=lambda step, text: f"{step.key} failed: {text}")
    with pytest.raises(OpsError) as failed:
        run.run(steps)
    assert failed.value.code == ExitCode.DEPLOY_ABORTED_BACKUP
    assert str(failed.value) == "a failed: it broke"
    assert run.record["manual"] == ["  # a: a", "  fly deploy --app x   # b"]
    assert "fly deploy --app x" in shown.getvalue()
    logged = audit_lines(tmp_path)[0]
    assert logged["outcome"] == "a failed" and logged["exit_code"] == ExitCode.DEPLOY_ABORTED_BACKUP

    steps[0] = Step("a", "a", fail(ExitCode.LOCKED), abort=ExitCode.DEPLOY_ABORTED_BACKUP)
    run, _ = runner(tmp_path)
    with pytest.raises(OpsError) as locked:
        run.run(steps)
    assert locked.value.code == ExitCode.LOCKED  # a held lock is 4 wherever it was met


def test_a_crash_is_an_internal_error_line_never_a_traceback_and_is_recorded(tmp_path):
    steps = [Step("a", "a", lambda: {}["missing"])]
    run, _ = runner(tmp_path)
    with pytest.raises(OpsError) as crashed:
        run.run(steps)
    assert str(crashed.value) == "internal error: KeyError: 'missing'"
    assert audit_lines(tmp_path)[0]["outcome"] == "a failed"


@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C"])
def test_a_signal_mid_step_leaves_an_honest_audit_line_and_the_by_hand_lines(tmp_path, stop):
    def interrupted():
        raise Terminated(signal.SIGTERM) if stop == "SIGTERM" else KeyboardInterrupt

    seen = []
    steps = [Step("a", "a", lambda: "fine"),
             Step("b", "b", interrupted, commands=(("machine", "start", "m1"),)),
             Step("c", "c", commands=(("machine", "stop", "m1"),))]
    run, shown = runner(tmp_path, on_stop=lambda exc, step: seen.append(step.key))
    with pytest.raises((Terminated, KeyboardInterrupt)):
        run.run(steps)
    logged = audit_lines(tmp_path)[0]
    expected = "terminated by SIGTERM during b" if stop == "SIGTERM" else "interrupted during b"
    assert logged["outcome"] == expected and seen == ["b"]
    assert logged["exit_code"] == (ExitCode.TERMINATED if stop == "SIGTERM"
                                   else ExitCode.INTERRUPTED)
    assert [s["outcome"] for s in logged["steps"]] == ["ok", "interrupted"]
    assert logged["manual"] == ["  fly machine start m1   # b", "  fly machine stop m1   # c"]
    assert "To finish by hand" in shown.getvalue()


def test_secrets_never_reach_the_audit_log_or_the_screen(tmp_path, monkeypatch):
    secret = "FlyV1 fm2_s3cr3t-token"

    def leak():
        raise OpsError(f"flyctl said: bad token {secret}")

    steps = [Step("a", "a", lambda: f"used {secret}"), Step("b", "b", leak)]
    run, shown = runner(tmp_path, secrets=lambda: [secret])
    with pytest.raises(OpsError) as failed:
        run.run(steps)
    assert secret not in str(failed.value) and runbook.REDACTED in str(failed.value)
    assert secret not in (tmp_path / "audit.log").read_text()
    assert secret not in shown.getvalue()


def test_a_skipped_step_is_shown_and_recorded_and_never_called(tmp_path):
    steps = [Step("backup", "backup", lambda: pytest.fail("called"), skipped="--skip-backup")]
    run, shown = runner(tmp_path)
    record = run.run(steps)
    assert record["steps"][0]["outcome"] == "skipped" and "--skip-backup" in shown.getvalue()
    assert os.path.getsize(tmp_path / "audit.log") > 0


def test_a_step_may_run_under_a_shorter_line_and_record_what_its_label_says(tmp_path):
    run, shown = runner(tmp_path)

    def deploy():
        with run.ui.step("flyctl's own work"):  # a child: the parent says "▸ its line"
            pass
        return Done("deployed release v13", record="release v13")

    steps = [Step("deploy", "redeploy v11 (builds /app)", deploy, running="fly deploy")]
    record = run.run(steps)
    assert "▸ fly deploy" in shown.getvalue() and "redeploy v11" not in shown.getvalue()
    assert "deployed release v13" in shown.getvalue()
    assert record["steps"][0]["detail"] == "release v13"
    assert record["seconds"] == record["steps"][0]["seconds"]


def test_stopping_where_nothing_is_half_done_lists_nothing_to_do_by_hand(tmp_path):
    def fail():
        raise OpsError("no flyctl", ExitCode.DEPLOY_ABORTED_PREFLIGHT)

    steps = [Step("preflight", "preflight", fail, rerun=True),
             Step("deploy", "deploy", commands=(("deploy",),))]
    run, shown = runner(tmp_path)
    with pytest.raises(OpsError):
        run.run(steps)
    assert "manual" not in run.record and "To finish by hand" not in shown.getvalue()
    steps[0] = Step("preflight", "preflight", fail)  # the same stop, where it is half done
    run, shown = runner(tmp_path)
    with pytest.raises(OpsError):
        run.run(steps)
    assert run.record["manual"] == ["  # preflight: preflight", "  fly deploy   # deploy"]


@pytest.mark.parametrize("end", ["ok", "failed", "SIGTERM"])
def test_on_failure_adds_to_the_record_before_the_audit_line_unless_all_went_well(tmp_path,
                                                                                  end):
    def act():
        if end == "failed":
            raise OpsError("it broke")
        if end == "SIGTERM":
            raise Terminated(signal.SIGTERM)
        return "fine"

    run, shown = runner(tmp_path)
    run.on_failure = lambda: run.record.update(go_back=["fly machine start m1"])
    steps = runbook.bind([Step("a", "a"), Step("b", "b")], {"a": act})
    with contextlib.suppress(OpsError, Terminated):
        run.run(steps)
    logged = audit_lines(tmp_path)[0]
    assert ("go_back" in logged) is (end != "ok")
    assert logged["outcome"] == {"ok": "ok", "failed": "a failed",
                                 "SIGTERM": "terminated by SIGTERM during a"}[end]


def test_bind_gives_a_plan_its_actions_by_key_and_leaves_the_rest_as_data():
    plan = [Step("a", "a", commands=(("machine", "list"),)), Step("b", "b")]
    bound = runbook.bind(plan, {"b": lambda: "done"})
    assert bound[0] is plan[0] and bound[1].action() == "done" and plan[1].action is None
    assert bound == plan  # the action is no part of what a step is as data


@pytest.mark.parametrize("stop", [None, "SIGTERM"])
def test_why_a_step_failed_is_said_once_on_the_innermost_line_that_met_it(tmp_path, stop):
    """A step of the action's own (a ``ui.step`` inside it) that failed said why; the
    runbook step around it, failing by the same error, says only that it failed (s26: a
    long refusal was printed on the nested line, its step's line and the Error line)."""
    words = "database /data/steps.db has another name (a hard link): remove it first"
    run, shown = runner(tmp_path)

    def nested():
        with run.ui.step("backup production app:/data/steps.db"):
            raise Terminated(signal.SIGTERM) if stop else OpsError(words)

    def own(inner: str):
        def action():
            with contextlib.suppress(OpsError), run.ui.step("inner look"):
                raise OpsError(inner)  # caught: its step failed, the step goes on
            raise OpsError("the step's own error")
        return action

    steps = [Step("backup", "backup on the machine", nested)]
    with pytest.raises(Terminated if stop else OpsError):
        run.run(steps)
    lines = shown.getvalue().splitlines()
    failed = [line for line in lines if "✗" in line or "interrupted" in line]
    if stop:
        assert failed[0].startswith("  ✗ backup production") and "interrupted by SIGTERM" in \
            failed[0], lines
        assert failed[1].startswith("✗ backup on the machine  interrupted ("), lines
    else:
        assert failed[0].startswith(f"  ✗ backup production app:/data/steps.db  failed: {words}")
        assert failed[1].startswith("✗ backup on the machine  failed ("), lines
        assert shown.getvalue().count(words) == 1, lines
    assert len(failed) == 2, lines

    # a nested step that failed by another error says its own; the step keeps its reason
    run, shown = runner(tmp_path)
    with pytest.raises(OpsError):
        run.run([Step("look", "look around", own("nothing there"))])
    lines = shown.getvalue().splitlines()
    assert any(line.startswith("  ✗ inner look  failed: nothing there") for line in lines), lines
    assert any(line.startswith("✗ look around  failed: the step's own error") for line in lines)


def test_on_a_narrow_terminal_why_a_step_failed_outlasts_its_detail():
    """s26 review-break #2: the reason was the detail's last part, the first to give way at
    80 columns, and its parent now says only "failed"; the detail gives way instead."""
    import io

    from rich.console import Console

    from ops.ui import UI

    buffer = io.StringIO()
    ui = UI(err=Console(file=buffer, width=80, force_terminal=True, no_color=True))
    with contextlib.suppress(OpsError), ui.step("backup fly:steps-app"), \
            ui.step("upload the backup to the machine") as step:
        step.detail = "steps-2025-01-01T00-00-00Z.db  1.2 GB  from the laptop's folder"
        raise OpsError("the machine's disk is full: 20 MB free, the upload needs 1.2 GB")
    def seen() -> str:  # the terminal's text without its escapes (spinner, bold digits)
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())

    text = " ".join(seen().split())
    assert "failed: the machine's disk is full: 20 MB free, the upload needs 1.2 GB" in text
    assert "✗ backup fly:steps-app failed (" in text
    assert "✗ upload the backup to the machine … failed: the machine's disk" in text  # a mark

    # a parent that words its failure its own way keeps its words (review-break #3)
    buffer.seek(0)
    buffer.truncate(0)
    with contextlib.suppress(KeyError), ui.step("parent") as parent:
        try:
            with ui.step("child"):
                raise KeyError("name")
        except KeyError:
            parent.reason = "internal error: KeyError: 'name'"
            raise
    text = seen()
    assert "✗ child  failed: 'name'" in text and \
        "✗ parent  failed: internal error: KeyError: 'name'" in text, text


def test_a_reason_that_differs_only_by_a_hidden_secret_is_said_once(tmp_path):
    """The runbook's step hides a secret in its reason and the nested step's line does too
    when it is shown: the same words on screen, said once (s26 review-break2 #4)."""
    secret = "FlyV1 fm2_s3cr3t-token"
    run, shown = runner(tmp_path, secrets=lambda: [secret])

    def nested():
        with run.ui.step("call flyctl"):
            raise OpsError(f"flyctl said: bad token {secret}")

    with pytest.raises(OpsError):
        run.run([Step("a", "use the token", nested)])
    text = shown.getvalue()
    assert secret not in text and text.count("flyctl said: bad token") == 1, text
    assert "✗ use the token  failed (" in text, text
