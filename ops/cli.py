"""How every task is declared and fails: one line on stderr, a documented exit code,
never a traceback; the same short flag for the same flag in every task."""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import io
import json
import os
import re
import select
import shlex
import shutil
import sys
from pathlib import Path

import invoke
from invoke.exceptions import Exit, ParseError
from invoke.parser import Argument, Parser, ParserContext
from invoke.parser.context import to_flag
from invoke.util import Lexicon

from ops.errors import ExitCode, OpsError
from ops.signals import Terminated, stop_on_signals, task_started

# ops.ui (Rich) and ops.engine are imported where they are used, not here: every process
# imports this module, and `invoke --list` or a task's --help needs neither (docs/layout.md).


def one_line(exc: Exception) -> str:
    """An error's first line, printable: its text may be a machine's, host's or flyctl's."""
    from ops.ui import printable, text_lines

    lines = text_lines(exc)
    return printable(" ".join(lines[:1]) + (" …" if len(lines) > 1 else "") if lines
                     else repr(exc))


def failed_as_json(message: str, code: int) -> dict:
    """The one JSON document a ``--json`` run that failed before printing one writes on
    stdout (the README: exactly one JSON document): the error line and the exit code."""
    return {"error": message.removeprefix("Error: "), "exit_code": int(code)}


def print_failed_as_json(failure: Exit) -> None:
    """``failed_as_json`` of an ``Exit`` on stdout (closed: stderr still says it)."""
    document = failed_as_json(" ".join(failure.message.split()), failure.code) | (
        getattr(failure, "json", None) or {})
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write(json.dumps(document) + "\n")
        sys.stdout.flush()


def guarded(body):
    """Wrap a task body so expected failures become ``Exit(one line, code)``; with
    ``--json``, stdout still gets one document when the failure came before it."""

    @functools.wraps(body)
    def run(c, *args, **kwargs):
        from ops import ui as ui_module
        from ops.ui import printable, terminal_width, wrapped

        task_started()
        forget_carried()  # this task's, for the commands it suggests (``carry``), from the
        # start: a refusal before the task opens its folder suggests commands too
        if not (kwargs.get("production") or kwargs.get("host")):  # this computer's folder
            carry("backup-dir", kwargs.get("backup_dir"))
        emitted = ui_module.EMITTED[0]
        try:
            with stop_on_signals():  # every task: a cancelled CI job gets one line, and
                return body(c, *args, **kwargs)  # the task's finally blocks run first
        except Terminated as exc:
            failure = Exit(f"Error: terminated by {exc.name}", code=int(ExitCode.TERMINATED))
        except OpsError as exc:
            failure = Exit(f"Error: {one_line(exc)}", code=int(exc.code))
            failure.json = getattr(exc, "json", None)  # a refusal's own keys (``Unasked``)
            record_refusal(c, exc)
        except KeyboardInterrupt:
            failure = Exit("Interrupted.", code=int(ExitCode.INTERRUPTED))
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) and output_closed():
                end_quietly()  # `| head` went away: nobody is left to read a line
            where = f": {exc.filename}" if exc.filename else ""
            failure = Exit(printable(f"Error: {exc.strerror or exc}{where}"),
                           code=int(ExitCode.ERROR))
        except Exception as exc:  # an EngineError (only a task that imported ops.engine
            from ops.engine import EngineError  # can raise one); anything else goes on

            if not isinstance(exc, EngineError):
                raise
            error = OpsError.from_engine(exc)
            failure = Exit(f"Error: {one_line(error)}", code=int(error.code))
        if failure.message:
            failure.message = pasteable(failure.message)  # a hint runs as pasted
        if failure.message and sys.stderr.isatty():  # broken between words, not mid-word
            failure.message = "\n".join(wrapped(failure.message, terminal_width()))
        if kwargs.get("json") and ui_module.EMITTED[0] == emitted:
            print_failed_as_json(failure)
        raise failure from None

    return run


def on_signals(body):
    """``ops.emergency.on_signals`` (SIGTERM/SIGHUP end a mutating task as exit 143 after
    its ``finally`` blocks), looked up when the task runs: importing ops.emergency (the
    flows, Rich) is not for `invoke --list` or a task's --help."""

    @functools.wraps(body)
    def run(*args, **kwargs):
        from ops.emergency import on_signals as stop_on_signals_as_exit_143

        return stop_on_signals_as_exit_143(body)(*args, **kwargs)

    return run


# ---------------------------------------------------------------- a closed pipe
#
# `invoke --help restore | head -1`: once `head` exits, the next write raises
# BrokenPipeError (Python ignores SIGPIPE), which printed a traceback. A closed stdout or
# stderr ends the run quietly with 141 (128 + SIGPIPE), the status a shell shows for `cat`
# or `grep` stopped the same way (docs/exit-codes.md). A task is stopped by the failed
# write like by any error, so its `finally` blocks (audit line, locks) have run by then.


def output_closed() -> bool:
    """Whether our stdout or stderr is a pipe whose reader has gone (poll says POLLERR
    on its write end): a BrokenPipeError from a socket or a child's pipe is a real error."""
    poller = select.poll()
    for fd in (1, 2):
        poller.register(fd, select.POLLOUT)
    try:
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except OSError:
        return False


