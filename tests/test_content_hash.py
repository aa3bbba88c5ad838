"""The content hash (json-2): two different databases never hash alike, the same content
in another layout always does, a column named like the rowid never loops or skips rows,
and the sqlite3 CLI's pipeline (``ops.remote.CONTENT_HASH``) gives the engine's hash."""

from __future__ import annotations

import math
import os
import random
import shutil
import sqlite3
import struct
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


def _describe_in_a_child(path: Path, *calls: tuple[str, int]) -> list[list]:
    """describe() for each (format, chunk), each on its own connection, in one child
    process: a loop there fails the test at the deadline instead of hanging the suite
    (one child for all the calls: each child is ~50 ms of CPU importing ops.engine)."""
    code = ("import json, sqlite3, sys; from ops import engine\n"
            "found = []\n"
            "for fmt, chunk in json.loads(sys.argv[2]):\n"
            "    conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "    counts, digest, _ = engine.describe(conn, fmt, chunk=chunk)\n"
            "    conn.close()\n"
            "    found.append([counts, digest])\n"
            "print(json.dumps(found))")
    import json
    done = subprocess.run([sys.executable, "-c", code, str(path), json.dumps(calls)],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert len(found) == len(calls), done.stdout
    return found


SHADOWED = cases.shadowed_tables()


@pytest.mark.parametrize("label,sql", SHADOWED, ids=[case[0] for case in SHADOWED])
def test_columns_named_like_the_rowid_never_loop_or_skip_rows(tmp_path, label, sql):
    """NULLs and duplicates in a column called rowid, oid or _rowid_ (any case), with and
    without an INTEGER PRIMARY KEY: every format reads each row once, one row per query."""
    path = cases.make(tmp_path / "s.db", sql)
    found = _describe_in_a_child(path, *((fmt, chunk) for fmt in engine.CONTENT_FORMATS
                                         for chunk in (1, 5000)))
    ones = dict(zip(engine.CONTENT_FORMATS, found[::2], strict=True))
    for fmt, one, whole in zip(engine.CONTENT_FORMATS, found[::2], found[1::2], strict=True):
        assert one[0] == {"s": 4}, fmt
        assert one == whole, fmt
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
        # (against the same format's hash from before: this compared json-2 with quote-1)
        after = _describe_in_a_child(path, (engine.CONTENT_FORMAT, 1))[0]
        assert after[1] != ones[engine.CONTENT_FORMAT][1]


def test_every_double_is_hashed_by_its_bits_alike_in_the_engine_and_the_cli(tmp_path):
    """json-2 writes a REAL as hex(ieee754_to_blob(x)): python's registered function
    gives the CLI shell's own bytes for any double (random bit patterns, subnormals,
    infinities, -0.0), and flipping the last bit of one value changes the hash."""
    rng = random.Random(16)
    values = [0.1, 1 / 3, 1e308, 5e-324, -5e-324, -0.0, 0.0, math.inf, -math.inf,
              sys.float_info.max, sys.float_info.min]
    while len(values) < 300:
        value = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
        if not math.isnan(value):  # SQLite stores a NaN as NULL
            values.append(value)
    path = tmp_path / "d.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE d (v)")
    conn.executemany("INSERT INTO d VALUES (?)", [(v,) for v in values])
    conn.commit()
    conn.close()
    done = subprocess.run(["sqlite3", "-readonly", str(path),
                           "SELECT hex(ieee754_to_blob(v)) FROM d ORDER BY rowid"],
                          capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == [struct.pack(">d", v).hex().upper() for v in values]
    before = engine.describe_file(path)[1]
    assert cli_hash(path) == before
    conn = sqlite3.connect(path)
    bits = struct.unpack(">Q", struct.pack(">d", values[1]))[0] ^ 1
    conn.execute("UPDATE d SET v = ? WHERE rowid = 2", struct.unpack(">d", bits.to_bytes(8, "big")))
    conn.commit()
    conn.close()
    assert engine.describe_file(path)[1] == cli_hash(path) != before


def test_a_sqlite3_cli_without_ieee754_to_blob_computes_no_hash(tmp_path):
    """An older shell has JSON but not the ieee754 functions: content_hash says so
    (status 2, nothing printed) as it does for a shell without JSON, and its callers
    record counts with no content hash."""
    fake = tmp_path / "bin" / "sqlite3"
    fake.parent.mkdir()
    fake.write_text(f"""#!/bin/sh
case "$*" in *ieee754_to_blob*) echo 'Error: no such function: ieee754_to_blob' >&2; exit 1;; esac
exec {shutil.which("sqlite3")} "$@"
""")
    fake.chmod(0o755)
    db = cases.make(tmp_path / "r.db", cases.BASE + "INSERT INTO t VALUES (1, 0.1);")
    script = f'{remote.CONTENT_HASH}\ncontent_hash "file:{db}?mode=ro"; echo " status $?"'
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"})
    assert done.stdout == " status 2\n"


def test_a_connection_hashes_again_while_one_of_its_reads_is_open(tmp_path):
    """ieee754_to_blob is registered once per connection: SQLite refuses to replace a
    function while a statement is running, so a second hash mid-read must not try."""
    path = cases.make(tmp_path / "d.db", cases.SAME[0][1])
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    first = engine.describe(conn)[1]
    reading = conn.execute("SELECT hex(ieee754_to_blob(v)) FROM d")
    assert next(reading) == ("3FB999999999999A",)
    assert engine.describe(conn)[1] == first == cli_hash(path)
    assert len(list(reading)) == len(cases.DOUBLES) - 1
