"""The CLI runs as forks of a server (tests/cli_server.py): the same process as a fresh
``python -m invoke``, without its start.

A probe task (tests/cli_probe/tasks.py) prints what its process sees of its world: run
fresh and as a fork, under two environments and folders, each fork must see exactly what
the fresh process sees, and each its own run's (nothing of the server's, nothing of the
run before it). Real tasks give the same exit codes and output both ways; a run past its
timeout has its process group killed; the marker, the switch and a dead server make a
fresh process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests import cli_server, helpers

# OPS_TEST_FRESH_CLI=1 turns the server off: nothing here could run
pytestmark = pytest.mark.skipif(not cli_server.wanted(),
                                reason="OPS_TEST_FRESH_CLI=1: the CLI server is off")

PROBE = Path(__file__).with_name("cli_probe")
# the modules the server preloads, imported by the fresh probe too, so both have the same
# exit handlers and import-time state to compare
PRELOAD = ",".join(cli_server.PRELOAD)


def fresh(argv: list[str], *, cwd, env) -> tuple[int, str, str]:
    proc = subprocess.run([helpers.PYTHON, "-m", "invoke", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


def forked(argv: list[str], *, cwd, env, timeout: float = 60) -> tuple[int, str, str]:
    done = helpers._forked(argv, cwd=cwd, env=env, timeout=timeout)
    assert done is not None, f"the CLI server made no run: {cli_server.SERVER.broken}"
    return done


def probe(run, cwd: Path, extra: dict) -> dict:
    env = helpers.clean_env({"INVOKE_PROJECT_ROOT": str(cwd), **extra})
    code, out, err = run(["--search-root", str(PROBE), "probe", "--preload", PRELOAD],
                         cwd=cwd, env=env)
    assert code == 0, err
    return json.loads(out)


WORLDS = [
    {"TZ": "Asia/Kathmandu", "COLUMNS": "80", "NO_COLOR": None, "CI": "true",
     "https_proxy": "http://proxy-a:3128", "INVOKE_DEBUG": "1", "TERM": "dumb"},
    {"TZ": "America/St_Johns", "COLUMNS": "200", "NO_COLOR": "1", "CI": None,
     "HTTP_PROXY": "http://proxy-b:8080", "TERM": "xterm-256color"},
]


def test_a_fork_sees_its_own_run_s_world_exactly_as_a_fresh_process(tmp_path):
    seen = []
    for n, world in enumerate(WORLDS):
        cwd = tmp_path / f"run{n}"
        scratch = cwd / "tmp"
        scratch.mkdir(parents=True)
        extra = {**world, "TMPDIR": str(scratch)}
        by_fork, by_process = probe(forked, cwd, extra), probe(fresh, cwd, extra)
        assert by_fork.pop("own_group") and not by_process.pop("own_group")  # the two ways
        assert by_fork == by_process
        assert by_fork["cwd"] == by_fork["rich_cwd"] == str(cwd)
        assert by_fork["tempdir"] == str(scratch)
        seen.append(by_fork)
    first, second = seen
    for key in ("cwd", "tzname", "localtime", "tempdir", "proxies", "root_log_level"):
        assert first[key] != second[key], key  # each run its own, not the one before it
    assert first["environ"]["COLUMNS"] == "80" and "NO_COLOR" not in first["environ"]


def test_the_server_s_folder_and_environment_do_not_reach_a_run(tmp_path, monkeypatch):
    cli_server.SERVER.stop()  # a server started here, with this folder and environment
    cli_server.SERVER.broken = None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "Pacific/Chatham")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("INVOKE_DEBUG", "1")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    try:
        by_fork = probe(forked, cwd, {"TZ": "UTC", "TMPDIR": None, "INVOKE_DEBUG": None})
    finally:
        cli_server.SERVER.stop()  # the next test's server starts from its own world
    assert by_fork["cwd"] == by_fork["rich_cwd"] == str(cwd)
    assert by_fork["tzname"] == ["UTC", "UTC"] and by_fork["tempdir"] != str(tmp_path)
    assert by_fork["root_log_level"] == 30  # WARNING: no debug log from the server's start


def masked(text: str) -> str:
    """Output without what differs between any two runs: times, durations, sizes."""
    return re.sub(r"\d+", "N", text)


@pytest.fixture
def both(tmp_path):
    def run(*args):  # each way from its own copy of one folder (a backup leaves files)
        results = []
        helpers.make_wal_db(tmp_path / "start" / "data" / "steps.db", users=5, steps=20)
        for name, sig in (("ctrl_c.py", "SIGINT"), ("term.py", "SIGTERM")):  # -f NAME: a
            # signal to the run's own process after tasks.py is read, before the task
            (tmp_path / "start" / name).write_text(
                f"import os, signal\nos.kill(os.getpid(), signal.{sig})\n")
        for way in (forked, fresh):
            cwd = tmp_path / way.__name__
            shutil.copytree(tmp_path / "start", cwd)
            env = helpers.clean_env(helpers.project_root(cwd, None))
            code, out, err = way(["--search-root", str(helpers.REPO_ROOT), *args], cwd=cwd,
                                 env=env)
            results.append((code, *(text.replace(str(cwd), "CWD") for text in (out, err))))
        return results

    return run


@pytest.mark.parametrize("args", [
    ["--list"], ["backup", "--help"], ["backup"], ["backup", "--json"], ["backup", "--nope"],
    ["no-such-task"], ["backup", "--db", "missing/steps.db"], ["restore", "latest"],
    ["backup.list", "--json"], ["backup", "--keep-daily", "-1"],
    ["-f", "ctrl_c.py", "backup.list"], ["-f", "term.py", "backup"],
])
def test_a_fork_answers_as_a_fresh_process(both, args):
    by_fork, by_process = both(*args)
    assert by_fork[0] == by_process[0]
    assert masked(by_fork[1]) == masked(by_process[1])
    assert masked(by_fork[2]) == masked(by_process[2])


def test_a_run_past_its_timeout_has_its_process_group_killed(tmp_path):
    cwd = tmp_path / "run"
    helpers.make_wal_db(cwd / "data" / "steps.db", users=5, steps=20)
    env = helpers.clean_env({"INVOKE_PROJECT_ROOT": str(cwd)})
    argv = ["--search-root", str(helpers.REPO_ROOT), "backup", "--lock-wait", "600"]
    holder = helpers.lock_held_elsewhere(cwd / "data" / "backups", tmp_path / "holder")
    with holder, pytest.raises(subprocess.TimeoutExpired):
        forked(argv, cwd=cwd, env=env, timeout=1)
    assert in_folder(cwd) == []  # the run is gone, not left waiting for the lock


def in_folder(cwd: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(entry / "cwd") == str(cwd):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def group_of_a_run(tmp_path, monkeypatch) -> bool:
    """True when ``run_invoke``'s run was its own process group: a fork of the server."""
    monkeypatch.setattr(helpers, "REPO_ROOT", PROBE)
    result = helpers.run_invoke("probe", cwd=tmp_path)
    assert result.returncode == 0, result
    return result.json()["own_group"]


