"""Files to and from an SSH host through SFTP, never half-written under a real name.

Both directions write to a private temporary name (a 0600 file; upstream inside a 0700
folder, since SFTP cannot create a file private from the start), check the SHA-256
against the expected value (the host's, computed there when not given), and only then
hard-link the file to its name: a link fails rather than replace an existing file and
never follows a symlink there. A cut transfer leaves only a ``.tmp-`` name behind, which
no listing takes for a backup.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import secrets
import shlex
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from paramiko.ssh_exception import SSHException

from ops import digits, engine, remote
from ops.errors import ExitCode, OpsError

Progress = Callable[[int, int], None]  # (bytes done, total bytes)
HEX = frozenset("0123456789abcdef")

_HASH = ("import hashlib, os, sys\n"
         "h = hashlib.sha256()\n"
         "with open(sys.argv[1], 'rb') as f:\n"
         "    for block in iter(lambda: f.read(1 << 20), b''):\n"
         "        h.update(block)\n"
         f"print('{remote.ENTRY_MARK}', h.hexdigest(), os.path.getsize(sys.argv[1]))\n")


@dataclass(frozen=True)
class Transferred:
    path: str  # where the file now is (local for get, remote for put)
    size: int
    sha256: str


def sha256_script(path: str) -> str:
    """The SHA-256 and size of a regular file on the host: python3, else sha256sum.

    Exit 3: no such file; 5: a symlink or not a regular file.
    """
    q = shlex.quote(path)
    return f"""[ -L {q} ] && exit 5
