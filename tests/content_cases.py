"""Databases the content hash must tell apart (json-2), shared by every engine's tests.

``PAIRS`` are (label, setup SQL A, setup SQL B): two databases that differ in one thing
a restore must not lose; their hashes must differ, in every engine. ``SAME`` are pairs
with the same content in another layout: their hashes must be equal. ``SHADOWED`` are
tables whose columns take some of the rowid's names (``rowid``, ``oid``, ``_rowid_``),
with NULLs and duplicates in them. ``make(path, sql)`` writes one (WAL mode, like the
app's). An engine under test hashes ``make``'s files and compares with
``ops.engine.describe_file`` (the Node engine of issue 17 does exactly that).
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

BASE = "CREATE TABLE t (id INTEGER PRIMARY KEY, v);"

PAIRS = [
    ("user_version", BASE + "PRAGMA user_version = 1;", BASE + "PRAGMA user_version = 2;"),
    ("application_id", BASE + "PRAGMA application_id = 1;",
     BASE + "PRAGMA application_id = 2;"),
    ("rowid values", "CREATE TABLE t (v); INSERT INTO t (rowid, v) VALUES (1, 'a');",
     "CREATE TABLE t (v); INSERT INTO t (rowid, v) VALUES (2, 'a');"),
    ("sqlite_sequence",
     "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v); INSERT INTO t (v) VALUES (1);",
     "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v); INSERT INTO t (v) VALUES (1);"
     "INSERT INTO t (v) VALUES (2); DELETE FROM t WHERE v = 2;"),
    ("-0.0 and 0.0", BASE + "INSERT INTO t VALUES (1, -0.0);",
     BASE + "INSERT INTO t VALUES (1, 0.0);"),
    ("integer and real", BASE + "INSERT INTO t VALUES (1, 1);",
     BASE + "INSERT INTO t VALUES (1, 1.0);"),
    ("text and blob", BASE + "INSERT INTO t VALUES (1, 'a');",
     BASE + "INSERT INTO t VALUES (1, x'61');"),
    ("null and 'null'", BASE + "INSERT INTO t VALUES (1, NULL);",
     BASE + "INSERT INTO t VALUES (1, 'null');"),
    ("close doubles", BASE + "INSERT INTO t VALUES (1, 0.1);",
     BASE + "INSERT INTO t VALUES (1, 0.1 + 1.3877787807814457e-17);"),
    # REALs are hashed by their IEEE-754 bits: a last-bit difference always shows (the
    # second value is the first plus one unit in the last place, exact in binary)
    ("1/3 and the next double", BASE + "INSERT INTO t VALUES (1, 1.0 / 3);",
     BASE + "INSERT INTO t VALUES (1, 1.0 / 3 + 1.0 / 18014398509481984);"),
    ("1e308 and 1e308 plus one ulp", BASE + "INSERT INTO t VALUES (1, 1e308);",
     BASE + "INSERT INTO t VALUES (1, 1e308 + 1e308 / 4503599627370496);"),
    ("the smallest subnormal and twice it", BASE + "INSERT INTO t VALUES (1, 5e-324);",
     BASE + "INSERT INTO t VALUES (1, 5e-324 * 2);"),
    ("the smallest subnormal and 0.0", BASE + "INSERT INTO t VALUES (1, 5e-324);",
     BASE + "INSERT INTO t VALUES (1, 0.0);"),
    ("-0.0 and the smallest negative subnormal", BASE + "INSERT INTO t VALUES (1, -0.0);",
     BASE + "INSERT INTO t VALUES (1, -5e-324);"),
    ("inf and -inf", BASE + "INSERT INTO t VALUES (1, 9e999);",
     BASE + "INSERT INTO t VALUES (1, -9e999);"),
    ("inf and the largest double", BASE + "INSERT INTO t VALUES (1, 9e999);",
     BASE + "INSERT INTO t VALUES (1, 1.7976931348623157e308);"),
    ("a real and its bits as text", BASE + "INSERT INTO t VALUES (1, 0.1);",
     BASE + "INSERT INTO t VALUES (1, '{\"r\":\"3FB999999999999A\"}');"),
    ("a text that looks like a tagged real", BASE + "INSERT INTO t VALUES (1, 1.5);",
     BASE + "INSERT INTO t VALUES (1, '{\"r\":\"1.5\"}');"),
    ("shadowed rowid, duplicates", "CREATE TABLE t (rowid, v); INSERT INTO t VALUES (1, 'a');"
     "INSERT INTO t VALUES (1, 'b');",
     "CREATE TABLE t (rowid, v); INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (1, 'a');"),
    ("shadowed rowid, real rowid differs",
     "CREATE TABLE t (rowid, v); INSERT INTO t (_rowid_, rowid, v) VALUES (1, NULL, 'a');",
     "CREATE TABLE t (rowid, v); INSERT INTO t (_rowid_, rowid, v) VALUES (2, NULL, 'a');"),
    ("all rowid names shadowed", "CREATE TABLE t (rowid, oid, _rowid_);"
     "INSERT INTO t VALUES (NULL, NULL, NULL); INSERT INTO t VALUES (1, 1, 1);",
     "CREATE TABLE t (rowid, oid, _rowid_);"
     "INSERT INTO t VALUES (NULL, NULL, NULL); INSERT INTO t VALUES (1, 1, 2);"),
    ("a WITHOUT ROWID table", "CREATE TABLE k (a PRIMARY KEY, b) WITHOUT ROWID;"
     "INSERT INTO k VALUES ('a', 1);",
     "CREATE TABLE k (a PRIMARY KEY, b) WITHOUT ROWID; INSERT INTO k VALUES ('a', 2);"),
    ("an index", BASE, BASE + "CREATE INDEX i ON t (v);"),
    ("a table name", "CREATE TABLE \"a\nb\" (v);", "CREATE TABLE \"a b\" (v);"),
]

DOUBLES = ("0.1", "1.0 / 3", "1e308", "1.7976931348623157e308", "5e-324", "-5e-324", "-0.0",
           "0.0", "9e999", "-9e999", "2.5", "-1e-300", "0.30000000000000004", "1e22", "1e23")

SAME = [
    ("doubles in another order", "CREATE TABLE d (v);" + "".join(
        f"INSERT INTO d (rowid, v) VALUES ({i}, {v});" for i, v in enumerate(DOUBLES)),
     "CREATE TABLE d (v);" + "".join(
         f"INSERT INTO d (rowid, v) VALUES ({i}, {v});"
         for i, v in reversed(list(enumerate(DOUBLES))))),
    ("a NaN is stored as NULL", BASE + "INSERT INTO t VALUES (1, 9e999 - 9e999);",
     BASE + "INSERT INTO t VALUES (1, NULL);"),
    ("0.1 written and computed", BASE + "INSERT INTO t VALUES (1, 0.1);",
     BASE + "INSERT INTO t VALUES (1, 1.0 / 10);"),
    ("another insert order", BASE + "INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b');",
     BASE + "INSERT INTO t VALUES (2, 'b'); INSERT INTO t VALUES (1, 'a');"),
    ("all rowid names shadowed, another order", "CREATE TABLE t (rowid, oid, _rowid_);"
     "INSERT INTO t VALUES (NULL, NULL, NULL); INSERT INTO t VALUES (1, 1, 1);",
     "CREATE TABLE t (rowid, oid, _rowid_);"
     "INSERT INTO t VALUES (1, 1, 1); INSERT INTO t VALUES (NULL, NULL, NULL);"),
    ("a vacuumed copy", BASE + "INSERT INTO t VALUES (1, zeroblob(9000));"
     "INSERT INTO t VALUES (2, 'x'); DELETE FROM t WHERE id = 1; INSERT INTO t VALUES (1, 'a');",
     BASE + "INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'x'); VACUUM;"),
]

NAMES = ("rowid", "oid", "_rowid_")


def shadowed_tables() -> list[tuple[str, str]]:
    """(label, SQL) for each set of rowid names taken by columns (upper case included),
    with and without an INTEGER PRIMARY KEY, NULLs and duplicates in the shadowing columns."""
    cases = []
    for size in range(len(NAMES) + 1):
        for taken in itertools.combinations(NAMES, size):
            for ipk in (False, True):
                cols = [f'"{name.upper() if i % 2 else name}"' for i, name in enumerate(taken)]
                cols += ["id INTEGER PRIMARY KEY"] if ipk else []
                cols.append("v")
                values = ", ".join(["NULL"] * len(taken))
                dup = ", ".join(["7"] * len(taken))
                names = ", ".join([*(f'"{name}"' for name in taken), "v"])
                inserts = "".join(
                    f"INSERT INTO s ({names}) VALUES ({vals}{', ' if taken else ''}{v});"
                    for vals, v in ((values, 1), (values, 2), (dup, 3), (dup, 4)))
                label = "+".join(taken) or "none"
                cases.append((f"{label}{' ipk' if ipk else ''}",
                              f"CREATE TABLE s ({', '.join(cols)}); {inserts}"))
    return cases


def make(path: Path, sql: str, *, page_size: int = 4096) -> Path:
    """A WAL database made by ``sql``, checkpointed and closed (a finished file)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size = {page_size}")
    conn.execute("PRAGMA journal_mode = wal")
    conn.executescript(sql)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path
