"""`deploy.rollback --dry-run` exits with the code its run exits with for the same
preflight problem (s20 CLOSING: it exited 10 for any of them, where the run exits 2 or 3
for the operator's own input, a rollback's `KEEPS`). A CI gate on the dry run then sees
what the run would say. Each problem runs both ways through the real CLI and the double;
deploy's codes are pinned beside (its preflight keeps only a held lock's 4)."""

from __future__ import annotations

import pytest

from ops.errors import ExitCode
from tests.fake_production import APP

pytestmark = pytest.mark.cli_in_process


def audit_log_a_folder(site) -> None:
    site.audit_log.mkdir(parents=True)


def logged_out(site) -> None:
    site.world.fail(["auth", "whoami"], stderr="Error: not logged in\n",
                    times=None)


def emergency_stopped(site) -> None:
    assert site.here("emergency.stop", "--yes").returncode == 0
    site.audit_log.unlink()


def no_releases(site) -> None:
    with site.world._mutate() as state:
        state["apps"][APP]["releases"] = []


PREFLIGHT, USAGE, NOT_FOUND = (ExitCode.DEPLOY_ABORTED_PREFLIGHT, ExitCode.USAGE,
                                ExitCode.NOT_FOUND)
CASES = [  # (task, the problem, the code its run exits with)
    ("deploy.rollback", audit_log_a_folder, USAGE),  # was 10 in the dry run
    ("deploy.rollback", logged_out, PREFLIGHT),
    ("deploy.rollback", emergency_stopped, PREFLIGHT),
    ("deploy.rollback", no_releases, NOT_FOUND),
    ("deploy", audit_log_a_folder, PREFLIGHT),
    ("deploy", logged_out, PREFLIGHT),
    ("deploy", emergency_stopped, PREFLIGHT),
]


@pytest.mark.parametrize(("task", "make", "code"), CASES,
                         ids=[f"{t}-{m.__name__}" for t, m, _ in CASES])
def test_the_dry_run_exits_as_its_run_does(site, task, make, code):
    make(site)
    dry = site.here(task, "--dry-run")
    run = site.here(task)
    assert (dry.returncode, run.returncode) == (code, code), (dry, run)