def test_an_unmarked_run_is_a_fork_of_the_server(tmp_path, monkeypatch):
    assert group_of_a_run(tmp_path, monkeypatch)


@pytest.mark.fresh_process
def test_a_fresh_process_test_s_runs_are_fresh_processes(tmp_path, monkeypatch):
    assert not group_of_a_run(tmp_path, monkeypatch)


def test_a_cli_in_process_test_s_first_run_is_a_fork(tmp_path, monkeypatch):
    mode = helpers.HERE_AFTER_FIRST
    monkeypatch.setattr(mode, "active", True)
    firsts = []
    for _test in range(2):  # each test's first run (its later ones run in-process)
        monkeypatch.setattr(mode, "ran", False)
        firsts.append(group_of_a_run(tmp_path, monkeypatch))
    assert firsts == [True, True]


def group_of_a_started_run(tmp_path, monkeypatch) -> tuple[bool, int]:
    """``start_invoke``'s run: whether it was its own process group (a fork of the server),
    and how it ended after a SIGTERM sent to its pid once it said it waits for one."""
    monkeypatch.setattr(helpers, "REPO_ROOT", PROBE)
    run = helpers.start_invoke("probe", "--wait-for-term", cwd=tmp_path)
    run.wait_for_stderr("waiting for SIGTERM")
    run.proc.send_signal(signal.SIGTERM)
    result = run.finish(timeout=30)
    return result.json()["own_group"], result.returncode


