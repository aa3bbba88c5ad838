"""flyctl JSON nested deeper than Python's recursion limit is a wrong shape like any
other (review-break #7): one `Error:` line and exit 8, and a deploy's dry run warns and
exits 0. Through the real CLI and the flyctl double."""

from __future__ import annotations

import pytest

from ops.errors import ExitCode
from tests.helpers import assert_one_line_error

DEEP = b"[" * 100000 + b"]" * 100000


@pytest.mark.parametrize("task", [("emergency.stop", "--dry-run"),
                                  ("restore.volume", "--snapshot", "latest", "--dry-run")])
def test_deeply_nested_json_is_exit_8_in_one_line(site, task):
    site.world.garbage(["machine", "list"], stdout=DEEP)
    result = site.run(*task)
    line = assert_one_line_error(result, ExitCode.FLY, strict=False)
    assert "did not print JSON" in line and "RecursionError" not in result.stderr


def test_a_deploy_dry_run_warns_about_deeply_nested_json_and_exits_10(site):
    site.world.garbage(["machine", "list"], stdout=DEEP)
    result = site.run("deploy", "--dry-run")
    assert result.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, result  # as the run
    assert "RecursionError" not in result.stderr
    warning = [line for line in result.stderr.splitlines()
               if line.startswith("WARNING: a real run would stop at preflight")]
    assert warning and "did not print JSON" in warning[0], result.stderr
