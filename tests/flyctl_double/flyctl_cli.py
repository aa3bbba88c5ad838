"""Implementation of the flyctl test double (stdlib only).

The executable entry points are ``fly`` / ``flyctl`` next to this file (and the
launchers a :class:`~tests.flyctl_double.state.FlyWorld` writes into its own
``bin`` directory).  Everything here mimics flyctl v0.4.87 as described in
``/work/shared/reference/flyctl.md``; see ``README.md`` for the scope.

All state lives in the JSON file named by ``FLY_DOUBLE_STATE``.  Every
invocation first appends ``{"argv": [...], "token": bool}`` to ``calls.jsonl``
next to that file.  Tokens are never printed and are redacted in the log.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import errno
import fcntl
import json
import math
import os
import re
import signal
import stat
import sys
import time

# Heavier modules (typing, subprocess, shlex, hashlib, csv, tomllib) are imported lazily:
# every test spawns this program many times, so start-up time matters.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

FLYCTL_VERSION = "0.4.87"
FLYCTL_COMMIT = "ad0172face303b77584eea95b46fa3ddc61d5ddd"
FLYCTL_BUILD_DATE = "2026-08-20T17:03:41Z"

REDACTED = "[REDACTED]"
GIB = 1024**3
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time in JSON (a snapshot still running)

NO_TOKEN_MSG = "No access token available. Please login with 'flyctl auth login'"
# Guess (documented in README): what the API answers for a token it rejects.
UNAUTHENTICATED_MSG = "You must be authenticated to view this."
MISSING_APP_MSG = (
    "the config for your app is missing an app name, add an app field to the fly.toml "
    "file or specify with the -a flag"
)

VOLUME_KEYS = (
    "id",
    "name",
    "state",
    "size_gb",
    "region",
    "zone",
    "encrypted",
    "attached_machine_id",
    "attached_alloc_id",
    "created_at",
    "host_dedication_id",
    "snapshot_retention",
    "auto_backup_enabled",
    "host_status",
)
SNAPSHOT_KEYS = (
    "id",
    "size",
    "volume_size",
    "digest",
    "created_at",
    "status",
    "retention_days",
)
RELEASE_KEYS = (
    "ID",
    "Version",
    "Stable",
    "InProgress",
    "Reason",
    "Description",
    "Status",
    "DeploymentStrategy",
    "Metadata",
    "User",
    "EvaluationID",
    "CreatedAt",
    "ImageRef",
)
HIDDEN_VOLUME_STATES = frozenset(
    {"scheduling_destroy", "fork_cleanup", "waiting_for_detach", "pending_destroy", "destroying"}
)
INACTIVE_MACHINE_STATES = frozenset({"destroyed", "destroying"})
SYSTEM_BIN_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
DEPLOY_STRATEGIES = ("canary", "rolling", "immediate", "bluegreen")
BARE_SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash")
PTY_WARNING = (
    "Allocating a pseudo-terminal since the command provided is a shell. This behavior will "
    "change in the future; please use --pty explicitly if this is what you want."
)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
TRUTHY = frozenset({"1", "ok", "t", "true"})


# --------------------------------------------------------------------------------------
# errors and output
# --------------------------------------------------------------------------------------


class FlyError(Exception):
    """An error flyctl reports as ``Error: <message>`` on stderr (exit 1 by default)."""

    def __init__(self, message: str, exit_code: int = 1, *, suffix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.suffix = suffix  # extra stderr text after the Error line (descriptions)


class Interrupted(Exception):
    """Raised from the SIGINT/SIGTERM handler."""


def out(text: str) -> None:
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def err(text: str) -> None:
    sys.stderr.buffer.write(text.encode("utf-8"))
    sys.stderr.buffer.flush()


def go_escape(s: str) -> str:
    return (
        s.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def go_json(obj: Any) -> str:
    """Go ``json.Encoder`` with ``SetIndent("", "    ")``: 4 spaces, HTML-escaped, newline."""
    return go_escape(json.dumps(obj, indent=4, ensure_ascii=False)) + "\n"


def go_json_compact(obj: Any) -> str:
    return go_escape(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))


def go_quote(s: str) -> str:
    """Approximation of Go's ``%q``."""
    return json.dumps(s, ensure_ascii=False)


def go_errno_text(exc: OSError) -> str:
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


def truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUTHY


# --------------------------------------------------------------------------------------
# time and id helpers (also used by state.py)
# --------------------------------------------------------------------------------------


def format_time(t: _dt.datetime) -> str:
    """RFC 3339 UTC with fractional seconds and no trailing zeros (Go ``time.Time``)."""
    t = t.astimezone(_dt.UTC)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def now_rfc3339() -> str:
    return format_time(_dt.datetime.now(_dt.UTC))


def now_seconds() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> _dt.datetime:
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return _dt.datetime.fromisoformat(value)
    frac = (m.group(2) or "")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return _dt.datetime.fromisoformat(m.group(1) + frac + tz)


def ulid() -> str:
    n = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD[n & 31])
        n >>= 5
    return "".join(reversed(chars))


def rand_str(n: int, alphabet: str = ALNUM) -> str:
    raw = os.urandom(n)
    return "".join(alphabet[b % len(alphabet)] for b in raw)


def new_snapshot_id() -> str:
    return "vs_" + rand_str(24)


def new_release_id() -> str:
    return "Rel_" + rand_str(13, "0123456789abcdefghijklmnopqrstuvwxyz")


