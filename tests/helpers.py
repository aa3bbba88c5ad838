"""Real parts for the tests: SQLite files, a writer process, lock holders and the real CLI.

Nothing here mocks SQLite. Databases are real files in WAL mode, the "app" is a separate
process committing one row per transaction (``python -m ops.sample write``), and the CLI is
run as a user runs it: ``python -m invoke`` in a subprocess, from a scratch directory (by
default a fork of a server that has imported it, tests/cli_server.py: see ``run_invoke``).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import io
import json
import locale
import os
import re
import select
import shlex
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ops import engine, node, remote
from ops.sample import WriterProcess
from ops.ssh.connection import Options
from ops.ssh.session import connect
from tests.flyctl_double.state import DEFAULT_TOKEN, FlyWorld

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BACKUP_RE = re.compile(r"^steps-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.db$")
ANSI = "\x1b["
SQLITE_HEADER = b"SQLite format 3\x00"

# ---------------------------------------------------------------- the real CLI

_HOME: list[str] = []


def _empty_home() -> str:
    """One empty HOME for every CLI run, so a developer's ~/.invoke.yaml never leaks in."""
    if not _HOME:
        home = tempfile.mkdtemp(prefix="ops-tests-home-")
        atexit.register(shutil.rmtree, home, True)
        _HOME.append(home)
    return _HOME[0]