def end_quietly():
    """Exit 141 with nothing more written: what is left in stdout's and stderr's buffers
    (and Python's own flush at exit) goes to /dev/null instead of a second traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    raise Exit(code=int(ExitCode.BROKEN_PIPE)) from None


def end_quietly_on_closed_pipe() -> None:
    """A BrokenPipeError of a closed stdout/stderr that reaches the top (Invoke's own
    printing: --list, --help, an `Error:` line) ends the run quietly, exit 141."""
    previous = sys.excepthook
    if getattr(previous, "ends_closed_pipes", False):
        return

    def hook(kind, exc, tb):
        if issubclass(kind, BrokenPipeError) and output_closed():
            with contextlib.suppress(Exit):
                end_quietly()
            os._exit(int(ExitCode.BROKEN_PIPE))  # everything has unwound already
        previous(kind, exc, tb)

    hook.ends_closed_pipes = True
    sys.excepthook = hook


# Invoke's automatic short flags gave one letter a different meaning per task (`-s` was
# --skip-backup in deploy and --strategy in deploy.rollback; `-h` hid --help): every
# short flag is chosen here instead, with one meaning everywhere, and `-h` stays help.
SHORT_FLAGS = {
    "production": "p",
    "keep": "k",
    "quick": "q",
    "dry_run": "n",
    "lock_wait": "l",
    "json": "j",
    "image": "i",
    "max_age": "m",
    "yes": "y",
    "snapshot": "s",  # restore.volume's --snapshot (no other task has a snapshot flag)
}


class OpsTask(invoke.Task):
    """An Invoke task whose short flags come from ``SHORT_FLAGS`` only."""

    def __init__(self, *args, **kwargs):
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)

    def get_arguments(self, ignore_unknown_help=None):
        """Invoke's, made on a copy with its own help texts (Invoke's pops them): the task,
        which every Program in the process shares (``__deepcopy__``), is never written to,
        so the arguments can be asked for again, by a second parse, a second Program, or
        two threads at once."""
        mine = copy.copy(self)
        mine.help = dict(self.help)
        return super(OpsTask, mine).get_arguments(ignore_unknown_help)

    def __deepcopy__(self, memo):
        """The task itself: Invoke deep-copies every task of tasks.py's ``ns`` on each load
        (``Collection.from_module``), ~7 % of a CLI run, and nothing changes a task after
        it is made but its call count and the help texts ``get_arguments`` gives back."""
        return self

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(name)
        if short and short not in taken_names:
            opts["names"].append(short)
        return opts


def task(*args, **kwargs):
    """``invoke.task`` with ``OpsTask`` (or a subclass): ``@task`` or ``@task(help=...)``."""
    kwargs.setdefault("klass", OpsTask)
    return invoke.task(*args, **kwargs)


def invoke_command() -> str:
    """How to type `invoke` so a suggested command runs as pasted: bare when this
    environment's invoke is the one on PATH, else its path (the venv is not active); with
    the configuration file and collection this run was given (``chosen_by_options``)."""
    return " ".join([_invoke_program(), *map(shlex.quote, chosen_by_options())])


def _invoke_program() -> str:
    ours = Path(sys.executable).parent / "invoke"
    on_path = shutil.which("invoke")
    if on_path and ours.exists() and Path(on_path).resolve() == ours.resolve():
        return "invoke"
    if ours.exists():
        try:
            return shlex.quote(str(ours.absolute().relative_to(Path.cwd())))
        except ValueError:
            return shlex.quote(str(ours))
    return shlex.quote(sys.executable) + " -m invoke"


def chosen_by_options() -> list[str]:
    """Invoke's options this run was given that chose its configuration file and its
    collection, for the commands it suggests: a suggested `invoke restore NAME --yes` pasted
    without the run's `-f prod.yaml` restores with another configuration (its database, its
    backup folder). Not ``--search-root``: without it a pasted command finds no tasks and
    says so, and the path would lengthen every line. None outside a run."""
    program = running_program()
    if program is None or not getattr(program, "core", None):
        return []
    words = []
    for name in ("config", "collection"):
        value = program.args[name].value
        if isinstance(value, str) and value:
            words += [f"--{name}", value]
    return words


# A command the tool suggests for a person to paste (`invoke restore NAME --yes`, `invoke
# backup.adopt NAME`): the word invoke before one of our task names, not already a path
# (.venv/bin/invoke) nor `python -m invoke`
_SUGGESTED = re.compile(r"(?<![\w./$-])(?<!-m )invoke(?= -{1,2}[a-z]| (?:backup|restore|deploy|"
                        r"emergency|replica|machine|demo)\b)"
                        r"(?: (?P<task>(?:backup|restore)(?:\.[a-z]+)?)(?=[\s`'\"),;:]|$))?")


def pasteable(text: str) -> str:
    """``text`` with every suggested ``invoke TASK`` spelled as ``invoke_command`` says, so
    it runs as pasted in the shell the operator used (review-op s20 #6). Applied where
    lines are printed for people (``UI.shown``, an error's line, the question), so no
    message needs to spell it; JSON and audit records keep the plain word."""
    if "invoke " not in text:
        return text
    try:
        program, chosen = _invoke_program(), invoke_command()
    except OSError:  # the working folder was removed under us: the plain word, no crash
        return text
    carried = CARRIED if CARRIED and running_program() is not None else {}  # a run's only
    if chosen == "invoke" and not carried:
        return text

    def spelled(found: re.Match) -> str:
        command = text[found.end():].split("`", 1)[0]
        task = found["task"]
        if task is None and _chooses(command):  # a refused command moved whole: -f/-c as
            # typed, nothing added
            return " ".join([program, *([task] if task else [])])
        added = [word for flag, value in carried.items()
                 if task in CARRIES[flag] and f"--{flag}" not in command
                 for word in (f"--{flag}", shlex.quote(value))]
        return " ".join([chosen, *([task, *added] if task else [])])

    return _SUGGESTED.sub(spelled, text)


# Task flags whose value a suggested command keeps, and the tasks that take each: a run on
# `--backup-dir mine/` suggesting `invoke backup.cleanup` pasted onto backup.dir
# (s28 review-break3 #1)
CARRIES = {"backup-dir": {"backup", "backup.list", "backup.verify", "backup.status",
                          "backup.cleanup", "backup.adopt", "backup.drill", "backup.download",
                          "restore"}}
CARRIED: dict[str, str] = {}


def forget_carried() -> None:
    """A new run (or task) starts with nothing carried."""
    CARRIED.clear()


def carry(flag: str, value) -> None:
    """Keep a flag this run was given for the commands it suggests (one of ``CARRIES``)."""
    if value is not None:
        CARRIED[flag] = str(value)


# Invoke's own options whose next word is their value (invoke/program.py core_args)
INVOKE_VALUED = {"-c", "--collection", "-f", "--config", "-r", "--search-root", "-T",
                 "--command-timeout", "-D", "--list-depth", "-F", "--list-format", "--hide"}


def _chooses(command: str) -> bool:
    """Whether a command gives Invoke's -f/--config or -c/--collection before its task
    (a quoted word that holds ` -c`, or a task's `--backup-dir -offsite`, is none: s28
    review-break3 #4, review-break4 #2)."""
    try:
        words = shlex.split(command)
    except ValueError:  # prose with a lone quote: its words as they stand
        words = command.split()
    return any(word.partition("=")[0] in ("--config", "--collection")
               or {"-f", "-c"} & set(_shorts(word, INVOKE_VALUED))
               for word in words[:_task_at(words, INVOKE_VALUED)])


def can_ask() -> bool:
    """Whether a question can be asked: stdin and stderr are a terminal."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def not_a_terminal(stdin: bool, stderr: bool) -> str:
    """Which stream keeps a question from being asked, said so (``stdin``, ``stderr``:
    whether each is a terminal): a person at a terminal who pipes stderr to `tee` is on
    a terminal, and must learn what to change (review-op s20 #4)."""
    if stdin and not stderr:
        return "stderr is not a terminal (piped or redirected?)"
    if stderr and not stdin:
        return "stdin is not a terminal (piped or redirected?)"
    return _NOT_ON_A_TERMINAL  # neither is one: true as it stands


def _which_terminal(message: str) -> str:
    """``message`` with its "not on a terminal" naming the stream that is not one."""
    if not message.startswith(_NOT_ON_A_TERMINAL):
        return message
    return not_a_terminal(_isatty(sys.stdin), _isatty(sys.stderr)) + message[
        len(_NOT_ON_A_TERMINAL):]


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):  # closed or replaced
        return False


# Every task that asks first (restore, restore.volume, deploy.undo, emergency.stop and
# .resume) refuses in these words, and with --json in one shape: its document has
# "error", "exit_code" 2 and "outcome": "not confirmed" (review-op s19 #7)
_NOT_ON_A_TERMINAL = "not on a terminal"  # said as which stream (``not_a_terminal``)
WITHOUT_TERMINAL = (f"{_NOT_ON_A_TERMINAL}, so nothing can be asked: run again with --yes to "
                    "go ahead (nothing was changed)")
NOT_CONFIRMED = "not confirmed; nothing was changed"  # any answer but yes


class Unasked(OpsError):
    """The refusal without a terminal and --yes (exit 2): nothing could be asked.
    ``kind``: the task's audit kind, the document's ``kind`` and its audit line's
    (``record_refusal``)."""

    json = {"outcome": "not confirmed"}  # added to ``failed_as_json``'s document

    def __init__(self, message: str = WITHOUT_TERMINAL, kind: str | None = None):
        super().__init__(_which_terminal(message), ExitCode.USAGE)
        self.audit_kind = kind
        if kind:
            self.json = {**Unasked.json, "kind": kind}


def refuse_unasked(yes: bool, without_terminal: str = WITHOUT_TERMINAL,
                   kind: str | None = None) -> None:
    """``confirm``'s refusal without a terminal (exit 2), given before any work: a task
    that will ask calls it first, so a CI run without --yes learns it before its reads
    and checks, not after them (op #9 of the s18 review)."""
    if not yes and not can_ask():
        raise Unasked(without_terminal, kind)


def record_refusal(c, exc: OpsError) -> None:
    """The one rule for a task that asks first: a run not confirmed (no terminal and no
    --yes, or any answer but yes) writes its audit line, ``outcome: "not confirmed"``, as
    a declined restore always did (docs/flags.md). A flow that records its own run
    (restore's runner) raises without ``audit_kind``; a log that cannot be written or a
    config that does not load leaves the refusal as it is (it changed nothing)."""
    kind = getattr(exc, "audit_kind", None)
    if not kind:
        return
    from ops import audit, config, runbook  # noqa: PLC0415 (only a refusal needs them)

    with contextlib.suppress(OpsError, OSError, ValueError):
        audit.append(config.load(c.config).audit_log, {
            "kind": kind, "who": audit.who(), "when": runbook.now(), "steps": [],
            "outcome": "not confirmed", "exit_code": int(exc.code), "error": one_line(exc)})


def confirm(question: str, *, yes: bool = False, without_terminal: str | None = None,
            refused: str = NOT_CONFIRMED, kind: str | None = None) -> None:
    """The one confirmation every task asks: on a terminal, go on only after `yes`.

    ``yes`` (``--yes``) skips the question. Without a terminal nothing can be asked:
    ``without_terminal`` is the refusal (exit 2, saying to pass ``--yes``), or None when
    the flag that got us here is itself the confirmation (``--skip-backup``). Any answer
    but yes is ``refused`` (exit 1); Ctrl-C or Ctrl-D at the prompt exits 130. ``kind``:
    the task's audit kind, for its refusal's audit line (``record_refusal``)."""
    from ops.ui import printable, terminal_width, wrapped

    if yes:
        return
    if not can_ask():
        if without_terminal is None:
            return
        raise Unasked(without_terminal, kind)
    asked = "\n".join(wrapped(f"{printable(pasteable(question))} Type yes to go on:",
                              terminal_width() - 1)) + " "
    stopped: Terminated | None = None
    try:  # a Ctrl-C as soon as the question shows, before the read, is one at the prompt
        sys.stderr.write(asked)
        sys.stderr.flush()
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = None
    except Terminated as exc:  # SIGTERM/SIGHUP at the prompt (a closed terminal, a
        if not kind:  # cancelled job): not confirmed, recorded like Ctrl-C; a flow that
            raise  # records its own run (restore's runner) says where it stopped itself
        answer, stopped = None, exc
    if stopped is not None:
        _end_prompt_line()
        error = OpsError(f"terminated by {stopped.name} at the prompt; {refused}",
                         ExitCode.TERMINATED)
    elif not answer:  # Ctrl-C, or Ctrl-D (end of input): no newline was typed, so end the
        _end_prompt_line()  # prompt's line, and exit as an interruption (130), not 1
        how = "Ctrl-C" if answer is None else "end of input (Ctrl-D)"
        error = OpsError(f"interrupted by {how} at the prompt; {refused}", ExitCode.INTERRUPTED)
    elif not typed_yes(answer):
        error = OpsError(refused, ExitCode.ERROR)
    else:
        return
    error.audit_kind = kind  # and the --json document says what Unasked's says (op s20 #4)
    error.json = {**Unasked.json, **({"kind": kind} if kind else {})}
    raise error


def _end_prompt_line() -> None:
    """The prompt's line ends (no newline was typed); a terminal already gone (SIGHUP)
    cannot take it, and that must not hide why the run ended."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write("\n")
        sys.stderr.flush()


# ---------------------------------------------------------------- the command line
#
# Invoke prints its parse errors raw and exits 1 ("No idea what '-n' is!"), and reads an
# option of its own given after a task name as that option: `invoke backup.download -p`
# was --pty, `emergency.stop -d` (once its dry run) --debug, `deploy -R` Invoke's --dry
# that our tasks never see. Parsing is therefore checked first against the same tasks with
# every Invoke option but --help refused, and every parse error becomes one `Error:` line
# with exit 2 (ExitCode.USAGE).

# What a task that has no --production does instead (item 2: refused in one line, alike for
# -p and --production, never silently Invoke's --pty).
NO_PRODUCTION = {
    "backup.download": "it always downloads from production (or from --host)",
    "backup.volume": "it always snapshots the production volume",
    "backup.snapshots": "it always lists the production volume's snapshots",
    "deploy.deploy": "it always deploys the Fly app",
    "deploy.rollback": "it always redeploys the Fly app",
    "deploy.unlock": "the deploy lock is always on the production machine",
    "emergency.stop": "it always works on the production machine",
    "emergency.resume": "it always works on the production machine",
    "restore.volume": "it always works on the production volume",
    "demo": "the demo only works on a local sample database",
}

# What a positional argument is, for "missing" errors: `latest` is the usual answer.
POSITIONALS = {
    "which": "which backup: `latest` (the newest) or a backup's file name",
    "backup.verify which": "which backup: `latest` (the newest), `all` or a backup's file name",
}


def _long(names) -> str:
    return "/".join(f"-{n}" if len(n) == 1 else f"--{n.replace('_', '-')}"
                    for n in sorted(names, key=len))


def refused_flag(task: str, token: str, flags: dict) -> str:
    """The one line for a flag ``task`` does not have (``flags``: its flag → Argument)."""
    if token in ("-p", "--pty", "--production"):
        why = NO_PRODUCTION.get(task, "it has no production mode")
        return f"{task} has no --production (-p): {why}"
    if token in ("-d", "--debug") and "--dry-run" in flags:
        return f"{task} has no -d: its dry run is -n (--dry-run)"
    long = {short: name for name, short in SHORT_FLAGS.items()}.get(token.lstrip("-"))
    named = f" (-{token.lstrip('-')} is --{long.replace('_', '-')} where a task has it)" \
        if long and len(token) == 2 else ""
    close = difflib.get_close_matches(  # never one of Invoke's own, refused here too
        token.lstrip("-"), [f[2:] for f, arg in flags.items()
                            if f.startswith("--") and not isinstance(arg, _Refused)], n=1)
    if close and not named:  # `--whcih`, `--dryrun`: as a misspelled task name gets
        named = f" (did you mean --{close[0]}?)"
    return f"{task} has no flag {token}{named}: `invoke --help {task}` lists its flags"


# Invoke's own options that a refusal's command never moves in front of a task (each has
# its own line: they are refused before the task name too, or run alone, or are the task's)
UNMOVED = {"production", "pty", "dry", "help", "list", "version", "complete",
           "print-completion-script"}


def core_option_after_task(task: str, core, flags: dict, names=None, argv=(),
                           others=()) -> str:
    """The line for Invoke's own option ``core`` given after a task name (Invoke would
    obey it: -p its --pty, -d its --debug, -R its --dry, which our tasks never see);
    ``names``: those of its names the task does not use itself (backup's -p is its own);
    ``argv``: the command line after the program's name, whose spelling the line keeps;
    ``others``: (option, names) of Invoke's other options, moved in front with it (the
    command, pasted, is not refused again for a second one: s24 review-break2 #5)."""
    names = names or core.names
    valued = _valued(others)
    typed, value, rest = moved_to_front(names, core, argv, flags, valued)
    if core.name == "production" or (core.name == "pty" and typed in ("-p", None)
                                      and "p" in names):
        return refused_flag(task, "-p", flags)
    if core.name == "debug" and "--dry-run" in flags and typed in ("-d", None) and "d" in names:
        return refused_flag(task, "-d", flags)
    shown = typed or _long(names)
    if core.name == "dry":  # before the task name it is refused too (strict_parsing)
        return (f"{task} has no {shown}: Invoke's --dry does not reach these tasks; "
                + ("its dry run is -n (--dry-run)" if "--dry-run" in flags else
                   f"it has no dry run: `invoke --help {task}` says what it does"))
    if core.name in ("list", "version", "complete", "print-completion-script"):
        alone = shlex.join(["invoke", _long([core.name])] + ([value] if value else []))
        return f"{task} has no {shown} (Invoke's own, for Invoke alone): run `{alone}`"
    if typed is None:  # not found as typed (an unusual spelling): say where it goes
        return f"{task} has no {shown} (Invoke's own): it goes before the task name"
    if core.takes_value and _before_task(core.names, argv, valued):  # `-f a.yaml backup -f
        # b.yaml`: which one was meant is not ours to choose (s28 review-break2 #4)
        return (f"{task} has no {shown} (Invoke's own): it is given before the task name "
                "too; give it once, there")
    if core.takes_value and not core.optional and not _fits(core, value):
        # `--hide` at the end, `--hide=`, `--hide --production`, `-Tx`: a command with the
        # task's next flag as its value would run elsewhere, one with `x` would crash
        return (f"{task} has no {shown} (Invoke's own): it goes before the task name, with "
                f"its value (`invoke --help` lists Invoke's own options)")
    front = [_long([core.name])] + ([value] if value else [])
    rest = _without(names, core, rest, flags, valued)  # typed twice: once in front
    for other, other_names in others:
        if other.name in UNMOVED or other.name == core.name or not other_names:
            continue
        typed_other, other_value, after = moved_to_front(other_names, other, rest, flags,
                                                         valued)
        if other.name == "debug" and typed_other == "-d" and "--dry-run" in flags:
            continue  # its own line: "its dry run is -n"
        if typed_other is not None and other.takes_value and \
                _before_task(other.names, argv, valued):  # as for ``core`` above
            return (f"{task} has no {shown} nor {typed_other} (Invoke's own): "
                    f"{typed_other} is given before the task name too; give each once, before it")
        if typed_other is not None and (_fits(other, other_value) or not other.takes_value):
            front += [_long([other.name])] + ([other_value] if other_value else [])
            rest = _without(other_names, other, after, flags, valued)
    moved = shlex.join(["invoke", *front, *rest])
    # short, so that at 80 columns the command starts on the first line (review-op2 s24 #1)
    return f"{task} has no {shown} (Invoke's own): run `{moved}`"


# the values of Invoke's options that Invoke never checks when a task runs: a task's own
# word moved in front as one (`restore --hide NAME --yes` → `invoke --hide NAME restore
# --yes`) would leave the task without it, and run on `latest` (s27 review-break4 #1)
KNOWN_VALUES = {"hide": {"out", "stdout", "err", "stderr", "both"},  # invoke.runners
                "list-format": {"flat", "nested", "json"}}


def _fits(core, value: str | None) -> bool:
    """Whether ``value`` can be the value of Invoke's option ``core`` as Invoke reads it:
    never a word that starts with `-` (read as a flag), one of the values Invoke takes for
    --hide and --list-format, a whole number for --command-timeout and --list-depth
    (anything else is Invoke's traceback). A path (--config, --search-root, --collection)
    Invoke itself refuses when it is wrong."""
    if not value or value.startswith("-"):
        return False
    if core.name in KNOWN_VALUES:
        return value in KNOWN_VALUES[core.name]
    return core.kind is not int or value.isascii() and value.isdigit()


def _without(names, core, argv, flags, valued=()) -> list[str]:
    """``argv`` without any more of option ``core`` after the task (its value with it)."""
    while True:
        typed, _, rest = moved_to_front(names, core, argv, flags, valued)
        if typed is None:
            return argv
        argv = rest


def _valued(others) -> set[str]:
    """The spellings of Invoke's own options whose next word is their value (-f, --config)."""
    return {f"-{n}" if len(n) == 1 else f"--{n}" for option, _ in others
            if option.takes_value and not option.optional for n in option.names}


def _shorts(token: str, valued=()) -> list[str]:
    """The short options a token like `-ef` gives, up to the first that takes a value
    (the rest of the token is that value: `-fa.yaml`)."""
    if token.startswith("--") or len(token) < 2 or token[0] != "-":
        return []
    found = []
    for letter in token[1:]:
        found.append(f"-{letter}")
        if f"-{letter}" in valued:
            break
    return found


def _task_at(argv, valued=()) -> int:
    """Where the task's name is in ``argv``: the first word that is no option nor the
    value of one of Invoke's options before it (`-f a.yaml backup`, `-ef a.yaml backup`:
    not `a.yaml`)."""
    value_next = False
    for at, token in enumerate(argv):
        if token == "--":
            break
        if value_next:
            value_next = False
        elif not token.startswith("-"):
            return at
        else:  # its value is the next word unless it is attached (`--config=x`, `-fx`)
            shorts = _shorts(token, valued)
            value_next = token in valued or bool(shorts) and shorts[-1] in valued \
                and token.endswith(shorts[-1][1])
    return len(argv)


def _before_task(names, argv, valued=()) -> bool:
    """Whether an option of ``names`` is given before the task's name (in a bundle too)."""
    spelled = {f"-{n}" if len(n) == 1 else f"--{n}" for n in names}
    return any(token.partition("=")[0] in spelled or spelled & set(_shorts(token, valued))
               for token in argv[:_task_at(argv, valued)])


def moved_to_front(names, core, argv, flags=(),
                   valued=()) -> tuple[str | None, str | None, list[str]]:
    """Where Invoke's option ``core`` (one of ``names``) was typed after a task in ``argv``:
    (its spelling, its value if it takes one, the rest of the command line without them),
    so the line can show the whole command with the option in front (review-op s24 #1:
    `invoke --echo deploy` alone, pasted after `deploy -n -e`, deploys for real). Nones
    and ``argv`` when no token is recognisably it. ``flags``: the task's, by which a token
    like `-ne` is a bundle of flags, not `-i` with a value that holds an "e"; ``valued``:
    Invoke's options whose next word is their value, which is not the task (``_task_at``)."""
    argv = list(argv)
    longs = [f"--{n}" for n in names if len(n) > 1]
    shorts = [n for n in names if len(n) == 1]
    task_at = _task_at(argv, valued)
    for at, token in enumerate(argv):
        if token == "--":  # the rest is the task's own arguments
            break
        if at <= task_at or not token.startswith("-"):
            continue
        flag, eq, attached = token.partition("=")
        if flag in longs or (flag[1:] in shorts and not flag.startswith("--")):
            rest = argv[:at] + argv[at + 1:]
            if eq:  # an on/off option's "value" is dropped: `-w=deploy` must not name a task
                return flag, attached if core.takes_value else None, rest
            # the next word is its value, unless it is a flag: `--hide --production` has
            # none (moved in front, --production became its value: s27 review-op2 #1)
            if core.takes_value and not core.optional and at + 1 < len(argv) \
                    and not argv[at + 1].startswith("-"):
                return flag, argv[at + 1], argv[:at] + argv[at + 2:]
            return flag, None, rest
        if not token.startswith("--") and len(token) > 2 and token[1] in shorts \
                and core.takes_value:  # -T5, -fmy.yaml: the rest is its value
            return f"-{token[1]}", token[2:], argv[:at] + argv[at + 1:]
        if not token.startswith("--") and not eq and len(token) > 2:
            hit = next((c for c in shorts if c in token[1:]), None)
            bundle = all(f"-{c}" in flags or c in shorts for c in token[1:])
            if hit and bundle and not core.takes_value:  # -ne: the others stay where they were
                return f"-{hit}", None, argv[:at] + [token.replace(hit, "", 1)] + argv[at + 1:]
    return None, None, argv


def parse_error_line(message: str, context, tasks=()) -> str:
    """An Invoke ``ParseError`` as the one line we print (``context``: where it happened;
    ``tasks``: every task name, for a "did you mean")."""
    task = getattr(context, "name", None)
    unknown = re.fullmatch(r"No idea what '(.*)' is!", message)
    if unknown:
        token = unknown.group(1)
        if not task and token.startswith("-"):
            return f"no option {token} before a task name: `invoke --help` lists Invoke's own"
        if not task:
            close = difflib.get_close_matches(token, list(tasks), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            return f"no task named {token!r}: {hint}`invoke --list` shows every task"
        if token.startswith("-"):
            return refused_flag(task, token, getattr(context, "flags", {}))
        flag = next((str(arg.value) for arg in getattr(context, "positional_args", ())
                     if str(arg.value or "").startswith("-")), None)
        if flag:  # `--whcih=latest`: Invoke took `--whcih` as the backup's name, then
            return refused_flag(task, flag, getattr(context, "flags", {}))  # balked at latest
        return (f"{task} takes no argument {token!r} (and no task has that name: "
                "`invoke --list`)")
    missing = re.fullmatch(r"'(.*)' did not receive required positional arguments: (.*)",
                           message)
    if missing:
        task, names = missing.group(1), re.findall(r"'([^']+)'", missing.group(2))
        what = "; ".join(POSITIONALS.get(f"{task} {n}", POSITIONALS.get(n, n.upper()))
                         for n in names)
        example = "latest" if names == ["which"] else "…"
        flags = getattr(context, "flags", {})  # what the task was given, for the command
        if not any(getattr(flags.get(f), "value", None) for f in ("--production", "--host")):
            carry("backup-dir", getattr(flags.get("--backup-dir"), "value", None))
        return f"{task} needs {what}: `invoke {task} {example}`"
    needs = re.fullmatch(r"Flag <\w+: (\w+).*> needed value and was not given one!", message)
    if needs:
        return f"{_long([needs.group(1)])} needs a value" + (f" ({task})" if task else "")
    takes = re.fullmatch(r"Flag <\w+: (\w+).*> doesn't take any value!", message)
    if takes:
        return f"{_long([takes.group(1)])} takes no value" + (f" ({task})" if task else "")
    return message.rstrip("!") if not task else f"{task}: {message.rstrip('!')}"


class _Refused(Argument):
    """Invoke's own option as seen after a task name: parsing it ends the run."""

    def __init__(self, task: str, core, flags: dict, program=None, names=None):
        super().__init__(names=names or core.names, kind=bool)
        self.line = lambda: as_typed(core_option_after_task(
            task, core, flags, self.names, getattr(program, "argv", [""])[1:],
            _others(program, flags)), program)

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, arg):
        from ops.ui import printable  # Rich: only on this error's path

        raise Exit(f"Error: {printable(pasteable(self.line()))}", code=int(ExitCode.USAGE))

    def __deepcopy__(self, memo):
        """Invoke's parser deep-copies every context it is given, on every parse; nothing
        in a refused option can change (setting its value ends the run), so a shallow
        copy is the same (it was ~20 of every task context's arguments to copy)."""
        return copy.copy(self)


def _others(program, flags: dict) -> list:
    """Invoke's own options, each with the names a task with ``flags`` leaves to Invoke."""
    if program is None:
        return []

    def invokes(name: str) -> bool:  # the task's context refuses it (or lacks it)
        return to_flag(name) not in flags or isinstance(flags[to_flag(name)], _Refused)

    return [(core, [n for n in core.names if invokes(n)])
            for core in program.initial_context.args.values()]


class _ReadOnlyContexts(Lexicon):
    """A parser's contexts, which its parse machine only reads: Invoke's machine deep-copies
    all of them on every parse (``ParseMachine.__init__``), then copies again the one each
    task on the command line fills (``switch_to_context``), so the first copy is never
    written to. Skipping it saves ~a third of a parse, which every CLI run makes three of."""

    def __deepcopy__(self, memo):
        return self


def _parser(initial, contexts) -> Parser:
    """Invoke's Parser, whose parse machine reads ``contexts`` without copying them all."""
    parser = Parser(initial=initial, contexts=contexts)
    shared = _ReadOnlyContexts(parser.contexts)  # the same contexts, by name
    # and the same aliases (Lexicon's own __setattr__ would store them as an item)
    dict.__setattr__(shared, "aliases", dict(parser.contexts.aliases))
    parser.contexts = shared
    return parser


def _contexts(program, argv) -> list:
    """The task contexts ``argv`` can reach: Collection.to_contexts for those tasks only.

    Invoke's parser deep-copies every context it is given, and building one inspects its
    task's signature (~0.03 s for all 46 tasks, per parse, on every run); the parser only
    ever looks a context up by a string taken from a token (a task name, a value checked
    against the task names, `--help TASK`'s). A task whose name and aliases occur in no
    token cannot change a parse, so only the others are built (``invoke --list``: none).
    OpsTask keeps its help texts, so a task's context can be built again."""
    ignore = program.config.tasks.ignore_unknown_help
    return [ParserContext(name=name, aliases=aliases,
                          args=program.collection[name].get_arguments(ignore))
            for name, aliases in program.collection.task_names.items()
            if any(typed in token for typed in (name, *aliases) for token in argv)]


def _strict_contexts(program, argv) -> list:
    """The task contexts ``argv`` can reach, each refusing Invoke's own options (but --help)."""
    contexts = _contexts(program, argv)
    for context in contexts:
        for core in program.initial_context.args.values():
            # the names the task does not use itself: `backup --pty` is refused even though
            # backup's -p is its --production (left out, Invoke obeyed --pty silently)
            names = [n for n in core.names if to_flag(n) not in context.flags]
            if core.name == "help" or not names:
                continue
            context.add_arg(_Refused(context.name, core, context.flags, program, names))
        if "--production" not in context.flags:  # else eaten as a positional, or unknown
            context.add_arg(_Refused(context.name, Argument(names=("production",), kind=bool),
                                     context.flags, program))
    return contexts


def help_fits(program) -> None:
    """`invoke --help TASK` within the terminal's width, broken between words: Invoke
    prints the docstring and the Usage line as they are, and the terminal cut them
    mid-word (review-ox 10). Continuation lines keep the line's indent."""
    print_task_help = program.print_task_help

    def print_help(name: str) -> None:
        from ops.ui import wrapped

        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            print_task_help(name)
        width = invoke.terminals.pty_size()[0] or 80
        text = shown.getvalue()
        typed = called_as(name, program.collection.task_names.get(name, ()),
                          getattr(program.core, "unparsed", ()) if program.core else ())
        if typed != name:  # the Usage line: `invoke restore`, not restore.database (op #8)
            first, _, rest = text.partition("\n")
            text = first.replace(f" {name} ", f" {typed} ", 1) + "\n" + rest
        for line in text.split("\n")[:-1]:
            lead = line[: len(line) - len(line.lstrip())]
            print("\n".join(wrapped(line, width, indent=lead or "  ")))

    program.print_task_help = print_help


def called_as(name: str, aliases, argv) -> str:
    """The name the user typed for task ``name`` (its ``aliases``: a collection's default
    task is called by the collection's name, `invoke restore`), else ``name``: Invoke
    parses the alias into the task's full name (restore.database), which its help
    printed as the task to type."""
    return next((token for token in argv if token == name or token in aliases), name)


def strict_parsing(program) -> None:
    """Make ``program`` (the running Invoke) parse task arguments as described above."""
    help_fits(program)
    if program.args.dry.value:  # given before the task name: our tasks never see run.dry
        raise Exit("Error: Invoke's -R/--dry does not reach these tasks (they would run for "
                   "real): a task's dry run, where it has one, is its -n (--dry-run); `invoke "
                   "--help TASK` lists its flags", code=int(ExitCode.USAGE))
    parse_tasks = program.parse_tasks

    def parse() -> None:
        try:
            parse_strictly()
        except Exit as refused:  # --json asked for one document, even for a usage error
            if refused.code and refused.message and (
                    {"--json", "-j"} & set(program.core.unparsed)):
                print_failed_as_json(refused)
            raise

    def parse_strictly() -> None:
        try:
            parsed = _parser(program.initial_context,
                             _strict_contexts(program, program.core.unparsed)
                             ).parse_argv(program.core.unparsed)
            for context in parsed[1:]:  # a flag Invoke took as a positional (`--production`)
                for arg in context.positional_args:
                    if arg.value in ("-h", "--help"):  # pyinvoke/invoke#982: help, not a name
                        program.parser = program._make_parser()
                        program.print_task_help(context.name)
                        raise Exit(code=0)
                    if str(arg.value or "").startswith("-"):
                        from ops.ui import printable  # Rich: only on this error's path

                        line = as_typed(refused_flag(context.name, arg.value, context.flags),
                                        program)
                        raise Exit(f"Error: {printable(pasteable(line))}",
                                   code=int(ExitCode.USAGE))
            _parse_reachable(program, parse_tasks)
        except ParseError as exc:
            from ops.ui import printable

            line = parse_error_line(str(exc), getattr(exc, "context", None),
                                    [name for task, aliases in
                                     program.collection.task_names.items()
                                     for name in (task, *aliases)])
            raise Exit(f"Error: {printable(pasteable(as_typed(line, program)))}",
                       code=int(ExitCode.USAGE)) from None

    program.parse_tasks = parse


def _parse_reachable(program, parse_tasks) -> None:
    """Invoke's own parse of the tasks (``parse_tasks``), its parser given only the
    contexts the whole command line can reach (``_contexts``). The parser Invoke makes
    afterwards for shell completion (``--complete``) has every task again."""
    program._make_parser = lambda: _parser(program.initial_context,
                                           _contexts(program, program.argv))
    try:
        parse_tasks()
    finally:
        del program._make_parser  # Program's own method again


def as_typed(line: str, program) -> str:
    """An error line naming each task as the user typed it (`restore`, not its internal
    restore.database), as its --help does (review-op s19 #6)."""
    if program is None:
        return line
    argv = getattr(program.core, "unparsed", ()) if program.core else ()
    for name, aliases in program.collection.task_names.items():
        typed = called_as(name, aliases, argv)
        if typed != name:
            line = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", typed, line)
    return line


def running_program():
    """The Invoke ``Program`` importing tasks.py (it is on the stack), else None."""
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, invoke.Program):
            return candidate
        frame = frame.f_back
    return None


def typed_yes(answer: str) -> bool:
    """Only the word the question asks for goes on: `yes` (any case, spaces around it);
    `y`, `ye`, `yes please` or an empty line do not."""
    return answer.strip().lower() == "yes"
