"""SIGTERM to the local `restore --production` while the machine's restore waits for the
app's write lock: the account is true (review-break s19 #3). When read, the live
database held its content from before; the safety backup the machine made is named and
recorded; what is not known (whether the machine's restore copies later) is said, with
what to check before a rerun; and no undo line (nothing was proven copied)."""

from __future__ import annotations

import signal
import sqlite3

import pytest

from ops import engine
from tests import helpers
from tests.fake_production import changed_after_backup, site, use_engine  # noqa: F401


@pytest.mark.parametrize("name", ["python3", "sqlite3", "node"])
def test_sigterm_in_the_machines_wait_names_its_safety_backup(site, name):  # noqa: F811
    use_engine(site, name)
    made = changed_after_backup(site)
    listed = {b.name for b in engine.list_backups(site.backups)}
    holder = sqlite3.connect(site.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        run = site.start("restore", made.name, "--production", "--yes", "--json",
                         "--busy-timeout", "30")
        try:
            # the machine's safety backup is made before its copy waits for the app's
            # lock: from then on the account below holds, whenever the signal comes
            helpers.wait_for(lambda: any(b.kind == "safety" and b.name not in listed
                                         for b in engine.list_backups(site.backups)),
                             timeout=30, what="the machine's safety backup")
            run.proc.send_signal(signal.SIGTERM)
        finally:
            result = run.finish(timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    safety = [b.name for b in engine.list_backups(site.backups)
              if b.name not in listed and b.kind == "safety"]
    assert result.returncode == 143, result
    assert len(safety) == 1, safety
    record = result.json()
    assert record["safety_backup"]["name"] == safety[0], record
    shown = result.stderr
    assert "neither the backup's content nor its own from before" not in shown, shown
    assert "held its content from before" in shown, shown
    assert f"Safety backup {safety[0]}" in shown and "Not known:" in shown, shown
    assert "To undo" not in shown and "To put back" not in shown, shown
