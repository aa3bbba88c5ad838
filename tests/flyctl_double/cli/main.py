"""One ``fly`` invocation: log the call, apply a fault, then parse and run the command."""

from __future__ import annotations

import os
import signal
import sys

from .calls import log_call, redact
from .commands import ROOT
from .faults import dropping_tail, stall, take_fault
from .output import FlyError, Interrupted, err, out
from .parser import cmd_not_emulated, help_text, parse_invocation
from .platform import proxy_tick
from .session import TOML_CACHE, Ctx, resolve_token
from .store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..state import World


def _on_signal(signum: int, frame: Any) -> None:
    raise Interrupted()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    prog = os.path.basename(argv[0]) if argv and argv[0] else "fly"
    args = argv[1:]
    environ = dict(os.environ)
    state_path = environ.get("FLY_DOUBLE_STATE", "")
    if not state_path or not os.path.isabs(state_path):
        err("Error: flyctl test double: FLY_DOUBLE_STATE must name the state file (absolute)\n")
        return 2
    store = Store(state_path)
    early: list = []  # trapped from the start, as flyctl's main.go newContext does: a
    for signum in (signal.SIGTERM, signal.SIGINT):  # signal once the call is logged is 127
        signal.signal(signum, lambda signum, frame: early.append(signum))
    TOML_CACHE[:] = [os.path.join(os.path.dirname(state_path), "toml-cache.json")]
    try:
        state: World | None = store.load()
    except (OSError, ValueError):
        state = None
    inv = parse_invocation(ROOT, args, prog)
    token, source = resolve_token(inv.flag_token, environ, state)
    known = [inv.flag_token or "", environ.get("FLY_ACCESS_TOKEN", ""),
             environ.get("FLY_API_TOKEN", ""), token or ""]
    if state:
        known += list((state.get("auth") or {}).get("valid_tokens", []))
        known.append((state.get("auth") or {}).get("config_token") or "")
    try:
        log_call(state_path, redact(args, known), bool(token))
    except OSError as exc:
        err(f"Error: flyctl test double: cannot write the call log: {exc}\n")
        return 2
    if state is None:
        err(f"Error: flyctl test double: cannot read state file {state_path}\n")
        return 2
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if early:  # (context.Canceled before the command ran: silent, 127)
        return 127
    try:
        fault = take_fault(store, state, args)
        if fault is not None:
            if fault.get("sleep"):
                stall(float(fault["sleep"]), fault.get("until"))
            if fault.get("kind") not in ("hang", "drop_tail"):
                if fault.get("stdout_hex"):
                    sys.stdout.buffer.write(bytes.fromhex(fault["stdout_hex"]))
                out(fault.get("stdout") or "")
                err(fault.get("stderr") or "")
                return int(fault.get("exit", 1))
            state = store.load()
        if (environ.get("LOG_LEVEL") or "").lower() == "debug":
            # flyctl/flyctl.go loadConfig: terminal.Debug("Loaded flyctl config from", path);
            # terminal/logging.go logs to os.Stdout, Faint "DEBUG", Go's Sprint (no space)
            home = environ.get("HOME", "/root")
            out(f"\x1b[2mDEBUG\x1b[0m Loaded flyctl config from{home}/.fly/config.yml\n")
        if (state.get("features") or {}).get("proxy_traffic"):
            with store.mutate() as live:  # requests keep arriving while flyctl runs
                proxy_tick(live)
            state = store.load()
        ctx = Ctx(prog, inv, store, state, token, source, environ)
        if fault is not None and fault.get("kind") == "drop_tail":
            return dropping_tail(lambda: execute(ctx), int(fault.get("lines", 1)))
        return execute(ctx)
    except FlyError as exc:
        err(f"Error: {exc.message}\n{exc.suffix}")
        return exc.exit_code
    except Interrupted:
        return 127
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug in the double: fail loudly, like a recovered panic
        import traceback

        err(f"Error: flyctl test double internal error: {exc!r}\n{traceback.format_exc()}")
        return 3


def execute(ctx: Ctx) -> int:
    inv = ctx.inv
    cmd = inv.cmd
    assert cmd is not None
    if inv.error:
        if inv.unknown_command:
            target = cmd.path(ctx.prog)
            out(f"Run '{target} --help' for usage.\n")
        raise FlyError(inv.error)
    if not cmd.emulated:
        return cmd_not_emulated(ctx)
    if inv.flags.get("help"):
        out(help_text(cmd, ctx.prog))
        return 0
    if cmd.run is None:
        out(help_text(cmd, ctx.prog))
        return 0
    if cmd.args is not None:
        problem = cmd.args.validate(cmd.path(ctx.prog), inv.positionals)
        if problem:
            if problem.startswith("unknown command"):
                out(f"Run '{cmd.path(ctx.prog)} --help' for usage.\n")
            raise FlyError(problem)
    return cmd.run(ctx)
