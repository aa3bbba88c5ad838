"""A restore's proof line counts the tables the "Rows per table" table shows, and names
litestream's own apart (review-op s19 #7: "9 tables match" beside 7 rows, after a
restore --from-replica: litestream's 2 tables were compared but not listed)."""

from __future__ import annotations

import re
import sqlite3

import pytest

from ops import engine
from ops import restore as restores

pytestmark = pytest.mark.cli_in_process


def _with_litestream_tables(db) -> None:
    with sqlite3.connect(db) as conn:  # as litestream leaves them in any database it touched
        conn.execute("CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)")
        conn.execute("CREATE TABLE _litestream_lock (id INTEGER)")
        conn.execute("INSERT INTO _litestream_seq VALUES (1, 42)")
    conn.close()


def test_the_proof_line_counts_the_tables_the_rows_table_shows(wal_db, backup_dir, run_invoke):
    _with_litestream_tables(wal_db)
    made = engine.create_backup(wal_db, backup_dir)
    result = run_invoke("restore", made.name, "--yes")
    assert result.returncode == 0, result
    lines = result.stderr.splitlines()
    header = next(i for i, line in enumerate(lines) if "Rows per table" in line)
    shown = [line for line in lines[header:] if re.match(r"\W*(steps|teams|users)\b", line)]
    proof = re.search(r"(\d+) tables? \(and litestream's own 2\) match the backup's row counts",
                      result.stderr)
    assert proof, result
    assert int(proof.group(1)) == len(shown) == 3, (shown, result)
    assert "_litestream" not in "\n".join(lines[header:]), result


@pytest.mark.parametrize(("tables", "said"), [
    ({"steps": 1, "users": 2}, "2 tables match"),
    ({"steps": 1}, "1 table matches"),  # s28 review-op2 #8: "1 table match"
    ({"steps": 1, "_litestream_seq": 1, "_litestream_lock": 0},
     "1 table (and litestream's own 2) match"),
])
def test_the_proof_and_the_drill_say_the_same_count(tables, said):
    proof = {"ok": True, "check": "integrity", "tables": tables, "content_format": None}
    assert f"integrity_check ok; {said} the backup's row counts" in \
        engine.proof_summary(proof)
    drill = {"name": "b.db", "restorable": True, "seconds": 0.1, "problems": [],
             "differences": [], "recorded": True, "check": "integrity", "tables": tables,
             "content_sha256": "ab" * 32, "recorded_content": True}
    assert f"integrity_check ok; {said} their recorded" in restores.drill_summary(drill)
