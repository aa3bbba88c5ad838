"""``fly ssh console -C``: pick a machine, run the command as hallpass does, pump its output.

internal/command/ssh/{console,connect}.go; the "machine" is the local filesystem with the
machine's own PATH and HOME (see ../README.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from .flags import app_flag, config_flag
from .output import FlyError, Interrupted, err, go_quote, out, write_all
from .parser import Command, Flag, max_args
from .platform import go_shlex_split
from .records import active_machines, machine_runtime, process_group
from .session import Ctx, api_auth, get_app, require_app_name, require_session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..state import App, Machine, Runtime


SYSTEM_BIN_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")


BARE_SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash")


PTY_WARNING = (
    "Allocating a pseudo-terminal since the command provided is a shell. This behavior will "
    "change in the future; please use --pty explicitly if this is what you want."
)


def _machine_by_address(app: App, addr: str) -> Machine | None:
    app_name = app.get("name", "")
    for m in active_machines(app):
        if addr in (m.get("private_ip"), f"{m['id']}.vm.{app_name}.internal"):
            return m
    return None


def select_machine(ctx: Ctx, app: App, console: bool) -> Machine:
    """flyctl's addrForMachines + lookupAddress + Connect, against the world state."""
    app_name = app["name"]
    machines = [m for m in active_machines(app) if m.get("state") == "started"]
    if not machines:
        raise FlyError(
            f"app {app_name} has no started VMs.\nIt may be unhealthy or not have been deployed "
            "yet.\nTry the following command to verify:\n\nfly status"
        )
    region = ctx.flag("region")
    if region:
        machines = [m for m in machines if m.get("region") == region]
        if not machines:
            raise FlyError(f"app {app_name} has no VMs in region {region}")
    group = ctx.flag("process-group")
    if group:
        machines = [m for m in machines if process_group(m) == group]
        if not machines:
            raise FlyError(f"app {app_name} has no VMs in process group {group}")
    machine_id = ctx.flag("machine") or ""
    selected = next((m for m in machines if m["id"] == machine_id), None)
    if machine_id and selected is None:
        raise FlyError(f"--machine={go_quote(machine_id)} not found/started")
    if ctx.flag("select"):
        if "machine" in ctx.inv.specified:
            raise FlyError("--machine can't be used with -s/--select")
        raise FlyError("selecting VM: prompt: non interactive")
    addr = ctx.flag("address") or ""
    if not addr and console and ctx.args:
        addr = ctx.args[0]
    if addr:
        target = _machine_by_address(app, addr)
        if target is None:
            if ":" not in addr:
                # Guess: agent DNS wait failure text.
                raise FlyError(f"host unavailable at {addr}: host was not found in DNS")
            raise FlyError(
                f"error connecting to SSH server: dial tcp [{addr}]:22: connect: "
                "connection timed out"
            )
        return target
    if selected is None:
        selected = machines[0]
        if len(machines) > 1:
            out(
                f"No machine specified, using {selected['id']} in region "
                f"{selected.get('region')}\n"
            )
    return selected


def resolve_remote_executable(name: str, rt: Runtime, cwd: str) -> str | None:
    bin_dir = rt["bin"]
    if "/" not in name:
        cand = os.path.join(bin_dir, name)
    elif os.path.dirname(name) in SYSTEM_BIN_DIRS:
        cand = os.path.join(bin_dir, os.path.basename(name))
    else:
        cand = name if os.path.isabs(name) else os.path.join(cwd, name)
    if os.path.isfile(cand) and os.access(cand, os.X_OK):
        return cand
    return None


def remote_env(rt: Runtime) -> dict[str, str]:
    env = {"PATH": rt["bin"], "HOME": rt["home"], "LANG": "C.UTF-8"}
    env.update({str(k): str(v) for k, v in (rt.get("env") or {}).items()})
    return env


def _exit_message(returncode: int) -> str | None:
    if returncode == 0:
        return None
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name.removeprefix("SIG")
        except ValueError:
            name = str(sig)
        return f"Process exited with status {128 + sig} from signal {name}"
    return f"Process exited with status {returncode}"


