"""A fork server ("zygote"): run a Python command line as a fork of an already-imported process.

A fresh ``python3 -IS`` spends most of a short command's CPU starting and importing; the
server does that once (``preload``) and forks one *worker* per request, which then runs
``entry(argv)`` with the caller's argv, environment, working folder, umask, signal
dispositions and its own three file descriptors (passed over the socket, so ``isatty``,
pipes, ptys and ``/dev/null`` are the caller's own).  Stdlib only: the server runs under the
system Python (``tests.flyctl_double.state.real_python3``), and tests import this module for
:class:`Server` and :func:`spawn`.  The flyctl double's ``fly`` is a C client of it
(``tests/zygote_client.c``); see tests/flyctl_double/README.md.

Protocol (one AF_UNIX stream connection per call; integers little-endian)
------------------------------------------------------------------------
Request, client -> server, sent at once after ``connect``::

    header  40 bytes  "<4sIIIIIQQ": b"ZYG1", payload length, argc, envc, umask, fdmask,
                      ignored-signal mask, blocked-signal mask (bit n-1 = signal n)
    payload           argc then envc NUL-terminated byte strings (argv, then "KEY=VALUE")

The first ``sendmsg`` (the header at least) carries, as SCM_RIGHTS, one descriptor per set
bit of ``fdmask`` in bit order: bit 0..2 the caller's fd 0..2 (a clear bit: that fd is
closed in the caller), bit 3 its working folder (an ``O_PATH`` directory, so a removed or
unreadable folder is the caller's own), bit 4 the client's executable (``O_PATH``; the
worker keeps it open, so ``/proc/<worker>/fd`` shows which launcher it serves).  Bit 8 of
``fdmask`` is a flag, not a descriptor: the client leads its own process group, so what
kills it meant its group (see below).

Replies, server -> client, 8 bytes each ``"<4si"``:

    b"DECL", reason   the server will not run it (bad request, a locale it was not started
                      with, ...): nothing ran, the client runs the command another way
    b"PID\\0", pid     the worker runs: it leads its own new process group ``pid``
    b"EXIT", status   the worker ended; ``status`` is its raw wait status (os.waitstatus_to_
                      exitcode); the server closes the connection after it

If the client's end closes while its worker runs (the client was killed), the server kills
the worker with SIGKILL: its whole process group when the request had the group flag, as
``killpg(fly, SIGKILL)`` did to a process that was its own group (:func:`spawn` always
sets it), else the worker alone, as ``kill(fly, SIGKILL)`` did to a process in its
caller's group.  The server exits, killing its workers' groups, when the
process that started it goes away (it holds the read end of a pipe whose only writer is
that process) or on SIGTERM; ``Server.stop`` does it at the end of a session.

The worker, before ``entry``: a new process group; the caller's descriptors as 0, 1, 2 and
every other descriptor the server holds closed; the caller's working folder, umask,
environment (``os.environ`` and the C ``environ``), ``TZ``; signal handlers and mask as a
fresh ``python3`` has them under that caller (default, the caller's ignored ones ignored,
SIGPIPE/SIGXFSZ ignored, SIGINT -> KeyboardInterrupt unless ignored); ``sys.stdin/stdout/
stderr`` rebuilt as interpreter start-up builds them for those fds (line-buffered on a tty,
stderr always line-buffered with ``backslashreplace``).  The locale is the server's: a
request is declined unless a fresh interpreter would run with the server's LC_CTYPE locale
(:func:`fresh_ctype`: no locale variables and ``LANG=C.UTF-8`` both end in ``C.UTF-8``, the
first by PEP 538's coercion, whose ``LC_CTYPE=C.UTF-8`` the worker's environment gets too),
so the stdio encoding and errors are the server's own.  (``sys.flags.utf8_mode``, on in a
fresh interpreter that was coerced from "C", is the server's.)
After ``entry`` (``SystemExit`` honoured; an uncaught exception prints its traceback and
exits 1, KeyboardInterrupt dies by SIGINT, as ``python3`` does): non-daemon threads joined,
atexit handlers run, stdout and stderr flushed (a failed flush: 120), then ``os._exit``.
``random`` reseeds itself in a forked child (``os.register_at_fork``); ``os.urandom`` is the
kernel's.  What stays the server's: the hash seed (one per server, not per call), the parent
pid (the server), the session and controlling terminal (none: the server has its own
session), resource limits.  A worker gets SIGKILL when the server dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import _signal  # the C functions under signal's enum wrappers
import contextlib
import importlib
import io
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

MAGIC = b"ZYG1"
HEADER = struct.Struct("<4sIIIIIQQ")
REPLY = struct.Struct("<4si")
MAX_REQUEST = 64 << 20  # argv + env: far above any ARG_MAX; past it the request is declined
MAX_FDS = 5
FD_CWD, FD_EXE = 3, 4
FLAG_GROUP = 1 << 8
LOCALE_VARS = ("LC_ALL", "LC_CTYPE", "LANG")
# DECL reasons (the client prints nothing: it just runs the command another way)
DECLINE_BAD_REQUEST, DECLINE_LOCALE, DECLINE_ENV = 1, 2, 3
REQUEST_TIMEOUT = 10.0  # a client sends its request at once; a stuck one is dropped
PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15
_PRCTL = None  # libc's prctl, set in the server


class ZygoteUnavailable(OSError):
    """No server answers at that socket, or it declined: run the command another way."""


# ---------------------------------------------------------------- the request (both sides)


def encode_request(argv: Sequence[str | bytes], env: dict[str, str] | Sequence[bytes], *,
                   umask: int, fdmask: int, ignored: int = 0, blocked: int = 0) -> bytes:
    """Header + payload (see the module docstring); the descriptors travel beside it."""
    items = env.items() if isinstance(env, dict) else None
    env_b = ([os.fsencode(k) + b"=" + os.fsencode(v) for k, v in items] if items is not None
             else [bytes(e) for e in env])
    args_b = [os.fsencode(a) for a in argv]
    payload = b"".join(s + b"\0" for s in [*args_b, *env_b])
    return HEADER.pack(MAGIC, len(payload), len(args_b), len(env_b), umask, fdmask,
                       ignored, blocked) + payload


class Request:
    """A decoded request: argv, env pairs, umask, the fd mask and the two signal masks."""

    def __init__(self, header: bytes, payload: bytes) -> None:
        magic, size, argc, envc, self.umask, self.fdmask, self.ignored, self.blocked = \
            HEADER.unpack(header)
        if magic != MAGIC or size != len(payload):
            raise ValueError("bad header")
        parts = payload.split(b"\0")
        if parts[-1] != b"" or len(parts) - 1 != argc + envc or argc < 1:
            raise ValueError("bad payload")
        self.argv = [os.fsdecode(a) for a in parts[:argc]]
        self.env: dict[str, str] = {}
        self.duplicate_or_odd = False
        for raw in parts[argc:argc + envc]:
            key, eq, value = raw.partition(b"=")
            # what a fresh interpreter keeps in os.environ (the first of a repeated key)
            # and could set again: anything else is declined rather than reproduced
            if not eq or not key or os.fsdecode(key) in self.env:
                self.duplicate_or_odd = True
                continue
            self.env[os.fsdecode(key)] = os.fsdecode(value)



def fresh_ctype(env: dict[str, str], target: str | None) -> tuple[str, dict[str, str]]:
    """The LC_CTYPE locale ``python3`` started with ``env`` runs with, and what its start-up
    adds to its environment: LC_ALL, else LC_CTYPE, else LANG (an empty one is unset), else
    "C"; and a "C" or "POSIX" one without LC_ALL is coerced to ``target`` (PEP 538), which
    also goes into the environment as LC_CTYPE.  ``target``: :func:`_coercion_target`."""
    name = next((env[k] for k in LOCALE_VARS if env.get(k)), "C")
    if name in ("C", "POSIX") and not env.get("LC_ALL") and target:
        return target, {"LC_CTYPE": target}
    return name, {}


def _coercion_target() -> str | None:
    """The locale PEP 538 coerces "C" to on this system (its first that exists)."""
    import locale

    old = locale.setlocale(locale.LC_CTYPE)
    try:
        for name in ("C.UTF-8", "C.utf8", "UTF-8"):
            with contextlib.suppress(locale.Error):
                locale.setlocale(locale.LC_CTYPE, name)
                return name
        return None
    finally:
        locale.setlocale(locale.LC_CTYPE, old)


def _signals(mask: int) -> set[int]:
    return {n for n in range(1, 65) if mask >> (n - 1) & 1}


def _mask(signals) -> int:
    return sum(1 << (int(n) - 1) for n in signals if 0 < int(n) <= 64)


# ---------------------------------------------------------------- the server


class _Worker:
    __slots__ = ("pid", "conn", "group")

    def __init__(self, pid: int, conn: socket.socket | None, group: bool) -> None:
        self.pid, self.conn, self.group = pid, conn, group


class _Serving:
    """The server's loop: accept, read a request, fork a worker, report its end."""

    def __init__(self, listener: socket.socket, parent_fd: int, entry: Callable[[list[str]], int],
                 locale: tuple[str | None, ...]) -> None:
        self.listener = listener
        self.parent_fd = parent_fd
        self.entry = entry
        # the LC_CTYPE locale this server runs in, as fresh_ctype names it: a request whose
        # python3 would run in another is declined
        self.target = _coercion_target()
        self.ctype = fresh_ctype(dict(zip(LOCALE_VARS, locale, strict=True)), self.target)[0]
        self.stdio = (sys.stdout.encoding, sys.stdout.errors)
        self.poller = select.poll()
        self.pid = os.getpid()
        self.every = _signal.valid_signals()  # plain ints: signal's wrappers make ~120 enums
        self.workers: dict[int, _Worker] = {}
        self.by_conn: dict[int, _Worker] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def run(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        self.handled = _handled()
        poller = self.poller
        poller.register(self.listener.fileno(), select.POLLIN)
        poller.register(self.parent_fd, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        try:
            while True:
                for fd, _ in poller.poll():
                    if fd == self.parent_fd:
                        return  # the process that started us is gone (or stop())
                    if fd == self.wake_r:
                        if self._woken():
                            return  # SIGTERM
                    elif fd == self.listener.fileno():
                        self._accept()
                    elif fd in self.by_conn:
                        self._client_closed(self.by_conn[fd])
        finally:
            for worker in self.workers.values():
                with contextlib.suppress(OSError):
                    os.killpg(worker.pid, signal.SIGKILL)

    def _woken(self) -> bool:
        """Reap what ended; True on SIGTERM (the wake-up pipe carries signal numbers)."""
        try:
            data = os.read(self.wake_r, 512)
        except BlockingIOError:
            data = b""
        self._reap()
        return signal.SIGTERM in data

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None or worker.conn is None:
                continue
            self.by_conn.pop(worker.conn.fileno(), None)
            self.poller.unregister(worker.conn.fileno())
            with contextlib.suppress(OSError):
                worker.conn.sendall(REPLY.pack(b"EXIT", status))
            worker.conn.close()

    def _client_closed(self, worker: _Worker) -> None:
        assert worker.conn is not None
        try:
            data = worker.conn.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            return  # a client sends nothing after its request: ignore it
        self.poller.unregister(worker.conn.fileno())
        self.by_conn.pop(worker.conn.fileno(), None)
        self._client_closed_now(worker)

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            request, fds = _read_request(conn)
            reason = self._decline(request, fds)
            if reason:
                conn.sendall(REPLY.pack(b"DECL", reason))
                conn.close()
                return
            pid = self._fork(request, fds, conn)
        except (OSError, ValueError, struct.error):
            conn.close()
            return
        finally:
            for fd in fds:
                os.close(fd)
        worker = _Worker(pid, conn, bool(request.fdmask & FLAG_GROUP))
        self.workers[pid] = worker
        try:
            conn.sendall(REPLY.pack(b"PID\0", pid))
        except OSError:
            self._client_closed_now(worker)
            return
        conn.setblocking(True)
        self.by_conn[conn.fileno()] = worker
        self.poller.register(conn.fileno(), select.POLLIN)

    def _client_closed_now(self, worker: _Worker) -> None:
        assert worker.conn is not None
        worker.conn.close()
        worker.conn = None
        with contextlib.suppress(OSError):  # not reaped yet: the pid and group are its own
            (os.killpg if worker.group else os.kill)(worker.pid, signal.SIGKILL)

    def _decline(self, request: Request, fds: list[int]) -> int:
        if len(fds) != bin(request.fdmask & 0x1F).count("1") or not request.fdmask >> FD_CWD & 1:
            return DECLINE_BAD_REQUEST
        if fresh_ctype(request.env, self.target)[0] != self.ctype:
            return DECLINE_LOCALE
        if request.duplicate_or_odd:
            return DECLINE_ENV
        return 0

    def _fork(self, request: Request, fds: list[int], conn: socket.socket) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        old_mask = _signal.pthread_sigmask(signal.SIG_BLOCK, self.every)
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    self._become_worker(request, fds, conn)
                finally:
                    os._exit(70)
            with contextlib.suppress(OSError):  # the child does it too: whichever is first
                os.setpgid(pid, pid)
            return pid
        finally:
            _signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    # ------------------------------------------------------------ in the worker

    def _become_worker(self, request: Request, fds: list[int], conn: socket.socket) -> None:
        os.setpgid(0, 0)
        if _PRCTL is not None:  # a server killed outright takes its workers along
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != self.pid:
                os._exit(70)  # it died before that
            # its name in ps/top/comm, as a script's: "fly", not the server's "python3"
            _PRCTL(PR_SET_NAME, os.fsencode(os.path.basename(request.argv[0]))[:15])
        signal.set_wakeup_fd(-1)
        for sock in (self.listener, conn, *(w.conn for w in self.workers.values() if w.conn)):
            sock.detach()  # closed below with everything else; a collected socket object
            # must not close a descriptor number the command has reused since
        placed = _place_fds(request.fdmask, fds)
        exe = placed.get(FD_EXE)
        os.fchdir(placed[FD_CWD])
        keep = sorted({0, 1, 2} | ({exe} if exe is not None else set()))
        _close_all_but(keep)
        if exe is not None:
            os.set_inheritable(exe, False)
        os.umask(request.umask)
        tz = os.environ.get("TZ")
        _set_environ({**request.env, **fresh_ctype(request.env, self.target)[1]})
        if os.environ.get("TZ") != tz:
            time.tzset()
        sys.argv = list(request.argv)
        _rebuild_stdio(request.fdmask, *self.stdio)
        _reset_signals(self.handled, request.ignored, request.blocked)
        code = _run(self.entry, list(request.argv))
        os._exit(code)


def _read_request(conn: socket.socket) -> tuple[Request, list[int]]:
    conn.settimeout(REQUEST_TIMEOUT)
    fds: list[int] = []
    data = bytearray()
    try:
        msg, anc, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(MAX_FDS * 4))
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(struct.unpack(f"{len(raw) // 4}i", raw[: len(raw) // 4 * 4]))
        data += msg
        while len(data) < HEADER.size:
            chunk = conn.recv(HEADER.size - len(data))
            if not chunk:
                raise ValueError("short header")
            data += chunk
        size = HEADER.unpack_from(data)[1]
        if size > MAX_REQUEST:
            raise ValueError("request too large")
        want = HEADER.size + size
        while len(data) < want:
            chunk = conn.recv(min(1 << 20, want - len(data)))
            if not chunk:
                raise ValueError("short payload")
            data += chunk
        if len(data) != want:
            raise ValueError("trailing bytes")
        return Request(bytes(data[:HEADER.size]), bytes(data[HEADER.size:])), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _set_environ(env: dict[str, str]) -> None:
    """``os.environ`` (and the C environ) becomes ``env``: only what differs is changed (a
    caller's environment is mostly the server's; clear() + update() cost 0.7 ms)."""
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _place_fds(fdmask: int, fds: list[int]) -> dict[int, int]:
    """The received descriptors by role; the caller's stdio becomes 0, 1, 2 (a clear bit:
    that fd is closed, as it was in the caller)."""
    roles = [bit for bit in range(MAX_FDS) if fdmask >> bit & 1]
    by_role = dict(zip(roles, fds, strict=True))
    for target in (0, 1, 2):
        if target in by_role:
            if by_role[target] != target:
                os.dup2(by_role[target], target)
        else:
            with contextlib.suppress(OSError):
                os.close(target)
    return by_role


def _close_all_but(keep: list[int]) -> None:
    low = 0
    for fd in keep:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


_OLD_STDIO: list = []  # the server's stdio objects: kept so no collection closes fd 0-2


def _rebuild_stdio(fdmask: int, encoding: str, errors: str) -> None:
    """sys.stdin/stdout/stderr as interpreter start-up (create_stdio) makes them."""
    _OLD_STDIO.extend([sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__,
                       sys.__stderr__])
    streams = []
    for fd, name in ((0, "<stdin>"), (1, "<stdout>"), (2, "<stderr>")):
        streams.append(_stdio(fd, name, encoding, "backslashreplace" if fd == 2 else errors)
                       if fdmask >> fd & 1 else None)
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams


# -u / PYTHONUNBUFFERED (a server without -I): the stdio this interpreter was started with
_UNBUFFERED = bool(getattr(sys.__stdout__, "write_through", False))


def _stdio(fd: int, name: str, encoding: str, errors: str) -> io.TextIOWrapper:
    write = fd != 0
    buffered = not _UNBUFFERED
    buf = open(fd, "wb" if write else "rb", buffering=-1 if buffered or not write else 0,  # noqa: SIM115
               closefd=False)
    raw = buf.raw if hasattr(buf, "raw") else buf
    raw.name = name
    tty = raw.isatty()
    stream = io.TextIOWrapper(buf, encoding=encoding, errors=errors, newline="\n",
                              line_buffering=buffered and (tty or fd == 2),
                              write_through=not buffered)
    stream.mode = "w" if write else "r"
    return stream


def _handled() -> list[int]:
    """The signals whose handler is not the default (in the server: what a worker resets)."""
    found = []
    for sig in signal.valid_signals():
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(sig) not in (signal.SIG_DFL, None):
                found.append(sig)
    return found


def _reset_signals(handled: list[int], ignored: int, blocked: int) -> None:
    """Handlers as ``python3`` started by this caller has them; then the caller's mask.
    ``handled``: the ones not at their default now (:func:`_handled`, once, in the server)."""
    ignore = _signals(ignored)
    valid = _signal.valid_signals()
    todo = {*handled, *(ignore & valid), signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ}
    for sig in sorted(todo - {signal.SIGKILL, signal.SIGSTOP}):
        try:
            current = signal.getsignal(sig)
        except ValueError:
            continue
        want = signal.SIG_IGN if sig in ignore else signal.SIG_DFL
        if sig in (signal.SIGPIPE, signal.SIGXFSZ):
            want = signal.SIG_IGN
        elif sig == signal.SIGINT and sig not in ignore:
            want = signal.default_int_handler
        # (None: a handler not set from Python; only an inherited SIG_IGN replaces it)
        if current != want and (current is not None or sig in ignore):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, want)
    _signal.pthread_sigmask(signal.SIG_SETMASK, _signals(blocked) & valid)


def _run(entry: Callable[[list[str]], int], argv: list[str]) -> int:
    """``entry(argv)`` and the interpreter's end, as ``python3 script`` ends: the exit code."""
    interrupted = False
    try:
        code = _exit_code(entry(argv))
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException as exc:  # noqa: BLE001 - exactly what the interpreter does
        interrupted = isinstance(exc, KeyboardInterrupt)
        with contextlib.suppress(BaseException):
            exc.__traceback__ = exc.__traceback__.tb_next  # from entry's frame, as python3's
            sys.excepthook(type(exc), exc, exc.__traceback__)
        code = 1
    with contextlib.suppress(BaseException):
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(BaseException):
        import atexit

        atexit._run_exitfuncs()
    if not _flush_std_files():
        code = 120
    if interrupted:  # exit_sigint(): die of SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    return code


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    with contextlib.suppress(BaseException):
        print(value, file=sys.stderr)
    return 1


def _flush_std_files() -> bool:
    ok = True
    out, err = sys.stdout, sys.stderr
    if out is not None and not out.closed:
        try:
            out.flush()
        except BaseException as exc:  # noqa: BLE001 - PyErr_WriteUnraisable(stdout)
            ok = False
            with contextlib.suppress(BaseException):
                err.write(f"Exception ignored in: {out!r}\n{type(exc).__name__}: {exc}\n")
    if err is not None and not err.closed:
        try:
            err.flush()
        except BaseException:  # noqa: BLE001
            ok = False
    return ok


def serve(socket_path: str, parent_fd: int, preload: Sequence[str], entry: str,
          locale: tuple[str | None, ...], ready_fd: int) -> None:
    """The server process: import ``preload``, listen, tell ``ready_fd``, loop."""
    for name in preload:
        importlib.import_module(name)
    module, _, func = entry.partition(":")
    target = getattr(importlib.import_module(module), func)
    global _PRCTL
    with contextlib.suppress(ImportError, OSError, AttributeError):
        import ctypes

        _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(128)
    with contextlib.suppress(ImportError, AttributeError):
        import gc

        gc.collect()
        gc.freeze()  # the imported objects stay put: fewer pages a worker copies on write
    os.write(ready_fd, b"ok")
    os.close(ready_fd)
    try:
        _Serving(listener, parent_fd, target, locale).run()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(socket_path)
    folder = os.path.dirname(socket_path)  # a clean end leaves nothing (a crash, its log)
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(folder, "server.log"))
        os.rmdir(folder)


# ---------------------------------------------------------------- the pytest side


class Server:
    """A zygote server for this process's lifetime: ``Server(...).start()``; ``.stop()``.

    ``python`` runs the server as ``python -IS`` (the interpreter the command used to start
    with); ``sys_path`` goes first on its ``sys.path``; ``preload`` are imported before the
    first fork; ``entry`` ("module:function") is called with argv in each worker.
    """

    def __init__(self, name: str, preload: Sequence[str], entry: str, python: str,
                 sys_path: Sequence[str] = (), python_args: Sequence[str] = ("-IS",)) -> None:
        self.python_args = list(python_args)  # the CLI's server: () (site, as `python -m`)
        self.name = name
        self.preload = list(preload)
        self.entry = entry
        self.python = python
        self.sys_path = [str(p) for p in sys_path]
        self.socket_path = ""
        self._dir = ""
        self._proc: subprocess.Popen | None = None
        self._alive_w: int | None = None

    def start(self, env: dict[str, str] | None = None) -> Server:
        """Start the server and wait until it listens; :class:`ZygoteUnavailable` if not.

        ``env`` (default ``os.environ``) is its environment: its locale variables are the
        ones it serves (see the module docstring)."""
        env = dict(os.environ if env is None else env)
        self._dir = tempfile.mkdtemp(prefix=f"zygote-{self.name}-")
        self.socket_path = os.path.join(self._dir, "sock")
        alive_r, self._alive_w = os.pipe()
        ready_r, ready_w = os.pipe()
        locale = [env.get(k) for k in LOCALE_VARS]
        code = (  # this file by its path: the tests' folder stays off the server's sys.path
            "import sys, importlib.util as u\n"
            f"s = u.spec_from_file_location('zygote', {os.path.abspath(__file__)!r})\n"
            "zygote = sys.modules['zygote'] = u.module_from_spec(s)\n"
            "s.loader.exec_module(zygote)\n"
            f"sys.path[:0] = {self.sys_path!r}\n"
            f"zygote.serve({self.socket_path!r}, {alive_r}, {self.preload!r}, {self.entry!r},"
            f" {tuple(locale)!r}, {ready_w})\n"
        )
        log = open(os.path.join(self._dir, "server.log"), "wb")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [self.python, *self.python_args, "-c", code], env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, pass_fds=(alive_r, ready_w), start_new_session=True,
                cwd="/")
        except OSError as exc:
            raise ZygoteUnavailable(f"cannot start the zygote server: {exc}") from exc
        finally:
            log.close()
            os.close(alive_r)
            os.close(ready_w)
        try:
            ready = _read_all(ready_r, timeout=60)
        finally:
            os.close(ready_r)
        if ready != b"ok":
            self.stop()
            raise ZygoteUnavailable(f"the zygote server {self.name!r} did not start "
                                    f"(see {self._dir}/server.log)")
        return self

    def stop(self) -> None:
        """Stop the server (its workers' groups are killed) and remove its folder."""
        if self._alive_w is not None:
            os.close(self._alive_w)
            self._alive_w = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = ""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


def _read_all(fd: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return data
        chunk = os.read(fd, 64)
        if not chunk:
            return data
        data += chunk


# ---------------------------------------------------------------- the Python client


class Child:
    """A worker started by :func:`spawn`, waited for like ``subprocess.Popen``."""

    def __init__(self, sock: socket.socket, pid: int, argv: list[str]) -> None:
        self._sock = sock
        self.pid = pid
        self.args = argv
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The worker's return code (negative signal number when killed, as Popen's)."""
        if self.returncode is None:
            self._read(timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def _read(self, timeout: float | None) -> None:
        if self._sock.fileno() < 0:  # read once already, and the server had gone then
            raise ZygoteUnavailable("the zygote server went away before the worker ended")
        if timeout is not None and not select.select([self._sock], [], [], timeout)[0]:
            return
        data = b""
        while len(data) < REPLY.size:
            chunk = self._sock.recv(REPLY.size - len(data))
            if not chunk:
                break
            data += chunk
        self._sock.close()
        if len(data) < REPLY.size:
            raise ZygoteUnavailable("the zygote server went away before the worker ended")
        tag, status = REPLY.unpack(data)
        if tag != b"EXIT":
            raise ZygoteUnavailable(f"unexpected reply {tag!r} from the zygote server")
        self.returncode = os.waitstatus_to_exitcode(status)

    def send_signal(self, sig: int) -> None:
        """Signal the worker (not its group), as ``Popen.send_signal`` does."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        """Forget the worker; if it still runs, the server kills its group."""
        self._sock.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.returncode is None:
            self.close()


def spawn(socket_path: str, argv: Sequence[str], *, env: dict[str, str], cwd: str | os.PathLike,
          stdin: int | None, stdout: int | None, stderr: int | None) -> Child:
    """Run ``argv`` in a worker of the server at ``socket_path``; :class:`ZygoteUnavailable`
    when there is no server or it declined (nothing ran then). ``None`` for a stdio fd: closed.

    The worker gets this process's umask and ignored signals (minus SIGPIPE and SIGXFSZ,
    which ``subprocess`` resets for a child) and an empty signal mask."""
    stdio = [stdin, stdout, stderr]
    fds = [fd for fd in stdio if fd is not None]
    fdmask = sum(1 << i for i, fd in enumerate(stdio) if fd is not None) | 1 << FD_CWD | FLAG_GROUP
    mask = os.umask(0o22)
    os.umask(mask)
    ignored = {s for s in signal.valid_signals()
               if s not in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGKILL, signal.SIGSTOP)
               and _ignored(s)}
    request = encode_request(list(argv), env, umask=mask, fdmask=fdmask, ignored=_mask(ignored))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd_fd = -1
    try:
        cwd_fd = os.open(cwd, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        sock.connect(socket_path)
        sent = sock.sendmsg([request[:1 << 16]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                   struct.pack(f"{len(fds) + 1}i", *fds,
                                                               cwd_fd))])
        if sent < len(request):  # sendall(b"") still sends: EPIPE once a server has
            sock.sendall(request[sent:])  # declined and closed, hiding its reason
        data = b""
        while len(data) < REPLY.size:
            chunk = sock.recv(REPLY.size - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        sock.close()
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)) and cwd_fd < 0:
            raise
        raise ZygoteUnavailable(f"no zygote server at {socket_path}: {exc}") from exc
    finally:
        if cwd_fd >= 0:
            os.close(cwd_fd)
    if len(data) < REPLY.size or REPLY.unpack(data)[0] != b"PID\0":
        sock.close()
        raise ZygoteUnavailable(f"the zygote server at {socket_path} declined: {data!r}")
    return Child(sock, REPLY.unpack(data)[1], list(argv))


def _ignored(sig: int) -> bool:
    try:
        return signal.getsignal(sig) == signal.SIG_IGN
    except ValueError:
        return False


__all__ = ["Child", "Server", "ZygoteUnavailable", "spawn"]
