"""Text from outside (a machine, a host, flyctl, a lock record) made safe for a human line,
Rich-free so that every module can use it, flyctl's runner included (``fly``, ``remote``):
``printable`` escapes what a terminal would obey, ``text_lines`` splits at newlines only."""

from __future__ import annotations

import re

# What a terminal would obey rather than show: C0 controls (ESC starts every escape
# sequence, CR overwrites a line, BS erases), DEL, C1 controls (0x9b is a one-byte CSI) and
# the bidirectional overrides that make text read other than it is (Trojan Source), and
# the line and paragraph separators (U+2028/9), which end a line for str.splitlines(), a
# log viewer or an editor as \x1c-\x1e and \x85 do (review-break s21 #7).
_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                       "\u2066-\u2069\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` safe to print: every control character shown escaped (``\\x1b``), so a
    machine's, host's or flyctl's text can never move the cursor, retitle the window or
    rewrite a line. Newlines stay (callers that need one line take the first)."""
    return _CONTROLS.sub(lambda m: (f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                                    else f"\\u{ord(m.group()):04x}"), str(text))


def text_lines(text) -> list[str]:
    """A text's non-blank lines, split at newlines only: ``str.splitlines()`` also splits
    at \\r, \\v, \\f, \\x1c-\\x1e, \\x85 and U+2028/9, so a machine's or a lock record's
    text carrying one cut a line short or started a line of its own. Those stay in the
    line, for ``printable`` to show escaped; ASCII blanks around each line are dropped."""
    return [line.strip(" \t\r") for line in str(text).split("\n") if line.strip(" \t\r")]
