"""review-ox items 7 and 8: a failed ``--json`` run still writes its one JSON document (the
error and the exit code) on stdout, and on a terminal the ``Error:`` line breaks between
words rather than where the terminal cuts it."""

from __future__ import annotations

import pytest

from ops.errors import ExitCode
from tests import helpers

pytestmark = pytest.mark.cli_in_process(per="module")


def test_a_json_run_that_fails_prints_one_document_with_the_error_and_code(
        wal_db, backup_dir, run_invoke):
    missing = run_invoke("backup.status", "-j")  # no folder yet: exit 3
    backup_dir.mkdir(parents=True)
    misnamed = run_invoke("backup.verify", "nope", "-j")  # not a backup name: exit 2
    for result, code in ((missing, ExitCode.NOT_FOUND), (misnamed, ExitCode.USAGE)):
        assert result.returncode == code, result
        document = result.json()  # exactly one document
        assert document == {"error": result.error_lines[0].removeprefix("Error: "),
                            "exit_code": int(code)}, result


def test_a_json_run_that_printed_its_document_adds_none(wal_db, backup_dir, run_invoke):
    backup_dir.mkdir(parents=True)
    result = run_invoke("backup.status", "-j", "-m", "1h")  # no backup: its report, exit 7
    assert result.returncode == ExitCode.STALE, result
    assert "error" not in result.json()


def test_the_error_line_breaks_between_words_on_a_terminal(tmp_path):
    missing = tmp_path / ("a-rather-long-folder-name-" * 3) / "backups"
    code, shown = helpers.on_terminal(["backup.list"], cwd=tmp_path, columns=80,
                                      env={"INVOKE_BACKUP_DIR": str(missing)})
    assert code == ExitCode.NOT_FOUND, shown
    lines = shown.replace("\r", "").strip().split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("Error: "))
    error = lines[start:]
    assert len(error) > 1 and all(len(line) <= 80 or " " not in line for line in error), error
    for line in error:  # each line ends at a word's end: rejoined, the words are whole
        assert not line.endswith(" ")
    assert str(missing) in error  # the long path is one whole line, not cut


def test_a_usage_error_with_json_is_one_document_too(tmp_path):
    result = helpers.run_invoke("backup.list", "--bogus", "--json", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result
    assert result.json() == {"error": result.error_lines[0].removeprefix("Error: "),
                             "exit_code": int(ExitCode.USAGE)}
    plain = helpers.run_invoke("backup.list", "--bogus", cwd=tmp_path)
    assert plain.returncode == ExitCode.USAGE and plain.stdout == "", plain
