"""The zygote (tests/zygote.py + tests/zygote_client.c): a call through it is the caller's own
process in all that a command can see (argv, env, cwd, umask, fds, exit code or signal),
signals reach the worker, a killed client takes its worker along, and without a server the
Python launcher runs the call.  Real processes throughout: a server, the compiled client."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import zygote
from tests.flyctl_double import launcher
from tests.flyctl_double.state import DEFAULT_APP, default_world, real_python3
from tests.helpers import alive, wait_for

ENTRY = textwrap.dedent('''
    import hashlib, json, os, random, signal, subprocess, sys, time

    def links():
        found = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                found[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                pass  # the listing's own, closed by now
        return found

    def info(argv):
        fds = {}
        for fd in (0, 1, 2):
            try:
                st = os.fstat(fd)
                fds[fd] = [st.st_dev, st.st_ino, os.isatty(fd)]
            except OSError:
                fds[fd] = None
        mask = os.umask(0)
        streams = [None if s is None else [s.encoding, s.errors, s.line_buffering, s.mode]
                   for s in (sys.stdin, sys.stdout, sys.stderr)]
        return {"argv": argv, "cwd": os.getcwd(), "umask": mask, "env": dict(os.environ),
                "fds": fds, "streams": streams, "leader": os.getpgid(0) == os.getpid(),
                "open": links(),
                "sigint": repr(signal.getsignal(signal.SIGINT)),
                "sighup": repr(signal.getsignal(signal.SIGHUP)),
                "sigpipe": repr(signal.getsignal(signal.SIGPIPE)),
                "server_handled": [repr(signal.getsignal(s))  # the server's own handlers
                                   for s in (signal.SIGCHLD, signal.SIGTERM)],
                "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
                "random": random.random(), "pid": os.getpid(),
                "comm": open("/proc/self/comm").read().strip()}

    def main(argv):
        cmd, args = argv[1], argv[2:]
        if cmd == "info":
            out = info(argv)
            out["stdin"] = sys.stdin.read() if args == ["read"] else None
            report = os.environ.get("REPORT")
            text = json.dumps(out)
            if report:
                with open(report, "w") as f:
                    f.write(text)
            else:
                print(text)
            return 0
        if cmd == "exit":
            return int(args[0])
        if cmd == "raise-exit":
            raise SystemExit(int(args[0]))
        if cmd == "die":
            os.kill(os.getpid(), int(args[0]))
            time.sleep(5)
            return 99
        if cmd == "digest":
            print(hashlib.sha256("\\0".join(argv[1:]).encode()).hexdigest(),
                  hashlib.sha256(os.environ.get("BIG", "").encode()).hexdigest())
            return 0
        if cmd == "trap":  # each forwarded signal: its number in a file, exit 40 + it
            def on(sig, frame):
                with open("caught", "w") as f:
                    f.write(str(sig))
                os._exit(40 + sig)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                        signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(sig, on)
        if cmd in ("trap", "family"):  # a child in our group, and our pids where told
            child = subprocess.Popen(["sleep", "60"])
            with open("pids.tmp", "w") as f:
                f.write(f"{os.getpid()} {child.pid}")
            os.rename("pids.tmp", "pids")
            time.sleep(60)
            return 0
        return 2
''')


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def entry_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("zygentry")
    (folder / "zygentry.py").write_text(ENTRY)
    return folder


@pytest.fixture(scope="module")
def server(entry_dir):
    srv = zygote.Server("test", ["zygentry", "subprocess"], "zygentry:main", real_python3(),
                        sys_path=[str(entry_dir)]).start()
    yield srv
    srv.stop()


def make_bin(folder: Path, socket_path: str, entry_dir: Path, name: str = "tool") -> Path:
    """``folder/tool``: the compiled client, its .zygote and a Python fallback that marks
    itself (FALLBACK=1 in the environment the entry sees)."""
    client = launcher.client_binary()
    if client is None:
        pytest.skip("no C compiler: the client cannot be built (the Python launcher runs)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".python").mkdir(exist_ok=True)
    fallback = folder / ".python" / name
    fallback.write_text(f"#!{real_python3()} -IS\nimport os, sys\n"
                        f"sys.path.insert(0, {str(entry_dir)!r})\n"
                        "os.environ['FALLBACK'] = '1'\n"
                        "from zygentry import main\nsys.exit(main(sys.argv))\n")
    fallback.chmod(0o755)
    (folder / ".zygote").write_text(f"socket={socket_path}\nfallback={folder / '.python'}\n")
    tool = folder / name
    tool.write_bytes(Path(client).read_bytes())
    tool.chmod(0o755)
    return tool


@pytest.fixture
def tool(tmp_path, server, entry_dir) -> Path:
    return make_bin(tmp_path / "bin", server.socket_path, entry_dir)


def run_tool(tool: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 30)
    return subprocess.run([str(tool), *args], **kw)


def info(tool: Path, *args: str, **kw) -> dict:
    done = run_tool(tool, "info", *args, **kw)
    assert done.returncode == 0, done
    return json.loads(done.stdout)


def pids_of(folder: Path) -> tuple[int, int]:
    wait_for((folder / "pids").exists)
    worker, child = (int(p) for p in (folder / "pids").read_text().split())
    return worker, child


def wait_or_describe(proc: subprocess.Popen, folder: Path, *pids: int) -> int:
    """The client's exit code; if it has not ended in 30 s, a failure that says where each
    process stands (state, signal masks, kernel wait channel) and what the folder holds."""
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        seen = {}
        for pid in (proc.pid, *pids):
            try:
                status = Path(f"/proc/{pid}/status").read_text().splitlines()
                seen[pid] = [line for line in status if line.split(":")[0] in (
                    "Name", "State", "PPid", "NSpgid", "SigQ", "SigPnd", "ShdPnd", "SigBlk",
                    "SigIgn", "SigCgt")] + [Path(f"/proc/{pid}/wchan").read_text()]
            except OSError as exc:
                seen[pid] = str(exc)
        proc.kill()
        pytest.fail(f"the client did not end: {seen!r}; folder: {sorted(os.listdir(folder))}")


# ---------------------------------------------------------------- exit codes and signals


@pytest.mark.parametrize("code", [0, 3, 255])
def test_the_client_exits_with_the_workers_code(tool, code):
    assert run_tool(tool, "exit", str(code)).returncode == code
    assert run_tool(tool, "raise-exit", str(code)).returncode == code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGUSR1])
def test_a_worker_killed_by_a_signal_kills_its_client_with_it(tool, sig):
    assert run_tool(tool, "die", str(int(sig))).returncode == -sig


def test_an_uncaught_exception_is_a_traceback_and_exit_1(tool):
    done = run_tool(tool, "no-such-command-index")  # IndexError? no: argv[1] exists -> 2
    assert done.returncode == 2
    done = run_tool(tool)  # argv[1] missing: IndexError in main
    assert done.returncode == 1
    assert done.stderr.startswith(b"Traceback (most recent call last):\n")
    assert b"IndexError" in done.stderr and b"zygote.py" not in done.stderr


# ---------------------------------------------------------------- what the worker sees


def test_stdio_is_the_callers_own_pipe_devnull_and_closed(tool, tmp_path):
    with open(os.devnull, "rb") as null:
        done = run_tool(tool, "info", stdin=null, capture_output=True)
        seen = json.loads(done.stdout)
        null_st = os.fstat(null.fileno())
    assert seen["fds"]["0"][:2] == [null_st.st_dev, null_st.st_ino]
    assert [v[2] for v in seen["fds"].values()] == [False, False, False]
    assert seen["streams"][1][2] is False and seen["streams"][2][2] is True  # line buffering
    assert seen["streams"][2][1] == "backslashreplace"
    # nothing the server held: the caller's three and the client's executable (O_PATH)
    exe = [fd for fd, target in seen["open"].items() if target == str(tool)]
    assert sorted(seen["open"]) == sorted(["0", "1", "2", *exe]) and len(exe) == 1
    # a pipe in: the worker reads what the caller writes
    done = run_tool(tool, "info", "read", input=b"hello through the pipe")
    assert json.loads(done.stdout)["stdin"] == "hello through the pipe"
    # stdin closed in the caller: closed in the worker, sys.stdin None (as python3 has it)
    report = tmp_path / "closed.json"
    proc = subprocess.run([str(tool), "info"], stdin=subprocess.DEVNULL, timeout=30,
                          env={**os.environ, "REPORT": str(report)},
                          preexec_fn=lambda: os.close(0))
    assert proc.returncode == 0
    seen = json.loads(report.read_text())
    assert seen["fds"]["0"] is None and seen["streams"][0] is None


def test_a_pty_is_a_tty_in_the_worker_and_stdout_is_line_buffered(tool, tmp_path):
    primary, secondary = pty.openpty()
    report = tmp_path / "tty.json"
    try:
        proc = subprocess.run([str(tool), "info"], stdin=secondary, stdout=secondary,
                              stderr=subprocess.PIPE, timeout=30,
                              env={**os.environ, "REPORT": str(report)})
    finally:
        os.close(secondary)
        os.close(primary)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(report.read_text())
    assert seen["fds"]["0"][2] is True and seen["fds"]["1"][2] is True
    assert seen["fds"]["2"][2] is False
    assert seen["streams"][1][2] is True  # stdout on a tty: line-buffered


def test_argv_env_cwd_umask_and_signal_state_are_the_callers(tool, tmp_path):
    here = tmp_path / "some where"
    here.mkdir()
    env = {"PATH": os.environ["PATH"], "ODD": "é ∆ \t spaces", "EMPTY": ""}
    for key in ("LANG", "LC_ALL", "LC_CTYPE"):
        if key in os.environ:
            env[key] = os.environ[key]

    def child_setup():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})

    seen = info(tool, "a b", "", "ü", env=env, cwd=here, umask=0o027, preexec_fn=child_setup)
    assert seen["argv"] == [str(tool), "info", "a b", "", "ü"]
    assert seen["comm"] == "tool"  # as a script's process is named, not "python3"
    coerced = zygote.fresh_ctype(env, zygote._coercion_target())[1]  # none with a LANG
    assert seen["env"] == {**env, **coerced}  # nothing of the server's environment
    assert seen["cwd"] == str(here)
    assert seen["umask"] == 0o027
    assert seen["sighup"] == "<Handlers.SIG_IGN: 1>"  # inherited, as a fresh python3's
    assert seen["sigpipe"] == "<Handlers.SIG_IGN: 1>"
    assert seen["sigint"] == "<built-in function default_int_handler>"
    assert seen["server_handled"] == ["<Handlers.SIG_DFL: 0>"] * 2
    assert seen["blocked"] == [int(signal.SIGUSR2)]
    assert seen["leader"] is True


def test_a_removed_working_folder_is_the_callers_own(tool, tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.Popen([str(tool), "info"], cwd=gone, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=lambda: os.rmdir(gone))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and b"FileNotFoundError" in err  # os.getcwd() in the entry
    assert out == b""


def test_random_differs_between_calls(tool):
    values = {info(tool)["random"] for _ in range(3)}
    assert len(values) == 3


# ---------------------------------------------------------------- signals and kill -9


FORWARDED = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2]


@pytest.mark.parametrize("sig", FORWARDED, ids=lambda s: s.name)
def test_a_signal_to_the_clients_group_reaches_the_worker_and_its_children(tool, tmp_path, sig):
    # taken by the client, however pytest was started (nohup ignores SIGHUP, a background
    # job SIGINT and SIGQUIT: what the client inherits ignored it ignores, by design)
    proc = subprocess.Popen([str(tool), "trap"], cwd=tmp_path, start_new_session=True,
                            preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
    worker, child = pids_of(tmp_path)
    os.killpg(proc.pid, sig)  # as ops/fly.py signals flyctl: its whole group
    assert wait_or_describe(proc, tmp_path, worker, child) == 40 + sig
    assert (tmp_path / "caught").read_text() == str(int(sig))
    wait_for(lambda: not alive(child))  # sleep, in the worker's group, got it too
    assert not alive(worker)


def test_a_signal_to_a_client_in_its_callers_group_reaches_the_worker_alone(tool, tmp_path):
    proc = subprocess.Popen([str(tool), "trap"], cwd=tmp_path)  # pytest's group
    worker, child = pids_of(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 40 + signal.SIGTERM
        assert alive(child)  # as a kill of the fly process alone left its children be
    finally:
        os.kill(child, signal.SIGKILL)


def test_kill_9_of_the_client_ends_the_worker_and_its_children(tool, tmp_path):
    proc = subprocess.Popen([str(tool), "family"], cwd=tmp_path, start_new_session=True)
    worker, child = pids_of(tmp_path)
    assert alive(worker) and alive(child)
    proc.kill()
    assert proc.wait(timeout=30) == -signal.SIGKILL
    wait_for(lambda: not alive(worker) and not alive(child))


# ---------------------------------------------------------------- the fallback


def test_no_server_at_the_socket_runs_the_python_fallback(tmp_path, entry_dir):
    missing = make_bin(tmp_path / "missing", str(tmp_path / "no-such.sock"), entry_dir)
    stale_path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(stale_path))  # a socket file nobody listens on: a server that died
    stale.close()
    dead = make_bin(tmp_path / "dead", str(stale_path), entry_dir)
    for tool in (missing, dead):
        seen = info(tool, "x")
        assert seen["env"].get("FALLBACK") == "1"
        assert seen["argv"][1:] == ["info", "x"]
        assert run_tool(tool, "exit", "5").returncode == 5
    (tmp_path / "missing" / ".zygote").unlink()  # no configuration at all
    assert info(missing)["env"].get("FALLBACK") == "1"


def test_a_stopped_server_falls_back_and_a_foreign_locale_is_declined(tmp_path, entry_dir):
    srv = zygote.Server("short", ["zygentry"], "zygentry:main", real_python3(),
                        sys_path=[str(entry_dir)]).start(env={**os.environ, "LANG": "C.UTF-8"})
    tool = make_bin(tmp_path / "bin", srv.socket_path, entry_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_CTYPE", "LANG")}
    assert "FALLBACK" not in info(tool, env={**env, "LANG": "C.UTF-8"})["env"]
    # no locale at all: python3 coerces "C" to C.UTF-8 (PEP 538), so the server serves it,
    # with the LC_CTYPE a fresh python3 puts into its environment
    seen = info(tool, env=env)["env"]
    assert "FALLBACK" not in seen and seen.get("LC_CTYPE") == "C.UTF-8"
    assert info(tool, env={**env, "LC_ALL": "C"})["env"].get("FALLBACK") == "1"  # not coerced
    srv.stop()
    assert info(tool, env={**env, "LANG": "C.UTF-8"})["env"].get("FALLBACK") == "1"


# ---------------------------------------------------------------- load and size


def test_many_calls_at_once_each_get_their_own_answer(tool):
    def call(n: int) -> tuple[int, bytes]:
        done = run_tool(tool, "exit", str(n))
        return done.returncode, done.stderr

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(call, range(60)))
    assert results == [(n, b"") for n in range(60)]


def test_a_huge_argv_and_env_arrive_whole(tool):
    args = [f"{n:04d}" + "x" * 1000 for n in range(1500)]  # 1.5 MB of argv
    big = "y" * 100_000
    done = run_tool(tool, "digest", *args, env={**os.environ, "BIG": big})
    assert done.returncode == 0, done.stderr
    want = (hashlib.sha256("\0".join(["digest", *args]).encode()).hexdigest() + " "
            + hashlib.sha256(big.encode()).hexdigest() + "\n")
    assert done.stdout.decode() == want


# ---------------------------------------------------------------- the Python API and lifetime


def test_spawn_waits_signals_and_times_out_like_popen(server, tmp_path):
    r, w = os.pipe()
    child = zygote.spawn(server.socket_path, ["x", "info"], env=dict(os.environ), cwd=tmp_path,
                         stdin=None, stdout=w, stderr=2)
    os.close(w)
    with os.fdopen(r) as out:
        seen = json.loads(out.read())
    assert child.wait(timeout=30) == 0 and seen["pid"] == child.pid
    assert seen["cwd"] == str(tmp_path) and seen["fds"]["0"] is None
    child = zygote.spawn(server.socket_path, ["x", "family"], env=dict(os.environ),
                         cwd=tmp_path, stdin=None, stdout=1, stderr=2)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.2)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM
    with pytest.raises(zygote.ZygoteUnavailable):
        zygote.spawn(str(tmp_path / "nothing"), ["x"], env={}, cwd=tmp_path, stdin=0,
                     stdout=1, stderr=2)


def test_the_server_exits_when_the_process_that_started_it_dies(tmp_path, entry_dir):
    starter = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(Path(zygote.__file__).parent.parent)!r})
            from tests import zygote
            s = zygote.Server("orphan", [], "zygentry:main", {real_python3()!r},
                              sys_path=[{str(entry_dir)!r}]).start()
            print(s.pid, s.socket_path, flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    pid, socket_path = starter.stdout.readline().split()
    assert alive(int(pid)) and stat.S_ISSOCK(os.stat(socket_path).st_mode)
    starter.kill()
    starter.wait()
    starter.stdout.close()
    wait_for(lambda: not alive(int(pid)))
    assert not os.path.exists(os.path.dirname(socket_path))  # a clean end leaves nothing


# ---------------------------------------------------------------- the double's wiring


@pytest.mark.skipif(not launcher.ENABLED, reason="FLY_DOUBLE_ZYGOTE=0: worlds get the launcher")
def test_a_world_gets_the_client_or_without_cc_the_python_launcher(tmp_path, monkeypatch):
    world = default_world(tmp_path / "z")
    fly = (world.bin_dir / "fly").read_bytes()
    assert fly[:4] == b"\x7fELF" and fly == (world.bin_dir / "flyctl").read_bytes()
    config = (world.bin_dir / ".zygote").read_text()
    assert f"fallback={world.bin_dir / '.python'}\n" in config
    assert (world.bin_dir / ".python" / "fly").read_text().startswith(f"#!{real_python3()} -IS")
    monkeypatch.setattr(launcher, "client_binary", lambda: None)  # a machine without cc
    plain = default_world(tmp_path / "p")
    assert (plain.bin_dir / "fly").read_text() == launcher.python_launcher(real_python3())
    for w in (world, plain):
        done = subprocess.run(["fly", "version"], env=w.subprocess_env(), capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0 and done.stdout.startswith("fly v"), done


@pytest.mark.parametrize("env", [{}, {"LANG": "C.UTF-8"}, {"LANG": "C"}, {"LC_ALL": "C"},
                                 {"LANG": ""}, {"LC_CTYPE": "POSIX", "LANG": "C.UTF-8"},
                                 {"LC_ALL": "C.UTF-8", "LANG": "C"}])
def test_fresh_ctype_predicts_the_locale_and_environment_of_a_real_python3(env):
    probe = ("import json, locale, os; "
             "print(json.dumps([locale.setlocale(locale.LC_CTYPE), dict(os.environ)]))")
    done = subprocess.run([real_python3(), "-IS", "-c", probe], env=env, capture_output=True,
                          text=True, timeout=30)
    name, environ = json.loads(done.stdout)
    predicted, added = zygote.fresh_ctype(env, zygote._coercion_target())
    assert (predicted, {**env, **added}) == (name, environ)


def test_garbage_and_silent_clients_leave_the_server_serving(server, tool):
    for junk in (b"", b"ZYG1", b"GET / HTTP/1.0\r\n\r\n" * 10,
                 zygote.HEADER.pack(zygote.MAGIC, 1 << 30, 1, 0, 0, 0, 0, 0),  # too large
                 zygote.encode_request(["x"], {}, umask=0, fdmask=0b1000)):  # no cwd fd sent
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(server.socket_path)
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            reply = sock.recv(64)
        assert reply in (b"", zygote.REPLY.pack(b"DECL", zygote.DECLINE_BAD_REQUEST)), reply
    assert server.running
    assert "FALLBACK" not in info(tool)["env"]  # still served, not fallen back


def test_stopping_the_server_kills_the_calls_still_running(tmp_path, entry_dir):
    srv = zygote.Server("stopped", ["zygentry"], "zygentry:main", real_python3(),
                        sys_path=[str(entry_dir)]).start()
    child = zygote.spawn(srv.socket_path, ["x", "family"], env=dict(os.environ), cwd=tmp_path,
                         stdin=None, stdout=1, stderr=2)
    worker, grandchild = pids_of(tmp_path)
    assert worker == child.pid
    srv.stop()
    wait_for(lambda: not alive(worker) and not alive(grandchild))


def test_the_double_answers_through_the_zygote_as_through_its_python_launcher(tmp_path):
    world = default_world(tmp_path)
    if (world.bin_dir / "fly").read_bytes()[:2] == b"#!":
        pytest.skip("no zygote client here (no cc): the Python launcher is bin/fly")
    env = world.subprocess_env(app=DEFAULT_APP)
    calls = [["version"], ["machine", "list", "--json"], ["volumes", "list", "--json"],
             ["nonsense"], ["machine", "--help"], ["auth", "whoami"],
             ["ssh", "console", "-q", "-C", "sh -c 'echo out; echo err >&2; exit 3'"]]
    for argv in calls:
        both = [subprocess.run([str(exe), *argv], env=env, cwd=tmp_path, capture_output=True,
                               timeout=30)
                for exe in (world.bin_dir / "fly", world.bin_dir / ".python" / "fly")]
        assert [(d.returncode, d.stdout, d.stderr) for d in both][0] == \
            [(d.returncode, d.stdout, d.stderr) for d in both][1], argv
    for exe in (world.bin_dir / "fly", world.bin_dir / ".python" / "fly"):  # a closed pipe
        r, w = os.pipe()
        os.close(r)
        done = subprocess.run([str(exe), "version"], env=env, stdout=w, stderr=subprocess.PIPE,
                              timeout=30)
        os.close(w)
        assert (done.returncode, done.stderr) == (120, (
            b"Exception ignored in: <_io.TextIOWrapper name='<stdout>' mode='w' "
            b"encoding='utf-8'>\nBrokenPipeError: [Errno 32] Broken pipe\n"))


def test_a_run_whose_server_was_killed_says_so_on_every_look(tmp_path, entry_dir):
    srv = zygote.Server("killed", ["zygentry", "subprocess"], "zygentry:main", real_python3(),
                        sys_path=[str(entry_dir)]).start()
    child = zygote.spawn(srv.socket_path, ["tool", "trap"], env=dict(os.environ), cwd=tmp_path,
                         stdin=None, stdout=None, stderr=None)
    pids_of(tmp_path)  # it runs
    os.kill(srv.pid, signal.SIGKILL)
    for look in (lambda: child.wait(30), child.poll, lambda: child.wait(1)):
        with pytest.raises(zygote.ZygoteUnavailable, match="went away"):
            look()
    srv.stop()
