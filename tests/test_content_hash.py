"""The content hash (json-2): two different databases never hash alike, the same content
in another layout always does, a column named like the rowid never loops or skips rows,
and the sqlite3 CLI's pipeline (``ops.remote.CONTENT_HASH``) gives the engine's hash."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ops import engine, remote
from tests import content_cases as cases
from tests.helpers import REPO_ROOT


def cli_hash(path: Path) -> str:
    """The hash as the machine's sqlite3 fallback computes it."""
    script = f'{remote.CONTENT_HASH}\ncontent_hash "file:{path}?mode=ro&immutable=1"'
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("label,first,second", cases.PAIRS, ids=[p[0] for p in cases.PAIRS])
def test_two_different_databases_never_hash_alike(tmp_path, label, first, second):
    a = cases.make(tmp_path / "a.db", first)
    b = cases.make(tmp_path / "b.db", second)
    hashes = [engine.describe_file(a)[1], engine.describe_file(b)[1]]
    assert hashes[0] != hashes[1]
    assert [cli_hash(a), cli_hash(b)] == hashes


@pytest.mark.parametrize("label,first,second", cases.SAME, ids=[p[0] for p in cases.SAME])
def test_the_same_content_in_another_layout_hashes_alike(tmp_path, label, first, second):
    a = cases.make(tmp_path / "a.db", first)
    b = cases.make(tmp_path / "b.db", second, page_size=8192)
    assert engine.describe_file(a)[1] == engine.describe_file(b)[1] == cli_hash(a) == cli_hash(b)


def _describe_in_a_child(path: Path, fmt: str, chunk: int) -> tuple[dict, str]:
    """describe() with a small chunk, in a child process: a loop there fails the test
    at the deadline instead of hanging the suite."""
    code = ("import json, sqlite3, sys; from ops import engine\n"
            "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "counts, digest, _ = engine.describe(conn, sys.argv[2], chunk=int(sys.argv[3]))\n"
            "print(json.dumps([counts, digest]))")
    done = subprocess.run([sys.executable, "-c", code, str(path), fmt, str(chunk)],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    import json
    counts, digest = json.loads(done.stdout)
    return counts, digest


SHADOWED = cases.shadowed_tables()


@pytest.mark.parametrize("label,sql", SHADOWED, ids=[case[0] for case in SHADOWED])
def test_columns_named_like_the_rowid_never_loop_or_skip_rows(tmp_path, label, sql):
    """NULLs and duplicates in a column called rowid, oid or _rowid_ (any case), with and
    without an INTEGER PRIMARY KEY: every format reads each row once, one row per query."""
    path = cases.make(tmp_path / "s.db", sql)
    for fmt in engine.CONTENT_FORMATS:
        one = _describe_in_a_child(path, fmt, 1)
        assert one[0] == {"s": 4}, fmt
        assert one == _describe_in_a_child(path, fmt, 5000), fmt
    assert engine.describe_file(path)[1] == cli_hash(path)
    # the real rowid is in the hash wherever SQL can reach it
    conn = sqlite3.connect(path)
    reachable = "ipk" in label or label.count("+") < 2
    if "ipk" in label:
        conn.execute("UPDATE s SET id = id + 10 WHERE v = 1")
    elif reachable:
        free = next(name for name in cases.NAMES if name not in label.split("+"))
        conn.execute(f"UPDATE s SET {free} = {free} + 10 WHERE v = 1")
    conn.commit()
    conn.close()
    if reachable:
        assert _describe_in_a_child(path, engine.CONTENT_FORMAT, 1)[1] != one[1]


def test_json2_reads_the_zero_sign_without_sqlite_math_functions(tmp_path, monkeypatch):
    """A SQLite built without atan2 gets Python's: the same hash."""
    path = cases.make(tmp_path / "z.db", cases.BASE + "INSERT INTO t VALUES (1, -0.0);")
    expected = engine.describe_file(path)[1]

    class NoMath(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql == "SELECT atan2(0, -1)":
                raise sqlite3.OperationalError("no such function: atan2")
            return super().execute(sql, *args)

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                           factory=NoMath)
    assert engine.describe(conn)[1] == expected
