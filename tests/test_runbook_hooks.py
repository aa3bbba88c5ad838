"""The runner's hooks for a flow with work between its plan's steps (restore, issue 22 #1):
a pause that is neither recorded nor timed, steps without a line, a finding that changes
the rest of the plan, and a record worded as the flow's has always been."""

from __future__ import annotations

import time

import pytest

from ops.errors import ExitCode, OpsError
from ops.runbook import Done, Step
from tests import helpers

runner = helpers.make_runner  # (runner, its step lines' buffer)
audit_lines = helpers.audit_lines


def test_a_pause_is_not_recorded_and_its_wait_is_not_the_runs_time(tmp_path):
    run, shown = runner(tmp_path, end_to_end=True)
    steps = [Step("a", "step a", lambda: "did a"),
             Step("ask", "the operator's answer", lambda: time.sleep(0.3), pause=True),
             Step("b", "step b", lambda: "did b")]
    record = run.run(steps)
    assert [s["step"] for s in record["steps"]] == ["a", "b"]
    assert run.paused >= 0.3 and 0 <= record["seconds"] < run.paused
    assert "the operator's answer" not in shown.getvalue()


def test_an_unshown_step_is_recorded_without_a_line_and_a_quiet_one_not_at_all(tmp_path):
    run, shown = runner(tmp_path)
    steps = [Step("drawn", "its own line", lambda: "found", shown=False),
             Step("check", "a precondition", lambda: None, shown=False, recorded=False)]
    record = run.run(steps)
    assert [(s["step"], s["detail"]) for s in record["steps"]] == [("drawn", "found")]
    assert "its own line" not in shown.getvalue() and "precondition" not in shown.getvalue()


def test_a_finding_replaces_the_rest_of_the_plan(tmp_path):
    ran = []
    other = (Step("c", "c", lambda: ran.append("c")),)
    steps = [Step("a", "a", lambda: Done("a", "broken", record="why", failed=True,
                                         then=other)),
             Step("b", "b", lambda: ran.append("b"))]
    run, _ = runner(tmp_path, error_key="error")
    record = run.run(steps)
    assert ran == ["c"] and record["outcome"] == "ok"
    assert record["steps"][0] == {"step": "a", "outcome": "failed",
                                  "seconds": record["steps"][0]["seconds"], "error": "why"}


def test_a_flow_words_its_own_outcome_and_keeps_one_it_set(tmp_path):
    def refuse():
        run.record["outcome"] = "refused"
        raise OpsError("no", ExitCode.USAGE)

    run, shown = runner(tmp_path, end_to_end=True, step_by_hand=False, error_key="error",
                        outcome_words=lambda what, step: (
                            "failed" if run.record["outcome"] == "running"
                            else run.record["outcome"]) if what == "failed" else what)
    with pytest.raises(OpsError):
        run.run([Step("a", "a", refuse, pause=True),
                 Step("b", "b", commands=(("deploy",),))])
    line = audit_lines(tmp_path)[-1]
    assert (line["outcome"], line["exit_code"]) == ("refused", int(ExitCode.USAGE))
    assert "seconds" not in line  # end to end: only a run that ended ok has a time
    assert "finish by hand" not in shown.getvalue() and "manual" not in line


def test_without_the_hooks_a_failed_step_is_worded_as_before(tmp_path):
    run, _ = runner(tmp_path)
    with pytest.raises(OpsError):
        run.run([Step("a", "a", lambda: (_ for _ in ()).throw(OpsError("bad")))])
    line = audit_lines(tmp_path)[-1]
    assert line["outcome"] == "a failed" and line["steps"][0]["detail"] == "bad"
    assert line["seconds"] == line["steps"][0]["seconds"]