def test_a_started_run_is_a_fork_its_pid_the_run_s(tmp_path, monkeypatch):
    assert group_of_a_started_run(tmp_path, monkeypatch) == (True, -signal.SIGTERM)


@pytest.mark.fresh_process
def test_a_started_run_of_a_fresh_process_test_is_a_fresh_process(tmp_path, monkeypatch):
    assert group_of_a_started_run(tmp_path, monkeypatch) == (False, -signal.SIGTERM)


def test_the_switch_makes_every_run_a_fresh_process(tmp_path, monkeypatch):
    monkeypatch.setenv("OPS_TEST_FRESH_CLI", "1")
    assert not group_of_a_run(tmp_path, monkeypatch)


def test_a_run_that_changes_the_interpreter_s_start_is_a_fresh_process(tmp_path, monkeypatch):
    monkeypatch.setattr(helpers, "REPO_ROOT", PROBE)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "shadow.py").write_text("")  # a module a fork could not import first
    for extra in ({"PYTHONPATH": str(tmp_path / "lib")}, {"LC_ALL": "C"},
                  {"PYTHONWARNINGS": "error"},  # and a hook that signals its own process:
                  {"OPS_TEST_HOOK": '{"wrap": "none", "when": "after", "signal": "SIGINT"}'}):
        result = helpers.run_invoke("probe", cwd=tmp_path, env=extra)
        assert result.returncode == 0 and not result.json()["own_group"], result


def test_a_hook_on_the_python_path_is_imported_by_a_fork_as_by_a_process(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import os\nfrom ops import engine\nos.environ['HOOKED'] = engine.__name__\n"
        "engine.verify_copy = lambda *a, _real=engine.verify_copy, **k: _real(*a, **k)\n")
    extra = {"PYTHONPATH": str(hooks)}
    by_fork, by_process = probe(forked, tmp_path, extra), probe(fresh, tmp_path, extra)
    assert by_fork.pop("own_group") and not by_process.pop("own_group")
    assert by_fork == by_process and by_fork["environ"]["HOOKED"] == "ops.engine"
    path = by_fork["path"]
    assert path.index(str(hooks)) == path.index(str(tmp_path)) + 1  # after the run's folder


def test_a_hook_a_fork_cannot_apply_stops_the_run_with_an_error(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()  # ops/backups.py imports in_future by name: a fork has it unwrapped
    (hooks / "sitecustomize.py").write_text(
        "from ops import engine\nengine.in_future = lambda *a, **k: False\n")
    env = helpers.clean_env({"INVOKE_PROJECT_ROOT": str(tmp_path), "PYTHONPATH": str(hooks)})
    code, out, err = forked(["--search-root", str(helpers.REPO_ROOT), "--list"], cwd=tmp_path,
                            env=env)
    assert code == 1 and "ops.backups.in_future is still ops.engine.in_future" in err, err
    assert fresh(["--search-root", str(helpers.REPO_ROOT), "--list"], cwd=tmp_path,
                 env=env)[0] == 0


def test_a_dead_server_makes_the_runs_fresh_processes(tmp_path, monkeypatch):
    cli_server.SERVER.stop()
    cli_server.SERVER.broken = None
    assert cli_server.SERVER.socket_path() is not None
    try:
        os.kill(cli_server.SERVER.server.pid, signal.SIGKILL)  # a server that died
        helpers.wait_for(lambda: not cli_server.SERVER.server.running, what="the server's end")
        assert not group_of_a_run(tmp_path, monkeypatch)
        assert cli_server.SERVER.broken and cli_server.SERVER.server is None
        assert not group_of_a_run(tmp_path, monkeypatch)  # and the next run, at once
    finally:
        cli_server.SERVER.stop()
        cli_server.SERVER.broken = None
