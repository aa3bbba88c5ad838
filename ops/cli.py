"""How every task fails: one line on stderr, a documented exit code, never a traceback."""

from __future__ import annotations

import functools

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
