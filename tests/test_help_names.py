"""`--help` names a task as it is called (op #8 of the s18 review): `invoke restore
--help` said `restore.database`, the name Invoke parses the collection's name into.
Every task with two names, called by each, with every way to ask for its help."""

from __future__ import annotations

import invoke
import pytest

from ops import cli as ops_cli
from tests.helpers import REPO_ROOT, cli


def called_two_ways() -> list[str]:
    """Each task with an alias (a collection's default: `restore`, `backup`, `deploy`),
    by its full name and each alias: the tasks whose help could name the other one."""
    loaded = invoke.Program(namespace=None).loader_class(
        config=invoke.Config(), start=str(REPO_ROOT)).load()
    collection = invoke.Collection.from_module(loaded[0])
    return sorted({name for task, aliases in collection.task_names.items()
                   for name in (task, *aliases) if aliases})


NAMES = called_two_ways()


def usage(result) -> str:
    return result.stdout.splitlines()[0]


def test_the_names_cover_the_collections_default_tasks():
    assert {"restore", "restore.database", "backup", "backup.create", "deploy"} <= set(NAMES)


@pytest.mark.parametrize("help_flag", ["--help", "-h"])
def test_a_tasks_help_names_it_as_it_was_called(capsys, help_flag):
    for name in NAMES:
        for argv in ([name, help_flag], ["--help", name]):
            result = cli(capsys, *argv)
            assert result.returncode == 0, result
            assert f" [--core-opts] {name} [" in usage(result), (argv, usage(result))


def test_help_after_other_flags_names_the_alias(capsys):
    result = cli(capsys, "restore", "--production", "-n", "--help")
    assert usage(result).startswith("Usage: inv[oke] [--core-opts] restore ["), result


@pytest.mark.parametrize("argv,shown", [
    (["restore", "-h"], "restore"), (["restore.database", "-h"], "restore.database"),
    (["backup", "restore", "-h"], "restore"), ([], "restore.database")])
def test_called_as_is_the_typed_name(argv, shown):
    assert ops_cli.called_as("restore.database", ["restore"], argv) == shown
