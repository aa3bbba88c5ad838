"""Benchmark: Litestream's recovery point (RPO) and `invoke replica.restore`'s restore
time (RTO) against litestream's own restore, in the same run (issue 18's goals).

Run on demand (not a test; real litestream from the dev extras, a real moto S3 on
127.0.0.1 started here):

    .venv/bin/python benchmarks/replica_rpo.py                 # 10 rounds, 250 MB and 1 GB
    .venv/bin/python benchmarks/replica_rpo.py --rounds 3 --sizes 20   # a quick look

RPO: per round a small WAL database, `litestream replicate` (sync-interval 0.5 s), the
sample writer committing every 50 ms; after a random 3–8 s both are killed with SIGKILL,
then `invoke replica.restore`: the commits lost are the live database's newest
`writer_log` rows missing from the restore (in seconds of commits). Goal: median ≤ 2 s.

RTO: a sample database of each size (`ops.sample build --mb N`), replicated until the
bucket holds its TXID; then, alternately, `litestream restore` alone and `invoke
replica.restore` (the restore pinned to a TXID, integrity_check, row counts and content
hash; and the fast path `--quick` with `backup.content_hash: false`). Every number is a
ratio to litestream's own restore measured in the same run. Goals: task ≤ 1.5× litestream,
1 GB ≤ 60 s. The machine's load average is printed with each row: on a shared machine it
dominates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from workspace import save_results, work_folder  # noqa: E402

from ops import poll  # noqa: E402
from ops.sample import WriterProcess  # noqa: E402
from tests import helpers  # noqa: E402
from tests.replica_world import BIN, LITESTREAM, World  # noqa: E402


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def start_moto(work: Path) -> tuple[subprocess.Popen, str]:
    log = work / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", "0"],
                                stdout=out, stderr=subprocess.STDOUT)
    found = poll.until(lambda: (re.search(r"Running on (http://127\.0\.0\.1:\d+)",
                                          log.read_text()) or [None, None])[1],
                       timeout=30, interval=0.05,
                       expired=lambda p, w: AssertionError("moto_server did not start"))
    return proc, found


def bucket(endpoint: str, name: str) -> str:
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{name}", method="PUT"),
                           timeout=30).close()
    return name


def invoke(world: World, cwd: Path, *args: str, env: dict | None = None) -> tuple[dict, float]:
    """``invoke ARGS --json`` as a user runs it: (its JSON, seconds)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args,
                           "--json"], cwd=cwd, capture_output=True, text=True,
                          env=helpers.clean_env(helpers.project_root(cwd,
                                                                     {**world.env, **(env or {})})))
    took = time.monotonic() - started
    if done.returncode:
        raise SystemExit(f"invoke {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return json.loads(done.stdout), took


def newest_row(db: Path) -> tuple[int, str]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, written_at FROM writer_log ORDER BY id DESC "
                            "LIMIT 1").fetchone()
    finally:
        conn.close()


def rpo_round(endpoint: str, work: Path, index: int) -> dict:
    tmp = work / f"rpo{index}"
    tmp.mkdir()
    db = helpers.make_wal_db(tmp / "d" / "app.db", users=50, steps=500)
    world = World(endpoint, bucket(endpoint, f"rpo-{os.getpid()}-{index}"), db, tmp)
    try:
        litestream = world.start()
        writer = WriterProcess(db, tmp / "w", interval=0.05).start()
        time.sleep(random.uniform(3, 8))
        world.kill(litestream)
        writer.proc.kill()
        writer.proc.wait()
        live = newest_row(db)
        report, took = invoke(world, tmp, "replica.restore", "--output", str(tmp / "out.db"))
        got = newest_row(tmp / "out.db")
        lost = (dt.datetime.fromisoformat(live[1])
                - dt.datetime.fromisoformat(got[1])).total_seconds()
        return {"lost_commits": live[0] - got[0], "lost_seconds": round(lost, 3),
                "task_seconds": round(took, 2), "check": report["check"], "load": load()}
    finally:
        world.close()


