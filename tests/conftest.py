"""Suite-wide fixtures: a clean environment, the real CLI, real WAL databases."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests import helpers

# the fake production's fixtures (tests/fake_production.py), for every test module
from tests.fake_production import (  # noqa: F401
    health,
    prod,
    served_prod,
    site,
    sites,
    slow_health_prod,
)

# the flyctl test double's world fixture, for every test module that needs it
from tests.flyctl_double import FlyWorld
from tests.flyctl_double.plugin import fly_double_server, fly_world  # noqa: F401
from tests.replica_world import moto_server as _moto_server

# The suite runs as a person with the venv active, in this process too (the CLI runs
# in-process in many files): a suggested `invoke TASK` is then spelled bare
# (cli.pasteable), as helpers.clean_env arranges for the processes it starts. CI runs
# `.venv/bin/pytest` without activating the venv. tests/test_suggested_commands.py takes
# the venv off PATH where it checks the other spelling.
_VENV_BIN = str(Path(sys.executable).parent)
if _VENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join(p for p in (os.environ.get("PATH"), _VENV_BIN) if p)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: unknown without it
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: two workers per core. Most tests wait on a subprocess, sshd or a timer
    rather than compute, so a core runs two of them at once (on 2 cores, 4 workers ran
    test_backup_tasks + test_restore in 137 s where 2 took 212 s, at the same load).
    Unless ``--dist`` says otherwise, the whole suite (``-n auto``) keeps each file on one
    worker (``loadfile``): a ``cli_in_process(per="module")`` file then starts one CLI
    process, not one per worker, and its module fixtures are built once. A targeted
    ``-n 2`` run of one file still spreads its tests (``load``)."""
    if config.option.dist == "no":  # not given: xdist would make it "load" after this hook
        config.option.dist = "loadfile"
    return 2 * (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1))


@pytest.hookimpl(tryfirst=True)  # before the tmpdir plugin reads --basetemp
def pytest_configure(config):
    """A short ``--basetemp`` (``short_basetemp``), unless one was given.

    Compile ops/ and tasks.py once, before any test starts a CLI process. Invoke turns
    bytecode writing off (its ``--write-pyc``), and so may the environment
    (PYTHONDONTWRITEBYTECODE), so without this every ``python -m invoke`` the suite starts
    compiles all of ops/ again: ~0.15 s of its ~0.45 s of CPU, on each of thousands of runs.
    The files go where Python reads them, ops/__pycache__ (ignored by git): a cache prefix
    (PYTHONPYCACHEPREFIX) would move the standard library's cache too, and cost more than it
    saves. Done once, by the xdist controller.

    Each pytest process (every xdist worker) also writes what it compiles, test modules
    with their rewritten asserts included, to tests/__pycache__ (ignored by git), whatever
    PYTHONDONTWRITEBYTECODE says: pytest rewrites the asserts of every test module it
    imports, ~4 s of CPU a worker on each run when nothing is kept. The CLI processes it
    starts inherit the environment unchanged."""
    _register_markers(config)
    _default_stop_signals()
    sys.dont_write_bytecode = False
    if hasattr(config, "workerinput"):
        return
    if config.option.basetemp is None and not os.environ.get("PYTEST_DEBUG_TEMPROOT"):
        config.option.basetemp = short_basetemp()
    import compileall

    # quiet=2: a read-only checkout or a syntax error is reported by the tests, not here
    compileall.compile_dir(helpers.REPO_ROOT / "ops", quiet=2)
    compileall.compile_file(helpers.REPO_ROOT / "tasks.py", quiet=2)


RUNS_KEPT = 3  # finished runs' folders, as pytest keeps its own
RUNNING_MARK = ".running"  # beside a run's folder while it runs: never swept (3 days at most)
RUN_NAME = re.compile(r"[a-z0-9_]{8}")  # tempfile.mkdtemp's names


