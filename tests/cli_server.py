"""The CLI runs of the tests as real processes that do not pay Python's start: a fork server.

``helpers.run_invoke`` (and so the fake productions' ``run``, the ``run_invoke`` fixture)
starts ``python -m invoke --search-root REPO ARGS``. Most of such a process's ~150 ms of
CPU is the interpreter's start and the imports (Invoke alone ~100 ms). Here one server per
pytest process (each xdist worker) imports Invoke, ops/ (every flow), Rich, Fabric and
Paramiko once (``tests/zygote.py``, s21-zygote's fork server), and each run is a ``fork`` of
it: a real process with its own pid and process group, the run's argv, environment, working
folder, umask, stdin (/dev/null, or on_terminal's pseudo-terminal) and its own stdout and
stderr (pipes, or that terminal), that runs exactly what
``python -m invoke`` runs (``main``): tasks.py is read afresh by each run, as Invoke reads it.

What the server imported must not carry one run's world into another, or the server's into
a run. Every import-time read of the environment, the folder, the terminal or the clock in
what it preloads (ops/, tasks.py, Invoke, Rich, Fabric, Paramiko; audited with an AST scan
of their module-level code, s21-clizygote's note) is redone by ``_as_a_fresh_process`` in
each child:
- Invoke turns its debug log on at import when ``INVOKE_DEBUG`` is set (invoke/util.py);
- Rich keeps the folder it was imported in (``rich._IMPORT_CWD``);
- ops/health.py builds its URL opener at import, which reads the proxy variables;
- the time zone (``TZ``) is read by the ``time`` module at the start; ``tempfile`` keeps the
  temporary folder (``TMPDIR``) it found first;
- ``sys.path[0]`` is the run's folder for ``python -m``, ``sys.argv`` Invoke's __main__.py;
- exit handlers: the server's own are not the run's, the preloaded modules' are (logging,
  Paramiko's); non-daemon threads are waited for, as an interpreter's exit does.
Rich's consoles, Invoke's config and ops/'s settings are made per run, from the run's
environment, so nothing else needs it. What a process reads only at its start and cannot be
redone (``PYTHON*`` variables, the locale: ``LANG``/``LC_*``) makes ``can_serve`` say no:
such a run is a fresh process. A ``PYTHONPATH`` that only adds a ``sitecustomize`` (the
tests' hooks, tests/hooks/) is honoured in the child (``_site_customize``), unless the
hook sends the run's process a signal (``signals_itself``): that run is a fresh process.
The hash seed is the server's for all its runs (one per worker, still random per suite).

``run_invoke``, ``start_invoke`` and ``on_terminal`` all fork. A fork's pid is the process
that runs the task, so a signal or a kill -9 sent to it reaches the run as it would a fresh
process's, once the task is running. A run stays a fresh ``python -m invoke`` when the test
is about what only a fresh process has (``@pytest.mark.fresh_process``): its start (a signal
before a task has begun, start-up imports, bytecode), or being found by its command line
(a fork's is the server's). Also when ``OPS_TEST_FRESH_CLI=1`` (for anyone who suspects the
server; tests/test_cli_server.py then skips), and whenever the server cannot be started or
reached (no AF_UNIX, a server that died): only slower.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent

# What the server imports once: Invoke's program, everything tasks.py imports, and every
# flow a task imports when it runs (tests/test_startup_imports.py: a fresh process imports
# only what its task needs; a fork of this server has all of them already).
PRELOAD = (
    "invoke", "invoke.main", "ops.commands", "ops.restore", "ops.replica", "ops.replica_checks",
    "ops.deploy", "ops.fly", "ops.runbook", "ops.emergency", "ops.volume_restore", "ops.sample",
    "ops.drill", "ops.undo", "ops.targets.fly", "ops.targets.ssh", "ops.targets.local",
    "ops.remote", "ops.health", "ops.ssh.session", "ops.ssh.transfer", "ops.targets.chosen",
    "rich.console", "rich.progress", "rich.table", "rich._emoji_codes", "pwd",
)
ENTRY = "tests.cli_server:main"

# read only at a process's start, by the interpreter: a run that changes one is a process
START_ONLY_PREFIXES = ("PYTHON", "LC_")
START_ONLY = ("LANG", "LANGUAGE")


def _entries(python_path: str | None) -> list[str]:
    return [entry for entry in (python_path or "").split(os.pathsep) if entry]


# In the server: the PYTHONPATH it started with, and its interpreter path after those
# entries, without the folders the server added (this one's, tests/): the standard library
# and the venv's site-packages, what every run's path ends with.
_SERVER_PYTHONPATH = _entries(os.environ.get("PYTHONPATH"))
_SITE_PATH = [p for p in sys.path if p and Path(p).resolve() not in (REPO_ROOT, TESTS_DIR)]
_BASE_PATH = _SITE_PATH[len(_SERVER_PYTHONPATH):]


# ------------------------------------------------------------------ in the child (the run)

def main(argv: list[str]) -> int:
    """``python -m invoke ARGV[1:]`` in a fork of the server (ARGV[0]: the python's name,
    the worker's name in ps as a fresh process's): its exit code. The interpreter's
    end (SystemExit's code, an uncaught exception's traceback and 1, Ctrl-C's death by
    SIGINT, threads joined, exit handlers run, streams flushed) is tests/zygote.py's."""
    import runpy

    _as_a_fresh_process(argv[1:])
    runpy.run_module("invoke", run_name="__main__", alter_sys=True)  # what -m runs
    return 0


