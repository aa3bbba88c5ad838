"""The GitHub workflows as data: a pinned supply chain, and the schedule the README promises.

zizmor (run by .ci/run) audits them too; these checks keep what zizmor does not know:
the exact task lines, the shared concurrency group and the flyctl version preflight accepts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")


def text(name: str) -> str:
    return (WORKFLOWS / name).read_text()


@pytest.mark.parametrize("name", ["deploy.yml", "scheduled.yml"])
def test_every_action_is_pinned_by_commit_with_its_version(name):
    uses = [USES.match(line) for line in text(name).splitlines() if USES.match(line)]
    assert uses
    for match in uses:
        assert PINNED.fullmatch(match.group(1)), match.group(0)
        assert re.fullmatch(r"\s*# v?\d+(\.\d+)*", match.group(2)), match.group(0)


@pytest.mark.parametrize("name", ["deploy.yml", "scheduled.yml"])
def test_read_only_token_no_persisted_credentials_pinned_flyctl(name):
    body = text(name)
    assert re.search(r"^permissions:\n  contents: read\n", body, re.MULTILINE)
    assert body.count("permissions:") == 1 and "write" not in body
    checkouts = body.count("actions/checkout@")
    assert checkouts and body.count("persist-credentials: false") == checkouts
    versions = re.findall(r"setup-flyctl@\S+.*\n\s+with:\n\s+version: (\S+)", body)
    assert versions and len(versions) == body.count("setup-flyctl@")
    for version in versions:
        assert tuple(map(int, version.split("."))) >= (0, 4, 80)
    # the token only in the env of the steps that run the toolkit, never echoed
    assert "echo" not in "".join(line for line in body.splitlines() if "secrets." in line)
    assert re.findall(r"FLY_API_TOKEN: \$\{\{ secrets\.FLY_API_TOKEN \}\}", body)


def test_the_schedule_runs_the_tasks():
    scheduled = text("scheduled.yml")
    crons = re.findall(r'- cron: "([^"]+)"', scheduled)
    assert len(crons) == 2
    for line in ("invoke backup --production", "invoke backup.status --production --max-age 26h",
                 "invoke backup.drill --production --json"):
        assert f".venv/bin/{line}" in scheduled
    # nothing that could wait for an answer: stdin closed, no --yes needed by these tasks
    for run in re.findall(r"run: (\.venv/bin/invoke .*)", scheduled):
        assert "< /dev/null" in run, run


def test_ci_runs_zizmor_offline_after_the_tests():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert ci.index("pytest") < ci.index(".venv/bin/zizmor --offline .github/workflows")
    assert "zizmor" in Path(REPO_ROOT / "pyproject.toml").read_text()


def test_the_deploy_workflow_tests_as_this_repositorys_ci_does():
    """deploy.yml's test job ran `pytest -q` alone: one core, no sshd installed, and under
    GitHub's CI=true the SSH tests fail rather than skip (s28 review-op #3)."""
    test_job = jobs(text("deploy.yml"))["test"]
    assert re.findall(r"- run: (.*)", test_job) == ['sudo env "PATH=$PATH" CI=true bash .ci/run']
    readme = (REPO_ROOT / "README.md").read_text()
    pytest = re.search(r"\npython3 -m venv .*(\.venv/bin/pytest[^#\n]*?)\s+#", readme).group(1)
    assert pytest == ".venv/bin/pytest -q -n auto"  # the README's test run, as .ci/run's
    assert f"&& {pytest}\n" in (REPO_ROOT / ".ci" / "run").read_text()


# ---------------------------------------------------------------- issue 19 #9-10


def jobs(body: str) -> dict[str, str]:
    """Each job's block of a workflow (two-space-indented job ids under ``jobs:``)."""
    part = body.split("\njobs:\n", 1)[1]
    found = re.split(r"^  ([\w-]+):\n", part, flags=re.MULTILINE)[1:]
    return dict(zip(found[::2], found[1::2], strict=True))


def test_scheduled_jobs_have_their_own_concurrency_and_environment():
    scheduled, deploy = text("scheduled.yml"), text("deploy.yml")
    deploy_group = re.search(r"^concurrency:\n  group: (\S+)", deploy, re.MULTILINE).group(1)
    assert not re.search(r"^concurrency:", scheduled, re.MULTILINE)  # no shared group
    groups = set()
    for name, block in jobs(scheduled).items():
        group = re.search(r"\n    concurrency:\n      group: (\S+)\n      "
                          r"cancel-in-progress: false\n", block)
        assert group, name
        assert group.group(1) != deploy_group
        groups.add(group.group(1))
        # a protected `production` (the README's advice) would make it wait for a human
        assert re.search(r"\n    environment: scheduled\n", block), name
        assert "environment: production" not in block
    assert len(groups) == 2


def test_scheduled_runs_alert_when_cancelled_as_well_as_failed():
    scheduled = text("scheduled.yml")
    for name, block in jobs(scheduled).items():
        assert re.search(r"- name: say it loudly\n        if: failure\(\) \|\| cancelled\(\)\n",
                         block), name
    alert = text("scheduled-alert.yml")
    assert re.search(r"on:\n  workflow_run:.*\n    workflows: \[scheduled, replica-drill\]\n"
                     r"    types: \[completed\]\n", alert)  # both scheduled workflows (s28 op #4)
    names = {re.search(r"^name: (\S+)", text(f), re.MULTILINE).group(1)
             for f in ("scheduled.yml", "replica-drill.yml")}
    assert names == {"scheduled", "replica-drill"}  # the names workflow_run matches
    assert "conclusion == 'cancelled'" in alert and "conclusion == 'failure'" in alert
    assert "exit 1" in alert and "actions/checkout" not in alert
    assert re.search(r"^permissions:\n  contents: read\n", alert, re.MULTILINE)
