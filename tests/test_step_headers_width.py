"""A step's "▸" header at 80 columns is broken between words like its "✓" line, never cut
inside a backup's name or date (review-op 11: `… against steps-2026-12-06T21-54-…`, while
docs/output.md says that never happens)."""

from __future__ import annotations

import io

from rich.console import Console

from ops.ui import UI

NAME = "steps-2026-12-06T21-54-33.db"
LABEL = f"prove the restore: /tmp/bigdemo/data/steps.db against {NAME}"


def printed(width: int | None) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 80, no_color=True, soft_wrap=width is None)
    ui = UI(err=console)
    with ui.step(LABEL), ui.step("count rows"):
        pass
    return buffer.getvalue()


def test_the_header_keeps_the_backup_name_whole_at_80_columns():
    lines = printed(80).splitlines()
    header = lines[: next(i for i, line in enumerate(lines) if "count rows" in line)]
    assert header[0].startswith("▸ prove the restore:"), lines
    assert all(len(line) <= 80 for line in lines), lines
    assert "…" not in "".join(header), lines
    assert any(line.strip() == NAME for line in header[1:]), lines  # whole, indented
    assert all(line.startswith("    ") for line in header[1:]), lines


def test_a_log_keeps_the_header_on_one_line():
    assert f"▸ {LABEL}\n" in printed(None)