def short_basetemp() -> str | None:
    """The run's tmp folders under ``/tmp/ops-UID/XXXXXXXX``, not pytest's
    ``/tmp/pytest-of-USER/pytest-N``. A Unix socket's path holds 104 bytes (macOS; 108 on
    Linux), and the replica tests' litestream sockets sit beside a test's database: under
    pytest's own folder a user named alexandra failed 16 of them (so would root at
    pytest-1000). None (pytest's own place) where that folder is not ours alone."""
    root = Path("/tmp") / f"ops-{os.getuid()}"
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        info = root.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
        _sweep_runs(root)
        run = Path(tempfile.mkdtemp(prefix="", dir=root))
        mark = run.with_name(run.name + RUNNING_MARK)
        mark.touch()
    except OSError:
        return None
    atexit.register(mark.unlink, missing_ok=True)
    return str(run)


def _sweep_runs(root: Path) -> None:
    """Remove all but the newest ``RUNS_KEPT`` finished runs' folders; a run still marked
    running (a killed one: for three days) is left alone, whatever its pid namespace."""
    runs = []
    for path in root.iterdir():  # only mkdtemp's names: nothing else kept there is ours
        with contextlib.suppress(OSError):  # swept meanwhile by another run starting
            if RUN_NAME.fullmatch(path.name) and stat.S_ISDIR(path.lstat().st_mode):
                runs.append((path.lstat().st_mtime, path))
    for _, old in sorted(runs, reverse=True)[RUNS_KEPT - 1:]:  # with this run's: RUNS_KEPT
        mark = old.with_name(old.name + RUNNING_MARK)
        with contextlib.suppress(OSError):
            if mark.exists() and time.time() - mark.stat().st_mtime < 3 * 86400:
                continue
            shutil.rmtree(old, ignore_errors=True)
            mark.unlink(missing_ok=True)


def _default_stop_signals():
    """SIGINT and SIGQUIT as a suite started at a terminal has them. A shell starts a
    background job (``pytest ... &``) with both ignored (POSIX), every process the tests
    start would inherit that, and a test that signals one (tests/test_zygote.py's SIGQUIT)
    would wait for a signal that was never taken."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _register_markers(config):
    config.addinivalue_line(
        "markers", "cli_in_process(per='test'|'module'|'none'): the test's (or the module's, "
        "in this worker) first CLI run is a process, its later ones run in-process; 'none': "
        "all are processes (helpers.HERE_AFTER_FIRST)")
    config.addinivalue_line(
        "markers", "fresh_process: every CLI run the test makes as a process is a fresh "
        "`python -m invoke`, not a fork of the CLI server, because what only a fresh process "
        "has is its point (helpers.FRESH_PROCESS)")


@pytest.fixture(scope="session", autouse=True)
def _cli_server():
    """The session's end stops this process's CLI server (tests/cli_server.py), which the
    first forked run started: its CPU and its runs' are then counted as this process's
    children's. A server whose pytest process died exits by itself."""
    yield
    from tests import cli_server

    cli_server.SERVER.stop()


@pytest.fixture(autouse=True)
def _cli_in_process(request):
    """``@pytest.mark.cli_in_process``: see ``helpers.HERE_AFTER_FIRST``. With
    ``per="module"`` the first CLI run of the module in this worker is the process.
    ``@pytest.mark.fresh_process``: see ``helpers.FRESH_PROCESS``."""
    mode = helpers.HERE_AFTER_FIRST
    mark = request.node.get_closest_marker("cli_in_process")
    per_module = mark is not None and mark.kwargs.get("per") == "module"
    mode.active = mark is not None and mark.kwargs.get("per") != "none"  # "none": a test of a
    # marked file whose every run stays a process (what a process prints is its point)
    mode.ran = per_module and request.module.__name__ in mode.modules
    helpers.FRESH_PROCESS.active = request.node.get_closest_marker("fresh_process") is not None
    yield
    if per_module and mode.ran:
        mode.modules.add(request.module.__name__)
    mode.active = mode.ran = helpers.FRESH_PROCESS.active = False


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """No INVOKE_*/FLY_* from the developer's shell reaches code under test or subprocesses."""
    for key in list(os.environ):
        if key.startswith(("INVOKE_", "FLY_")):
            monkeypatch.delenv(key, raising=False)
    for key in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def run_invoke(tmp_path):
    """Run the real CLI from ``tmp_path``: ``run_invoke("backup", "--json", env={...})``.

    Relative config paths (``data/steps.db``, ``data/backups``) resolve against the
    working directory, so a test's files live under ``tmp_path`` unless it passes ``cwd``.
    """

    def run(*args: str, cwd=None, env=None, timeout: float = 60) -> helpers.InvokeResult:
        return helpers.run_invoke(*args, cwd=cwd or tmp_path, env=env, timeout=timeout)

    def here(*args: str, cwd=None, env=None, timeout: float = 60) -> helpers.InvokeResult:
        return helpers.run_here(*args, cwd=cwd or tmp_path, env=env, timeout=timeout)

    run.here = here  # the same run in this process (helpers.run_mixed)
    return run


