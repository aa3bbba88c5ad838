"""At 80 columns an indented line (a snapshot's wait under its step, restore.volume's
"Resolved while it runs" note) wraps under its own indent, not at column 0 (review-op
s20 #7)."""

from __future__ import annotations

import io

from rich.console import Console

from ops.ui import UI


def shown(message: str, width: int | None = 80) -> list[str]:
    out = io.StringIO()
    ui = UI(err=Console(file=out, width=width or 80, soft_wrap=width is None,
                        no_color=True, highlight=False))
    ui.info(message)
    return out.getvalue().splitlines()


WAIT = ("  snapshot vs_4y5p2k8qz1m7r3dv: waiting after 0s (waiting up to 600s); "
        "integrity_check running on the machine for 0s so far")


def test_an_indented_line_wraps_under_its_indent():
    lines = shown(WAIT)
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines), lines
    assert all(line.startswith("  ") and not line.startswith("   ") for line in lines), lines
    assert " ".join(" ".join(lines).split()) == " ".join(WAIT.split())  # nothing lost


def test_in_a_log_it_stays_one_line():
    assert shown(WAIT, width=None) == [WAIT]
