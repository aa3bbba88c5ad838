"""A misspelled flag is the one blamed (review-op W1, W3): `--whcih=latest` was reported as
"takes no argument 'latest'" (Invoke had taken `--whcih` as the backup's name), and a near
miss of a real flag gets a "did you mean", as a misspelled task name does.

The real Invoke ``Program`` in this process (``tests/test_command_line.py``'s ``cli``)."""

from __future__ import annotations

import pytest

from ops.errors import ExitCode
from tests.helpers import assert_one_line_error, cli


@pytest.mark.parametrize(("argv", "expected"), [
    (["restore", "--whcih=latest"], "restore has no flag --whcih (did you mean "
                                    "--which?): `invoke --help restore` lists its flags"),
    (["backup.verify", "--whcih", "latest"], "backup.verify has no flag --whcih (did you mean "
                                             "--which?)"),
    (["backup.download", "--whcih=latest"], "backup.download has no flag --whcih (did you mean "
                                            "--which?)"),
    (["backup", "--dryrun"], "backup has no flag --dryrun (did you mean --dry-run?)"),
    (["backup.cleanup", "--kep", "3"], "backup.cleanup has no flag --kep (did you mean --keep?)"),
])
def test_the_misspelled_flag_is_named(capsys, argv, expected):
    line = assert_one_line_error(cli(capsys, *argv), ExitCode.USAGE)
    assert expected in line
    assert "latest'" not in line  # never blamed on the value after it


def test_a_flag_with_no_near_miss_gets_no_guess_and_a_real_extra_argument_stays_blamed(capsys):
    line = assert_one_line_error(cli(capsys, "backup.list", "--bogus"), ExitCode.USAGE)
    assert "did you mean" not in line
    line = assert_one_line_error(cli(capsys, "restore", "latest", "extra"), ExitCode.USAGE)
    assert "restore takes no argument 'extra'" in line