def clean_env(extra: dict[str, str | None] | None = None) -> dict[str, str]:
    """os.environ minus INVOKE_*/FLY_*, with NO_COLOR and a wide terminal; ``None`` unsets."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("INVOKE_", "FLY_")) and key not in ("FORCE_COLOR", "TTY_COMPATIBLE")
    }
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "HOME": _empty_home()})
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    # as a person with the venv active: a suggested `invoke TASK` is spelled bare
    # (cli.pasteable); appended, so nothing else the PATH finds changes
    # (tests/test_suggested_commands.py runs without it)
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join(p for p in (env.get("PATH"), venv_bin) if p)
    return env


@dataclass(repr=False)
class InvokeResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("Error:")]

    def __str__(self) -> str:  # shown by pytest when an assertion on the result fails
        return (
            f"invoke {' '.join(self.args)} -> {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )

    __repr__ = __str__  # pytest shows an assert's message object by its repr


def project_root(cwd, env: dict | None) -> dict:
    """Relative config paths start at the project root (the repository here): a test's
    scratch folder stands in for it unless the test sets INVOKE_PROJECT_ROOT itself."""
    return {"INVOKE_PROJECT_ROOT": str(cwd), **(env or {})}


class _HereAfterFirst:
    """``@pytest.mark.cli_in_process``: the test's first ``run_invoke`` (and so ``Site.run``,
    ``Prod.run``, the ``run_invoke`` fixture) is a real process, its later ones, made one
    after another, run in this process (``run_here``): ``run_mixed`` for a test's sequence
    of CLI runs, which pay ~0.3 s of CPU each for a process start that is not their point.
    The first keeps the process path honest: it is a process, a fork of this worker's CLI
    server (tests/cli_server.py; tests/test_cli_server.py holds forks to fresh
    ``python -m invoke`` runs); the rest must give the same exit codes and output, since
    the test's assertions are unchanged. Runs made in other threads (``run_parallel``) and
    ``start_invoke`` stay processes. Set per test by conftest.
    ``cli_in_process(per="module")``: only the module's first run in this xdist worker is a
    process, for files whose tests each make one run whose point is the task's answer
    (refusals, plans, what a machine-side script does), not the process."""

    def __init__(self):
        self.active = False
        self.ran = False
        self.modules: set[str] = set()  # ``per="module"``: modules whose first run was made

    def take(self) -> bool:
        """True when this run goes in-process (and records that a run was made)."""
        import threading

        if not self.active or threading.current_thread() is not threading.main_thread():
            return False
        here, self.ran = self.ran, True
        return here


HERE_AFTER_FIRST = _HereAfterFirst()


class _FreshProcess:
    """``@pytest.mark.fresh_process``: every CLI run the test (or the marked module) makes
    as a process (``run_invoke``, ``start_invoke``, ``on_terminal``) is a fresh ``python -m
    invoke``, because what only a fresh process has is the test's point (its start: a signal
    before a task has begun, its imports, its bytecode; its command line); unmarked, such a
    run is a fork of this worker's CLI server (tests/cli_server.py), a real process without
    the start. (A ``cli_in_process`` test's later runs are not processes at all.) Set per
    test by conftest."""

    active = False


FRESH_PROCESS = _FreshProcess()


def run_invoke(
    *args: str,
    cwd: str | os.PathLike,
    env: dict[str, str | None] | None = None,
    timeout: float = 60,
) -> InvokeResult:
    """``python -m invoke --search-root REPO ARGS`` from ``cwd``, as a user would run it.
    In a test marked ``cli_in_process`` (see ``HERE_AFTER_FIRST``) only its first run is
    a process. The process is a fork of this worker's CLI server (tests/cli_server.py: the
    same run without Python's start), or a fresh ``python -m invoke`` when the test is
    marked ``fresh_process``, when the run's
    environment changes what only an interpreter's start reads (``PYTHON*``, ``LC_*``; a
    ``PYTHONPATH`` adding only a tests/hooks/ sitecustomize is fine, unless the hook
    signals the run), when ``OPS_TEST_FRESH_CLI=1``, or when the server cannot be used."""
    fresh = FRESH_PROCESS.active
    if HERE_AFTER_FIRST.take():
        return run_here(*args, cwd=cwd, env=env, timeout=timeout)
    argv = ["--search-root", str(REPO_ROOT), *args]
    env = clean_env(project_root(cwd, env))
    done = None if fresh else _forked(argv, cwd=cwd, env=env, timeout=timeout)
    if done is None:
        proc = subprocess.run(
            [PYTHON, "-m", "invoke", *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        done = proc.returncode, proc.stdout, proc.stderr
    return InvokeResult(list(args), *done)


def _forked(argv: list[str], *, cwd, env: dict[str, str], timeout: float):
    """``python -m invoke ARGV`` as a fork of this worker's CLI server (tests/cli_server.py):
    (exit code, stdout, stderr) as ``subprocess.run(..., text=True)`` gives them, or None
    when the server cannot make the run. Past ``timeout`` the run's process group is
    killed and ``subprocess.TimeoutExpired`` raised, as ``subprocess.run`` does."""
    spawned = _spawned(argv, cwd=cwd, env=env)
    if spawned is None:
        return None
    child, out_r, err_r = spawned
    deadline = time.monotonic() + timeout
    try:
        out, err = _read_all((out_r, err_r), deadline)
        code = None if out is None else child.wait(max(0.0, deadline - time.monotonic()))
    except (subprocess.TimeoutExpired, TimeoutError):
        code = None
    finally:
        os.close(out_r)
        os.close(err_r)
    if code is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise subprocess.TimeoutExpired([PYTHON, "-m", "invoke", *argv], timeout)
    encoding = "utf-8" if sys.flags.utf8_mode else locale.getencoding()
    return code, *(data.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")
                   for data in (out, err))


def _read_all(fds: tuple[int, ...], deadline: float) -> tuple[bytes | None, ...]:
    """Everything written to each pipe until all are closed, or Nones past the deadline."""
    chunks: dict[int, list[bytes]] = {fd: [] for fd in fds}
    poller = select.poll()  # not select(): a worker with 1024 descriptors open is fine
    for fd in fds:
        poller.register(fd, select.POLLIN)
    left = len(fds)
    while left:
        wait = deadline - time.monotonic()
        ready = poller.poll(wait * 1000) if wait > 0 else []
        if not ready:
            return tuple(None for _ in fds)
        for fd, _ in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                chunks[fd].append(chunk)
            else:
                poller.unregister(fd)
                left -= 1
    return tuple(b"".join(chunks[fd]) for fd in fds)


class HereTimeout(BaseException):
    """An in-process run outlived its ``timeout`` (a task would have hung the worker)."""


def _here_timed_out(signum, frame):
    raise HereTimeout()


def run_here(*args: str, cwd: str | os.PathLike, env: dict[str, str | None] | None = None,
             search: bool = False, timeout: float = 60) -> InvokeResult:
    """The same run as ``run_invoke`` by a fresh Invoke ``Program`` in this process: the
    environment, working folder, stdout and stderr are swapped in for the run and put back.
    For the matrices of usage, config and help cases (a process costs ~0.5 s each); what
    needs a real process (signals, terminals, start-up, concurrency) uses ``run_invoke``.
    Not thread-safe: one run at a time per process (each xdist worker is its own).
    ``search``: find tasks.py by searching up from ``cwd``, as a user's `invoke` does (no
    --search-root, no project root set). ``timeout``: like ``run_invoke``'s, the run fails
    the test past it (SIGALRM) instead of hanging the worker."""
    import invoke

    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv[:]
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM)  # a task may
    # set its own
    handlers = [signal.getsignal(sig) for sig in signals]
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(clean_env(env if search else project_root(cwd, env)))
    os.chdir(cwd)
    where = [] if search else ["--search-root", str(REPO_ROOT)]
    # what `python -m invoke` leaves in sys.argv: tasks read the words after `--` there
    sys.argv = [str(Path(invoke.__file__).with_name("__main__.py")), *where, *args]
    try:
        program = invoke.Program(name="Invoke", binary="inv[oke]",
                                 binary_names=["invoke", "inv"], version=invoke.__version__)
        signal.signal(signal.SIGALRM, _here_timed_out)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                program.run(["invoke", *where, *args])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except HereTimeout:
        raise AssertionError(f"invoke {' '.join(args)} still ran after {timeout}s in-process\n"
                             f"--- stdout\n{out.getvalue()}--- stderr\n{err.getvalue()}"
                             ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in zip(signals, handlers, strict=True):
            signal.signal(sig, handler)
    return InvokeResult(list(args), code, out.getvalue(), err.getvalue())


def run_mixed(calls: Iterable[Callable[[], InvokeResult]]) -> list[InvokeResult]:
    """``run_parallel``'s cases, ``functools.partial``s of ``run_invoke``, of the conftest
    fixture's or of a fake production's ``run`` (``Prod.later``): the first by a real
    process, the rest in this process (``run_here``, the fixture's or production's
    ``here``), one after another. For matrices whose point is the task's answer, not the
    process: the first keeps the process honest, the rest skip its ~0.3 s of CPU."""
    results = []
    for n, call in enumerate(calls):
        if n:
            here = (run_here if call.func is run_invoke
                    else getattr(call.func, "here", None) or call.func.__self__.here)
            call = functools.partial(here, *call.args, **call.keywords)
        results.append(call())
    return results


def run_each(calls: Iterable[Callable[[], object]]) -> list:
    """``run_parallel``'s answer, one call after another (for ``run_here``)."""
    return [call() for call in calls]


