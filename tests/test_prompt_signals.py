"""SIGTERM and SIGHUP at a task's "Type yes" prompt (a cancelled CI job with a terminal,
a closed terminal window) end the run as not confirmed, with the same audit line a 'no',
Ctrl-D or Ctrl-C there writes (docs/flags.md): `outcome: "not confirmed"`, exit 143.
Before, the signal ended the task with no audit line (s20 CLOSING, "left for next time").
A restore's question ends the same way (its runner records the run: once;
tests/test_backup_choice.py).
A real CLI on a real pseudo-terminal, and a real signal sent once the question shows."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests import helpers

# signals are the point, and the run is found by its command line (a fresh process's)
pytestmark = [pytest.mark.cli_in_process, pytest.mark.fresh_process]


def signal_the_cli(cwd: Path, signum: int):
    """An action for ``on_terminal``'s ``then``: send ``signum`` to the CLI running in
    ``cwd`` (found by its working folder, whoever started it)."""

    def send() -> None:
        sent = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if Path(os.readlink(entry / "cwd")) != cwd.resolve():
                    continue
                if b"invoke" not in (entry / "cmdline").read_bytes():
                    continue
                os.kill(int(entry.name), signum)
                sent += 1
            except (FileNotFoundError, PermissionError, ProcessLookupError):
                continue
        assert sent == 1, sent

    return send


def logged(path: Path) -> list[tuple]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [(r["kind"], r["outcome"], r["exit_code"]) for r in map(json.loads, lines)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_at_the_emergency_prompt_is_recorded_as_not_confirmed(site, signum):
    name = signal.Signals(signum).name
    code, shown = helpers.on_terminal(["emergency.stop"], cwd=site.cwd, env=site.env(),
                                      then=(b"Type yes", signal_the_cli(site.cwd, signum)))
    assert code == 143, shown
    assert f"terminated by {name} at the prompt; not confirmed" in " ".join(shown.split())
    assert logged(site.audit_log) == [("emergency.stop", "not confirmed", 143)]
    assert [m["state"] for m in site.world.machines()] == ["started"]


def test_sigterm_at_the_volume_restore_prompt_is_recorded(site):
    code, shown = helpers.on_terminal(
        ["restore.volume", "--snapshot", "latest"], cwd=site.cwd, env=site.env(),
        then=(b"Type yes", signal_the_cli(site.cwd, signal.SIGTERM)))
    assert code == 143, shown
    assert logged(site.audit_log) == [("restore.volume", "not confirmed", 143)]



@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_at_the_skip_backup_prompt_ends_as_its_other_refusals(site, signum):
    """deploy --skip-backup's question passed no audit kind: a signal there printed a bare
    "terminated by SIGTERM" on the prompt's line and wrote no audit line, where a 'no' or
    Ctrl-C said "--skip-backup was not confirmed; nothing was deployed" (review-break s21
    #8). Now every way it ends unconfirmed says so and is recorded."""
    name = signal.Signals(signum).name
    code, shown = helpers.on_terminal(["deploy", "--skip-backup"], cwd=site.cwd, env=site.env(),
                                      then=(b"Type yes", signal_the_cli(site.cwd, signum)))
    assert code == 143, shown
    assert (f"Error: terminated by {name} at the prompt; --skip-backup was not confirmed; "
            "nothing was deployed") in " ".join(shown.split())
    assert logged(site.audit_log) == [("deploy", "not confirmed", 143)]
    assert site.world.calls() == []


@pytest.mark.parametrize(("answer", "code"), [("no", 1), ("Ctrl-C", 130), ("\x04", 130)])
def test_every_other_refusal_at_the_skip_backup_prompt_is_recorded_alike(site, answer, code):
    ctrl_c = (b"Type yes", signal_the_cli(site.cwd, signal.SIGINT))  # what the key sends
    got, shown = helpers.on_terminal(
        ["deploy", "--skip-backup"], cwd=site.cwd, env=site.env(),
        **({"then": ctrl_c} if answer == "Ctrl-C" else {"answer": answer}))
    assert got == code, shown
    assert "--skip-backup was not confirmed; nothing was deployed" in " ".join(shown.split())
    assert logged(site.audit_log) == [("deploy", "not confirmed", code)]
    assert site.world.calls() == []