def _as_a_fresh_process(argv: list[str]) -> None:
    """Redo, for this run's environment and folder, what the preloaded modules read when
    the server imported them (the module docstring lists each)."""
    import atexit
    import logging
    import tempfile
    import time
    import urllib.request

    import invoke
    import invoke.util
    import rich

    sys.argv = [str(Path(invoke.__file__).with_name("__main__.py")), *argv]  # runpy sets it
    sys.orig_argv = [sys.executable, "-m", "invoke", *argv]
    time.tzset()
    tempfile.tempdir = None
    root = logging.getLogger()
    if not os.environ.get("INVOKE_DEBUG"):  # the server's start had it: not this run
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
    elif not root.handlers:
        invoke.util.enable_logging()
    rich._IMPORT_CWD = os.path.abspath(os.getcwd())
    health = sys.modules.get("ops.health")
    if health is not None:
        health._OPENER = urllib.request.build_opener(health._SameHost)
    atexit._clear()  # the server's exit handlers are not this run's; the modules' are
    _register_module_exit_handlers()
    python_path = _entries(os.environ.get("PYTHONPATH"))
    sys.path[:] = [*python_path, *_BASE_PATH]
    if python_path != _SERVER_PYTHONPATH:
        import site

        site.removeduppaths()  # PYTHONPATH's entries made absolute, as site does
        _site_customize()  # last, as site runs it in a process already set up
    sys.path.insert(0, os.getcwd())  # `python -m`: the run's folder first, after site


def _site_customize() -> None:
    """The ``sitecustomize`` a run's own PYTHONPATH brings (tests/hooks/: a hook that wraps
    an ops function), imported as site imports it at a process's start. The server has
    imported ops/ already, so a module that bound a wrapped function by name (``from
    ops.engine import f``) would keep the real one where a fresh process gets the wrapper:
    such a run stops with an error that says so, rather than run unhooked."""
    ops = {name: module for name, module in list(sys.modules.items())
           if name == "ops" or name.startswith("ops.")}
    before = {name: dict(vars(module)) for name, module in ops.items()}
    try:
        import sitecustomize  # noqa: F401
    except ImportError:
        return
    replaced = {id(old): f"{name}.{key}" for name, values in before.items()
                for key, old in values.items() if vars(ops[name]).get(key) is not old}
    stale = [f"{name}.{key} is still {replaced[id(value)]}'s unhooked one"
             for name, module in ops.items() for key, value in vars(module).items()
             if id(value) in replaced and f"{name}.{key}" != replaced[id(value)]]
    if stale:
        raise SystemExit(f"Error: the CLI server cannot hook this run ({'; '.join(stale)}): "
                         "mark the test @pytest.mark.fresh_process")


def _register_module_exit_handlers() -> None:
    """The exit handlers the preloaded modules registered at their import, in that order."""
    import atexit

    if "logging" in sys.modules:
        atexit.register(sys.modules["logging"].shutdown)
    transport = sys.modules.get("paramiko.transport")
    if transport is not None:
        atexit.register(transport._join_lingering_threads)


# ------------------------------------------------------------------ in the pytest process