def on_terminal(args: list[str], *, cwd, env: dict | None = None, answer: str | None = None,
                streams: tuple[str, ...] = ("stdin", "stdout", "stderr"),
                columns: int | None = None, timeout: float = 60,
                then: tuple[bytes, Callable[[], object]] | None = None) -> tuple[int, str]:
    """The real CLI with a pseudo-terminal as ``streams`` (the others go nowhere): the exit
    code and what the terminal showed. ``answer`` is typed once "Type yes" appears;
    ``columns`` sizes the terminal (and drops the tests' wide COLUMNS); ``then``: (text,
    action) runs the action once the terminal has shown that text. An ``answer`` of
    ``"\x04"`` is Ctrl-D (end of input), typed alone."""
    leader, follower = os.openpty()
    extra = project_root(cwd, env)
    if columns:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        extra |= {"COLUMNS": None, "TTY_INTERACTIVE": "0"}
    argv, env = ["--search-root", str(REPO_ROOT), *args], clean_env(extra)
    with open(os.devnull, "r+b") as devnull:
        wiring = {name: follower if name in streams else devnull.fileno()
                  for name in ("stdin", "stdout", "stderr")}
        proc = None if FRESH_PROCESS.active else _terminal_fork(argv, cwd=cwd, env=env, **wiring)
        if proc is None:
            proc = subprocess.Popen([PYTHON, "-m", "invoke", *argv], cwd=cwd, env=env,
                                    close_fds=True, **wiring)
    os.close(follower)
    shown, answered = b"", answer is None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        if then and then[0] in shown:
            then[1]()
            then = None
        if not answered and b"Type yes" in shown:
            os.write(leader, answer.encode() + (b"" if answer == "\x04" else b"\n"))
            answered = True
        if not ready and proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(leader)
    return proc.returncode, shown.decode(errors="replace").replace("\r\n", "\n")


