"""The machines' ``python3``: the real interpreter, keeping what ``python3 -`` compiles.

Every remote step of the tool sends ops/engine.py (~3,200 lines) to ``python3 -`` on the
machine, and compiling it is ~30 ms of the ~85 ms of CPU an engine run costs, paid again on
every call of every test. A machine's ``python3`` is therefore this module's ``python3``, a
sh script. For ``python3 - ARGS``, and ``python3 -I -S - ARGS`` (``engine.PYTHON3``: how
ops runs its engine), it execs the real interpreter, under the same flags, with ``BOOT``,
which reads the program from stdin to its end as ``python3 -`` does, takes its code object
from a cache named by the program's SHA-256 and the interpreter's cache tag (compiled and stored the
first time), and runs it as ``python3 -`` runs a program: in module ``__main__`` with
``__file__`` "<stdin>" and ``__cached__`` None, ``sys.argv[0]`` "-", an uncaught exception
printed from the program's first frame with exit status 1, an uncaught KeyboardInterrupt
dying by SIGINT. Anything else execs the real interpreter with the caller's arguments.
Either way the process is the real interpreter (the script execs it: the same pid, killed
as one), named ``python3``, with its own ``pyvenv.cfg`` beside it (no site-packages of the
host's, as records._machine_python_venv gives a machine's). What a real machine
shows differently: the process's command line (``python3 -c BOOT ARGS``).
``FLY_DOUBLE_PYTHON_CACHE=0`` in pytest's environment: the machines run the real python3.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import tempfile
from pathlib import Path

ENABLED = os.environ.get("FLY_DOUBLE_PYTHON_CACHE", "1") != "0"  # read at import, as
# launcher.ENABLED (conftest takes FLY_* out of os.environ before each test)

BOOT = '''import sys
def _program(cache):
    import hashlib, marshal, os
    source = sys.stdin.buffer.read()
    key = hashlib.sha256(source).hexdigest() + "." + sys.implementation.cache_tag
    path = os.path.join(cache, key)
    try:
        with open(path, "rb") as f:
            code = marshal.load(f)
        if type(code) is type(_program.__code__):  # anything else: compiled again
            return code
    except (OSError, EOFError, ValueError, TypeError):
        pass
    code = compile(source, "<stdin>", "exec", dont_inherit=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            marshal.dump(code, f)
        os.replace(tmp, path)
    except OSError:
        pass
    return code
def _run(cache):
    import sys
    main = vars(sys.modules["__main__"])
    try:
        code = _program(cache)
    except SyntaxError as exc:
        exc.__traceback__ = None
        sys.excepthook(type(exc), exc, None)
        sys.exit(1)
    for name in ("sys", "_program", "_run"):
        del main[name]
    main.update(__file__="<stdin>", __cached__=None)
    sys.argv[0] = "-"
    try:
        exec(code, main)
    except SystemExit:
        raise
    except BaseException as exc:
        exc.__traceback__ = exc.__traceback__.tb_next
        sys.excepthook(type(exc), exc, exc.__traceback__)
        if not isinstance(exc, KeyboardInterrupt):
            sys.exit(1)
        import os, signal
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
_run(%r)
'''

_made: list[str | None] = []  # [the script, or None] once made


def command(real: str) -> str | None:
    """The machines' ``python3`` for the real interpreter ``real`` (None: turned off, or
    no private folder to keep it in)."""
    if not ENABLED:
        return None
    if not _made:
        _made.append(_make(real))
    return _made[0]


def _script(folder: Path) -> str:
    """The sh script: ``python3 - ARGS`` and ``python3 -I -S - ARGS`` (how ops runs its engine:
    ``engine.PYTHON3``) run the cached program under the same flags; the rest passes through."""
    interpreter = shlex.quote(str(folder / "real" / "python3"))
    boot = shlex.quote(BOOT % str(folder / "code"))
    return ("#!/bin/sh\n"
            "# the flyctl double's machines' python3: tests/flyctl_double/machine_python.py\n"
            f'[ "${{1-}}" = - ] && {{ shift; exec {interpreter} -c {boot} "$@"; }}\n'
            f'[ "${{1-}}" = -I ] && [ "${{2-}}" = -S ] && [ "${{3-}}" = - ] && '
            f'{{ shift 3; exec {interpreter} -I -S -c {boot} "$@"; }}\n'
            f'exec {interpreter} "$@"\n')


def _make(real: str) -> str | None:
    from .launcher import _cache_dir  # the double's private per-user folder

    base = _cache_dir()
    if base is None:
        return None
    key = hashlib.sha256(f"{_script(Path('/'))}\0{real}".encode()).hexdigest()[:16]
    folder = base / f"machine-python-{key}"  # a new script or python: a new folder
    script = folder / "python3"
    if script.exists():
        return str(script)
    staged = Path(tempfile.mkdtemp(dir=base, prefix=".machine-python-"))
    try:  # four xdist workers may make it at once: each stages its own, one is renamed in
        (staged / "real").mkdir()
        (staged / "real" / "python3").symlink_to(real)
        (staged / "code").mkdir()
        (staged / "pyvenv.cfg").write_text(
            f"home = {os.path.dirname(os.path.realpath(real))}\n"
            "include-system-site-packages = false\n")
        (staged / "python3").write_text(_script(folder))
        (staged / "python3").chmod(0o755)
        with contextlib.suppress(OSError):  # another worker's is there: the same files
            os.rename(staged, folder)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return str(script) if script.exists() else None