def image_ref_object(image: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Split an image string into fly-go's ``MachineImageRef`` object."""
    ref, _, digest = image.partition("@")
    tag = ""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    head, sep, rest = ref.partition("/")
    if sep and ("." in head or ":" in head or head == "localhost"):
        registry, repository = head, rest
    else:
        registry = "docker-hub-mirror.fly.io"
        repository = ref if sep else f"library/{ref}"
    if not digest:
        import hashlib

        digest = "sha256:" + hashlib.sha256(image.encode()).hexdigest()
    return {
        "registry": registry,
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "labels": dict(sorted((labels or {}).items())),
    }


# --------------------------------------------------------------------------------------
# state store
# --------------------------------------------------------------------------------------


class Store:
    """The JSON state file; writes are flock-guarded and atomic (tmp + ``os.replace``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock_path = path + ".lock"

    def load(self) -> dict[str, Any]:
        with open(self.path, encoding="utf-8") as fh:
            return json.load(fh)

    def write(self, data: dict[str, Any]) -> None:
        # Atomic for readers (tmp + rename).  No fsync: the state only has to survive the
        # test run, not a power cut, and fsync on every call would slow every test down.
        tmp = f"{self.path}.tmp.{os.getpid()}.{rand_str(6)}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def mutate(self) -> Iterator[dict[str, Any]]:
        """Lock, load, yield the state for in-place edits, then write it back atomically."""
        with self.locked():
            data = self.load()
            yield data
            self.write(data)


def calls_path_for(state_path: str) -> str:
    return os.path.join(os.path.dirname(state_path), "calls.jsonl")


def log_call(state_path: str, argv: list[str], has_token: bool) -> None:
    line = json.dumps({"argv": argv, "token": has_token}) + "\n"
    fd = os.open(calls_path_for(state_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode("utf-8"))
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# --------------------------------------------------------------------------------------
# flags and the command tree (cobra/pflag semantics)
# --------------------------------------------------------------------------------------


class Flag:
    __slots__ = ("name", "short", "kind", "default", "help", "aliases", "hidden", "no_opt")

    def __init__(
        self,
        name: str,
        short: str | None = None,
        kind: str = "bool",
        default: Any = None,
        help: str = "",
        aliases: Sequence[str] = (),
        hidden: bool = False,
        no_opt: str | None = None,
    ) -> None:
        self.no_opt = no_opt  # pflag's NoOptDefVal: `--flag` alone means this value
        self.name = name
        self.short = short
        self.kind = kind  # bool | string | int | float | slice | array
        if default is None:
            default = {"bool": False, "int": 0, "float": 0.0, "slice": [], "array": []}.get(
                kind, ""
            )
        self.default = default
        self.help = help
        self.aliases = tuple(aliases)
        self.hidden = hidden

    def display(self) -> str:
        return f"-{self.short}, --{self.name}" if self.short else f"--{self.name}"


GLOBAL_FLAGS = (
    Flag("access-token", "t", "string", help="Fly API Access Token"),
    Flag("verbose", help="Verbose output"),
    Flag("debug", help="Print additional logs and traces"),
)
HELP_FLAG = Flag("help", "h", help="help for this command")


class ArgSpec:
    def __init__(self, kind: str, lo: int = 0, hi: int = 0) -> None:
        self.kind = kind
        self.lo = lo
        self.hi = hi

    def validate(self, cmd_path: str, args: list[str]) -> str | None:
        n = len(args)
        if self.kind == "none" and n:
            return f"unknown command {go_quote(args[0])} for {go_quote(cmd_path)}"
        if self.kind == "exact" and n != self.lo:
            return f"accepts {self.lo} arg(s), received {n}"
        if self.kind == "max" and n > self.hi:
            return f"accepts at most {self.hi} arg(s), received {n}"
        if self.kind == "range" and not self.lo <= n <= self.hi:
            return f"accepts between {self.lo} and {self.hi} arg(s), received {n}"
        return None


NO_ARGS = ArgSpec("none")


def exact_args(n: int) -> ArgSpec:
    return ArgSpec("exact", n, n)


def max_args(n: int) -> ArgSpec:
    return ArgSpec("max", 0, n)


def range_args(lo: int, hi: int) -> ArgSpec:
    return ArgSpec("range", lo, hi)


class Command:
    def __init__(
        self,
        name: str,
        *,
        aliases: Sequence[str] = (),
        short: str = "",
        usage: str = "",
        flags: Sequence[Flag] = (),
        run: Callable[[Ctx], int] | None = None,
        args: ArgSpec | None = None,
        children: Sequence[Command] = (),
        emulated: bool = True,
    ) -> None:
        self.name = name
        self.aliases = tuple(aliases)
        self.short = short
        self.usage = usage
        self.own_flags = tuple(flags)
        self.run = run
        self.args = args
        self.children = list(children)
        self.emulated = emulated
        self.parent: Command | None = None
        for child in self.children:
            child.parent = self

    def path_words(self) -> list[str]:
        words: list[str] = []
        node: Command | None = self
        while node is not None and node.parent is not None:
            words.append(node.name)
            node = node.parent
        return list(reversed(words))

    def path(self, prog: str) -> str:
        return " ".join([prog, *self.path_words()])

    def child(self, word: str) -> Command | None:
        for c in self.children:
            if word == c.name or word in c.aliases:
                return c
        return None

    def flag_maps(self) -> tuple[dict[str, Flag], dict[str, Flag]]:
        longs: dict[str, Flag] = {}
        shorts: dict[str, Flag] = {}
        for f in (*self.own_flags, *GLOBAL_FLAGS, HELP_FLAG):
            longs.setdefault(f.name, f)
            for alias in f.aliases:
                longs.setdefault(alias, f)
            if f.short:
                shorts.setdefault(f.short, f)
        return longs, shorts


def _takes_value(longs: dict[str, Flag], name: str) -> bool:
    f = longs.get(name)
    return f is None or (f.kind != "bool" and f.no_opt is None)


def _value_flag(s: str, longs, shorts) -> bool:
    """A flag whose value is the next word (``--app x``, ``-a x``), as pflag reads it."""
    if s.startswith("--"):
        return "=" not in s and _takes_value(longs, s[2:])
    return (s.startswith("-") and "=" not in s and len(s) == 2
            and (shorts.get(s[1]) is None or shorts[s[1]].kind != "bool"))


def strip_flags(args: list[str], cmd: Command) -> list[str]:
    """cobra's ``stripFlags``: the non-flag words, skipping values of value flags."""
    longs, shorts = cmd.flag_maps()
    words: list[str] = []
    rest = list(args)
    while rest:
        s = rest.pop(0)
        if s == "--":
            break
        if _value_flag(s, longs, shorts):
            if len(rest) <= 1:
                break
            rest.pop(0)
            continue
        if s and not s.startswith("-"):
            words.append(s)
    return words


def args_minus_first(args: list[str], word: str, cmd: Command) -> list[str]:
    longs, shorts = cmd.flag_maps()
    pos = 0
    while pos < len(args):
        s = args[pos]
        if s == "--":
            break
        if _value_flag(s, longs, shorts):
            pos += 2
            continue
        if not s.startswith("-") and s == word:
            return args[:pos] + args[pos + 1 :]
        pos += 1
    return args


def levenshtein(a: str, b: str) -> int:
    a, b = a.lower(), b.lower()
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


class Invocation:
    def __init__(self) -> None:
        self.cmd: Command | None = None
        self.flags: dict[str, Any] = {}
        self.specified: set[str] = set()
        self.positionals: list[str] = []
        self.error: str | None = None
        self.unknown_command = False
        self.flag_token: str | None = None


def _convert(f: Flag, raw: str) -> Any:
    bad = f"invalid argument {go_quote(raw)} for {go_quote(f.display())} flag: "
    if f.kind == "bool":
        if raw in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if raw in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise ValueError(bad + f"strconv.ParseBool: parsing {go_quote(raw)}: invalid syntax")
    if f.kind == "int":
        try:
            return int(raw, 10)
        except ValueError:
            try:
                return int(raw, 0)
            except ValueError:
                raise ValueError(
                    bad + f"strconv.ParseInt: parsing {go_quote(raw)}: invalid syntax"
                ) from None
    if f.kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(
                bad + f"strconv.ParseFloat: parsing {go_quote(raw)}: invalid syntax"
            ) from None
    return raw


def _set_flag(inv: Invocation, f: Flag, raw: str) -> None:
    value = _convert(f, raw)
    if f.kind == "slice":
        import csv

        items = next(csv.reader([raw])) if raw else []
        prev = inv.flags.get(f.name, []) if f.name in inv.specified else []
        value = [*prev, *items]
    elif f.kind == "array":
        prev = inv.flags.get(f.name, []) if f.name in inv.specified else []
        value = [*prev, raw]
    inv.flags[f.name] = value
    inv.specified.add(f.name)
    if f.name == "access-token":
        inv.flag_token = raw


def parse_flags(inv: Invocation, cmd: Command, args: list[str]) -> None:
    longs, shorts = cmd.flag_maps()
    for f in longs.values():
        inv.flags.setdefault(f.name, copy.copy(f.default))
    i = 0
    try:
        while i < len(args):
            a = args[i]
            i += 1
            if a == "--":
                inv.positionals.extend(args[i:])
                return
            if a.startswith("--"):
                name, eq, val = a[2:].partition("=")
                f = longs.get(name)
                if f is None:
                    inv.error = f"unknown flag: --{name}"
                    return
                if f.kind == "bool":
                    _set_flag(inv, f, val if eq else "true")
                    continue
                if f.no_opt is not None and not eq:  # the next word is not its value
                    _set_flag(inv, f, f.no_opt)
                    continue
                if not eq:
                    if i >= len(args):
                        inv.error = f"flag needs an argument: --{name}"
                        return
                    val = args[i]
                    i += 1
                _set_flag(inv, f, val)
            elif a.startswith("-") and a != "-":
                shorthands = a[1:]
                while shorthands:
                    c = shorthands[0]
                    f = shorts.get(c)
                    if f is None:
                        inv.error = f"unknown shorthand flag: '{c}' in -{shorthands}"
                        return
                    rest = shorthands[1:]
                    if len(shorthands) > 2 and shorthands[1] == "=":
                        _set_flag(inv, f, shorthands[2:])
                        break
                    if f.kind == "bool":
                        _set_flag(inv, f, "true")
                        shorthands = rest
                        continue
                    if rest:
                        _set_flag(inv, f, rest)
                    elif i < len(args):
                        _set_flag(inv, f, args[i])
                        i += 1
                    else:
                        inv.error = f"flag needs an argument: '{c}' in -{shorthands}"
                        return
                    break
            else:
                inv.positionals.append(a)
    except ValueError as exc:
        inv.error = str(exc)


def scan_global_token(args: list[str]) -> str | None:
    """Lenient scan for -t/--access-token (used for commands we do not parse)."""
    token = None
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            break
        if a in ("-t", "--access-token") and i < len(args):
            token = args[i]
            i += 1
        elif a.startswith("--access-token="):
            token = a.split("=", 1)[1]
        elif a.startswith("-t") and not a.startswith("--") and len(a) > 2:
            token = a[3:] if a[2] == "=" else a[2:]
    return token


def parse_invocation(root: Command, args: list[str], prog: str) -> Invocation:
    inv = Invocation()
    cmd = root
    rest = list(args)
    while True:
        words = strip_flags(rest, cmd)
        if not words:
            break
        nxt = cmd.child(words[0])
        if nxt is None:
            break
        rest = args_minus_first(rest, words[0], cmd)
        cmd = nxt
    inv.cmd = cmd
    if cmd.parent is None and cmd.args is None:
        words = strip_flags(rest, cmd)
        if words:
            typed = words[0]
            suggestions = [
                c.name
                for c in cmd.children
                if c.emulated
                and (levenshtein(typed, c.name) <= 2 or c.name.lower().startswith(typed.lower()))
            ]
            msg = f"unknown command {go_quote(typed)} for {go_quote(prog)}"
            if suggestions:
                msg += "\n\nDid you mean this?\n" + "".join(f"\t{s}\n" for s in suggestions)
            inv.error = msg
            inv.unknown_command = True
            inv.flag_token = scan_global_token(rest)
            return inv
    if not cmd.emulated:
        inv.flag_token = scan_global_token(rest)
        return inv
    parse_flags(inv, cmd, rest)
    if inv.error and inv.flag_token is None:
        inv.flag_token = scan_global_token(rest)
    return inv


def help_text(cmd: Command, prog: str) -> str:
    path = cmd.path(prog)
    lines = [cmd.short or f"{path}", "", "Usage:"]
    if cmd.run is not None or not cmd.children:
        usage = f" {cmd.usage}" if cmd.usage else ""
        lines.append(f"  {path}{usage} [flags]")
    if cmd.children:
        lines.append(f"  {path} [command]")
    if cmd.aliases:
        lines += ["", "Aliases:", "  " + ", ".join((cmd.name, *cmd.aliases))]
    if cmd.children:
        lines += ["", "Available Commands:"]
        width = max(len(c.name) for c in cmd.children)
        for c in cmd.children:
            lines.append(f"  {c.name.ljust(width)}  {c.short}")

    def flag_lines(flags: Sequence[Flag]) -> list[str]:
        rendered = []
        for f in flags:
            if f.hidden:
                continue
            left = f"-{f.short}, --{f.name}" if f.short else f"    --{f.name}"
            if f.kind != "bool":
                left += " " + ("strings" if f.kind in ("slice", "array") else f.kind)
            rendered.append((left, f.help))
        width = max((len(x[0]) for x in rendered), default=0)
        return [f"  {left.ljust(width)}   {h}".rstrip() for left, h in rendered]

    lines += ["", "Flags:", *flag_lines([*cmd.own_flags, HELP_FLAG])]
    lines += ["", "Global Flags:", *flag_lines(GLOBAL_FLAGS)]
    if cmd.children:
        lines += ["", f'Use "{path} [command] --help" for more information about a command.']
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# invocation context, session and app resolution
# --------------------------------------------------------------------------------------


class Ctx:
    def __init__(
        self,
        prog: str,
        inv: Invocation,
        store: Store,
        state: dict[str, Any],
        token: str | None,
        token_source: str | None,
        environ: dict[str, str],
    ) -> None:
        self.prog = prog
        self.inv = inv
        self.store = store
        self.state = state
        self.token = token
        self.token_source = token_source
        self.environ = environ
        self.cwd = os.getcwd()

    def flag(self, name: str) -> Any:
        return self.inv.flags.get(name)

    @property
    def args(self) -> list[str]:
        return self.inv.positionals

    @property
    def path(self) -> str:
        assert self.inv.cmd is not None
        return self.inv.cmd.path(self.prog)

    def json_on(self) -> bool:
        return bool(self.flag("json")) or truthy(self.environ.get("FLY_JSON"))

    def reload(self) -> dict[str, Any]:
        self.state = self.store.load()
        return self.state


def resolve_token(
    flag_token: str | None, environ: dict[str, str], state: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    """-t, then env.First(FLY_ACCESS_TOKEN, FLY_API_TOKEN) (set-but-empty shadows), config."""
    if flag_token:
        return flag_token, "flag"
    for key in ("FLY_ACCESS_TOKEN", "FLY_API_TOKEN"):
        if key in environ:
            if environ[key]:
                return environ[key], "env"
            break
    if state:
        tok = (state.get("auth") or {}).get("config_token")
        if tok:
            return tok, "config"
    return None, None


def require_session(ctx: Ctx) -> None:
    if not ctx.token:
        raise FlyError(NO_TOKEN_MSG)
    if ctx.token_source == "config" and (ctx.state.get("auth") or {}).get("config_token_expired"):
        raise FlyError(NO_TOKEN_MSG)


def api_auth(ctx: Ctx) -> None:
    """The first API call: a token the platform does not know is rejected."""
    if ctx.token not in (ctx.state.get("auth") or {}).get("valid_tokens", []):
        raise FlyError(UNAUTHENTICATED_MSG)


TOML_CACHE: list[str] = []  # path of the parse cache, set by main() next to the state file


def _parse_toml(text: str) -> dict[str, Any]:
    """tomllib.loads, memoised by file content across invocations (tomllib costs ~13 ms)."""
    cache: dict[str, Any] = {}
    if TOML_CACHE:
        with contextlib.suppress(OSError, ValueError), open(TOML_CACHE[0], encoding="utf-8") as fh:
            cache = json.load(fh)
        if text in cache:
            return cache[text]
    import tomllib

    data = tomllib.loads(text)
    if TOML_CACHE:
        with contextlib.suppress(OSError, TypeError, ValueError):
            cache = dict(list(cache.items())[-20:])
            cache[text] = data
            tmp = f"{TOML_CACHE[0]}.tmp.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(cache, fh)
            os.replace(tmp, TOML_CACHE[0])
    return data


def _read_app_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise FlyError(
            f"failed loading app config from {path}: open {path}: {go_errno_text(exc)}"
        ) from None
    try:
        if path.endswith(".json"):
            data = json.loads(raw)
        elif path.endswith((".yaml", ".yml")):
            m = re.search(r"^app\s*:\s*[\"']?([^\"'\s#]+)", raw.decode(), re.MULTILINE)
            data = {"app": m.group(1)} if m else {}
        else:
            data = _parse_toml(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FlyError(f"failed loading app config from {path}: {exc}") from None
    if not isinstance(data, dict):
        raise FlyError(f"failed loading app config from {path}: not a table")
    data["__path__"] = path
    return data


def load_app_config(ctx: Ctx, base_dir: str | None = None) -> dict[str, Any] | None:
    """fly.toml from -c (file, or dir containing fly.toml), else ./fly.{toml,json,yaml}."""
    base = base_dir or ctx.cwd
    cflag = ctx.flag("config") if "config" in ctx.inv.flags else ""
    if cflag:
        p = cflag if os.path.isabs(cflag) else os.path.join(base, cflag)
        if os.path.isfile(p):
            return _read_app_config(p)
        inner = os.path.join(p, "fly.toml")
        if os.path.isdir(p) and os.path.isfile(inner):
            return _read_app_config(inner)
        raise FlyError(f"config file not found at specified path: {cflag}")
    for name in ("fly.toml", "fly.json", "fly.yaml"):
        p = os.path.join(base, name)
        if os.path.isfile(p):
            return _read_app_config(p)
    return None


def resolve_app_name(ctx: Ctx, cfg: dict[str, Any] | None) -> str:
    name = ctx.flag("app") or ""
    if not name:
        name = ctx.environ.get("FLY_APP", "")
        if not name and cfg is not None:
            name = str(cfg.get("app") or "")
    return name


def require_app_name(ctx: Ctx, base_dir: str | None = None) -> tuple[str, dict[str, Any] | None]:
    cfg = load_app_config(ctx, base_dir)
    name = resolve_app_name(ctx, cfg)
    if not name:
        raise FlyError(MISSING_APP_MSG)
    return name, cfg


def authenticated_app(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    """What most app commands do first: a session, the app's name, the token, the app."""
    require_session(ctx)
    name, _ = require_app_name(ctx)
    api_auth(ctx)
    return name, get_app(ctx, name)


def get_app(ctx: Ctx, name: str, prefix: str = "") -> dict[str, Any]:
    app = (ctx.state.get("apps") or {}).get(name)
    if app is None:
        raise FlyError(f"{prefix}Could not find App {go_quote(name)}")
    return app


# --------------------------------------------------------------------------------------
# rendering helpers
# --------------------------------------------------------------------------------------


def render_table(rows: list[list[str]], headers: Sequence[str], title: str = "") -> str:
    cols = [h.upper() for h in headers]
    widths = [len(c) for c in cols]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    text = f"{title}\n" if title else ""
    for row in [cols, *rows]:
        text += "\t".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n"
    return text


def humanize_time(value: str) -> str:
    if not value:
        return ""
    try:
        delta = (_dt.datetime.now(_dt.UTC) - parse_time(value)).total_seconds()
    except ValueError:
        return value
    suffix = "ago" if delta >= 0 else "from now"
    d = abs(delta)
    units = [
        (60, "second", 1),
        (3600, "minute", 60),
        (86400, "hour", 3600),
        (7 * 86400, "day", 86400),
        (30 * 86400, "week", 7 * 86400),
        (365 * 86400, "month", 30 * 86400),
        (float("inf"), "year", 365 * 86400),
    ]
    if d < 1:
        return "now"
    for limit, unit, div in units:
        if d < limit:
            n = int(d // div)
            return f"{n} {unit}{'' if n == 1 else 's'} {suffix}"
    return value


def humanize_ibytes(n: int) -> str:
    if n < 10:
        return f"{n} B"
    sizes = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    e = int(math.floor(math.log(n) / math.log(1024)))
    val = math.floor(n / 1024**e * 10 + 0.5) / 10
    return f"{val:.0f} {sizes[e]}" if val >= 10 else f"{val:.1f} {sizes[e]}"


def public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}


def render_volume(v: dict[str, Any]) -> dict[str, Any]:
    return {k: v.get(k) for k in VOLUME_KEYS if not (k == "host_status" and not v.get(k))}


def render_snapshot(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s.get(k) for k in SNAPSHOT_KEYS}


def render_release(r: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(r.get(k)) for k in RELEASE_KEYS}


def render_machine(m: dict[str, Any]) -> dict[str, Any]:
    d = public(m)
    cfg = d.get("config")
    if isinstance(cfg, dict):
        for key in ("env", "metadata"):
            if isinstance(cfg.get(key), dict):
                cfg[key] = dict(sorted(cfg[key].items()))
    ref = d.get("image_ref")
    if isinstance(ref, dict) and isinstance(ref.get("labels"), dict):
        ref["labels"] = dict(sorted(ref["labels"].items()))
    return d


def machine_image(m: dict[str, Any]) -> str:
    return str((m.get("config") or {}).get("image") or "")


def process_group(m: dict[str, Any]) -> str:
    return str(((m.get("config") or {}).get("metadata") or {}).get("fly_process_group") or "")


def active_machines(app: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in app.get("machines", []) if m.get("state") not in INACTIVE_MACHINE_STATES]


# --------------------------------------------------------------------------------------
# commands: version, auth, not-emulated
# --------------------------------------------------------------------------------------


def cmd_version(ctx: Ctx) -> int:
    """internal/command/version/version.go: ``json.NewEncoder(out).Encode(info)`` (one
    compact line) or ``info.String()`` (internal/buildinfo/buildinfo.go)."""
    version = str((ctx.state.get("features") or {}).get("version") or FLYCTL_VERSION)
    if ctx.json_on():
        info = {
            "Name": ctx.prog,
            "Version": version,
            "Commit": FLYCTL_COMMIT,
            "BranchName": "master",
            "BuildDate": FLYCTL_BUILD_DATE,
            "OS": "linux",
            "Architecture": "amd64",
            "Environment": "production",
        }
        out(go_json_compact(info) + "\n")
    else:
        out(
            f"{ctx.prog} v{version} linux/amd64 Commit: {FLYCTL_COMMIT} "
            f"BuildDate: {FLYCTL_BUILD_DATE} BranchName: master\n"
        )
    return 0


def cmd_whoami(ctx: Ctx) -> int:
    require_session(ctx)
    api_auth(ctx)
    email = (ctx.state.get("account") or {}).get("email", "")
    out(go_json({"email": email}) if ctx.json_on() else f"{email}\n")
    return 0


def cmd_help(ctx: Ctx) -> int:
    node = ROOT
    for word in ctx.args:
        nxt = node.child(word)
        if nxt is None:
            out(f"Unknown help topic {go_quote(' '.join(ctx.args))}\n")
            node = ROOT
            break
        node = nxt
    out(help_text(node, ctx.prog))
    return 0


def cmd_not_emulated(ctx: Ctx) -> int:
    raise FlyError(f"flyctl test double: '{ctx.path}' is not emulated (see README.md)")


# --------------------------------------------------------------------------------------
# volumes and snapshots
# --------------------------------------------------------------------------------------


def cmd_volumes_list(ctx: Ctx) -> int:
    name, app = authenticated_app(ctx)
    if any("_restoring_lists" in v for v in app.get("volumes", [])):
        app = _advance_restoring(ctx, name)
    vols = [v for v in app.get("volumes", [])]
    if not ctx.flag("all"):
        vols = [v for v in vols if v.get("state") not in HIDDEN_VOLUME_STATES]
    if ctx.json_on():
        out(go_json([render_volume(v) for v in vols]))
        return 0
    rows = []
    unreachable = False
    for v in vols:
        vid = v["id"]
        if v.get("host_status") == "unreachable":
            vid += "*"
            unreachable = True
        rows.append(
            [
                vid,
                str(v.get("state", "")),
                str(v.get("name", "")),
                f"{v.get('size_gb')}GB",
                str(v.get("region", "")),
                str(v.get("zone", "")),
                "true" if v.get("encrypted") else "false",
                str(v.get("attached_machine_id") or ""),
                humanize_time(str(v.get("created_at") or "")),
            ]
        )
    text = render_table(
        rows,
        ["ID", "State", "Name", "Size", "Region", "Zone", "Encrypted", "Attached VM", "Created At"],
    )
    if unreachable:
        text += "* These volumes' hosts could not be reached.\n"
    out(text)
    return 0


def _advance_restoring(ctx: Ctx, name: str) -> dict[str, Any]:
    """A volume created from a snapshot stays `restoring` for ``_restoring_lists`` listings,
    then is `created` (flyctl's create returns before the restore finishes)."""
    with ctx.store.mutate() as state:
        ctx.state = state
        app = get_app(ctx, name)
        for vol in app.get("volumes", []):
            if vol.get("_restoring_lists", 0) > 0:
                vol["_restoring_lists"] -= 1
            elif "_restoring_lists" in vol:
                del vol["_restoring_lists"]
                vol["state"] = "created"
        return copy.deepcopy(app)


def _find_volume_app(ctx: Ctx, vol_id: str) -> str | None:
    for app_name, app in (ctx.state.get("apps") or {}).items():
        if any(v.get("id") == vol_id for v in app.get("volumes", [])):
            return app_name
    return None


def _snapshot_app(ctx: Ctx, vol_id: str, lookup_prefix: str) -> str:
    """LoadAppNameIfPresent (-a, FLY_APP, ./fly.toml), else look the app up from the volume."""
    cfg = load_app_config(ctx)
    name = resolve_app_name(ctx, cfg)
    api_auth(ctx)
    if not name:
        found = _find_volume_app(ctx, vol_id)
        if found is None:
            # Guess: the GraphQL error for an unknown volume id.
            raise FlyError(f"{lookup_prefix}Could not find Volume {go_quote(vol_id)}")
        name = found
    get_app(ctx, name)
    return name


def _volume_in(ctx: Ctx, app_name: str, vol_id: str) -> dict[str, Any] | None:
    app = (ctx.state.get("apps") or {}).get(app_name) or {}
    for v in app.get("volumes", []):
        if v.get("id") == vol_id:
            return v
    return None


def snapshot_plan(state: dict[str, Any], vol_id: str) -> dict[str, Any]:
    plans = state.get("snapshot_plan") or {}
    plan = dict(plans.get("default") or {})
    plan.update((plans.get("volumes") or {}).get(vol_id) or {})
    plan.setdefault("mode", "progress")
    plan.setdefault("lists_before_created", 2)
    return plan


def cmd_snapshots_create(ctx: Ctx) -> int:
    require_session(ctx)
    vol_id = ctx.args[0]
    app_name = _snapshot_app(ctx, vol_id, "")
    with ctx.store.mutate() as state:
        ctx.state = state
        vol = _volume_in(ctx, app_name, vol_id)
        if vol is None:
            # Guess: flaps 404 body for a volume that is not in this app.
            raise FlyError(f"failed to snapshot {vol_id}: volume not found")
        plan = snapshot_plan(state, vol_id)
        size = plan.get("size")
        if size is None:
            size = 196083712
        record = pending_snapshot(vol, plan, int(size))
        state.setdefault("snapshots", {}).setdefault(vol_id, []).append(record)
    out(f"Scheduled to snapshot volume {vol_id}\n")
    return 0


def pending_snapshot(vol: dict[str, Any], plan: dict[str, Any], size: int) -> dict[str, Any]:
    """A snapshot as the Machines API lists it while it runs: its id already, a zero
    ``created_at`` (fly-go volume_types.go ``CreatedAt time.Time``; flyctl's
    volumes/snapshots/list.go shows it as blank through ``IsZero``), status ``waiting``."""
    return {
        "id": new_snapshot_id(),
        "size": 0,
        "volume_size": int(vol.get("size_gb") or 0) * GIB,
        "digest": "",
        "created_at": ZERO_TIME,
        "status": "waiting",
        "retention_days": vol.get("snapshot_retention"),
        "_sim": {
            "mode": plan["mode"],
            "lists_before_created": int(plan["lists_before_created"]),
            "seen": 0,
            "final_size": int(size),
            "final_digest": os.urandom(16).hex(),
        },
    }


def _advance_snapshot(rec: dict[str, Any]) -> None:
    sim = rec.get("_sim")
    if not sim or sim.get("done"):
        return
    k = int(sim.get("seen", 0))
    n = int(sim.get("lists_before_created", 2))
    mode = sim.get("mode", "progress")
    if mode in ("progress", "fail") and k >= n:
        if mode == "progress":
            rec["created_at"] = now_rfc3339()
            rec["size"] = sim["final_size"]
            rec["digest"] = sim["final_digest"]
            rec["status"] = "created"
        else:
            rec["status"] = "failed"
        sim["done"] = True
    else:
        rec["status"] = "waiting" if k == 0 else "running"
    sim["seen"] = k + 1


def sorted_snapshots(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(rec: dict[str, Any]) -> _dt.datetime:
        try:
            return parse_time(str(rec.get("created_at")))
        except ValueError:
            return _dt.datetime.min.replace(tzinfo=_dt.UTC)

    return sorted(records, key=key)


def cmd_snapshots_list(ctx: Ctx) -> int:
    require_session(ctx)
    vol_id = ctx.args[0]
    app_name = _snapshot_app(ctx, vol_id, "failed getting app name from volume: ")
    with ctx.store.mutate() as state:
        ctx.state = state
        if _volume_in(ctx, app_name, vol_id) is None:
            raise FlyError(
                f"failed retrieving snapshots: failed to get volume {vol_id} snapshots: "
                "volume not found"
            )
        records = state.setdefault("snapshots", {}).setdefault(vol_id, [])
        for rec in records:
            _advance_snapshot(rec)
        snaps = [render_snapshot(r) for r in sorted_snapshots(records)]
    if ctx.json_on():
        out(go_json(snaps))
        return 0
    if not snaps:
        err(f"No snapshots available for volume {vol_id}\n")
        return 0
    rows = []
    total = 0
    for s in snaps:
        total += int(s.get("size") or 0)
        rows.append(
            [
                s["id"] or "(pending)",
                str(s.get("status", "")),
                humanize_ibytes(int(s.get("size") or 0)),
                humanize_ibytes(int(s.get("volume_size") or 0)),
                humanize_time(str(s.get("created_at") or "")),
                "" if s.get("retention_days") is None else str(s["retention_days"]),
            ]
        )
    out(
        render_table(
            rows,
            ["ID", "Status", "Stored Size", "Vol Size", "Created At", "Retention Days"],
            title="Snapshots",
        )
        + f"\nTotal stored size: {humanize_ibytes(total)}\n"
    )
    return 0


# --------------------------------------------------------------------------------------
# machines, releases, status
# --------------------------------------------------------------------------------------


def cmd_machine_list(ctx: Ctx) -> int:
    name, app = authenticated_app(ctx)
    machines = active_machines(app)
    if ctx.json_on():
        out(go_json([render_machine(m) for m in machines]))
        return 0
    if ctx.flag("quiet"):
        out("".join(f"{m['id']}\n" for m in machines))
        return 0
    if not machines:
        out(f"No machines are available on this app {name}\n")
        return 0
    rows = []
    for m in machines:
        checks = m.get("checks") or []
        passing = sum(1 for c in checks if c.get("status") == "passing")
        cfg = m.get("config") or {}
        guest = cfg.get("guest") or {}
        vols = ",".join(x.get("volume", "") for x in cfg.get("mounts") or [])
        rows.append(
            [
                m["id"],
                str(m.get("name", "")),
                str(m.get("state", "")),
                f"{passing}/{len(checks)}" if checks else "",
                str(m.get("region", "")),
                "",
                machine_image(m).removeprefix("registry.fly.io/"),
                str(m.get("private_ip", "")),
                vols,
                str(m.get("created_at", "")),
                str(m.get("updated_at", "")),
                process_group(m),
                f"{guest.get('cpu_kind', 'shared')}-cpu-{guest.get('cpus', 1)}x:"
                f"{guest.get('memory_mb', 256)}MB",
            ]
        )
    out(
        f"{len(machines)} machines have been retrieved from app {name}.\n"
        f"View them in the UI here (https://fly.io/apps/{name}/machines/)\n\n"
        + render_table(
            rows,
            [
                "ID",
                "Name",
                "State",
                "Checks",
                "Region",
                "Role",
                "Image",
                "IP Address",
                "Volume",
                "Created",
                "Last Updated",
                "Process Group",
                "Size",
            ],
            title=name,
        )
    )
    return 0


def sorted_releases(app: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(app.get("releases", []), key=lambda r: int(r.get("Version", 0)), reverse=True)


def cmd_releases(ctx: Ctx) -> int:
    name, app = authenticated_app(ctx)
    releases = sorted_releases(app)[:25]
    if ctx.json_on():
        out(go_json([render_release(r) for r in releases]))
        return 0
    headers = ["Version", "Status", "Description", "User", "Date"]
    if ctx.flag("image"):
        headers.append("Docker Image")
    rows = []
    for r in releases:
        row = [
            f"v{r.get('Version')}",
            str(r.get("Status", "")),
            str(r.get("Description", "")),
            str((r.get("User") or {}).get("Email", "")),
            humanize_time(str(r.get("CreatedAt") or "")),
        ]
        if ctx.flag("image"):
            row.append(str(r.get("ImageRef", "")))
        rows.append(row)
    out(render_table(rows, headers))
    return 0


def cmd_status(ctx: Ctx) -> int:
    name, app = authenticated_app(ctx)
    if ctx.flag("watch") and ctx.json_on():
        raise FlyError("--watch and --json are not supported together")
    current = next((r for r in sorted_releases(app) if r.get("Status") == "complete"), None)
    machines = sorted(active_machines(app), key=lambda m: m["id"], reverse=True)
    org = app.get("org") or {}
    if ctx.json_on():
        out(
            go_json(
                {
                    "ID": name,
                    "Name": name,
                    "Deployed": bool(app.get("releases")),
                    "Status": "deployed" if app.get("releases") else "pending",
                    "Hostname": f"{name}.fly.dev",
                    "Version": int(current["Version"]) if current else 0,
                    "AppURL": "",
                    "Organization": {
                        "ID": org.get("id", ""),
                        "InternalNumericID": org.get("internal_numeric_id", ""),
                        "Name": org.get("name", ""),
                        "Slug": org.get("slug", ""),
                        "RawSlug": org.get("slug", ""),
                        "PaidPlan": bool(org.get("paid_plan", True)),
                    },
                    "PlatformVersion": "machines",
                    "Machines": [render_machine(m) for m in machines],
                }
            )
        )
        return 0
    image = machine_image(machines[0]) if machines else ""
    text = (
        f"App\n  Name     = {name}\n  Owner    = {org.get('slug', '')}\n"
        f"  Hostname = {name}.fly.dev\n  Image    = {image.removeprefix('registry.fly.io/')}\n\n"
    )
    rows = [
        [
            process_group(m),
            m["id"],
            f"{(m.get('image_ref') or {}).get('tag', '')}",
            str(m.get("region", "")),
            str(m.get("state", "")),
            "",
            "",
            str(m.get("updated_at", "")),
        ]
        for m in machines
    ]
    text += render_table(
        rows,
        ["Process", "ID", "Version", "Region", "State", "Role", "Checks", "Last Updated"],
        title="Machines",
    )
    out(text)
    return 0


# --------------------------------------------------------------------------------------
# ssh console and sftp
# --------------------------------------------------------------------------------------


def _machine_by_address(app: dict[str, Any], addr: str) -> dict[str, Any] | None:
    app_name = app.get("name", "")
    for m in active_machines(app):
        if addr in (m.get("private_ip"), f"{m['id']}.vm.{app_name}.internal"):
            return m
    return None


def select_machine(ctx: Ctx, app: dict[str, Any], console: bool) -> dict[str, Any]:
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


def _runtime(m: dict[str, Any]) -> dict[str, Any]:
    rt = m.get("_runtime") or {}
    if not rt.get("bin") or not rt.get("home"):
        raise FlyError(f"flyctl test double: machine {m['id']} has no runtime directories")
    return rt


def resolve_remote_executable(name: str, rt: dict[str, Any], cwd: str) -> str | None:
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


def remote_env(rt: dict[str, Any]) -> dict[str, str]:
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


def run_remote(m: dict[str, Any], command: str, pty: bool) -> int:
    """Run ``command`` as hallpass would: quote-aware split, exec without a shell."""
    import shlex
    import subprocess

    rt = _runtime(m)
    cwd = rt.get("cwd") or rt["home"]
    try:
        argv = shlex.split(command)
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _pump(src: Any, fd: int, crlf: bool) -> Any:
    import threading

    def run() -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(src.fileno(), 65536):
                _write_all(fd, chunk.replace(b"\n", b"\r\n") if crlf else chunk)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _pump_stdin(dst: Any) -> None:
    import threading

    def run() -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(0, 65536):
                _write_all(dst.fileno(), chunk)
        with contextlib.suppress(OSError, ValueError):
            dst.close()

    threading.Thread(target=run, daemon=True).start()


def _ssh_prologue(ctx: Ctx) -> str:
    """RequireSession + RequireAppName preparers shared by ssh console and sftp."""
    require_session(ctx)
    name, _ = require_app_name(ctx)
    return name


def cmd_ssh_console(ctx: Ctx) -> int:
    name = _ssh_prologue(ctx)
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


def _take_sftp_fault(ctx: Ctx, remote: str) -> dict[str, Any] | None:
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


def _remote_path(rt: dict[str, Any], path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(rt.get("cwd") or rt["home"], path)


def _sftp_stat_error(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "file does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"sftp: {go_errno_text(exc)}"


def _sftp_connect(ctx: Ctx) -> dict[str, Any]:
    name = ctx.inv.flags["__app__"]
    api_auth(ctx)
    app = get_app(ctx, name, "get app: ")
    return select_machine(ctx, app, console=False)


def cmd_sftp_get(ctx: Ctx) -> int:
    name = _ssh_prologue(ctx)
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
    rt = _runtime(machine)
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
    name = _ssh_prologue(ctx)
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
    rt = _runtime(machine)
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
    _write_all(fd, data if limit is None else data[:limit])
    if limit is not None:
        raise FlyError(f"copy file: {fault.get('error', 'connection lost')} "
                       f"({min(limit, len(data))} bytes written)")
    return len(data)


def cmd_sftp_find(ctx: Ctx) -> int:
    name = _ssh_prologue(ctx)
    ctx.inv.flags["__app__"] = name
    machine = _sftp_connect(ctx)
    rt = _runtime(machine)
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


# --------------------------------------------------------------------------------------
# deploy
# --------------------------------------------------------------------------------------


def _cfg_mounts(cfg: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not cfg:
        return []
    raw = cfg.get("mounts", cfg.get("mount"))
    if isinstance(raw, dict):
        return [raw]
    if isinstance(raw, list):
        return [x for x in raw if isinstance(x, dict)]
    return []


def _filter_csv(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()] if value else []


def _take_deploy_fault(state: dict[str, Any]) -> dict[str, Any] | None:
    for fault in state.get("deploy_faults", []):
        if fault.get("times") is not None and fault["times"] <= 0:
            continue
        if fault.get("times") is not None:
            fault["times"] -= 1
        return dict(fault)
    return None


def _parse_wait_flag(ctx: Ctx, flag: str) -> float | None:
    """Seconds, as flyctl's parseDurationFlag reads a timeout (None: not given)."""
    if flag not in ctx.inv.specified:  # flag.IsSpecified: the default is never parsed
        return None
    raw = str(ctx.flag(flag))
    if raw == "none":
        return 0.0
    body, sign = (raw[1:], -1 if raw[0] == "-" else 1) if raw[:1] in "+-" else (raw, 1)
    if body == "0":
        return 0.0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}
    parts = re.findall(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)", body)
    if body and "".join(n + u for n, u in parts) == body:
        return sign * sum(float(n) * units[u] for n, u in parts)
    if re.fullmatch(r"[+-]?[0-9]+", raw):  # "missing unit in duration": strconv.Atoi
        return float(int(raw))
    raise FlyError(
        f"invalid duration value {raw} used for --{flag} flag: valid options are a number of "
        "seconds, number with time unit (i.e.: 5m, 180s) or 'none'"
    )


def _second_machine_failure(ctx: Ctx, app: dict[str, Any], cfg: dict[str, Any] | None,
                            strategy: str, targets: list[dict[str, Any]],
                            name: str) -> FlyError | None:
    """Why bluegreen/canary cannot start the extra machine they need beside a volume."""
    mounted = [m for m in targets if (m.get("config") or {}).get("mounts")]
    if not mounted:
        return None
    if strategy == "bluegreen":
        m = mounted[0]
        vol = m["config"]["mounts"][0].get("volume", "")
        return FlyError(
            f"failed to launch VM: volume {vol} is already attached to machine {m['id']}\n"
            "failed to create green machines"
        )
    if strategy == "canary":
        mounts = _cfg_mounts(cfg)
        vol_name = str((mounts[0] if mounts else {}).get("source") or "")
        region = str((cfg or {}).get("primary_region") or mounted[0].get("region") or "")
        free = [v for v in app.get("volumes", [])
                if v.get("name") == vol_name and v.get("region") == region
                and not v.get("attached_machine_id")]
        if not free:
            group = process_group(mounted[0])
            return FlyError(
                f"error creating machine configuration: New machine in group '{group}' needs "
                f"an unattached volume named '{vol_name}' in region '{region}'"
            )
    return None


def _replace_machine(app: dict[str, Any], m: dict[str, Any], fault: dict[str, Any]) -> None:
    """deploy/machines_deploymachinesapp.go ``updateMachineByReplace``: the machine is
    destroyed and a new one (new id) launched with its volumes; it may fail to start."""
    old = m["id"]
    new = str(fault.get("new_id") or rand_str(14, "0123456789abcdef"))
    m["id"] = new
    m["state"] = str(fault.get("state") or "started")
    for vol in app.get("volumes", []):
        if vol.get("attached_machine_id") == old:
            vol["attached_machine_id"] = new
    rt = m.get("_runtime") or {}
    if rt.get("bin"):  # the same files: the new machine mounts the same volume
        machines = os.path.dirname(os.path.dirname(rt["bin"]))
        with contextlib.suppress(OSError):
            os.symlink(os.path.join(machines, old), os.path.join(machines, new))


def cmd_deploy(ctx: Ctx) -> int:
    require_session(ctx)
    workdir = ctx.cwd
    if ctx.args:
        wd = ctx.args[0]
        workdir = wd if os.path.isabs(wd) else os.path.abspath(os.path.join(ctx.cwd, wd))
        if not os.path.isdir(workdir):
            raise FlyError(
                f"failed changing working directory: chdir {workdir}: no such file or directory"
            )
    name, cfg = require_app_name(ctx, base_dir=workdir)
    api_auth(ctx)
    app = get_app(ctx, name)
    lines: list[str] = ["==> Verifying app config"]
    # flyctl validates only fly.toml's strategy (appconfig/validation.go); the --strategy
    # flag replaces it afterwards, unchecked (deploy/machines.go determineAppConfigForMachines)
    toml_strategy = str(((cfg or {}).get("deploy") or {}).get("strategy") or "")
    problems = []
    if toml_strategy and toml_strategy not in DEPLOY_STRATEGIES:
        problems.append(
            f"unsupported deployment strategy '{toml_strategy}'; Apps v2 supports the following "
            f"strategies: {', '.join(DEPLOY_STRATEGIES)}"
        )
    if toml_strategy == "canary" and _cfg_mounts(cfg):
        problems.append(
            "error canary deployment strategy is not supported when using mounted volumes"
        )
    strategy = ctx.flag("strategy") or toml_strategy
    if cfg is not None:
        lines.append(f"Validating {cfg['__path__']}")
    if problems:
        out("\n".join(lines) + "\n")
        extra = "".join(problems) + "\n\n   \u2718invalid app configuration\n"
        err(extra)
        raise FlyError("App configuration is not valid")
    lines += ["\u2713 Configuration is valid", "--> Verified app config"]
    strategy = strategy or "rolling"

    # ---- image
    build = (cfg or {}).get("build") or {}
    image = ctx.flag("image") or str(build.get("image") or "")
    lines.append("==> Building image")
    if image:
        lines += [
            f"Searching for image '{image}' remotely...",
            f"image found: img_{rand_str(14, '0123456789abcdefghijklmnopqrstuvwxyz')}",
        ]
    else:
        dockerfile = ctx.flag("dockerfile") or ""
        if dockerfile:
            dockerfile = os.path.join(workdir, dockerfile)
        elif build.get("dockerfile"):
            base = os.path.dirname((cfg or {}).get("__path__", workdir))
            dockerfile = os.path.join(base, str(build["dockerfile"]))
        else:
            # the build context is the working directory, never fly.toml's folder
            # (deploy/deploy_build.go: imgsrc.ResolveDockerfile(state.WorkingDirectory))
            dockerfile = os.path.join(workdir, "Dockerfile")
        has_builder = bool(build.get("builder") or build.get("buildpacks"))
        if not has_builder and not os.path.isfile(dockerfile):
            out("\n".join(lines) + "\n")
            raise FlyError(
                "failed to fetch an image or build from source: app does not have a Dockerfile "
                "or buildpacks configured. See "
                "https://fly.io/docs/reference/configuration/#the-build-section"
            )
        if ctx.flag("local-only") and not (ctx.state.get("features") or {}).get("local_docker"):
            out("\n".join(lines) + "\n")
            raise FlyError(
                "failed to fetch an image or build from source: Cannot connect to the Docker "
                "daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
            )
        label = ctx.flag("image-label") or f"deployment-{ulid()}"
        image = f"registry.fly.io/{name}:{label}"
        lines += [
            "==> Building image with Depot" if not ctx.flag("local-only") else "==> Building image",
            f"image: {image}",
            "image size: 74 MB",
        ]
    if ctx.flag("build-only"):
        out("\n".join(lines) + "\n")
        return 0

    # ---- timeouts: plain strings parsed only now, after the build (deploy.go parseDurationFlag)
    try:
        wait = _parse_wait_flag(ctx, "wait-timeout")
        for other in ("release-command-timeout", "lease-timeout"):
            _parse_wait_flag(ctx, other)
    except FlyError:
        out("\n".join(lines) + "\n")
        raise

    # ---- release
    emit = bool(ctx.environ.get("FLY_EMIT_RELEASE_JSON"))
    skip_health = bool(ctx.flag("detach")) or strategy == "immediate"
    failure: FlyError | None = None
    with ctx.store.mutate() as state:
        ctx.state = state
        app = get_app(ctx, name)
        account = state.get("account") or {}
        versions = [int(r.get("Version", 0)) for r in app.get("releases", [])]
        version = max(versions, default=0) + 1
        release = {
            "ID": new_release_id(),
            "Version": version,
            "Stable": True,
            "InProgress": False,
            "Reason": "deploy",
            "Description": "Deploy image",
            "Status": "complete",
            "DeploymentStrategy": "",
            "Metadata": None,
            "User": {
                "ID": account.get("user_id", "Usr_p8d2w6k0"),
                "Name": account.get("name", ""),
                "Email": account.get("email", ""),
                "EnablePaidHobby": False,
            },
            "EvaluationID": "",
            "CreatedAt": now_seconds(),
            "ImageRef": image,
        }
        targets = active_machines(app)
        only = _filter_csv(ctx.flag("only-machines") or "")
        exclude = _filter_csv(ctx.flag("exclude-machines") or "")
        regions = _filter_csv(ctx.flag("regions") or "")
        xregions = _filter_csv(ctx.flag("exclude-regions") or "")
        groups = _filter_csv(ctx.flag("process-groups") or "")
        targets = [
            m
            for m in targets
            if (not only or m["id"] in only)
            and m["id"] not in exclude
            and (not regions or m.get("region") in regions)
            and m.get("region") not in xregions
            and (not groups or process_group(m) in groups)
        ]
        lines += [f"Watch your deployment at https://fly.io/apps/{name}/monitoring", ""]
        release_cmd = str(((cfg or {}).get("deploy") or {}).get("release_command") or "")
        if release_cmd and not ctx.flag("skip-release-command"):
            lines.append(f"Running {name} release_command: {release_cmd}")
            lines.append("  release_command completed successfully")
        fault = _take_deploy_fault(state)
        before = {m["id"]: copy.deepcopy(m) for m in targets}
        # a second machine for the volume: canary spawns one first (needs an unattached
        # volume of that name: deploy/machines_launchinput.go), bluegreen launches green
        # machines that keep blue's volume, which the Machines API refuses
        failure = _second_machine_failure(ctx, app, cfg, strategy, targets, name)
        if strategy == "canary" and failure is None and targets:
            lines.append(f"Creating canary machine for group {process_group(targets[0])}")
        if failure is not None and strategy == "canary":
            lines.append(f"Failed to create canary machine: {failure.message}")
        lines.append(f"Updating existing machines in '{name}' with {strategy or 'rolling'} "
                     "strategy")
        if failure is not None and strategy == "bluegreen":
            lines += ["", "Verifying if app can be safely deployed ", "", "Creating green machines"]
        n = len(targets)
        now = now_rfc3339()
        for i, m in enumerate([] if failure is not None else targets, 1):
            cfgm = m.setdefault("config", {})
            cfgm["image"] = image
            meta = cfgm.setdefault("metadata", {})
            meta["fly_release_id"] = release["ID"]
            meta["fly_release_version"] = str(version)
            m["image_ref"] = image_ref_object(image, {"fly.version": f"v{version}"})
            m["instance_id"] = ulid()
            m["updated_at"] = now
            lines.append(f"  [{i}/{n}] Updating {m['id']} [{process_group(m)}]")
            hit = (
                fault is not None
                and fault.get("kind") == "health_timeout"
                and fault.get("machine_id") in (None, m["id"])
            )
            if wait is not None and wait <= 0 and not skip_health and m.get("state") == "started":
                # a zero (or negative) wait is over before the machine can start
                failure = FlyError(
                    f"failed to update machine {m['id']}: Unrecoverable error: timeout reached "
                    "waiting for machine's state to change",
                    suffix="\nYou can try increasing the timeout with the --wait-timeout flag\n",
                )
                break
            if fault is not None and fault.get("kind") == "replace_machine" and fault.get(
                "machine_id"
            ) in (None, m["id"]):
                lines.append(f"  [{i}/{n}] Replacing {m['id']} by new machine")
                _replace_machine(app, m, fault)
            if hit and not skip_health and m.get("state") == "started":
                lines.append(f"  [{i}/{n}] Checking health of machine {m['id']}")
                failure = FlyError(
                    f"failed to update machine {m['id']}: Unrecoverable error: timeout reached "
                    f"waiting for health checks to pass for machine {m['id']}: failed to get VM "
                    f"{m['id']}: Get \"https://api.machines.dev/v1/apps/{name}/machines/"
                    f"{m['id']}\": net/http: request canceled",
                    suffix="\nYou can try increasing the timeout with the --wait-timeout flag\n",
                )
                break
            lines.append(
                f"  \u2714 [{i}/{n}] Machine {m['id']} [{process_group(m)}] update succeeded"
            )
        if failure is not None:
            release["Status"] = "failed"
            release["Stable"] = False
            if strategy == "bluegreen":
                lines.append("")
                lines.append("Rolling back failed deployment")
                for m in targets:
                    original = before[m["id"]]
                    m.clear()
                    m.update(original)
        app.setdefault("releases", []).append(release)
    if failure is not None:
        out("\n".join(lines) + "\n")
        raise failure
    lines.append("-------")
    if not ctx.flag("detach") and ctx.flag("dns-checks") is not False:
        lines.append(f"Checking DNS configuration for {name}.fly.dev")
    if emit:
        lines.append(
            go_json_compact({"id": release["ID"], "version": version, "image_ref": image})
        )
    lines += ["", f"Visit your newly deployed app at https://{name}.fly.dev/"]
    out("\n".join(lines) + "\n")
    return 0


# --------------------------------------------------------------------------------------
# machine stop/start/update/clone and volumes create (emergency stop, restore.volume)
# Sources: internal/command/machine/{select,stop,start,update,clone,run}.go,
# internal/machine/{config,update}.go, internal/watch/watch.go,
# internal/command/volumes/{create,volumes}.go; fly-go machine_types.go (MachineAutostop).
# --------------------------------------------------------------------------------------

VOLUME_WARNING = (
    "Warning! Every volume is pinned to a specific physical host. You should create two or "
    "more volumes per application to avoid downtime. Learn more at "
    "https://fly.io/docs/volumes/overview/"
)


def _machine_app_name(ctx: Ctx) -> str:
    """LoadAppNameIfPresent: -a, FLY_APP, fly.toml; may be empty."""
    return resolve_app_name(ctx, load_app_config(ctx))


def _select_machines(ctx: Ctx, app_name: str, ids: list[str]) -> tuple[str, list[dict]]:
    """select.go: checkSelectConditions, the app (from a machine id via GraphQL), flaps Get."""
    select = bool(ctx.flag("select"))
    if select and ids:
        raise FlyError("machine IDs can't be used with --select")
    if select and not app_name:
        raise FlyError("an app name must be specified to use --select")
    if not ids and not app_name:
        raise FlyError("a machine ID or an app name is required")
    if select or not ids:
        raise FlyError("a machine ID must be specified when not running interactively")
    if not app_name:
        for name, app in (ctx.state.get("apps") or {}).items():
            if any(m["id"] == ids[0] for m in active_machines(app)):
                app_name = name
                break
        else:
            # Guess: the GraphQL error text for an unknown machine id.
            raise FlyError("could not get machine from GraphQL to determine app name: "
                           f"Could not find Machine {go_quote(ids[0])}")
    app = get_app(ctx, app_name)
    found = []
    for mid in ids:
        machine = next((m for m in active_machines(app) if m["id"] == mid), None)
        if machine is None:
            raise FlyError(f"machine {mid} was not found in app '{app_name}'")
        found.append(machine)
    return app_name, found


def machine_serves(machine: dict) -> bool:
    """The double's model of the app: it answers its checks unless the machine was told to
    run ``sleep`` instead (``config.init`` exec or cmd whose first word is sleep)."""
    init = (machine.get("config") or {}).get("init") or {}
    words = init.get("exec") or init.get("cmd") or []
    return not (words and os.path.basename(str(words[0])) == "sleep")


def _set_checks(machine: dict) -> None:
    status = "passing" if machine.get("state") == "started" and machine_serves(machine) \
        else "critical"
    for check in machine.get("checks") or []:
        check["status"] = status
        check["updated_at"] = now_rfc3339()


def _health_deadline(prefix: str) -> FlyError:
    return FlyError(f"{prefix}: context deadline exceeded", exit_code=126)


def cmd_machine_stop(ctx: Ctx) -> int:
    require_session(ctx)
    app_name = _machine_app_name(ctx)
    api_auth(ctx)
    with ctx.store.mutate() as state:
        ctx.state = state
        app_name, found = _select_machines(ctx, app_name, ctx.args)
        for machine in found:
            out(f"Sending kill signal to machine {machine['id']}...\n")
            machine["state"] = "stopped"  # guess: stopping a stopped machine is accepted
            machine["updated_at"] = now_rfc3339()
            _set_checks(machine)
            out(f"{machine['id']} has been successfully stopped\n")
    return 0


def cmd_machine_start(ctx: Ctx) -> int:
    require_session(ctx)
    app_name = _machine_app_name(ctx)
    api_auth(ctx)
    with ctx.store.mutate() as state:
        ctx.state = state
        app_name, found = _select_machines(ctx, app_name, ctx.args)
        for machine in found:
            machine["state"] = "started"  # start returns before the machine is started
            machine["updated_at"] = now_rfc3339()
            _set_checks(machine)
            out(f"{machine['id']} has been started\n")
    return 0


def _kv_flag(ctx: Ctx, name: str, initial: dict) -> dict:
    """parseKVFlag: NAME=VALUE pairs merged over the current map."""
    parsed = dict(initial or {})
    for item in ctx.flag(name) or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise FlyError(f"invalid key/value pairs specified for flag {name}")
        parsed[key] = value
    return parsed


def _autostop_value(raw: str) -> Any:
    """run.go: strconv.ParseBool first, then MachineAutostop.UnmarshalText; JSON as fly-go
    marshals it (off/stop as booleans, suspend as a string)."""
    if raw in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if raw in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    words = {"off": False, "stop": True, "suspend": "suspend"}
    if raw not in words:
        raise FlyError(f"invalid autostop value {go_quote(raw)}")  # guess: UnmarshalText's
    return words[raw]


def _updated_config(ctx: Ctx, machine: dict) -> dict:
    """determineMachineConfig(updating=true) for the flags the double emulates."""
    import shlex

    config = copy.deepcopy(machine.get("config") or {})
    init = config.setdefault("init", {})
    if "command" in ctx.inv.specified:
        command = (ctx.flag("command") or "").strip()
        if command:
            try:
                init["cmd"] = shlex.split(command)
            except ValueError as exc:
                raise FlyError(f"invalid command: {exc}") from None
        else:
            init.pop("cmd", None)
    config["env"] = dict(sorted(_kv_flag(ctx, "env", config.get("env") or {}).items()))
    config["metadata"] = dict(sorted(_kv_flag(ctx, "metadata", config.get("metadata") or {})
                                     .items()))
    entrypoint = ctx.flag("entrypoint") or ""
    if entrypoint:
        init["entrypoint"] = shlex.split(entrypoint)
    for service in config.get("services") or []:
        if "autostop" in ctx.inv.specified:
            service["autostop"] = _autostop_value(ctx.flag("autostop"))
        if "autostart" in ctx.inv.specified:
            service["autostart"] = bool(ctx.flag("autostart"))
    if ctx.flag("image"):
        config["image"] = ctx.flag("image")
    mount_point = ctx.flag("mount-point") or ""
    if mount_point:
        if len(config.get("mounts") or []) != 1:
            raise FlyError("Machine doesn't have a volume attached")
        config["mounts"][0]["path"] = mount_point
    return config


def _config_diff(old: dict, new: dict) -> str:
    """Approximates configCompare: changed JSON lines with -/+ markers."""
    before = go_json(old).splitlines()
    after = go_json(new).splitlines()
    removed = [f"-  {line.strip()}" for line in before if line not in after]
    added = [f"+  {line.strip()}" for line in after if line not in before]
    return "\n".join(removed + added)


def cmd_machine_update(ctx: Ctx) -> int:
    require_session(ctx)
    app_name = _machine_app_name(ctx)
    api_auth(ctx)
    with ctx.store.mutate() as state:
        ctx.state = state
        app_name, (machine,) = _select_machines(ctx, app_name, ctx.args)
        if machine.get("host_status", "ok") != "ok":
            raise FlyError("the machine is on an unreachable host, try again later")
        config = _updated_config(ctx, machine)
        if not ctx.flag("yes"):
            diff = _config_diff(machine.get("config") or {}, config)
            if not diff:
                raise FlyError("no config changes found")
            out(f"Configuration changes to be applied to machine: {machine['id']} "
                f"({machine.get('name', '')})\n\n{diff}\n")
            raise FlyError("yes flag must be specified when not running interactively")
        out(f"Updating machine {machine['id']}\n")
        machine["config"] = config
        machine["instance_id"] = ulid()
        machine["updated_at"] = now_rfc3339()
        machine["state"] = "stopped" if ctx.flag("skip-start") else "started"
        _set_checks(machine)
        snapshot = copy.deepcopy(machine)
    if snapshot["state"] == "started" and not ctx.flag("skip-health-checks"):
        _report_checks(snapshot, "failed to wait for health checks to pass")
    out(f"Machine {snapshot['id']} updated successfully!\n")
    out(f"\nMonitor machine status here:\nhttps://fly.io/apps/{app_name}/machines/"
        f"{snapshot['id']}\n")
    return 0


def _report_checks(machine: dict, prefix: str) -> None:
    checks = machine.get("checks") or []
    if not checks:
        out("No health checks found\n")
        return
    passing = sum(1 for c in checks if c.get("status") == "passing")
    err(f"  Waiting for {machine['id']} to become healthy ({machine.get('state')}, "
        f"{passing}/{len(checks)})\n")
    if passing != len(checks):
        raise _health_deadline(prefix)


def _new_machine_id() -> str:
    return rand_str(14, "0123456789abcdef")


def _clone_runtime(source: dict, new_id: str) -> dict:
    """The clone's own bin (the same tools as the source) and HOME, beside the source's."""
    rt = _runtime(source)
    machines_dir = os.path.dirname(os.path.dirname(rt["bin"]))
    bin_dir = os.path.join(machines_dir, new_id, "bin")
    home = os.path.join(machines_dir, new_id, "root")
    os.makedirs(bin_dir, exist_ok=True)
    os.makedirs(home, exist_ok=True)
    for entry in os.listdir(rt["bin"]):
        link = os.path.join(rt["bin"], entry)
        if os.path.islink(link):
            os.symlink(os.readlink(link), os.path.join(bin_dir, entry))
    return {"bin": bin_dir, "home": home, "cwd": home, "env": dict(rt.get("env") or {})}


def _new_volume(app: dict, name: str, region: str, size_gb: int, encrypted: bool,
                retention: int, restoring: bool, state: dict) -> dict:
    vol = {
        "id": "vol_" + rand_str(16, "0123456789abcdefghijklmnopqrstuvwxyz"), "name": name,
        "state": "restoring" if restoring else "created", "size_gb": size_gb,
        "region": region, "zone": rand_str(4, "0123456789abcdef"), "encrypted": encrypted,
        "attached_machine_id": None, "attached_alloc_id": None, "created_at": now_rfc3339(),
        "host_dedication_id": "", "snapshot_retention": retention,
        "auto_backup_enabled": True, "host_status": "ok",
    }
    if restoring:  # `restoring` for this many `volumes list` calls, then `created`
        vol["_restoring_lists"] = int((state.get("features") or {})
                                      .get("volume_restore_lists", 1))
    app.setdefault("volumes", []).append(vol)
    return vol


def _find_snapshot(state: dict, app: dict, snapshot_id: str) -> dict | None:
    for vol in app.get("volumes", []):
        for snap in (state.get("snapshots") or {}).get(vol["id"], []):
            if snap.get("id") == snapshot_id and snap.get("status") == "created":
                return snap
    return None


def cmd_machine_clone(ctx: Ctx) -> int:
    import shlex

    require_session(ctx)
    app_name, _ = require_app_name(ctx)
    api_auth(ctx)
    with ctx.store.mutate() as state:
        ctx.state = state
        app_name, (source,) = _select_machines(ctx, app_name, ctx.args[:1])
        app = get_app(ctx, app_name)
        if source.get("host_status", "ok") != "ok":
            raise FlyError("the machine is on an unreachable host, try again later")
        volumes = {v["id"]: v for v in app.get("volumes", [])}
        attach = ctx.flag("attach-volume") or ""
        vol_id, _, mount_path = attach.partition(":")
        vol = None
        if attach:
            vol = volumes.get(vol_id)
            if vol is None:  # guess: the flaps error text for an unknown volume
                raise FlyError("could not get existing volume: volume not found")
        region = ctx.flag("region") or ""
        if vol is not None and region and vol["region"] != region:
            raise FlyError(f"specified region {region} but volume is in region {vol['region']}, "
                           "use the same region as the volume")
        region = vol["region"] if vol is not None and not region else (
            region or source.get("region", ""))
        out(f"Cloning Machine {source['id']} into region {region}\n")
        config = copy.deepcopy(source.get("config") or {})
        init = config.setdefault("init", {})
        if ctx.flag("clear-cmd"):
            init.pop("cmd", None)  # an empty list, dropped by omitempty
        elif ctx.flag("override-cmd"):
            init["cmd"] = shlex.split(ctx.flag("override-cmd"))
        mounts = copy.deepcopy(config.get("mounts") or [])
        if attach:
            if len(mounts) > 1:
                raise FlyError("Can't use --attach-volume for Machines with more than 1 volume.")
            if not mounts and not mount_path:
                raise FlyError(f"Please specify a mount path on '{attach}' using "
                               "<volume_id>:/path/inside/machine")
            if mount_path:
                if not mounts:
                    mounts = [{"path": mount_path}]
                else:
                    out(f"Info: --attach-volume is overriding previous mount point from "
                        f"`{mounts[0].get('path')}` to `{mount_path}`.\n")
                    mounts[0]["path"] = mount_path
        new_mounts = []
        for mount in mounts:
            if attach:
                out(f"Attaching existing volume {vol_id}\n")
                if vol.get("attached_machine_id"):
                    raise FlyError(f"volume {vol_id} is already attached to a machine")
                target = vol
            else:
                snap = ctx.flag("from-snapshot") or ""
                if snap:
                    out(f"Creating new volume from snapshot: {snap}\n")
                else:
                    out(f"Volume '{mount.get('name', '')}' will start empty\n")
                target = _new_volume(app, str(mount.get("name") or ""), region,
                                     int(mount.get("size_gb") or 1),
                                     bool(mount.get("encrypted", True)), 5, bool(snap),
                                     state)
            new_mounts.append({"encrypted": target["encrypted"], "path": mount.get("path", ""),
                               "size_gb": target["size_gb"], "volume": target["id"],
                               "name": target["name"]})
        config["mounts"] = new_mounts
        out(f"Provisioning a new Machine with image {machine_image(source)}...\n")
        new_id = _new_machine_id()
        machine = copy.deepcopy(source)
        now = now_rfc3339()
        machine.update({
            "id": new_id,
            "name": ctx.flag("name") or f"{rand_str(5, 'abcdefghijklmnopqrstuvwxyz')}-clone-"
                                        f"{rand_str(4, '0123456789')}",
            "state": "started", "region": region, "instance_id": ulid(),
            "private_ip": f"fdaa:9:1c2d:a7b:1f0:{rand_str(4, '0123456789abcdef')}:"
                          f"{rand_str(4, '0123456789abcdef')}:2",
            "created_at": now, "updated_at": now, "config": config,
            "_runtime": _clone_runtime(source, new_id),
        })
        _set_checks(machine)
        app["machines"].append(machine)
        attached = {mount["volume"] for mount in new_mounts}
        for v in app["volumes"]:
            if v["id"] in attached:
                v["attached_machine_id"] = new_id
        snapshot = copy.deepcopy(machine)
    out(f"  Machine {new_id} has been created...\n")
    if ctx.flag("detach"):
        return 0
    out(f"  Waiting for Machine {new_id} to start...\n")
    _report_checks(snapshot, "error while watching health checks")
    out("Machine has been successfully cloned!\n")
    return 0


def _print_volume(vol: dict, app_name: str) -> str:
    created = parse_time(vol["created_at"]).strftime("%d %b %y %H:%M UTC")
    rows = [("ID", vol["id"]), ("Name", vol["name"]), ("App", app_name),
            ("Region", vol["region"]), ("Zone", vol["zone"]), ("Size GB", str(vol["size_gb"])),
            ("Encrypted", "true" if vol["encrypted"] else "false"), ("Created at", created),
            ("Snapshot retention", str(vol["snapshot_retention"])),
            ("Scheduled snapshots", "true" if vol["auto_backup_enabled"] else "false")]
    return "".join(f"{label:>20}: {value}\n" for label, value in rows)


def cmd_volumes_create(ctx: Ctx) -> int:
    require_session(ctx)
    name, _ = require_app_name(ctx)
    api_auth(ctx)
    vol_name = ctx.args[0]
    count = int(ctx.flag("count") or 1)
    with ctx.store.mutate() as state:
        ctx.state = state
        app = get_app(ctx, name)
        same_name = [v for v in app.get("volumes", []) if v.get("name") == vol_name]
        if not ctx.flag("yes") and count <= 1 and not same_name:
            err(VOLUME_WARNING + "\n")
            raise FlyError("yes flag must be specified when not running interactively")
        region = ctx.flag("region") or ctx.environ.get("FLY_REGION", "")
        if not region:
            raise FlyError("region code must be specified when not running interactively")
        size = int(ctx.flag("size"))
        snapshot_id = ctx.flag("snapshot-id") or ""
        if snapshot_id:
            snap = _find_snapshot(state, app, snapshot_id)
            if snap is None:  # guess: the API's answer for an unknown snapshot
                raise FlyError(f"failed to create volume: snapshot {snapshot_id} not found")
            needed = -(-int(snap.get("volume_size") or 0) // GIB)
            if size < needed:  # [D] the size must be at least the snapshot's volume size
                raise FlyError(f"failed to create volume: size must be at least {needed}GB "
                               "for this snapshot")
        if "fs-type" in ctx.inv.specified and ctx.flag("fs-type") not in ("ext4", "raw"):
            raise FlyError(f'filesystem {go_quote(ctx.flag("fs-type"))} must be either "ext4" '
                           'or "raw"')
        made = []
        for _ in range(count):
            vol = _new_volume(app, vol_name, region, size, not ctx.flag("no-encryption"),
                              int(ctx.flag("snapshot-retention")), bool(snapshot_id), state)
            vol["_snapshot_id"] = snapshot_id or None
            made.append(render_volume(vol))
    for vol in made:
        out(go_json(vol) if ctx.json_on() else _print_volume(vol, name))
    return 0


def _machine_flags() -> list[Flag]:
    return [_app_flag(), _config_flag(), Flag("select", hidden=True)]


def _vm_flags() -> list[Flag]:
    return [Flag("vm-size", None, "string"), Flag("vm-cpus", None, "int"),
            Flag("vm-memory", None, "string"), Flag("vm-cpu-kind", None, "string"),
            Flag("vm-gpus", None, "int"), Flag("vm-gpu-kind", None, "string")]


def _machine_stop_cmd() -> Command:
    return Command("stop", usage="[<id>...]", short="Stop one or more Fly machines",
                   flags=[*_machine_flags(), Flag("signal", "s", "string"),
                          Flag("timeout", None, "int"),
                          Flag("wait-timeout", "w", "duration", default="0s")],
                   run=cmd_machine_stop)


def _machine_start_cmd() -> Command:
    return Command("start", usage="[<id>...]", short="Start one or more Fly machines",
                   flags=_machine_flags(), run=cmd_machine_start)


def _machine_update_cmd() -> Command:
    return Command(
        "update", usage="[machine_id]", short="Update a machine", args=range_args(0, 1),
        run=cmd_machine_update,
        flags=[*_machine_flags(), Flag("image", "i", "string"), Flag("detach"),
               Flag("port", "p", "slice"), Flag("env", "e", "array"),
               Flag("entrypoint", None, "string"), Flag("metadata", "m", "array"),
               Flag("autostart", default=True),
               Flag("autostop", None, "string", default="off", no_opt="stop"),
               Flag("restart", None, "string"), Flag("yes", "y", aliases=("auto-confirm",)),
               Flag("skip-start"), Flag("skip-health-checks"),
               Flag("command", "C", "string"), Flag("mount-point", None, "string"),
               Flag("wait-timeout", None, "int", default=300),
               Flag("container", None, "string"), *_vm_flags()])


def _machine_clone_cmd() -> Command:
    return Command(
        "clone", usage="[machine_id]", short="Clone a Fly Machine", args=range_args(0, 1),
        run=cmd_machine_clone,
        flags=[*_machine_flags(), Flag("region", "r", "string"), Flag("name", None, "string"),
               Flag("from-snapshot", None, "string"), Flag("attach-volume", None, "string"),
               Flag("override-cmd", None, "string"), Flag("clear-cmd"),
               Flag("clear-auto-destroy"), Flag("standby-for", None, "slice"),
               Flag("volume-requires-unique-zone", default=True), Flag("detach"),
               *_vm_flags()])


def _volumes_create_cmd() -> Command:
    return Command(
        "create", usage="<volume name>", short="Create a new volume for an app.",
        args=exact_args(1), run=cmd_volumes_create,
        flags=[_app_flag(), _config_flag(), Flag("region", "r", "string"),
               Flag("size", "s", "int", default=1), Flag("snapshot-retention", None, "int",
                                                          default=5),
               Flag("scheduled-snapshots", default=True), Flag("no-encryption"),
               Flag("require-unique-zone", default=True), Flag("unique-zone-app-wide"),
               Flag("snapshot-id", None, "string"),
               Flag("fs-type", None, "string", default="ext4", hidden=True),
               Flag("yes", "y", aliases=("auto-confirm",)), Flag("count", "n", "int", default=1),
               *_vm_flags(), _json_flag()])


# --------------------------------------------------------------------------------------
# command tree
# --------------------------------------------------------------------------------------


def _app_flag() -> Flag:
    return Flag("app", "a", "string", help="Application name")


def _config_flag() -> Flag:
    return Flag("config", "c", "string", help="Path to application configuration file")


def _json_flag() -> Flag:
    return Flag("json", "j", help="JSON output")


def _ssh_flags() -> list[Flag]:
    return [
        Flag("org", "o", "string", help="The target Fly.io organization"),
        _app_flag(),
        _config_flag(),
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


def _deploy_flags() -> list[Flag]:
    s, b = "string", "bool"
    spec: list[tuple[str, str | None, str]] = [
        ("region", "r", s), ("image", "i", s), ("now", None, b), ("remote-only", None, b),
        ("local-only", None, b), ("depot", None, b), ("depot-scope", None, s),
        ("nixpacks", None, b), ("build-only", None, b), ("push", None, b), ("detach", None, b),
        ("strategy", None, s), ("dockerfile", None, s), ("ignorefile", None, s),
        ("image-label", None, s), ("build-arg", None, "array"), ("build-secret", None, "array"),
        ("build-target", None, s), ("no-cache", None, b), ("recreate-builder", None, b),
        ("wait-timeout", None, s), ("release-command-timeout", None, s),
        ("lease-timeout", None, s), ("max-unavailable", None, "float"),
        ("ha", None, b), ("smoke-checks", None, b), ("dns-checks", None, b),
        ("update-only", None, b), ("deploy-retries", None, s), ("regions", None, s),
        ("exclude-regions", None, s), ("only-machines", None, s), ("exclude-machines", None, s),
        ("process-groups", None, s), ("skip-release-command", None, b),
        ("volume-initial-size", None, "int"), ("primary-region", None, s),
        ("vm-cpu-kind", None, s), ("vm-cpus", None, "int"), ("vm-memory", None, s),
        ("vm-size", None, s), ("vm-gpu-kind", None, s), ("vm-gpus", None, "int"),
        ("host-dedication-id", None, s), ("file-literal", None, "array"),
        ("file-local", None, "array"), ("file-secret", None, "array"), ("label", None, "array"),
        ("signal", "s", s), ("no-public-ips", None, b), ("provision-extensions", None, b),
        ("buildkit", None, b), ("recreate-extensions", None, b), ("no-extensions", None, b),
        ("immediate-max-concurrent", None, "int"), ("builder-pool", None, b),
        ("traces", None, b), ("wg", None, b), ("dockerfile-url", None, s), ("build-tag", None, s),
        ("compression", None, s), ("compression-level", None, "int"), ("exclude-files", None, s),
    ]
    flags = [_app_flag(), _config_flag()]
    defaults = {"ha": True, "smoke-checks": True, "dns-checks": True, "wg": True,
                "max-unavailable": 0.33, "wait-timeout": "5m0s",
                "release-command-timeout": "5m0s", "lease-timeout": "13s",
                "deploy-retries": "auto"}
    for name, short, kind in spec:
        flags.append(Flag(name, short, kind, default=defaults.get(name)))
    flags.append(Flag("yes", "y", help="Accept all confirmations", aliases=("auto-confirm",)))
    flags.append(Flag("env", "e", "slice", help="Set of environment variables NAME=VALUE"))
    return flags


def _ne(name: str, *aliases: str) -> Command:
    return Command(name, aliases=aliases, run=cmd_not_emulated, emulated=False,
                   short="(not emulated by the test double)")


def _sftp_group() -> Command:
    return Command(
        "sftp",
        short="Get or put files from a remote VM.",
        children=[
            Command("find", usage="[path]", flags=_ssh_flags(), run=cmd_sftp_find,
                    short="The SFTP FIND command lists files on a remote VM."),
            _ne("shell"),
            Command("get", usage="<remote-path> [local-path]",
                    flags=[Flag("recursive", "R", help="Download directories recursively"),
                           *_ssh_flags()],
                    run=cmd_sftp_get, args=max_args(2),
                    short="The SFTP GET retrieves a file from a remote VM."),
            Command("put", usage="<local-path> [remote-path]",
                    flags=[Flag("mode", "m", "string", default="0644", help="File mode"),
                           Flag("recursive", "R", help="Upload directories recursively"),
                           *_ssh_flags()],
                    run=cmd_sftp_put, args=range_args(1, 2),
                    short="The SFTP PUT uploads a file to a remote VM."),
        ],
    )


def _releases_cmd() -> Command:
    return Command(
        "releases",
        short="List app releases",
        flags=[_app_flag(), _config_flag(), _json_flag(), Flag("image", help="Display image")],
        run=cmd_releases,
        args=NO_ARGS,
    )


def build_root() -> Command:
    return Command(
        "fly",
        short="This is flyctl, the Fly.io command line interface.",
        children=[
            Command("version", short="Show version information for the flyctl command",
                    flags=[_json_flag(), Flag("saveinstall", "s", "string", hidden=True)],
                    run=cmd_version, children=[_ne("upgrade")]),
            Command("auth", short="Manage authentication", children=[
                Command("whoami", short="Displays the users email address/service identity "
                        "currently authenticated and in use.", flags=[_json_flag()],
                        run=cmd_whoami, args=NO_ARGS),
                _ne("login"), _ne("logout"), _ne("token"), _ne("docker"), _ne("signup"),
            ]),
            Command("volumes", aliases=("volume", "vol", "v"), short="Manage Fly Volumes.",
                    children=[
                Command("list", aliases=("ls",), short="List the volumes associated with an app.",
                        flags=[_app_flag(), _config_flag(),
                               Flag("all", help="Show all volumes including those in "
                                    "destroyed states"), _json_flag()],
                        run=cmd_volumes_list, args=NO_ARGS),
                Command("snapshots", aliases=("snapshot", "snaps"),
                        short="Manage volume snapshots.", children=[
                    Command("create", usage="<volume id>", short="Create a volume snapshot.",
                            flags=[_app_flag(), _json_flag()], run=cmd_snapshots_create,
                            args=exact_args(1)),
                    Command("list", aliases=("ls",), usage="<volume id>",
                            short="List snapshots.", flags=[_app_flag(), _json_flag()],
                            run=cmd_snapshots_list, args=exact_args(1)),
                ]),
                _volumes_create_cmd(), _ne("show"), _ne("update"),
                _ne("destroy", "delete", "rm"),
                _ne("extend"), _ne("fork"),
            ]),
            Command("machine", aliases=("machines", "m"), short="Manage Fly Machines.",
                    children=[
                Command("list", aliases=("ls",), short="List Fly machines",
                        flags=[_app_flag(), _config_flag(), _json_flag(),
                               Flag("quiet", "q", help="Only list machine ids")],
                        run=cmd_machine_list, args=NO_ARGS),
                _ne("status"), _machine_start_cmd(), _machine_stop_cmd(), _ne("restart"),
                _machine_clone_cmd(),
                _ne("destroy", "remove", "rm"), _ne("exec"), _machine_update_cmd(), _ne("run"),
                _ne("create"), _ne("kill"), _ne("leases"), _ne("cordon"), _ne("uncordon"),
                _ne("suspend"), _ne("proxy"),
            ]),
            _releases_cmd(),
            Command("apps", aliases=("app",), short="Manage apps.", children=[
                _releases_cmd(), _ne("list", "ls"), _ne("create"), _ne("destroy"),
                _ne("restart"), _ne("open"),
            ]),
            Command("status", short="Show app status",
                    flags=[_app_flag(), _config_flag(), _json_flag(), Flag("all"),
                           Flag("watch"), Flag("rate", None, "int", default=5)],
                    run=cmd_status, args=NO_ARGS),
            Command("ssh", short="Use SSH to log into or run commands on Machines", children=[
                Command("console", short="Connect to a running instance of the current app.",
                        usage="[ADDRESS]", flags=_ssh_flags(), run=cmd_ssh_console,
                        args=max_args(1)),
                _sftp_group(), _ne("issue"), _ne("log"),
            ]),
            _sftp_group(),
            Command("deploy", usage="[WORKING_DIRECTORY]", short="Deploy Fly applications",
                    flags=_deploy_flags(), run=cmd_deploy, args=max_args(1)),
            Command("help", usage="[command]", short="Help about any command", run=cmd_help),
            _ne("scale"), _ne("secrets"), _ne("logs"), _ne("console"), _ne("launch"),
            _ne("config"), _ne("ips"), _ne("certs"), _ne("image"), _ne("platform"),
            _ne("postgres", "pg"), _ne("proxy"), _ne("regions"), _ne("wireguard", "wg"),
            _ne("tokens"), _ne("orgs"), _ne("agent"), _ne("doctor"), _ne("checks"),
        ],
    )


# --------------------------------------------------------------------------------------
# machine restart (internal/command/machine/restart.go, internal/machine/restart.go)
# --------------------------------------------------------------------------------------


def cmd_machine_restart(ctx: Ctx) -> int:
    """Restart each machine named; flyctl waits for it to start and for its checks."""
    require_session(ctx)
    if ctx.flag("select") and ctx.args:
        raise FlyError("machine IDs can't be used with --select")
    if not ctx.args:
        raise FlyError("a machine ID must be specified when not running interactively")
    name, _ = require_app_name(ctx)
    api_auth(ctx)
    with ctx.store.mutate() as state:
        ctx.state = state
        app = get_app(ctx, name)
        machines = []
        for machine_id in ctx.args:
            found = next((m for m in active_machines(app) if m["id"] == machine_id), None)
            if found is None:
                raise FlyError(f"machine {machine_id} was not found in app '{name}'")
            machines.append(found)
        for m in machines:
            out(f"Restarting machine {m['id']}\n")
            if m.get("state") != "started":  # Guess: flaps refuses to restart a stopped VM
                raise FlyError(
                    f"failed to restart machine {m['id']}: could not stop machine {m['id']}: "
                    f"failed to restart VM {m['id']}: failed_precondition: unable to restart "
                    "machine, not currently started")
            m["instance_id"] = ulid()
            m["updated_at"] = now_rfc3339()
            m.setdefault("events", []).insert(0, {
                "type": "restart", "status": "started", "source": "user",
                "timestamp": int(time.time() * 1000)})
            out(f"Machine {m['id']} restarted successfully!\n")
    return 0


def _machine_restart_cmd() -> Command:
    return Command(
        "restart", usage="[<id>...]", short="Restart one or more Fly machines",
        flags=[_app_flag(), _config_flag(), Flag("select", help="Select from a list of machines"),
               Flag("signal", "s", "string", help="Signal to stop the machine with"),
               Flag("time", None, "int", help="Seconds to wait before killing the machine"),
               Flag("force", help="Force stop the machine(s)"),
               Flag("skip-health-checks", help="Restarts app without waiting for health "
                    "checks.")],
        run=cmd_machine_restart)


def with_restore_commands(root: Command) -> Command:
    """Put the emulated ``machine restart`` in place of its not-emulated stand-in."""
    group = root.child("machine")
    command = _machine_restart_cmd()
    command.parent = group
    group.children = [command if c.name == "restart" else c for c in group.children]
    return root


# --------------------------------------------------------------------------------------
# faults and main
# --------------------------------------------------------------------------------------


def strip_globals(args: list[str]) -> list[str]:
    res: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a in ("--verbose", "--debug") or a.startswith(("--access-token=", "--verbose=")):
            continue
        if a in ("-t", "--access-token"):
            i += 1
            continue
        res.append(a)
    return res


def is_subsequence(needle: Sequence[str], hay: Sequence[str]) -> bool:
    it = iter(hay)
    return all(any(w == h for h in it) for w in needle)


def _fault_live(fault: dict[str, Any], words: list[str]) -> bool:
    if fault.get("times") is not None and fault["times"] <= 0:
        return False
    return is_subsequence(fault.get("match", []), words)


def take_fault(store: Store, state: dict[str, Any], args: list[str]) -> dict[str, Any] | None:
    """Consume the first live fault whose match words are a subsequence of argv."""
    words = strip_globals(args)
    if not any(_fault_live(f, words) for f in state.get("faults", [])):
        return None
    with store.mutate() as state:
        for fault in state.get("faults", []):
            if not _fault_live(fault, words):
                continue
            if fault.get("times") is not None:
                fault["times"] -= 1
            return dict(fault)
    return None


def redact(args: list[str], tokens: list[str]) -> list[str]:
    toks = [t for t in tokens if t]
    res = []
    for a in args:
        if a in toks:
            res.append(REDACTED)
            continue
        for t in toks:
            for prefix in ("--access-token=", "-t=", "-t"):
                if a == prefix + t:
                    a = prefix + REDACTED
            if len(t) >= 6:
                a = a.replace(t, REDACTED)
        res.append(a)
    return res


def _on_signal(signum: int, frame: Any) -> None:
    raise Interrupted()


ROOT = with_restore_commands(build_root())


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
    TOML_CACHE[:] = [os.path.join(os.path.dirname(state_path), "toml-cache.json")]
    try:
        state: dict[str, Any] | None = store.load()
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
    try:
        fault = take_fault(store, state, args)
        if fault is not None:
            if fault.get("sleep"):
                _sleep(float(fault["sleep"]), fault.get("until"))
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
        ctx = Ctx(prog, inv, store, state, token, source, environ)
        if fault is not None and fault.get("kind") == "drop_tail":
            return _dropping_tail(ctx, int(fault.get("lines", 1)))
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


def _sleep(seconds: float, until: str | None) -> None:
    """A stalled tunnel: ``seconds``, or until the test creates the file ``until``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and os.path.exists(until)):
        time.sleep(min(0.02 if until else seconds, max(0.0, deadline - time.monotonic())))


def _dropping_tail(ctx: Ctx, lines: int) -> int:
    """Run the command, then lose the last ``lines`` lines of its stdout, as flyctl before
    v0.4.80 could (ssh/io.go returned before its output goroutines drained; PR #5045)."""
    import tempfile

    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            return execute(ctx)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            kept = tmp.read().splitlines(keepends=True)
            _write_all(1, b"".join(kept[: max(0, len(kept) - lines)]))


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


if __name__ == "__main__":
    sys.exit(main())