@pytest.fixture
def wal_db(tmp_path) -> Path:
    """A real WAL database at ``tmp_path/data/steps.db`` (users, teams, 3000 steps rows)."""
    return helpers.make_wal_db(tmp_path / "data" / "steps.db")


@pytest.fixture
def backup_dir(tmp_path) -> Path:
    """The default backup folder for a CLI run from ``tmp_path`` (not created)."""
    return tmp_path / "data" / "backups"


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)`` mounts a small tmpfs (a real full disk); skips where mounting fails."""
    mounted: list[Path] = []

    def mount(size: str = "1m") -> Path:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture
def backup_now(wal_db, backup_dir):
    """Make a real verified backup of ``wal_db`` in-process (no CLI start-up cost)."""
    from ops import engine

    return functools.partial(engine.create_backup, wal_db, backup_dir)


@pytest.fixture(autouse=True)
def _no_personal_ssh(monkeypatch, tmp_path_factory):
    """The developer's ~/.ssh (config, known_hosts, keys) and ssh-agent stay out of tests."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    for key in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 (``tests/sshd.py``); skips where none can run,
    except under CI (``CI=true``), where that is a failure."""
    from tests import sshd

    try:
        server = sshd.start(tmp_path_factory.mktemp("sshd"))
    except sshd.SshdUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI must run the SSH tests, but sshd cannot run: {exc}")
        pytest.skip(f"no sshd here: {exc}")
    yield server
    server.stop()


@pytest.fixture
def ssh_host(sshd_server):
    """The server, trusted and logged into like a real host: its key in ~/.ssh/known_hosts
    and the client key as ~/.ssh/id_ed25519 (HOME is the test's own)."""
    import shutil

    ssh_dir = Path(os.environ["HOME"]) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(sshd_server.client_key, ssh_dir / "id_ed25519")
    (ssh_dir / "known_hosts").write_text(
        sshd_server.known_hosts_line() + sshd_server.known_hosts_line(sshd_server.no_python_port)
        + sshd_server.known_hosts_line(sshd_server.node_port))
    return sshd_server


@pytest.fixture
def host(ssh_host, tmp_path):
    """The remote paths on the host, and the env + ``--host`` a task run needs."""
    db = helpers.make_wal_db(tmp_path / "host" / "data" / "steps.db")
    folder = tmp_path / "host" / "backups"
    env = {"HOME": os.environ["HOME"], "INVOKE_DB_REMOTE_PATH": str(db),
           "INVOKE_BACKUP_REMOTE_DIR": str(folder), "INVOKE_BACKUP_DIR": str(tmp_path / "local"),
           "INVOKE_SSH_CONNECT_TIMEOUT": "5", "INVOKE_SSH_TIMEOUT": "60"}
    return {"db": db, "dir": folder, "env": env, "server": ssh_host,
            "addr": f"{ssh_host.user}@127.0.0.1:{ssh_host.port}",
            "no_python": f"{ssh_host.user}@127.0.0.1:{ssh_host.no_python_port}"}


@pytest.fixture
def app_dir(tmp_path: Path, fly_world: FlyWorld) -> Path:
    """A cwd with fly.toml (app step-app-4x-yhw, [mounts] data -> /data)."""
    d = tmp_path / "app"
    d.mkdir()
    fly_world.write_fly_toml(d)
    return d


# one moto S3 server per pytest process: a conftest-level session fixture is made once, where
# the replica modules' own imports of tests.replica_world's fixtures are made once per module
moto_server = pytest.fixture(scope="session", name="moto_server")(_moto_server)
