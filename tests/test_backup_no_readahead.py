"""The backup's check reads its new copy without the kernel's read-ahead (issue 21,
docs/performance.md): POSIX_FADV_RANDOM on SQLite's own descriptor, set before the SHA-256
and the counts open the file, so theirs keep their read-ahead."""

from __future__ import annotations

import os
import sys

import pytest

from ops import engine
from tests import helpers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and fadvise")


def open_on(path: str) -> list[int]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                found.append(int(fd))
        except OSError:
            continue
    return found


def test_only_the_checks_descriptor_loses_its_read_ahead(tmp_path, monkeypatch):
    db = helpers.make_blob_db(tmp_path / "steps.db", 24)
    advised = []
    real = os.posix_fadvise

    def spy(fd, offset, length, advice):
        target = os.readlink(f"/proc/self/fd/{fd}")
        advised.append((advice, target, len(open_on(target))))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    made = engine.create_backup(db, tmp_path / "backups", check="quick")
    assert len(advised) == 1, advised
    advice, target, open_then = advised[0]
    assert advice == os.POSIX_FADV_RANDOM
    assert os.path.basename(target).startswith(engine.TMP_PREFIX)  # the new copy
    assert open_then == 1  # SQLite's alone: the hash and the counts had not opened it yet
    assert made.sha256 == engine.sha256_file(made.path) and made.tables == engine.count_rows(
        made.path)


def test_a_check_that_cannot_open_still_lets_the_other_passes_go(tmp_path):
    """The hash and counts wait for the check to open the copy; a check that fails before
    that must not hold them (nor the backup) for the wait's length."""
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\0" + b"\xff" * 8000)
    problems, digest, described = engine.verify_new_copy(bad, "quick")
    assert problems and "not a database" in problems[0]
    assert (digest, described) == ("", {})