def _terminal_fork(argv: list[str], *, cwd, env: dict[str, str], stdin: int, stdout: int,
                   stderr: int):
    """``on_terminal``'s run as a fork of the CLI server (the terminal's fds are its own, as
    a fresh process's: neither has it as its controlling terminal), or None."""
    from tests import cli_server

    return cli_server.spawn(argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr)


def run_parallel(calls: Iterable[Callable[[], InvokeResult]]) -> list[InvokeResult]:
    """Run independent CLI calls at once (each costs ~0.4 s of interpreter start-up)."""
    calls = list(calls)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(calls)))) as pool:
        return list(pool.map(lambda call: call(), calls))


def assert_one_line_error(
    result: InvokeResult, code: int, *, contains: str = "", strict: bool = True
) -> str:
    """A failure as users must see it: the code, one ``Error:`` line last, no traceback.

    ``strict``: besides the ``Error:`` line, stderr holds at most the failed step's line.
    """
    assert result.returncode == code, str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert ANSI not in result.stderr, str(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(result.error_lines) == 1 and lines[-1].startswith("Error:"), str(result)
    if strict:
        others = lines[:-1]
        assert len(others) <= 1 and all(line.startswith("✗ ") for line in others), str(result)
    line = result.error_lines[0]
    assert contains in line, str(result)
    return line


# ---------------------------------------------------------------- databases


def flags_of(task: str) -> dict[str, str]:
    """The task's flags as typed: ``{"-n": "dry-run", "--dry-run": "dry-run", ...}``."""
    from ops.commands import namespace

    found = {}
    for arg in namespace()[task].get_arguments():
        for name in arg.names:
            found[("-" if len(name) == 1 else "--") + name] = arg.names[0]
    return found


_MADE: dict[tuple[int, int], Path] = {}  # make_wal_db's first build of each shape


def make_wal_db(path: str | os.PathLike, *, users: int = 200, steps: int = 3000) -> Path:
    """A small Step Challenge-shaped database in WAL mode, checkpointed and closed.

    ``steps`` has the app's ``updated_at`` column: the ``ops.sample`` writer bumps it.
    Built once per shape in this process and copied: the same bytes a build writes
    (closed, nothing in a -wal), without its ~11 ms of CPU and ~80 ms of fsyncs each time.
    Where a file (or a -wal, -shm) is already at ``path``, it is built there as before.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if any(os.path.lexists(f"{path}{end}") for end in ("", "-wal", "-shm")):
        return _build_wal_db(path, users, steps)
    made = _MADE.get((users, steps))
    if made is None or not made.is_file():  # (gone: someone cleaned /tmp)
        folder = tempfile.mkdtemp(prefix="ops-test-db-")
        atexit.register(_remove_made, folder, os.getpid())
        made = _MADE[users, steps] = _build_wal_db(Path(folder) / "steps.db", users, steps)
    shutil.copyfile(made, path)
    return path


def _remove_made(folder: str, pid: int) -> None:
    if os.getpid() == pid:  # never from a forked child's exit: its parent still copies it
        shutil.rmtree(folder, ignore_errors=True)


def _build_wal_db(path: Path, users: int, steps: int) -> Path:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        conn.executescript(
            """
            CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,
                                name TEXT NOT NULL);
            CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
            CREATE TABLE steps (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,
                                date TEXT NOT NULL, count INTEGER NOT NULL,
                                updated_at TEXT NOT NULL);
            CREATE INDEX steps_by_user ON steps (user_id, date);
            """
        )
        conn.executemany(
            "INSERT INTO users (id, email, name) VALUES (?, ?, ?)",
            [(i, f"user{i}@example.com", f"User {i}") for i in range(1, users + 1)],
        )
        conn.executemany(
            "INSERT INTO teams (name) VALUES (?)", [(f"Team {i}",) for i in range(1, 21)]
        )
        conn.executemany(
            "INSERT INTO steps (user_id, date, count, updated_at) VALUES (?, ?, ?, ?)",
            [
                (i % users + 1, day, (i * 7919) % 20000, f"{day} 21:00:00")
                for i in range(steps)
                for day in [f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}"]
            ],
        )
        conn.commit()
    finally:
        conn.close()
    return path


def make_blob_db(path: str | os.PathLike, mb: int) -> Path:
    """A WAL database of about ``mb`` MiB, fast to build (zero blobs), for slow copies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
        conn.executemany("INSERT INTO blobs (data) VALUES (zeroblob(?))", [(1 << 20,)] * mb)
        conn.commit()
    finally:
        conn.close()
    return path