def run_remote(m: Machine, command: str, pty: bool) -> int:
    """Run ``command`` as hallpass would: split as flyctl splits (google/shlex, see
    platform.go_shlex_split), exec without a shell, PATH = the image's tools only."""
    import subprocess

    rt = machine_runtime(m)
    cwd = rt.get("cwd") or rt["home"]
    try:
        argv = go_shlex_split(command)
    except ValueError as exc:
        err(f"failed to parse command: {exc}\n")
        return 1
    if not argv:
        argv = [""]
    exe = resolve_remote_executable(argv[0], rt, cwd)
    if exe is None:
        err(f"exec: {go_quote(argv[0])}: executable file not found in $PATH\n")
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    # Like an SSH channel, the "remote" process talks to us through pipes that we pump:
    # local stdin is copied in (EOF closes the remote stdin) and output is copied out.  When
    # the session is cut, the remote process keeps running but our pipes do not leak into it.
    proc = subprocess.Popen(
        argv,
        executable=exe,
        env=remote_env(rt),
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if pty else subprocess.PIPE,
    )
    try:  # from here a cut session leaves the remote process running
        outputs = [_pump(proc.stdout, 1, crlf=pty)]
        if not pty:
            outputs.append(_pump(proc.stderr, 2, crlf=False))
        _pump_stdin(proc.stdin)
        code = proc.wait()
        for t in outputs:  # flyctl >= 0.4.80 drains both pipes before returning
            t.join()
        return code
    except Interrupted:
        raise FlyError(
            "ssh shell: session forcibly closed; the remote process may still be running"
        ) from None


def _pump(src: Any, fd: int, crlf: bool) -> Any:
    import threading

    def run() -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(src.fileno(), 65536):
                write_all(fd, chunk.replace(b"\n", b"\r\n") if crlf else chunk)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _pump_stdin(dst: Any) -> None:
    import threading

    def run() -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(0, 65536):
                write_all(dst.fileno(), chunk)
        with contextlib.suppress(OSError, ValueError):
            dst.close()

    threading.Thread(target=run, daemon=True).start()


def ssh_prologue(ctx: Ctx) -> str:
    """RequireSession + RequireAppName preparers shared by ssh console and sftp."""
    require_session(ctx)
    name, _ = require_app_name(ctx)
    return name


def cmd_ssh_console(ctx: Ctx) -> int:
    name = ssh_prologue(ctx)
    api_auth(ctx)
    app = get_app(ctx, name, "get app: ")
    machine = select_machine(ctx, app, console=True)
    command = ctx.flag("command") or ""
    pty = command == "" or bool(ctx.flag("pty"))
    bare_shell = False
    if not pty and command in BARE_SHELLS:
        prefix = "WARN" if "NO_COLOR" in ctx.environ else "\x1b[33mWARN\x1b[0m"
        out(f"{prefix} {PTY_WARNING}\n")
        pty = True
        bare_shell = True
    if not ctx.flag("quiet"):
        err(f"Connecting to {machine.get('private_ip')}...\n")
    if command == "" or bare_shell:
        raise FlyError(
            "ssh shell: flyctl test double: interactive PTY sessions are not emulated "
            "(stdin is not a terminal); pass a command with -C"
        )
    msg = _exit_message(run_remote(machine, command, pty))
    if msg:
        raise FlyError(f"ssh shell: {msg}")
    return 0


def ssh_flags() -> list[Flag]:
    return [
        Flag("org", "o", "string", help="The target Fly.io organization"),
        app_flag(),
        config_flag(),
        Flag("command", "C", "string", help="command to run on SSH session"),
        Flag("machine", None, "string", help="Run the console in the existing machine with the specified ID"),  # noqa: E501
        Flag("select", "s", help="select available instances"),
        Flag("region", "r", "string", help="The target region (see 'flyctl platform regions')"),
        Flag("quiet", "q", help="Don't print progress indicators for WireGuard"),
        Flag("address", "A", "string", help="Address of VM to connect to"),
        Flag("container", None, "string", help="Container to connect to"),
        Flag("no-container", help="Connect to the machine itself, not a container"),
        Flag("pty", help="Allocate a pseudo-terminal (default: on when no command is provided)"),
        Flag("user", "u", "string", default="root", help="Unix username to connect as"),
        Flag("process-group", "g", "string", help="The target process group"),
    ]


def console_cmd() -> Command:
    return Command("console", short="Connect to a running instance of the current app.",
                   usage="[ADDRESS]", flags=ssh_flags(), run=cmd_ssh_console, args=max_args(1))
