"""What `--dry-run` shows is what the run does (issue 22 item 1), for emergency.stop,
emergency.resume and restore.volume, through the real CLI and the flyctl double.

Each test takes the dry run's plan (``read``: the steps it ran for real; ``steps``: the
rest), checks the dry run made exactly the read steps' calls, then runs the task and
checks the flyctl calls it made (the double's call log) are exactly the plan's commands,
in order. Placeholders aside: a ``<name>`` in the plan matches the id the run learnt, and
an ssh script the plan names by its purpose (``<script: ...>``) matches the script sent.
A step that polls (waits for a state) repeats its one command: repeats count once.
"""

from __future__ import annotations

import re

import pytest

from tests.flyctl_double import DEFAULT_MACHINE_ID

pytestmark = pytest.mark.cli_in_process(per="module")

PLACEHOLDER = re.compile(r"<[a-z_]+>")


def planned(plan: dict) -> tuple[list[list[str]], list[list[str]]]:
    """The commands of the steps the dry run read, and of the steps after them."""
    def commands(steps):
        return [argv for step in steps if not step["skipped"] for argv in step["commands"]]
    return commands(plan["read"]), commands(plan["steps"])


def matches(shown: list[str], ran: list[str]) -> bool:
    """One planned command against one call: words equal, or a placeholder standing for
    the word the run learnt, or an ssh script named by its purpose."""
    if len(shown) != len(ran):
        return False
    for want, got in zip(shown, ran, strict=True):
        if want.startswith("<script: "):
            continue
        learnt = ".+".join(re.escape(piece) for piece in PLACEHOLDER.split(want))
        if not re.fullmatch(learnt, got, re.DOTALL):
            return False
    return True


def once(calls: list[list[str]]) -> list[list[str]]:
    """A poll's repeated call counted once."""
    return [argv for number, argv in enumerate(calls) if number == 0 or calls[number - 1] != argv]


def assert_same(shown: list[list[str]], ran: list[list[str]]) -> None:
    ran = once(ran)
    assert len(shown) == len(ran), (shown, ran)
    for want, got in zip(shown, ran, strict=True):
        assert matches(want, got), (want, got)


def check_flow(site, *task: str, before=None) -> dict:
    """Dry run, then the run; the calls of each are the plan's; the run's record."""
    if before:
        before()
    site.world.clear_calls()
    dry = site.run(*task, "--dry-run", "--json")
    assert dry.returncode == 0, dry
    plan = dry.json()
    assert plan["outcome"] == "dry run"  # the word docs/output.md gives a dry run
    read, rest = planned(plan)
    assert read and rest
    assert_same(read, site.world.calls())  # the dry run ran its reads and nothing else
    site.world.clear_calls()

    done = site.run(*task, "--yes", "--json")

    assert done.returncode == 0, done
    assert_same(read + rest, site.world.calls())
    record = done.json()
    assert record["outcome"] == "ok"
    assert [s["step"] for s in record["steps"]] == [s["key"] for s in plan["steps"]]
    return record


def test_emergency_stop_does_what_its_dry_run_shows(site):
    check_flow(site, "emergency.stop")
    assert site.world.machine(DEFAULT_MACHINE_ID)["config"]["init"]["cmd"] == \
        ["sleep", "2147483647"]


def test_emergency_resume_does_what_its_dry_run_shows(site):
    def stopped():
        assert site.run("emergency.stop", "--yes").returncode == 0

    check_flow(site, "emergency.resume", before=stopped)
    assert site.world.machine(DEFAULT_MACHINE_ID)["config"]["init"] == {}


def test_restore_volume_does_what_its_dry_run_shows(site):
    record = check_flow(site, "restore.volume", "--snapshot", "latest")
    assert record["new"]["new_volume"] and record["new"]["new_machine"]
    # the guard's --skip-start leaves the old machine stopped: stop_old only looks
    assert not any(argv[:2] == ["machine", "stop"] for argv in site.world.calls())