def replicate(world: World) -> None:
    """`litestream replicate`, back once the first snapshot is in the bucket: unlike the
    tests' ``World.start`` (30 s), a big database under load gets 15 minutes."""
    log = open(world.tmp / "litestream.log", "ab")  # noqa: SIM115 (kept with the process)
    world.procs.append(subprocess.Popen([LITESTREAM, "replicate", "-config",
                                         str(world.render())], env=world.litestream_env(),
                                        stdout=log, stderr=log))
    poll.until(lambda: world.replica_txid() or None, timeout=900, interval=0.5,
               expired=lambda p, w: AssertionError(f"no first snapshot after {w:.0f}s"))


def rto_size(endpoint: str, work: Path, mb: float, repeat: int) -> dict:
    tmp = work / f"rto{int(mb)}"
    tmp.mkdir()
    db = tmp / "d" / "app.db"
    db.parent.mkdir()
    subprocess.run([sys.executable, "-m", "ops.sample", "build", str(db), "--mb", str(mb)],
                   cwd=ROOT, check=True, capture_output=True)
    world = World(endpoint, bucket(endpoint, f"rto-{os.getpid()}-{int(mb)}"), db, tmp)
    rows = []
    try:
        started = time.monotonic()
        replicate(world)
        first = time.monotonic() - started
        world.caught_up(world.local_txid(), timeout=900)
        for i in range(repeat):
            started = time.monotonic()
            subprocess.run([LITESTREAM, "restore", "-config", str(world.config), "-o",
                            str(tmp / f"raw{i}.db"), str(db)], env=world.litestream_env(),
                           check=True, capture_output=True)
            raw = time.monotonic() - started
            full, full_s = invoke(world, tmp, "replica.restore", "--output", str(tmp / f"f{i}.db"))
            _, quick_s = invoke(world, tmp, "replica.restore", "--output", str(tmp / f"q{i}.db"),
                                "--quick", env={"INVOKE_BACKUP_CONTENT_HASH": "false"})
            rows.append({"litestream_restore_s": round(raw, 2), "task_full_s": round(full_s, 2),
                         "task_quick_s": round(quick_s, 2),
                         "full_ratio": round(full_s / raw, 2),
                         "quick_ratio": round(quick_s / raw, 2),
                         "task_restore_phase_s": full["restore_seconds"], "load": load()})
            print(f"  {mb:g} MB: {rows[-1]}", flush=True)
            for path in tmp.glob("*.db"):
                path.unlink()
        return {"mb": mb, "size": db.stat().st_size, "first_snapshot_s": round(first, 2),
                "runs": rows,
                "median_full_ratio": statistics.median(r["full_ratio"] for r in rows),
                "median_quick_ratio": statistics.median(r["quick_ratio"] for r in rows)}
    finally:
        world.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="RPO crash rounds (10)")
    parser.add_argument("--sizes", type=float, nargs="*", default=[250, 1000],
                        help="RTO database sizes in MB (250 1000)")
    parser.add_argument("--repeat", type=int, default=2, help="restores per size (2)")
    parser.add_argument("--work", help="work folder (kept); default a temporary one")
    args = parser.parse_args()
    with work_folder(args.work, "replica-bench-") as work:
        moto, endpoint = start_moto(work)
        try:
            rpo = []
            for index in range(args.rounds):
                rpo.append(rpo_round(endpoint, work, index))
                print(f"  RPO round {index + 1}: {rpo[-1]}", flush=True)
            lost = sorted(r["lost_seconds"] for r in rpo)
            median = round(statistics.median(lost), 3) if lost else None
            results = {"rpo": {"rounds": rpo, "median_lost_seconds": median,
                               "max_lost_seconds": lost[-1] if lost else None},
                       "rto": [rto_size(endpoint, work, mb, args.repeat) for mb in args.sizes]}
        finally:
            moto.terminate()
            try:
                moto.wait(timeout=30)
            except subprocess.TimeoutExpired:
                moto.kill()
                moto.wait()
        print(json.dumps({"rpo_median_lost_s": results["rpo"]["median_lost_seconds"],
                          "rto": [{k: r[k] for k in ("mb", "median_full_ratio",
                                                     "median_quick_ratio")}
                                  for r in results["rto"]]}, indent=2))
        save_results(work, results)


if __name__ == "__main__":
    main()
