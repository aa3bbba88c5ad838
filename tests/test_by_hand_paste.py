"""By-hand lines paste as printed (review-op #7, #8): on a narrow terminal a long line is
never broken with a bare newline (the shell would run its tail), and a line with its own
comment gets no second ``# key`` label glued after it."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ops.errors import OpsError
from ops.runbook import Runner, Step, by_hand_lines
from ops.ui import UI

LONG = ("invoke deploy.undo   # back to steps-2026-12-07T01-26-06.db and the previous "
        "release (code and data)")


def fail():
    raise OpsError("the data guard failed")


def test_a_long_by_hand_line_stays_one_line_on_a_narrow_terminal(tmp_path):
    buffer = io.StringIO()
    ui = UI(err=Console(file=buffer, width=40, force_terminal=True, no_color=True),
            out=io.StringIO())
    runner = Runner("test", ui, tmp_path / "audit.log")
    runner.start(app="a")
    with pytest.raises(OpsError, match="the data guard failed"):
        runner.run([Step("data", "data guard", action=fail, by_hand=(LONG,))])
    shown = buffer.getvalue().splitlines()
    assert f"  {LONG}" in shown, shown
    assert runner.record["manual"] == [f"  {LONG}"]


def test_the_step_key_labels_only_a_line_without_its_own_comment():
    step = Step("deploy", "redeploy", by_hand=("fly releases -a app   # is v12 out? if not:",
                                               "fly deploy -a app --image img"))
    assert by_hand_lines([step]) == ["  fly releases -a app   # is v12 out? if not:",
                                     "  fly deploy -a app --image img   # deploy"]
