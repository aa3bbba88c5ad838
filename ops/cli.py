"""How every task is declared and fails: one line on stderr, a documented exit code,
never a traceback; the same short flag for the same flag in every task."""

from __future__ import annotations

import functools
import shlex
import shutil
import sys
from pathlib import Path

import invoke
from invoke.exceptions import Exit

from ops.engine import EngineError
from ops.errors import ExitCode, OpsError


def one_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:1]) + (" …" if len(lines) > 1 else "") if lines else repr(exc)


def guarded(body):
    """Wrap a task body so expected failures become ``Exit(one line, code)``."""

    @functools.wraps(body)
    def run(c, *args, **kwargs):
        try:
            return body(c, *args, **kwargs)
        except OpsError as exc:
            raise Exit(f"Error: {one_line(exc)}", code=int(exc.code)) from None
        except EngineError as exc:
            error = OpsError.from_engine(exc)
            raise Exit(f"Error: {one_line(error)}", code=int(error.code)) from None
        except KeyboardInterrupt:
            raise Exit("Interrupted.", code=int(ExitCode.INTERRUPTED)) from None
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            raise Exit(f"Error: {exc.strerror or exc}{where}", code=int(ExitCode.ERROR)) from None

    return run


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
}


class OpsTask(invoke.Task):
    """An Invoke task whose short flags come from ``SHORT_FLAGS`` only."""

    def __init__(self, *args, **kwargs):
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)

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
    environment's invoke is the one on PATH, else its path (the venv is not active)."""
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


def confirm(question: str, *, yes: bool = False, without_terminal: str | None = None,
            refused: str = "not confirmed: nothing was changed") -> None:
    """The one confirmation every task asks: on a terminal, go on only after `yes`.

    ``yes`` (``--yes``) skips the question. Without a terminal nothing can be asked:
    ``without_terminal`` is the refusal (exit 2, saying to pass ``--yes``), or None when
    the flag that got us here is itself the confirmation (``--skip-backup``)."""
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        if without_terminal is None:
            return
        raise OpsError(without_terminal, ExitCode.USAGE)
    sys.stderr.write(f"{question} Type yes to go on: ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if not typed_yes(answer):
        raise OpsError(refused, ExitCode.ERROR)


def typed_yes(answer: str) -> bool:
    """Only the word the question asks for goes on: `yes` (any case, spaces around it);
    `y`, `ye`, `yes please` or an empty line do not."""
    return answer.strip().lower() == "yes"
