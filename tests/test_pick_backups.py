"""``latest``, ``all`` or one name out of a listing: one rule for every target
(``engine.pick_backups``; the local folder, the Fly machine, an SSH host and the
restore's choice all use it). Pure: a listing in, the backups meant (or why none) out."""

from __future__ import annotations

import pytest

from ops import engine

OLD, NEW = "steps-2026-01-01T00-00-00.db", "steps-2026-01-02T00-00-00.db"
LISTING = [engine.BackupFile(name, f"/b/{name}", "", 1) for name in (OLD, NEW)]


def newest(backups):
    return backups[-1]


@pytest.mark.parametrize(("which", "meant"), [
    ("latest", [NEW]), ("all", [OLD, NEW]), (OLD, [OLD]), (NEW, [NEW])])
def test_each_word_means_its_backups(which, meant):
    assert [b.name for b in engine.pick_backups(LISTING, which, newest, "/b")] == meant


def test_latest_is_the_targets_own_rule():
    """The target decides what latest is (never a safety backup, …): it is asked."""
    asked = []
    chosen = engine.pick_backups(LISTING, "latest", lambda b: asked.append(b) or b[0], "/b")
    assert asked == [LISTING] and chosen == [LISTING[0]]


@pytest.mark.parametrize(("listing", "which", "kind", "message"), [
    ([], "latest", "not_found", "no backups in /b on host"),
    ([], "all", "not_found", "no backups in /b on host"),
    (LISTING, "steps-2020-01-01T00-00-00.db", "not_found",
     "no backup named steps-2020-01-01T00-00-00.db in /b on host"),
    (LISTING, "../steps.db", "usage", "not a backup name"),
    (LISTING, "notes.txt", "usage", "not a backup name"),
])
def test_what_is_not_there_is_said_with_its_place(listing, which, kind, message):
    with pytest.raises(engine.EngineError, match=message.replace(".", r"\.")) as caught:
        engine.pick_backups(listing, which, newest, "/b on host")
    assert caught.value.kind == kind
