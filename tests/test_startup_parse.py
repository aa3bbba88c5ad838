"""The parses of a run are given only the task contexts its command line can reach
(``ops.cli._contexts``, issues 21/22: building and deep-copying all 46 cost every start
~0.03 s). Here, as data: for each command line, Invoke's parser given every task and given
only the reachable ones parse alike (the same tasks, flags and values, or the same error)."""

import types

import invoke
import pytest
from invoke.exceptions import ParseError
from invoke.parser import Parser

from ops.cli import _contexts, _parser
from ops.commands import namespace

ARGVS = [
    [], ["backup"], ["backup", "--quick", "--json"], ["backup.verify", "latest"],
    ["backup.verify", "backup"],  # a positional whose value is a task's name
    ["restore", "latest", "--yes"], ["restore", "--from-replica", "--dry-run"],
    ["backup", "restore"], ["backup", "backup.list", "demo"],
    ["backup.status", "-m", "restore"], ["backup.status", "--max-age=restore"],
    ["backup.status", "-mbackup"],  # a short flag glued to its value
    ["replica.status", "--config", "deploy"], ["replica.status", "--config"],
    ["bakcup"], ["backup", "--nope"], ["backup", "nope"], ["backup.list", "-jp"],
    ["deploy", "--skip-backup", "-n"], ["deploy.rollback", "--help"],
    ["restore.volume", "--snapshot", "vs_1", "-y"], ["emergency.stop", "-d"],
    ["--list"], ["--help", "restore"], ["--help=backup"], ["-c", "other", "backup"],
    ["backup.verify", "--", "latest"], ["machine.check", "--production"],
    ["demo", "--keep"], ["backup.download", "latest", "--lock-wait=5"],
    # one task twice: each occurrence fills its own copy of the task's context
    ["backup", "--quick", "backup", "--json"], ["backup.verify", "latest", "backup.verify", "all"],
]


def program():
    """What ``_contexts`` reads of a running Program: Invoke's own options (as `invoke`
    has them), the task collection and the config's ignore_unknown_help."""
    config = types.SimpleNamespace(tasks=types.SimpleNamespace(ignore_unknown_help=False))
    return types.SimpleNamespace(initial_context=invoke.Program().initial_context,
                                 collection=namespace(), config=config)


def parsed(parser: Parser, argv: list[str]):
    """What a parse decided: each context's name and its arguments' values, the tokens
    left unparsed; or the error's text."""
    try:
        result = parser.parse_argv(argv)
    except ParseError as exc:
        return ("error", str(exc), getattr(getattr(exc, "context", None), "name", None))
    return ([(context.name, sorted((name, repr(arg.value)) for name, arg in
                                   context.args.items())) for context in result],
            result.unparsed)


@pytest.mark.parametrize("argv", ARGVS, ids=" ".join)
def test_only_the_reachable_tasks_parse_the_same(argv):
    running = program()
    every = running.collection.to_contexts(ignore_unknown_help=False)
    reachable = _contexts(running, argv)
    assert len(reachable) < len(every)  # the point: fewer contexts built and copied
    assert parsed(Parser(initial=running.initial_context, contexts=reachable), argv) == \
        parsed(Parser(initial=running.initial_context, contexts=every), argv)


@pytest.mark.parametrize("argv", ARGVS, ids=" ".join)
def test_a_parser_that_skips_the_copy_of_all_contexts_parses_the_same(argv):
    """``ops.cli._parser``: Invoke's parse machine no longer deep-copies every context on
    each parse (it only reads them); what it decides is the same, and the parser's own
    contexts keep no value a parse set."""
    running = program()
    fast = _parser(running.initial_context, _contexts(running, argv))

    def values():
        return [(context.name, [(name, repr(arg.value)) for name, arg in context.args.items()])
                for context in fast.contexts.values()]

    before = values()
    assert parsed(fast, argv) == parsed(
        Parser(initial=running.initial_context, contexts=_contexts(running, argv)), argv)
    assert parsed(fast, argv) == parsed(fast, argv)  # and again, from the same parser
    assert values() == before


def test_a_task_named_anywhere_in_a_token_is_reachable():
    """`--help=backup`, `-mbackup`: the parser may look up a name taken from inside a
    token, so a task counts as reachable when its name or alias occurs in one."""
    running = program()
    names = {context.name for context in _contexts(running, ["--help=backup", "-xrestore"])}
    assert {"backup.create", "restore.database"} <= names


def test_tasks_shared_by_every_load_give_their_arguments_to_two_threads_at_once():
    """Every Program in a process shares tasks.py's tasks (``OpsTask.__deepcopy__``), and
    Invoke's ``get_arguments`` pops a task's help texts: ours works on a copy, so loads in
    two threads at once neither fail nor lose a flag's help (review-break2 s23 #1)."""
    import sys
    import threading

    collection, errors, missing = namespace(), [], []

    def build():
        for _ in range(25):
            try:
                for context in collection.to_contexts(ignore_unknown_help=False):
                    missing.extend((context.name, arg.name) for arg in context.args.values()
                                   if arg.help is None)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        threads = [threading.Thread(target=build) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert (errors[:2], sorted(set(missing))[:5]) == ([], [])
