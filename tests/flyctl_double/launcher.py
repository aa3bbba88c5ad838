"""What runs a ``fly`` call: a fork of a server that has the double imported, or a fresh Python.

A world's ``bin/fly`` and ``bin/flyctl`` are the zygote client (``tests/zygote_client.c``,
compiled once with ``cc -O2`` into a per-user cache named by the source's hash, and linked
in) when it can be built and this process's server (``tests/zygote.py``, started on first
use, the double's whole ``cli`` package imported) runs; beside them ``bin/.zygote`` names the socket
and ``bin/.python/``, the Python launchers the client execs when the server is not there.
Otherwise ``bin/fly`` is the Python launcher itself, as before the zygote.
``FLY_DOUBLE_ZYGOTE=0`` in pytest's environment: every call a fresh Python.  README.md,
"What runs a call".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pkgutil
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import zygote

PACKAGE_DIR = Path(__file__).resolve().parent
CLIENT_SOURCE = PACKAGE_DIR.parent / "zygote_client.c"
ENABLED = os.environ.get("FLY_DOUBLE_ZYGOTE", "1") != "0"  # read once: conftest's autouse
# fixture takes every FLY_* variable out of os.environ before each test
CONFIG_NAME = ".zygote"
FALLBACK_DIR = ".python"

_server: zygote.Server | None = None
_server_failed = False
_client_cache: list[str | None] = []  # [path or None] once looked for


def python_launcher(python: str) -> str:
    """The Python launcher (a fresh ``python -IS`` that imports the double)."""
    return (
        f"#!{python} -IS\n"
        "import sys\n"
        f"sys.path.insert(0, {str(PACKAGE_DIR)!r})\n"
        "from cli.main import main\n"
        "sys.exit(main(sys.argv))\n"
    )


def install(bin_dir: Path, names: list[str], python: str) -> None:
    """Write ``fly``/``flyctl`` (``names``) into ``bin_dir``: the client, or the launcher."""
    client = client_binary() if ENABLED else None
    socket_path = server_socket(python) if client else None  # no server without a client
    launcher = python_launcher(python)
    if client is None or socket_path is None:
        for name in names:
            _write(bin_dir / name, launcher.encode())
        return
    fallback = bin_dir / FALLBACK_DIR
    fallback.mkdir(exist_ok=True)
    for name in ("fly", "flyctl"):
        _write(fallback / name, launcher.encode())
    _write(bin_dir / CONFIG_NAME, f"socket={socket_path}\nfallback={fallback}\n".encode(),
           mode=0o644)
    for name in names:
        _link(client, bin_dir / name)


def _write(path: Path, data: bytes, mode: int = 0o755) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a new file: a running client keeps the old one
    path.write_bytes(data)
    path.chmod(mode)


def _link(client: str, path: Path) -> None:
    """The cached client as ``path``: a hard link (the static binary is 0.8 MB, a world
    has two, a suite thousands of worlds), a copy across file systems. Nothing writes
    into a world's ``bin/fly``: set_binaries replaces it with a new file."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    try:
        os.link(client, path)
    except OSError:
        _write(path, Path(client).read_bytes())


def server_socket(python: str) -> str | None:
    """This process's server's socket, started on first use; None if it cannot run."""
    global _server, _server_failed
    if _server is not None and _server.running:
        return _server.socket_path
    if _server_failed:
        return None
    if _server is not None:  # it died: the worlds made since get a new one
        _server.stop()
        _server = None
    preload = ["cli." + m.name for m in pkgutil.iter_modules([str(PACKAGE_DIR / "cli")])]
    # and what a call imports only when it needs it (ssh console, sftp, a traceback)
    preload += ["subprocess", "threading", "traceback"]
    server = zygote.Server("flyctl-double", preload, "cli.main:main", python,
                           sys_path=[str(PACKAGE_DIR)])
    try:
        server.start()
    except zygote.ZygoteUnavailable:
        _server_failed = True
        return None
    _server = server
    return server.socket_path


def stop_server() -> None:
    """End of the session: stop the server (a call still running is killed)."""
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def client_binary() -> str | None:
    """The compiled client, built on first use (None: no ``cc``, or it failed)."""
    if not _client_cache:
        _client_cache.append(_build_client())
    return _client_cache[0]


def _build_client() -> str | None:
    try:
        source = CLIENT_SOURCE.read_bytes()
    except OSError:
        return None
    cache = _cache_dir()
    cc = shutil.which("cc") or shutil.which("gcc")
    if cache is None:
        return None
    key = hashlib.sha256(source + b"\0cc -O2 [-static]").hexdigest()[:16]  # source + how
    target = cache / f"zygote_client-{key}"
    if target.exists():
        return str(target)
    if cc is None:
        return None
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".build-")
    os.close(fd)
    try:  # four xdist workers may build at once: each its own file, renamed into place
        # static where the C library allows it: 0.45 ms a start instead of 0.7 (no ld.so)
        for extra in (["-static"], []):
            proc = subprocess.run([cc, "-O2", *extra, "-o", tmp, str(CLIENT_SOURCE)],
                                  capture_output=True, timeout=120)
            if proc.returncode == 0:
                break
        else:
            return None
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return str(target)


def _cache_dir() -> Path | None:
    """A folder only this user can write (a shared /tmp must not hand us someone's binary)."""
    path = Path(tempfile.gettempdir()) / f"flyctl-double-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    try:
        st = path.lstat()
    except OSError:
        return None
    if not path.is_dir() or path.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return path
