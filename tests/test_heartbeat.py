"""No long silence (issue 20 item 9): a step that runs for a while says so, in a log by
"still running" lines and on a terminal by the time so far on its spinner."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console

from ops import ui as ui_module
from ops.ui import UI


def elapsed_shown(label: str, buffer: io.StringIO) -> set[str]:
    """The different times so far a terminal's spinner showed for ``label``."""
    return set(re.findall(re.escape(label) + r"  \((\d+\.\ds)\)", buffer.getvalue()))


def test_a_long_step_in_a_log_says_it_is_still_running(monkeypatch):
    monkeypatch.setattr(ui_module, "STILL_RUNNING", (0.2, 0.5))
    buffer = io.StringIO()
    ui = UI(err=Console(file=buffer, width=80, no_color=True))
    with ui.step("backup on the machine"):
        time.sleep(1.3)
    lines = buffer.getvalue().splitlines()
    still = [line for line in lines if "still running" in line]
    assert still[0].startswith("… backup on the machine: still running (")
    assert len(still) == 2, lines  # at 0.2 s and 0.5 s; the next would be a minute later
    assert lines[-1].startswith("✓ backup on the machine")


def test_only_the_innermost_step_speaks_and_a_quick_step_stays_quiet(monkeypatch):
    monkeypatch.setattr(ui_module, "STILL_RUNNING", (0.3,))
    buffer = io.StringIO()
    ui = UI(err=Console(file=buffer, width=80, no_color=True))
    with ui.step("restore"):
        with ui.step("quick"):
            pass
        with ui.step("copy"):
            time.sleep(0.9)
    text = buffer.getvalue()
    assert "… copy: still running" in text and "quick: still" not in text
    assert "restore: still running" not in text  # its child was the one running


def test_a_terminal_spinner_shows_the_time_so_far(monkeypatch):
    monkeypatch.setattr(ui_module, "SPINNER_AFTER", 0.0)
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, force_terminal=True, force_interactive=True,
                      no_color=True)
    ui = UI(err=console)
    with ui.step("safety backup"):
        time.sleep(3.3)
    assert len(elapsed_shown("safety backup", buffer)) >= 2  # the time moves while it runs
    assert "still running" not in buffer.getvalue()  # a terminal has its spinner


def test_a_backup_that_reports_no_phases_keeps_its_spinner_and_time(monkeypatch):
    """A machine or SSH host reports no phases: the backup's bars never appear, so the
    spinner (and its time so far) must not be paused for them (a blank terminal)."""
    monkeypatch.setattr(ui_module, "SPINNER_AFTER", 0.0)
    buffer = io.StringIO()
    ui = UI(err=Console(file=buffer, width=80, force_terminal=True, force_interactive=True,
                        no_color=True))
    with ui.step("backup on the machine"), ui_module.backup_phases(ui):
        time.sleep(3.3)
    assert len(elapsed_shown("backup on the machine", buffer)) >= 2  # live while it ran


def test_a_phase_without_a_total_shows_no_percentage(monkeypatch):
    """integrity_check cannot say how far it is: its bar shows time, never a stuck 0 %."""
    buffer = io.StringIO()
    ui = UI(err=Console(file=buffer, width=100, force_terminal=True, force_interactive=True,
                        no_color=True))
    with ui.step("backup"), ui_module.backup_phases(ui) as phases:
        phases.phase("integrity_check")
        time.sleep(0.5)
        phases.phase("sha256", 50, 100)
        time.sleep(0.5)
    shown = buffer.getvalue()
    assert re.search(r"integrity_check[^\n%…]*… ", shown), shown[-400:]
    assert not re.search(r"integrity_check[^\n%…]*0%", shown)
    assert re.search(r"sha256[^\n%…]*50%", shown)
