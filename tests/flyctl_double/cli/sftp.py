"""``fly ssh sftp get|put|find`` (= ``fly sftp ...``; internal/command/ssh/sftp.go)."""

from __future__ import annotations

import errno
import os
import stat

from .output import FlyError, go_errno_text, go_quote, out, write_all
from .parser import Command, Flag, max_args, not_emulated, range_args
from .records import machine_runtime
from .session import Ctx, api_auth, get_app
from .ssh import select_machine, ssh_flags, ssh_prologue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..state import Machine, Runtime, SftpFault


def _take_sftp_fault(ctx: Ctx, remote: str) -> SftpFault | None:
    with ctx.store.mutate() as state:
        for fault in state.get("sftp_faults", []):
            if fault.get("times") is not None and fault["times"] <= 0:
                continue
            if fault.get("remote") and fault["remote"] != remote:
                continue
            if fault.get("times") is not None:
                fault["times"] -= 1
            return dict(fault)
    return None


def _remote_path(rt: Runtime, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(rt.get("cwd") or rt["home"], path)


def _sftp_stat_error(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "file does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"sftp: {go_errno_text(exc)}"


def _sftp_connect(ctx: Ctx) -> Machine:
    name = ctx.inv.flags["__app__"]
    api_auth(ctx)
    app = get_app(ctx, name, "get app: ")
    return select_machine(ctx, app, console=False)


def cmd_sftp_get(ctx: Ctx) -> int:
    name = ssh_prologue(ctx)
    ctx.inv.flags["__app__"] = name
    if not ctx.args:
        out("get <remote-path> [local-path]\n")
        return 0
    remote = ctx.args[0]
    local = ctx.args[1] if len(ctx.args) > 1 else os.path.basename(remote)
    if os.path.lexists(local):
        raise FlyError(
            f"file {local} is already there. `fly ssh` doesn't override existing files for safety."
        )
    machine = _sftp_connect(ctx)
    rt = machine_runtime(machine)
    rpath = _remote_path(rt, remote)
    try:
        st = os.stat(rpath)
    except OSError as exc:
        raise FlyError(f"get: remote path {remote}: {_sftp_stat_error(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        if not ctx.flag("recursive"):
            raise FlyError(
                f"remote path {remote} is a directory. Use -R/--recursive flag to download "
                "directories"
            )
        return _sftp_get_dir(rpath, remote, local)
    try:
        rf = open(rpath, "rb")  # noqa: SIM115 - closed in finally
    except OSError as exc:
        raise FlyError(f"get: remote file {remote}: {_sftp_stat_error(exc)}") from None
    try:
        try:
            fd = os.open(local, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
        except OSError as exc:
            raise FlyError(
                f"get: local file {local}: open {local}: {go_errno_text(exc)}"
            ) from None
        fault = _take_sftp_fault(ctx, remote)
        limit = None if fault is None else int(fault.get("after_bytes", 0))
        written = 0
        try:
            while True:
                want = 32768 if limit is None else min(32768, limit - written)
                if want <= 0:
                    break
                chunk = rf.read(want)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    written += n
                    view = view[n:]
            if fault is not None:
                raise FlyError(
                    f"get: copy file: {fault.get('error', 'connection lost')} "
                    f"({written} bytes written)"
                )
            out(f"{written} bytes written to {local}\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        rf.close()
    return 0


def _sftp_get_dir(rpath: str, remote: str, local: str) -> int:
    total = 0
    files: list[tuple[str, str]] = []
    for dirpath, _dirs, names in os.walk(rpath):
        for n in sorted(names):
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, rpath)
            files.append((full, rel))
    os.makedirs(local, mode=0o755)
    for full, rel in files:
        dest = os.path.join(local, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(full, "rb") as src, open(dest, "wb") as dst:
            data = src.read()
            dst.write(data)
        out(f"downloaded {rel} ({len(data)} bytes)\n")
        total += len(data)
    out(f"extracted {total} bytes to {local}/\n")
    return 0


def cmd_sftp_put(ctx: Ctx) -> int:
    name = ssh_prologue(ctx)
    ctx.inv.flags["__app__"] = name
    local = ctx.args[0]
    remote = ctx.args[1] if len(ctx.args) > 1 else os.path.basename(local)
    mode_str = ctx.flag("mode") or "0644"
    try:
        mode = int(mode_str, 8)
    except ValueError:
        raise FlyError(
            f"invalid file mode '{mode_str}': strconv.ParseInt: parsing "
            f"{go_quote(mode_str)}: invalid syntax"
        ) from None
    try:
        st = os.stat(local)
    except OSError as exc:
        raise FlyError(f"local file {local}: stat {local}: {go_errno_text(exc)}") from None
    machine = _sftp_connect(ctx)
    rt = machine_runtime(machine)
    if stat.S_ISDIR(st.st_mode):
        raise FlyError(
            "flyctl test double: recursive sftp put is not emulated"
            if ctx.flag("recursive")
            else f"local path {local} is a directory. Use -R/--recursive flag to upload directories"
        )
    rpath = _remote_path(rt, remote)
    if os.path.lexists(rpath):
        raise FlyError(
            f"remote file {remote} already exists. flyctl sftp doesn't overwrite existing files "
            "for safety"
        )
    try:
        fd = os.open(rpath, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    except OSError as exc:
        raise FlyError(f"create remote file {remote}: {_sftp_stat_error(exc)}") from None
    try:
        with open(local, "rb") as src:
            written = _put_copy(ctx, src, fd, remote)
    finally:
        os.close(fd)
    os.chmod(rpath, mode)
    out(f"{written} bytes uploaded to {remote}\n")
    return 0


def _put_copy(ctx: Ctx, src: Any, fd: int, remote: str) -> int:
    """Copy the upload; a fault (``FlyWorld.sftp_put_fault``) cuts it short, leaving the
    partial remote file as flyctl does (``copy file: ... (N bytes written)``), or flips
    one byte on the way."""
    with ctx.store.mutate() as state:
        faults = state.setdefault("sftp_put_faults", [])
        fault = next((f for f in faults if f.get("remote") in (None, remote)
                      and (f.get("times") is None or f["times"] > 0)), None)
        if fault is not None and fault.get("times") is not None:
            fault["times"] -= 1
    data = src.read()
    if fault is not None and fault.get("flip_at") is not None and data:
        at = min(int(fault["flip_at"]), len(data) - 1)
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    limit = None if fault is None else fault.get("after_bytes")
    write_all(fd, data if limit is None else data[:limit])
    if limit is not None:
        raise FlyError(f"copy file: {fault.get('error', 'connection lost')} "
                       f"({min(limit, len(data))} bytes written)")
    return len(data)


def cmd_sftp_find(ctx: Ctx) -> int:
    name = ssh_prologue(ctx)
    ctx.inv.flags["__app__"] = name
    machine = _sftp_connect(ctx)
    rt = machine_runtime(machine)
    root = ctx.args[0] if ctx.args else "/"
    rpath = _remote_path(rt, root)
    if not os.path.exists(rpath):
        raise FlyError(f"file does not exist: {root}")
    out(f"{root}\n")
    for dirpath, dirs, names in os.walk(rpath):
        dirs.sort()
        for n in sorted([*dirs, *names]):
            rel = os.path.relpath(os.path.join(dirpath, n), rpath)
            out(os.path.join(root, rel) + "\n")
    return 0


def sftp_group() -> Command:
    return Command(
        "sftp",
        short="Get or put files from a remote VM.",
        children=[
            Command("find", usage="[path]", flags=ssh_flags(), run=cmd_sftp_find,
                    short="The SFTP FIND command lists files on a remote VM."),
            not_emulated("shell"),
            Command("get", usage="<remote-path> [local-path]",
                    flags=[Flag("recursive", "R", help="Download directories recursively"),
                           *ssh_flags()],
                    run=cmd_sftp_get, args=max_args(2),
                    short="The SFTP GET retrieves a file from a remote VM."),
            Command("put", usage="<local-path> [remote-path]",
                    flags=[Flag("mode", "m", "string", default="0644", help="File mode"),
                           Flag("recursive", "R", help="Upload directories recursively"),
                           *ssh_flags()],
                    run=cmd_sftp_put, args=range_args(1, 2),
                    short="The SFTP PUT uploads a file to a remote VM."),
        ],
    )