[ -e {q} ] || exit 3
[ -f {q} ] || exit 5
if command -v python3 >/dev/null 2>&1 && {engine.PYTHON3} -c {shlex.quote(_HASH)} {q}
then exit 0; fi
set -- $(sha256sum {q}) && printf '{remote.ENTRY_MARK} %s %s\\n' "$1" $(( $(wc -c < {q}) ))"""


def remote_sha256(session, path: str) -> tuple[str, int]:
    output = session.run(sha256_script(_remote_path(path)))
    if output.status == 3:
        raise OpsError(f"{path} not found on {session.where}", ExitCode.NOT_FOUND)
    if output.status == 5:
        raise OpsError(f"{path} on {session.where} is a symlink or not a regular file; "
                       "not transferred", ExitCode.USAGE)
    entry = output.entries[-1] if output.entries else []
    if output.status != 0 or len(entry) != 2 or not _is_sha256(entry[0]) \
            or not digits.is_whole(entry[1]):
        raise OpsError(f"cannot compute the SHA-256 of {path} on {session.where} "
                       "(it needs python3 or sha256sum)")
    return entry[0], int(entry[1])


@contextlib.contextmanager
def fetch(session, remote_file: str, directory: Path, expected_sha256: str | None = None,
          on_bytes: Progress | None = None) -> Iterator[Transferred]:
    """A private copy of ``remote_file`` in ``directory`` whose SHA-256 matched.

    It has a ``.tmp-`` name and is removed when the block ends: link it to its real
    name inside the block (``engine.publish`` does, sidecars first).
    """
    remote_file = _remote_path(remote_file)
    expected = _expected(expected_sha256) or remote_sha256(session, remote_file)[0]
    sftp = session.sftp()
    try:
        info = sftp.lstat(remote_file)
    except FileNotFoundError:
        raise OpsError(f"{remote_file} not found on {session.where}", ExitCode.NOT_FOUND) from None
    except (OSError, EOFError, SSHException) as exc:
        raise session.lost(exc, f"stat {remote_file}") from None
    if not stat.S_ISREG(info.st_mode or 0):
        raise OpsError(f"{remote_file} on {session.where} is a symlink or not a regular file; "
                       "not transferred", ExitCode.USAGE)
    directory = Path(directory)
    _private_dir(directory)
    name = posixpath.basename(remote_file)
    tmp = directory / f"{engine.TMP_PREFIX}{name}.download-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "wb") as handle:
            sink = _Hashing(handle)
            try:
                _quiet_prefetch_threads()
                sftp.getfo(remote_file, sink, callback=on_bytes)
            except PermissionError as exc:
                raise OpsError(f"cannot read {remote_file} on {session.where}: "
                               f"{exc.strerror or exc}") from None
            except (OSError, EOFError, SSHException) as exc:
                raise session.lost(exc, f"download of {remote_file}") from None
            handle.flush()
            os.fsync(handle.fileno())
        if info.st_size is not None and sink.size < info.st_size:
            # Paramiko's prefetch can end quietly when the link drops: a short file is a
            # lost connection, not a corrupt backup
            short = EOFError(f"{sink.size} of {info.st_size} bytes arrived")
            raise session.lost(short, f"download of {remote_file}")
        digest = sink.hash.hexdigest()
        if digest != expected:
            raise OpsError(f"download of {remote_file} is corrupt: SHA-256 {digest[:12]}… but "
                           f"{session.where} has {expected[:12]}…", ExitCode.VERIFY_FAILED)
        yield Transferred(str(tmp), sink.size, digest)
    finally:
        tmp.unlink(missing_ok=True)


def get(session, remote_file: str, local: Path, expected_sha256: str | None = None,
        on_bytes: Progress | None = None) -> Transferred:
    """Download to ``local`` (a file that exists is never replaced)."""
    local = Path(local)
    if os.path.lexists(local):
        raise OpsError(f"{local} already exists; not overwritten", ExitCode.USAGE)
    with fetch(session, remote_file, local.parent, expected_sha256, on_bytes) as staged:
        try:
            os.link(staged.path, local)
        except FileExistsError:
            raise OpsError(f"{local} already exists; not overwritten", ExitCode.USAGE) from None
        engine.fsync_path(local.parent)
    return Transferred(str(local), staged.size, staged.sha256)


def put(session, local: Path, remote_file: str, expected_sha256: str | None = None,
        on_bytes: Progress | None = None) -> Transferred:
    """Upload ``local`` to ``remote_file`` on the host (a file that exists is never replaced).

    ``expected_sha256`` (else the local file's) must match the file before it leaves and
    the copy on the host before it gets its name.
    """
    local = Path(local)
    remote_file = _remote_path(remote_file)
    digest = engine.sha256_file(local)
    expected = _expected(expected_sha256)
    if expected and expected != digest:
        raise OpsError(f"{local} has SHA-256 {digest[:12]}…, not the expected "
                       f"{expected[:12]}…; not uploaded", ExitCode.VERIFY_FAILED)
    size = local.stat().st_size
    folder = posixpath.dirname(remote_file)
    staging = f"{folder}/{engine.TMP_PREFIX}{posixpath.basename(remote_file)}.upload-" \
              f"{os.getpid()}-{secrets.token_hex(4)}"
    data = f"{staging}/data"
    made = session.run(_prepare_script(remote_file, staging))
    if made.status == 17:
        raise OpsError(f"{remote_file} already exists on {session.where}; not overwritten",
                       ExitCode.USAGE)
    if made.status != 0:
        raise OpsError(f"cannot create {staging} on {session.where} (exit {made.status})")
    try:
        sftp = session.sftp()
        try:
            with open(local, "rb") as handle:
                sftp.putfo(handle, data, file_size=size, callback=on_bytes, confirm=True)
            sftp.chmod(data, 0o600)
        except (OSError, EOFError, SSHException) as exc:
            raise session.lost(exc, f"upload of {local.name}") from None
        there, _ = remote_sha256(session, data)
        if there != digest:
            raise OpsError(f"upload of {local.name} is corrupt: the host has SHA-256 "
                           f"{there[:12]}…, the file {digest[:12]}…", ExitCode.VERIFY_FAILED)
        placed = session.run(_place_script(data, remote_file))
        if placed.status == 17:
            raise OpsError(f"{remote_file} already exists on {session.where}; not overwritten",
                           ExitCode.USAGE)
        if placed.status != 0:
            raise OpsError(f"cannot link the upload to {remote_file} on {session.where} "
                           f"(exit {placed.status})")
    finally:
        with contextlib.suppress(OpsError):
            session.run(f"rm -rf -- {shlex.quote(staging)}")
    return Transferred(remote_file, size, digest)


def _prepare_script(final: str, staging: str) -> str:
    f, s = shlex.quote(final), shlex.quote(staging)
    return f"""if [ -e {f} ] || [ -L {f} ]; then exit 17; fi
umask 077
mkdir -p -- {shlex.quote(posixpath.dirname(final))} && mkdir -- {s}"""


def _place_script(data: str, final: str) -> str:
    """``ln`` fails rather than replace; ``-n`` keeps it from entering a symlinked folder."""
    f = shlex.quote(final)
    return f"""if [ -e {f} ] || [ -L {f} ]; then exit 17; fi
ln -n -- {shlex.quote(data)} {f} || exit 17"""


def _remote_path(path: str) -> str:
    if not remote.SAFE_PATH.fullmatch(path) or "/../" in f"{path}/" or path.endswith("/"):
        raise OpsError(f"remote file must be a plain absolute path, got {path!r}",
                       ExitCode.USAGE)
    return path


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and set(text) <= HEX


def _expected(value: str | None) -> str | None:
    if value is None:
        return None
    if not _is_sha256(value):
        raise OpsError(f"expected SHA-256 must be 64 lowercase hex digits, got {value!r}",
                       ExitCode.USAGE)
    return value


def _private_dir(directory: Path) -> None:
    """Create a missing destination folder as 0700; an existing one must be writable."""
    if not directory.exists():
        try:
            engine.mkdir_private(directory)  # and any missing folder above it
        except OSError as exc:
            raise OpsError(f"cannot create {directory}: {exc.strerror}", ExitCode.USAGE) from None
    try:
        engine.prepare_dir(directory)
    except engine.EngineError as exc:
        raise OpsError.from_engine(exc) from None


def _quiet_prefetch_threads() -> None:
    """Paramiko sends a download's read requests from a thread that dies with a traceback
    when the connection is cut; the transfer itself then fails with one clear line, so
    that thread's death is not shown. (A request limit would leave it spinning forever.)"""
    previous = threading.excepthook
    if getattr(previous, "ops_quiet", False):
        return

    def hook(args):
        if not (args.thread is not None and args.thread.name.endswith("(_prefetch_thread)")
                and issubclass(args.exc_type, OSError | EOFError | SSHException)):
            previous(args)

    hook.ops_quiet = True
    threading.excepthook = hook


class _Hashing:
    """A file that hashes what is written to it (the download is read only once)."""

    def __init__(self, handle):
        self.handle, self.hash, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.handle.write(data)
