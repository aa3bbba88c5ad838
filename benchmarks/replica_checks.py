"""Benchmark: what the checks of a replica restore cost next to litestream's own restore,
measured in the same run, phase by phase (issue 18's goal: restore + checks <= 1.5x
litestream's restore, with integrity_check the default: upstream bug #1164).

    .venv/bin/python benchmarks/replica_checks.py --mb 250 --repeat 2

Per repeat, on one sample database replicated to a real moto S3 on 127.0.0.1:
- ``litestream``: ``litestream restore`` alone (the baseline of every ratio);
- ``replica.restore``: the task (plan, pinned restore, integrity_check, row counts and
  the content hash without litestream's tables), as a user runs it;
- ``from_replica_file``: what ``restore --from-replica`` does before the restore proper:
  litestream's restore, then ``engine.verify_new_copy`` (integrity_check, SHA-256 and
  row counts in one read, at once; the check's cache as the code sets it) of that file;
  its publishing is a few links;
- ``task_litestream_s``/``task_checks_s``: the task's own split (its JSON report);
  ``floor_s``: litestream + the check the task runs (256 MiB cache), the least the task
  can take while it runs a full integrity_check;
- on litestream's file, each check alone: ``integrity_check`` (cache as configured),
  ``integrity_check`` with a 256 MiB cache, with the file mapped (mmap), the content hash
  without litestream's tables (a copy, then describe) and with them (describe alone), and
  the plain ``integrity_check`` again last (the file as warm in the OS cache throughout).
The machine's load average goes with every row: on a shared machine it dominates.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from replica_rpo import bucket, invoke, load, replicate, start_moto  # noqa: E402
from workspace import save_results, work_folder  # noqa: E402

from ops import engine  # noqa: E402
from ops.commands.replica import check_cache, describe_without_litestream  # noqa: E402
from tests.replica_world import LITESTREAM, World  # noqa: E402


def timed(job) -> tuple[object, float]:
    started = time.monotonic()
    result = job()
    return result, round(time.monotonic() - started, 2)


def integrity(path: Path, pragmas: str = "") -> list:
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        if pragmas:
            conn.executescript(pragmas)
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


def one_repeat(world: World, tmp: Path, i: int) -> dict:
    raw = tmp / f"raw{i}.db"
    _, litestream = timed(lambda: subprocess.run(
        [LITESTREAM, "restore", "-config", str(world.config), "-o", str(raw), str(world.db)],
        env=world.litestream_env(), check=True, capture_output=True))
    (report, _), task = timed(lambda: invoke(world, tmp, "replica.restore", "--output",
                                             str(tmp / f"task{i}.db")))
    verdict, verified = timed(lambda: engine.verify_new_copy(  # as publish_checked calls it
        raw, "integrity", cache_bytes=check_cache(raw)))
    assert verdict[0] == [], verdict[0]
    _, plain = timed(lambda: integrity(raw))
    _, cache = timed(lambda: integrity(raw, "PRAGMA cache_size=-262144;"))
    _, mapped = timed(lambda: integrity(raw, f"PRAGMA mmap_size={raw.stat().st_size};"))
    scratch = tmp / f"hash{i}.db"
    _, without = timed(lambda: describe_without_litestream(raw, scratch))
    _, describe = timed(lambda: engine.describe_file(raw))
    _, again = timed(lambda: integrity(raw))  # the first one's file was as warm: same cache
    row = {"litestream_s": litestream, "replica_restore_s": task,
           "from_replica_file_s": round(litestream + verified, 2),
           "integrity_check_s": plain, "integrity_cache256m_s": cache,
           "integrity_mmap_s": mapped, "hash_without_litestream_s": without,
           "hash_direct_s": describe, "integrity_check_again_s": again,
           # inside the task: litestream's restore, then the checks (check, hash, fsync
           # at once); the rest of ``task`` is the plan and Python's start
           "task_litestream_s": report["restore_seconds"],
           "task_checks_s": round(report["seconds"] - report["restore_seconds"], 2),
           # the least replica.restore can take with this check: litestream + the check
           "floor_s": round(litestream + cache, 2), "load": load()}
    row.update({f"{key[:-2]}_ratio": round(row[key] / litestream, 2)
                for key in ("replica_restore_s", "from_replica_file_s", "integrity_check_s",
                            "integrity_cache256m_s", "integrity_mmap_s",
                            "hash_without_litestream_s", "hash_direct_s",
                            "integrity_check_again_s", "floor_s")})
    for path in tmp.glob("*.db"):
        if path != world.db:
            path.unlink()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=250, help="database size in MB (250)")
    parser.add_argument("--repeat", type=int, default=2, help="repeats (2)")
    parser.add_argument("--work", help="work folder (kept); default a temporary one")
    args = parser.parse_args()
    with work_folder(args.work, "replica-checks-") as work:
        moto, endpoint = start_moto(work)
        tmp = work / "checks"
        tmp.mkdir()
        db = tmp / "d" / "app.db"
        db.parent.mkdir()
        subprocess.run([sys.executable, "-m", "ops.sample", "build", str(db), "--mb",
                        str(args.mb)], cwd=ROOT, check=True, capture_output=True)
        world = World(endpoint, bucket(endpoint, f"checks-{os.getpid()}"), db, tmp)
        try:
            replicate(world)
            world.caught_up(world.local_txid(), timeout=900)
            rows = []
            for i in range(args.repeat):
                rows.append(one_repeat(world, tmp, i))
                print(json.dumps(rows[-1]), flush=True)
        finally:
            world.close()
            moto.terminate()
            moto.wait(timeout=30)
            shutil.rmtree(tmp / "d", ignore_errors=True)
        medians = {key: round(statistics.median(r[key] for r in rows), 2)
                   for key in rows[0] if key.endswith("_ratio")}
        print(json.dumps({"mb": args.mb, "median_ratios": medians}, indent=2))
        save_results(work, {"mb": args.mb, "runs": rows, "median_ratios": medians})


if __name__ == "__main__":
    main()
