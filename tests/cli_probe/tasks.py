"""A task that prints what a CLI process sees of its world (tests/test_cli_server.py): run
by a fresh ``python -m invoke`` and by a fork of the CLI server, both must print the same."""

import atexit
import importlib
import json
import locale
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from invoke import task


@task
def probe(c, preload="", wait_for_term=False):
    """Print this process's world as JSON (``--preload``: import these modules first;
    ``--wait-for-term``: then wait for a signal, saying so on stderr)."""
    for name in filter(None, preload.split(",")):
        importlib.import_module(name)
    import rich

    health = importlib.import_module("ops.health")
    handlers = {}
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        handler = signal.getsignal(sig)
        handlers[signal.Signals(sig).name if sig in signal.Signals.__members__.values()
                 else str(sig)] = getattr(handler, "__name__", str(handler))
    streams = {name: {"fileno": stream.fileno(), "encoding": stream.encoding,
                      "errors": stream.errors, "line_buffering": stream.line_buffering,
                      "write_through": stream.write_through,
                      "buffer": type(stream.buffer).__name__, "name": stream.buffer.name,
                      "isatty": stream.isatty()}
               for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout),
                                    ("stderr", sys.stderr))}
    umask = os.umask(0)
    os.umask(umask)
    world = {
        "own_group": os.getpgrp() == os.getpid(),
        "argv": sys.argv, "orig_argv": sys.orig_argv, "path": sys.path, "cwd": os.getcwd(),
        "executable": sys.executable, "environ": dict(os.environ), "umask": umask,
        "flags": list(sys.flags), "signals": handlers, "blocked": sorted(
            int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "streams": streams, "tempdir": tempfile.gettempdir(), "tzname": list(time.tzname),
        "localtime": time.strftime("%z", time.localtime(0)),
        "locale": list(locale.getlocale(locale.LC_CTYPE)),
        "rich_cwd": rich._IMPORT_CWD, "root_log_level": logging.getLogger().level,
        "proxies": [h.proxies for h in health._OPENER.handlers
                    if isinstance(h, urllib.request.ProxyHandler)],
        "exit_handlers": atexit._ncallbacks(), "threads": threading.active_count(),
        "main": [getattr(sys.modules["__main__"], key, None) for key in ("__name__", "__file__")],
        "tasks_module": sys.modules["tasks"].__file__,
        "comm": Path(f"/proc/{os.getpid()}/comm").read_text().strip(),  # its name in ps
    }
    print(json.dumps(world, sort_keys=True), flush=True)
    if wait_for_term:
        print("waiting for SIGTERM", file=sys.stderr, flush=True)
        time.sleep(60)
