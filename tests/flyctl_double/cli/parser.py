"""cobra/pflag semantics: flags, argument counts, command lookup and help text.

spf13/pflag (``--f=v``, ``--f v``, ``-abc``, ``-a=v``, ``-av``, ``NoOptDefVal``, ``--``) and
spf13/cobra (``stripFlags``, aliases, ``Args`` validators, suggestions for typos)."""

from __future__ import annotations

import copy

from .output import FlyError, go_quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from .session import Ctx


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


def cmd_not_emulated(ctx: Ctx) -> int:
    """A real flyctl command the double does not emulate: fail loudly, never pretend."""
    raise FlyError(f"flyctl test double: '{ctx.path}' is not emulated (see README.md)")


def not_emulated(name: str, *aliases: str) -> Command:
    """The stand-in for a real flyctl command the double does not emulate."""
    return Command(name, aliases=aliases, run=cmd_not_emulated, emulated=False,
                   short="(not emulated by the test double)")
