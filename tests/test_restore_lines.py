"""The restore's step lines read once (review-op s18 #8, #9): a backup the operator named
is not named twice on its verify line (on an 80-column terminal the second name pushed
the time onto a line of its own), and the proof says "content hash", not "content",
beside the verify line's file SHA-256, so two different 12-hex values for one backup are
not taken for a mismatch. Real WAL databases, the real CLI.
"""

from __future__ import annotations

from ops import engine


def line_starting(stderr: str, start: str) -> str:
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith(start)]
    return line


def test_a_named_backup_is_named_once_and_latest_says_which_it_is(
        wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)

    named = run_invoke("restore", made.name, "--yes")
    latest = run_invoke("restore", "--yes")

    assert named.returncode == 0 and latest.returncode == 0, (named, latest)
    line = line_starting(named.stderr, f"✓ verify backup {made.name}")
    assert line.count(made.name) == 1, line
    line = line_starting(latest.stderr, "✓ verify backup latest")
    assert f"latest  {made.name}  sha256 " in line, line


def test_the_proof_says_content_hash(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    done = run_invoke("restore", made.name, "--yes")
    assert done.returncode == 0, done
    proof = [ln for ln in done.stderr.splitlines() if "= backup's" in ln]
    assert len(proof) == 1 and ", content hash " in proof[0], done.stderr
