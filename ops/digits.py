"""Numbers read from outside: config keys and ``INVOKE_*`` values, flags, records, lock
records, and what the machine, flyctl and litestream print. ASCII digits only.

Python's ``int()``, ``float()``, ``str.isdigit()`` and a regex's ``\\d`` also take other
scripts' digits (``"١٢"``, fullwidth ``"１２"``), ``isdigit`` takes ``"²"`` (which
``int()`` then refuses: a traceback), and ``int()``/``float()`` take ``"1_000"``; a
number that reaches us in any of those forms was not written by this tool or by a
person meaning that number. One reading here; each caller says, in one line, which key
or which output held the value it refused.
"""

from __future__ import annotations

import re

# what float() reads, in ASCII digits only: no "_", no other script, no nan/inf words
DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
WHOLE = re.compile(r"[0-9]+")
BLANK = " \t\r\n\f\v"  # ASCII blanks around a config value or flag: ignored, as before
MAX_DIGITS = 40  # more is no count this tool reads (int() itself stops at 4,300 digits)


def is_whole(text) -> bool:
    """``text`` is a string of 1 to ``MAX_DIGITS`` ASCII digits, nothing else."""
    return isinstance(text, str) and len(text) <= MAX_DIGITS and WHOLE.fullmatch(text) is not None


def whole(text) -> int | None:
    """``text`` as an int if ``is_whole`` (a tool's output: no sign, no blanks), else None."""
    return int(text) if is_whole(text) else None


def decimal(text) -> float | None:
    """A config value or flag (``" 12 "``, ``2.5``, ``1e12``, ``-1``) as float() reads it,
    if written in ASCII digits; None for anything else (``"١٢"``, ``"1_000"``, ``"nan"``).
    Too large is ``inf``, as float() says: the caller's range check names it."""
    value = text.strip(BLANK) if isinstance(text, str) else None
    if value is None or len(value) > 1000 or not DECIMAL.fullmatch(value):
        return None
    return float(value)


def whole_setting(text) -> int | None:
    """A whole-number setting or flag (``--keep 3``, ``" 3 "``): ASCII digits, one sign at
    most; None for anything else."""
    value = text.strip(BLANK) if isinstance(text, str) else None
    if value is None or not re.fullmatch(r"[+-]?[0-9]{1,40}", value):
        return None
    return int(value)