class _Server:
    """The one server of this pytest process, started on its first use."""

    def __init__(self):
        import threading

        self.server = None
        self.env: dict[str, str] = {}  # the environment it started with
        self.broken: str | None = None  # why it cannot serve (then every run is a process)
        self._starting = threading.Lock()  # run_parallel's threads: one server

    def socket_path(self) -> str | None:
        with self._starting:
            if self.server is None and not self.broken:
                self._start()
            return None if self.broken else self.server.socket_path

    def _start(self) -> None:
        import atexit

        try:
            from tests import zygote

            server = zygote.Server("invoke", PRELOAD, ENTRY, python=sys.executable,
                                   sys_path=(str(REPO_ROOT),), python_args=())
            self.env = dict(os.environ)
            server.start(env=self.env)
        except Exception as exc:  # no AF_UNIX, no fork, a preload that failed: processes
            self.broken = f"{type(exc).__name__}: {exc}"
            return
        self.server = server
        atexit.register(self.stop)  # conftest's session end stops it first

    def failed(self, exc: BaseException) -> None:
        """The server could not run a run: stop using it (the run is made as a process)."""
        self.broken = f"{type(exc).__name__}: {exc}"
        self.stop()

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            import contextlib

            with contextlib.suppress(Exception):  # at exit, a server already gone
                server.stop()


SERVER = _Server()


def wanted() -> bool:
    """False when ``OPS_TEST_FRESH_CLI`` asks for a fresh process for every run."""
    return os.environ.get("OPS_TEST_FRESH_CLI", "").lower() not in ("1", "true", "yes")


def can_serve(env: dict[str, str], start_env: dict[str, str]) -> bool:
    """A fork of a server started with ``start_env`` runs as a process started with ``env``
    would: they agree on every variable only the interpreter's start reads, but for a
    PYTHONPATH whose new folders hold nothing importable but a ``sitecustomize`` (the
    child imports it, ``_site_customize``; the server must have imported none)."""
    def start_only(items):
        return {key: value for key, value in items if key != "PYTHONPATH"
                and (key.startswith(START_ONLY_PREFIXES) or key in START_ONLY)}

    if start_only(env.items()) != start_only(start_env.items()) or signals_itself(env):
        return False
    new = [entry for entry in _entries(env.get("PYTHONPATH"))
           if entry not in _entries(start_env.get("PYTHONPATH"))]
    return not new or ("sitecustomize" not in sys.modules and all(map(_only_a_hook, new)))


def signals_itself(env: dict[str, str]) -> bool:
    """The run's hook (tests/hooks/, ``OPS_TEST_HOOK``) sends its own process a signal at an
    exact point: a test of signals, which keeps a fresh process as ``fresh_process`` does."""
    import json

    try:
        specs = json.loads(env.get("OPS_TEST_HOOK") or "[]")
    except ValueError:
        return True
    specs = specs if isinstance(specs, list) else [specs]
    return any(not isinstance(spec, dict) or "signal" in spec for spec in specs)


def _only_a_hook(folder: str) -> bool:
    """The folder holds no module or package but ``sitecustomize.py``."""
    try:
        names = os.listdir(folder)
    except OSError:
        return True  # nothing there to import
    return all(name in ("sitecustomize.py", "__pycache__") or not (
        name.endswith((".py", ".pyc", ".so", ".pth")) or os.path.isdir(os.path.join(folder, name)))
        for name in names)


def spawn(argv: list[str], *, env: dict[str, str], cwd, stdout: int, stderr: int,
          stdin: int | None = None):
    """A run of ``python -m invoke ARGV`` forked from the server (stdin: /dev/null unless
    given), or None when the server cannot make it (the caller then starts the process)."""
    if not wanted():
        return None
    path = SERVER.socket_path()
    if path is None or not can_serve(env, SERVER.env):
        return None
    from tests import zygote

    with open(os.devnull, "rb") as devnull:
        try:
            return zygote.spawn(path, [os.path.basename(sys.executable), *argv], env=env,
                                cwd=str(cwd), stdin=devnull.fileno() if stdin is None else stdin,
                                stdout=stdout, stderr=stderr)
        except zygote.ZygoteUnavailable as exc:  # nothing ran: this run is a process, and
            if not SERVER.server.running:  # every later one too if the server died
                SERVER.failed(exc)
            return None
