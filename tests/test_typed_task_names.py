"""Usage errors name the task as the user typed it (`restore`, `backup`, `deploy`), as
its --help does, never the internal restore.database / backup.create / deploy.deploy
(review-op s19 #6); the command they suggest runs as pasted."""

from __future__ import annotations

import pytest

from tests import helpers


@pytest.mark.parametrize(("argv", "typed", "internal"), [
    (["restore", "--bogus"], "restore", "restore.database"),
    (["restore", "-p", "-d"], "restore", "restore.database"),
    (["restore", "a", "b"], "restore", "restore.database"),
    (["backup", "--bogus"], "backup", "backup.create"),
    (["deploy", "-x"], "deploy", "deploy.deploy"),
])
def test_an_error_names_the_task_as_typed(tmp_path, argv, typed, internal):
    result = helpers.run_invoke(*argv, cwd=tmp_path)
    assert result.returncode == 2, result
    assert internal not in result.stderr and result.stderr.startswith(f"Error: {typed} ")


def test_the_full_name_is_kept_when_typed(tmp_path):
    result = helpers.run_invoke("restore.database", "--bogus", cwd=tmp_path)
    assert result.returncode == 2 and "restore.database has no flag --bogus" in result.stderr


def test_the_suggested_help_runs_as_pasted(tmp_path):
    result = helpers.run_invoke("--help", "restore", cwd=tmp_path)
    assert result.returncode == 0 and "--busy-timeout" in result.stdout, result
