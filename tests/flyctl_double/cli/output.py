"""How flyctl prints: ``Error:`` lines, Go-style JSON and quoting, tables, sizes and ages."""

from __future__ import annotations

import json
import os
import sys

from .clock import parse_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


TRUTHY = frozenset({"1", "ok", "t", "true"})


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
    import datetime as _dt  # here, not at the top: most calls print no time (clock.py)

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
    import math  # here, not at the top: a C extension most calls never use (clock.py)

    sizes = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    e = int(math.floor(math.log(n) / math.log(1024)))
    val = math.floor(n / 1024**e * 10 + 0.5) / 10
    return f"{val:.0f} {sizes[e]}" if val >= 10 else f"{val:.1f} {sizes[e]}"


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
