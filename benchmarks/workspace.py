"""Where a benchmark works, and where its results go (shared by the benchmarks)."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def work_folder(path: str | None, prefix: str):
    """``path`` as given (kept afterwards), or a temporary folder removed at the end."""
    work = Path(path or tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if not path:
            shutil.rmtree(work, ignore_errors=True)


def save_results(work: Path, results: dict) -> None:
    """``results.json`` in the work folder, for comparing runs later."""
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults: {work / 'results.json'}")
