"""The audit log, for every mutating flow (review-break #4, #5, #11).

emergency.stop, emergency.resume and restore.volume refuse an audit log they cannot
write (a symlink, a FIFO) before they change anything, as deploy and restore do: an
emergency with no audit line has lost who stopped production and what it ran. A log
whose last line was cut (a crash, a hand edit) never swallows the next record.
Through the real CLI and the flyctl double.
"""

from __future__ import annotations

import json
import os

import pytest

from ops import audit
from tests.helpers import assert_one_line_error

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

CHANGING = {"update", "stop", "start", "create", "clone", "destroy"}  # flyctl verbs that change


def plant(site, how: str) -> None:
    site.audit_log.parent.mkdir(parents=True, exist_ok=True)
    if how == "symlink":
        site.audit_log.symlink_to(os.path.relpath(site.db, site.audit_log.parent))
    else:
        os.mkfifo(site.audit_log)


def changing_calls(site) -> list[list[str]]:
    return [argv for argv in site.world.calls() if CHANGING & set(argv[:3])]


@pytest.mark.parametrize("task", [
    ("emergency.stop", "--yes"),
    ("restore.volume", "--snapshot", "latest", "--yes"),
])
@pytest.mark.parametrize("how", ["symlink", "fifo"])
def test_an_unwritable_audit_log_is_refused_before_anything_changes(site, task, how):
    plant(site, how)
    machines = json.dumps(site.world.machines(), sort_keys=True)
    result = site.run(*task)

    line = assert_one_line_error(result, 2, contains="cannot write the audit log")
    assert f"it is a {'symlink' if how == 'symlink' else 'FIFO'}," in line  # not "a socket"
    assert "nothing was changed" in line
    assert changing_calls(site) == []
    assert json.dumps(site.world.machines(), sort_keys=True) == machines


def test_resume_refuses_an_unwritable_audit_log_before_anything_changes(site):
    assert site.run("emergency.stop", "--yes").returncode == 0
    site.audit_log.unlink()
    plant(site, "fifo")
    site.world.clear_calls()
    result = site.run("emergency.resume", "--yes")

    assert_one_line_error(result, 2, contains="cannot write the audit log")
    assert changing_calls(site) == []


def test_a_cut_last_line_never_swallows_the_next_record(site):
    site.audit_log.parent.mkdir(parents=True, exist_ok=True)
    site.audit_log.write_text('{"kind": "deploy", "outcome": "ok"}\n{"kind": "no')  # cut
    result = site.run("emergency.stop", "--yes")

    assert result.returncode == 0, result
    kinds = [entry["kind"] for entry in audit.read(site.audit_log)]
    assert kinds == ["deploy", "emergency.stop"]  # the cut line alone is skipped
    resumed = site.run("emergency.resume", "--yes")
    assert resumed.returncode == 0, resumed
    assert [e["kind"] for e in audit.read(site.audit_log)][-1] == "emergency.resume"


def test_append_starts_a_new_line_after_a_line_without_one(tmp_path):
    log = tmp_path / "deploys.jsonl"
    log.write_text('{"kind": "note"}')  # a hand edit without the newline: still a record
    audit.append(log, {"kind": "deploy"})
    assert [e["kind"] for e in audit.read(log)] == ["note", "deploy"]
    audit.append(log, {"kind": "restore"})
    assert log.read_text().count("\n") == 3  # the one added, and one per record