def read_only(path: str | os.PathLike) -> sqlite3.Connection:
    """Open a finished file without ever writing to it or leaving -wal/-shm beside it."""
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)


def rows(path: str | os.PathLike, sql: str, *params) -> list[tuple]:
    conn = read_only(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def live_rows(path: str | os.PathLike, sql: str, *params) -> list[tuple]:
    """Read a live WAL database the normal way (sees the latest commits)."""
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def ro_rows(path: str | os.PathLike, sql: str, *params) -> list[tuple]:
    """Read a live WAL database read-only: sees the -wal, never checkpoints or deletes it."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def dump(path: str | os.PathLike) -> list[str]:
    """Every schema and data statement, to compare two databases' content exactly."""
    conn = read_only(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def old_name(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("steps-%Y-%m-%dT%H-%M-%S.db")


def old_script_backup(
    directory: str | os.PathLike, when: dt.datetime, source: str | os.PathLike | None = None
) -> Path:
    """A backup as the old npm script left it: a sound SQLite file, no sidecars."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / old_name(when)
    dst = sqlite3.connect(path)
    try:
        if source is not None:
            src = read_only(source)
            try:
                src.backup(dst)
            finally:
                src.close()
        else:
            dst.execute("CREATE TABLE t (x)")
            dst.execute("INSERT INTO t VALUES (?)", (when.isoformat(),))
            dst.commit()
    finally:
        dst.close()
    return path


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(directory: str | os.PathLike, ignore=(".backup.lock",)) -> dict[str, str]:
    """Every file in a folder with its SHA-256: compare before and after to prove no change.

    The lock file is the tool's own bookkeeping (who holds it, since when) and is ignored.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    return {
        entry.name: sha256(entry)
        for entry in sorted(directory.iterdir())
        if entry.is_file() and entry.name not in ignore
    }


def backup_files(root: str | os.PathLike) -> list[Path]:
    """Anything under ``root`` that looks like a backup or its sidecars."""
    return sorted(
        path
        for path in Path(root).rglob("steps-*")
        if BACKUP_RE.match(path.name) or BACKUP_RE.match(path.name.rsplit(".", 1)[0])
    )


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- other processes


def python(script: str, *args: str) -> subprocess.Popen:
    """A separate Python process running ``script`` with the repository importable."""
    return subprocess.Popen(
        [PYTHON, "-c", script, *map(str, args)],
        cwd=REPO_ROOT,
        env=clean_env({"PYTHONPATH": str(REPO_ROOT)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Writer(WriterProcess):
    """The app stand-in (``ops.sample.WriterProcess``: one row per commit into writer_log),
    run in this suite's clean environment, its output kept for a failure's message."""

    def __init__(self, db: Path, workdir: Path, interval: float = 0.005):
        super().__init__(db, workdir, interval=interval, duration=60, python=PYTHON,
                         env=clean_env(), output=subprocess.PIPE)

    def max_id(self) -> int:
        return live_rows(self.db, "SELECT coalesce(max(id), 0) FROM writer_log")[0][0]


def lock_held_elsewhere(folder: Path, workdir: Path):
    """Another process holds the backup lock on ``folder``; yields (pid, release)."""
    folder.mkdir(parents=True, exist_ok=True)
    from ops.engine import LOCK_NAME

    return file_lock_held(folder / LOCK_NAME, workdir)


# ---------------------------------------------------------------- a CLI run in the background


@dataclass
class Background:
    """A CLI run in a subprocess whose stderr lines can be waited for while it runs."""

    proc: subprocess.Popen
    args: list[str]
    stderr_lines: list[str] = field(default_factory=list)
    stdout: str = ""
    _reader: object = None

    def wait_for_stderr(self, text: str, timeout: float = 20.0) -> str:
        """The first stderr line containing ``text`` (fails if the run ends without it)."""

        def seen():
            found = next((line for line in list(self.stderr_lines) if text in line), None)
            if found is None and self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"run ended without printing {text!r}: {self.stderr_lines}")
            return found

        return wait_for(seen, timeout, what=f"stderr line with {text!r}")

    def finish(self, timeout: float = 60) -> InvokeResult:
        try:
            self.stdout = self.proc.stdout.read() if self.proc.stdout else ""
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(timeout=10)
        return InvokeResult(
            self.args, self.proc.returncode, self.stdout, "".join(self.stderr_lines)
        )


class _ForkedRun:
    """A run forked from this worker's CLI server (tests/cli_server.py) with the face of the
    ``subprocess.Popen(text=True)`` that ``Background`` uses: its pid (the process that runs
    the task, so a signal to it is a signal to the run), text stdout and stderr, poll, wait,
    send_signal and kill, and the return code (negative for a signal, as Popen's)."""

    def __init__(self, child, stdout: int, stderr: int) -> None:
        self._child = child
        self.pid, self.args = child.pid, child.args
        encoding = "utf-8" if sys.flags.utf8_mode else locale.getencoding()
        self.stdout = open(stdout, encoding=encoding)  # noqa: SIM115 - Popen's own pipes too
        self.stderr = open(stderr, encoding=encoding)  # noqa: SIM115

    @property
    def returncode(self) -> int | None:
        return self._child.returncode

    def poll(self) -> int | None:
        return self._child.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self._child.wait(timeout)

    def send_signal(self, sig: int) -> None:
        self._child.send_signal(sig)

    def kill(self) -> None:
        self._child.kill()


def _spawned(argv: list[str], *, cwd, env: dict[str, str]):
    """``python -m invoke ARGV`` started as a fork of the CLI server, with its stdout and
    stderr as the read ends of two pipes: (child, stdout, stderr), or None when the server
    cannot make the run (the caller starts a fresh process)."""
    from tests import cli_server

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        child = cli_server.spawn(argv, env=env, cwd=cwd, stdout=out_w, stderr=err_w)
    finally:
        os.close(out_w)
        os.close(err_w)
    if child is None:
        os.close(out_r)
        os.close(err_r)
        return None
    return child, out_r, err_r


def start_invoke(
    *args: str, cwd: str | os.PathLike, env: dict[str, str | None] | None = None
) -> Background:
    """``run_invoke`` without waiting: stdout is read at ``finish``, stderr line by line.
    The process is a fork of the CLI server, as ``run_invoke``'s, or a fresh
    ``python -m invoke`` in a ``fresh_process`` test or when the server cannot make it.
    To signal the run at a point of its task, wait for that point first (a line on stderr:
    ``wait_for_stderr``, or a file it makes): a fork takes ~10-20 ms to reach its task's
    signal handlers, a fresh process ~0.3 s, and a small task may be over before either."""
    import threading

    argv = ["--search-root", str(REPO_ROOT), *args]
    env = clean_env(project_root(cwd, env))
    spawned = None if FRESH_PROCESS.active else _spawned(argv, cwd=cwd, env=env)
    proc = _ForkedRun(*spawned) if spawned else None
    if proc is None:
        proc = subprocess.Popen(
            [PYTHON, "-m", "invoke", *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    run = Background(proc, list(args))

    def pump():
        for line in proc.stderr:
            run.stderr_lines.append(line)

    run._reader = threading.Thread(target=pump, daemon=True)
    run._reader.start()
    return run


FILE_LOCK_HOLDER = """
import os, sys, time
from pathlib import Path
from ops import engine
path, ready, release = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
parent = os.getppid()
with engine.file_lock(path, 0, "the test's holder"):
    ready.write_text(str(os.getpid()))
    while not release.exists() and os.getppid() == parent:  # never let go on a clock
        time.sleep(0.02)
"""  # (it let go after 30 s: a run waiting 60 s then went on, and a test signalling it
#    "while it waits" hit whatever step it had reached; its test process gone, it ends)


@contextlib.contextmanager
def file_lock_held(path: Path, workdir: Path):
    """Another process holds ``engine.file_lock(path)`` (e.g. a deploy lock); yields
    (pid, release): touch ``release`` to let it go (it is let go at the end anyway)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    ready, release = workdir / "file-lock.ready", workdir / "file-lock.release"
    proc = python(FILE_LOCK_HOLDER, str(path), str(ready), str(release))
    try:
        wait_for(lambda: ready.exists() or proc.poll() is not None, what="the lock holder")
        assert proc.poll() is None, proc.communicate()
        yield proc.pid, release
    finally:
        release.touch()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def break_an_index(db: Path) -> None:
    """A row the index does not hold: quick_check passes, integrity_check fails (it alone
    compares indexes with their tables)."""
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE probe(x)")
    conn.execute("CREATE INDEX probe_x ON probe(x)")
    conn.executemany("INSERT INTO probe VALUES (?)", [(i,) for i in range(50)])
    conn.commit()
    sql, root = conn.execute(
        "SELECT sql, rootpage FROM sqlite_master WHERE name = 'probe_x'").fetchone()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("DELETE FROM sqlite_master WHERE name = 'probe_x'")
    conn.commit()
    conn.close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO probe VALUES (1000)")  # the index does not know this row
    conn.commit()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("INSERT INTO sqlite_master VALUES ('index', 'probe_x', 'probe', ?, ?)",
                 (root, sql))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    conn.close()


# ---------------------------------------------------------------- moved from test modules


def content(path: Path) -> str:
    return engine.describe_file(path, live=True)[1]


def change(db: Path) -> None:
    conn = sqlite3.connect(db, timeout=10)
    conn.executemany("INSERT INTO teams (name) VALUES (?)", [(f"later {i}",) for i in range(30)])
    conn.execute("DELETE FROM steps WHERE id % 5 = 0")
    conn.commit()
    conn.close()


FAST = Options(connect_timeout=5, timeout=30)


def session_to(server, port=None, options=FAST, user=True):
    who = f"{server.user}@" if user else ""
    return connect(f"{who}127.0.0.1:{port or server.port}", options)


def backups_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("steps-*.db")) if folder.exists() else []


BASE_TOOLS = ["sh", "ls", "cat", "rm", "mv", "ln", "mkdir", "date", "sleep", "head", "wc",
              "sed", "sha256sum", "printf", "echo", "test", "[", "cut", "tr", "mktemp", "df",
              "tail", "flock"]


def machine_path(tmp_path: Path, *, python: bool, sqlite: bool) -> str:
    bin_dir = tmp_path / ("bin-" + ("p" if python else "") + ("s" if sqlite else ""))
    bin_dir.mkdir(exist_ok=True)
    tools = list(BASE_TOOLS)
    if sqlite:
        tools.append("sqlite3")
    for tool in tools:
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    if python and not (bin_dir / "python3").exists():
        (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))
    return str(bin_dir)


def run_remote(script: str, path: str, *, engine_source: bool = False) -> remote.RemoteOutput:
    """As a session sends it: the engines on stdin (engine.py, then engine.js: ops.node)."""
    stdin = node.engine_stdin().decode() if engine_source else ""
    done = subprocess.run(shlex.split(remote.wrap(script)), input=stdin, capture_output=True,
                          text=True, env={"PATH": path, "LANG": "C.UTF-8"})
    assert done.returncode == 0, done.stderr
    return remote.parse_output(done.stdout)


def fly_run(world: FlyWorld, *args: str, cwd: Path, token: str | None = DEFAULT_TOKEN,
        env: dict[str, str | None] | None = None, input: str | bytes | None = None,
        binary: str = "fly", text: bool = True, timeout: float = 20):
    full = world.subprocess_env(token)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run(
        [binary, *args], cwd=cwd, env=full, capture_output=True, text=text, timeout=timeout,
        input=input, stdin=None if input is not None else subprocess.DEVNULL,
    )


# ---------------------------------------------------------------- in-process and project runs


def cli(capsys, *argv: str, config_class=None) -> InvokeResult:
    """``invoke ARGV`` run by a fresh Invoke Program in this process (output by ``capsys``)."""
    import invoke

    program = invoke.Program(name="Invoke", binary="inv[oke]", binary_names=["invoke", "inv"],
                      version=invoke.__version__, config_class=config_class)
    interrupt = signal.getsignal(signal.SIGINT)  # tasks.py sets its own until a task runs
    try:
        program.run(["invoke", "--search-root", str(REPO_ROOT), *argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        signal.signal(signal.SIGINT, interrupt)
    out, err = capsys.readouterr()
    return InvokeResult(list(argv), code, out, err)


def cli_with_system_config(capsys, etc: Path, *argv: str) -> InvokeResult:
    """``cli`` with Invoke's system-wide config read from ``etc`` instead of /etc."""
    import invoke

    class Config(invoke.Config):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("system_prefix", f"{etc}/")
            super().__init__(*args, **kwargs)

    return cli(capsys, *argv, config_class=Config)


def make_project(root: Path) -> Path:
    """A checkout of the tool's tasks.py in ``root``, so `invoke` finds it by searching up
    from the current folder, as it does for a user (no --search-root, no project.root)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "tasks.py", root / "tasks.py")
    return root


def run_in(cwd: Path, *args: str, env: dict | None = None, timeout: float = 60):
    """`python -m invoke ARGS` from ``cwd`` exactly as a user types it."""
    proc = subprocess.run(
        [PYTHON, "-m", "invoke", *args], cwd=cwd, env=clean_env(env),
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return InvokeResult(list(args), proc.returncode, proc.stdout, proc.stderr)


def _run_in_here(cwd: Path, *args: str, env: dict | None = None, timeout: float = 60):
    return run_here(*args, cwd=cwd, env=env, search=True, timeout=timeout)


run_in.here = _run_in_here  # the same run in this process (run_mixed)


def commands_in(lines: list[str]) -> list[str]:
    """The plan's commands, each rejoined from its ` \\`-continued lines."""
    found, current = [], None
    for line in lines:
        if current is not None:
            current += " " + line.strip()
        elif line.lstrip().startswith("$ "):
            current = line.lstrip()[2:]
        if current is not None and current.endswith(" \\"):
            current = current[:-2]
            continue
        if current is not None:
            found.append(current)
            current = None
    return found


def make_runner(tmp_path: Path, **kwargs):
    """A ``runbook.Runner`` named ``test`` whose step lines go to a buffer (200 columns,
    no colour) and whose audit log is ``tmp_path/audit.log``: (runner, buffer)."""
    from rich.console import Console

    from ops.runbook import Runner
    from ops.ui import UI

    buffer = io.StringIO()
    ui = UI(err=Console(file=buffer, width=200, no_color=True), out=io.StringIO())
    return Runner("test", ui, tmp_path / "audit.log", **kwargs), buffer


def audit_lines(tmp_path: Path) -> list[dict]:
    """The entries ``make_runner``'s runner appended."""
    return [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]


HOLDS_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def app_holds_write_lock(db: str | os.PathLike):
    """The app holding the database's write lock until the block ends: never for a fixed
    time, which let a restore waiting for it finish "ok" under load."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDS_WRITE_LOCK, str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def damage_cells(db: str | os.PathLike) -> None:
    """Forty bytes over a b-tree page's cells: SQLite's check answers with one row of
    many lines ("*** in database main ***", then "On tree page N cell M: ..." each)."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(db, "r+b") as handle:
        handle.seek(4096 * 10 + 100)
        handle.write(b"\xff" * 40)


def backup_of_other_page_size(folder, scratch: Path) -> engine.BackupResult:
    """A sound, recorded backup (of another database) with 8 KiB pages: a restore refuses
    it into a WAL database of 4 KiB pages (SQLite cannot copy it in), exit 2."""
    other = Path(scratch) / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("PRAGMA page_size=8192")
    conn.execute("CREATE TABLE steps (id INTEGER PRIMARY KEY, n INTEGER)")
    conn.execute("INSERT INTO steps (n) VALUES (1)")
    conn.commit()
    conn.close()
    return engine.create_backup(other, folder)


def command_after(stderr: str, said: str) -> str:
    """The command printed on the lines after the first line that ends with ``said``
    (``Try:``, ``To undo this restore:``), rejoined from its `` \\``-continued lines, as a
    shell would read it."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith(said)) + 1
    words = []
    for line in lines[start:]:
        words.append(line.strip().removesuffix(" \\"))
        if not line.endswith(" \\"):
            return " ".join(words)
    raise AssertionError(f"no command after {said!r}: {stderr}")

