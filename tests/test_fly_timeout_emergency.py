"""emergency.stop/resume and restore.volume give every flyctl call the `fly.timeout`
deadline, their ssh calls and reads included, like every other task (issue 22): a call that
hangs past it is stopped, the run fails with exit 6 naming the call and the key to raise."""

from __future__ import annotations

import pytest

from ops.errors import ExitCode
from tests import helpers

pytestmark = pytest.mark.cli_in_process(per="module")

FAST = {"INVOKE_FLY_TIMEOUT": "3"}


@pytest.mark.parametrize("task, hung, words", [
    (("emergency.stop", "--yes"), ["ssh", "console"], "writing the marker on machine"),
    (("emergency.stop", "--yes"), ["machine", "list"], "`fly machine list"),
    (("restore.volume", "--snapshot", "latest", "--yes"), ["volumes", "create"],
     "`fly volumes create"),
    (("restore.volume", "--snapshot", "latest", "--yes"), ["volumes", "snapshots"],
     "`fly volumes snapshots list"),
])
def test_a_hung_call_is_stopped_at_fly_timeout(site, tmp_path, task, hung, words):
    site.world.hang(hung, seconds=30, until=tmp_path / "never")

    result = site.run(*task, env=FAST)

    line = helpers.assert_one_line_error(result, ExitCode.TIMEOUT, strict=False)
    assert "did not finish within 3s" in line and "raise fly.timeout" in line, line
    assert words in line, line


def test_resume_reads_its_record_within_fly_timeout(site, tmp_path):
    assert site.run("emergency.stop", "--yes").returncode == 0
    site.world.hang(["ssh", "console"], seconds=30, until=tmp_path / "never")

    result = site.run("emergency.resume", "--yes", env=FAST)

    line = helpers.assert_one_line_error(result, ExitCode.TIMEOUT, strict=False)
    assert "reading the marker on machine" in line and "raise fly.timeout" in line, line
    assert site.audit()[-1]["kind"] == "emergency.stop"  # nothing changed: no resume line
