"""Benchmark for issue 12: `invoke backup` against the same guarantees by hand, and the
deploy's time before `fly deploy` against the snapshot wait alone.

Run on demand (not a test); every ratio compares runs made in this one run:

    .venv/bin/python benchmarks/perf_bench.py                       # 250 MB and 1 GB
    .venv/bin/python benchmarks/perf_bench.py --sizes 64 --repeat 3 # a quick run

For each size, an index-free database and an indexed one (``ops.sample``):
- `invoke backup` (the real CLI, a subprocess) against `sqlite3 .backup` +
  `PRAGMA integrity_check`, and against that + `sha256sum` (medians of --repeat), with
  the default settings and with ``backup.content_hash: false`` (row counts only);
- the peak RSS of `invoke backup`, and of the engine as the machine runs it
  (``python3 engine.py backup``), from ``/usr/bin/time``;
- `invoke backup` while a writer commits every 2 ms and every 50 ms: completion time
  against idle, the writer's commit p50/p99/max, and how far the -wal grew.
Then a deploy against the flyctl double whose snapshot takes --snapshot-seconds: the
time before `fly deploy` against the snapshot step alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workspace import save_results, work_folder  # noqa: E402

from ops import engine, sample  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable


def run_timed(argv: list[str], env: dict | None = None, cwd: Path | None = None):
    """(seconds, peak RSS in MiB) of one child process; fails loudly if it fails.

    The RSS comes from ``/usr/bin/time``: our own ``wait4`` would report this (large)
    process's high-water mark, which a child inherits across fork and exec."""
    with tempfile.NamedTemporaryFile("r") as rss:
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv], env=env,
                              cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{argv[:4]} failed ({done.returncode}): "
                             f"{done.stderr.decode(errors='replace')[-500:]}")
        return seconds, int(rss.read().split()[-1]) / 1024


def index_free_sql(sql: str) -> str:
    """The same table with no index behind it: no UNIQUE, no PRIMARY KEY but the rowid's."""
    sql = re.sub(r",\s*(UNIQUE|PRIMARY KEY)\s*\([^)]*\)", "", sql)
    sql = re.sub(r"\bTEXT PRIMARY KEY\b", "TEXT", sql)
    return re.sub(r"\s+UNIQUE\b", "", sql)


def build(work: Path, mb: float) -> dict[str, Path]:
    """The indexed sample (``ops.sample``), and an index-free database of the same size:
    its rows, with every index and constraint that needs one dropped, and its steps
    repeated (new ids) until the file is as large."""
    indexed = work / f"indexed-{mb:g}.db"
    if not indexed.exists():
        sample.build_sample_database(indexed, target_mb=mb)
    plain = work / f"plain-{mb:g}.db"
    if not plain.exists():
        conn = sqlite3.connect(indexed)
        conn.execute(f"ATTACH '{plain}' AS plain")
        conn.execute("PRAGMA plain.page_size=4096")
        conn.execute("PRAGMA plain.journal_mode=WAL")
        tables = conn.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'table' "
                              "AND name NOT LIKE 'sqlite_%'").fetchall()
        for name, sql in tables:
            conn.execute(index_free_sql(sql).replace("CREATE TABLE ", "CREATE TABLE plain.", 1))
            conn.execute(f'INSERT INTO plain."{name}" SELECT * FROM main."{name}"')
        conn.commit()
        top, target = conn.execute("SELECT max(id) FROM main.steps").fetchone()[0], mb * 1e6
        copies = 1
        while conn.execute("PRAGMA plain.page_count").fetchone()[0] * 4096 < target:
            conn.execute("INSERT INTO plain.steps SELECT id + ?, user_id, challenge_id, date, "
                         "count, source, updated_at, note FROM main.steps", (copies * top,))
            conn.commit()
            copies += 1
        if conn.execute("SELECT count(*) FROM plain.sqlite_master WHERE type = 'index'"
                        ).fetchone()[0]:
            raise SystemExit("the index-free database has an index")
        conn.close()
    return {"index-free": plain, "indexed": indexed}


def invoke_backup(db: Path, out: Path, content_hash: bool = True) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "INVOKE_BACKUP_DIR": str(out), "INVOKE_BACKUP_KEEP": "100",
           "INVOKE_BACKUP_CONTENT_HASH": str(content_hash).lower()}
    return run_timed([PYTHON, "-m", "invoke", "--search-root", str(ROOT), "backup", "--db",
                      str(db)], env=env, cwd=ROOT)


def machine_engine(db: Path, out: Path) -> tuple[float, float]:
    """The engine as the machine runs it: ``python3 engine.py backup`` (stdlib only)."""
    shutil.rmtree(out, ignore_errors=True)
    return run_timed([sys.executable, str(ROOT / "ops" / "engine.py"), "backup", "--db",
                      str(db), "--dir", str(out)])


def by_hand(db: Path, out: Path, sha: bool) -> float:
    copy = out / "hand.db"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    seconds = run_timed(["sqlite3", str(db), f".backup '{copy}'"])[0]
    seconds += run_timed(["sqlite3", str(copy), "PRAGMA integrity_check"])[0]
    if sha:
        seconds += run_timed(["sha256sum", str(copy)])[0]
    return seconds


def median(action, repeat: int):
    runs = [action() for _ in range(repeat)]
    if isinstance(runs[0], tuple):
        return statistics.median(r[0] for r in runs), max(r[1] for r in runs)
    return statistics.median(runs), None


def under_writer(db: Path, work: Path, interval: float) -> dict:
    """One `invoke backup` while ``ops.sample write`` commits every ``interval`` s."""
    wal = Path(f"{db}-wal")
    writer = sample.WriterProcess(db, work / "writer", interval=interval, duration=600,
                                  python=PYTHON).start()
    time.sleep(1.0)  # the writer's WAL settles at its checkpoint size
    start_wal = wal.stat().st_size if wal.exists() else 0
    peak = [start_wal]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], wal.stat().st_size if wal.exists() else 0)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    seconds, rss = invoke_backup(db, work / "out-writer")
    done.set()
    watcher.join()
    data = writer.stop()
    return {"seconds": seconds, "rss_mib": rss, "wal_growth_mb": (peak[0] - start_wal) / 1e6,
            "p50_ms": data.get("p50_ms"), "p99_ms": data.get("p99_ms"),
            "max_ms": data.get("max_ms")}


def deploy_overlap(work: Path, db: Path, snapshot_seconds: float,
                   around_run=contextlib.nullcontext) -> dict:
    """A deploy against the flyctl double whose snapshot needs ``snapshot_seconds``;
    ``around_run()`` (a context manager) is entered once the site is set up, around the
    deploy alone (production_shape: a cold cache and the limits)."""
    from tests.fake_production import make_site

    root = work / "site"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    site = make_site(root)
    try:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{site.db}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(db, site.db)
        interval = 0.25
        site.world.snapshot_behavior("progress",
                                     lists_before_created=max(1, round(snapshot_seconds
                                                                       / interval)))
        with around_run():
            result = site.run("deploy", "--json", env={
                "INVOKE_HEALTH_INTERVAL": str(interval), "INVOKE_HEALTH_TIMEOUT": "30"},
                timeout=900)
        if result.returncode != 0:
            raise SystemExit(f"deploy failed: {result.stderr[-800:]}")
        steps = {s["step"]: s["seconds"] for s in result.json()["steps"]}
    finally:
        site.health.close()
    before = sum(seconds for key, seconds in steps.items()
                 if key in ("backup", "snapshot", "full_check"))
    return {"backup_s": steps["backup"], "snapshot_s": steps["snapshot"],
            "full_check_wait_s": steps["full_check"], "before_deploy_s": before,
            "ratio_vs_snapshot": (steps["snapshot"] + steps["full_check"]) / steps["snapshot"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[250, 1000],
                        help="database sizes in MB (default 250 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per median")
    parser.add_argument("--snapshot-seconds", type=float, default=20,
                        help="how long the double's snapshot takes (default 20)")
    parser.add_argument("--skip-writer", action="store_true")
    parser.add_argument("--skip-deploy", action="store_true")
    parser.add_argument("--only-deploy", action="store_true",
                        help="only the deploy, on the indexed database of the last size")
    parser.add_argument("--work", help="folder for the files (kept; default: temporary)")
    args = parser.parse_args()
    if not shutil.which("sqlite3"):
        print("needs the sqlite3 CLI", file=sys.stderr)
        return 2
    with work_folder(args.work, "ops-perf-") as work:
        print(f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; work {work}", flush=True)
        rows, results = [], {}
        for mb in [] if args.only_deploy else args.sizes:
            for kind, db in build(work, mb).items():
                out = work / "out"
                ours, rss = median(lambda db=db, out=out: invoke_backup(db, out), args.repeat)
                counts_only, rss_off = median(
                    lambda db=db, out=out: invoke_backup(db, out, content_hash=False),
                    args.repeat)
                engine_rss = machine_engine(db, out)[1]
                hand = median(lambda db=db, out=out: by_hand(db, out, False), args.repeat)[0]
                hand_sha = median(lambda db=db, out=out: by_hand(db, out, True),
                                  args.repeat)[0]
                entry = {"mb": db.stat().st_size / 1e6, "invoke_backup_s": ours,
                         "counts_only_s": counts_only, "by_hand_s": hand,
                         "by_hand_sha_s": hand_sha, "peak_rss_mib": max(rss, rss_off),
                         "machine_engine_rss_mib": engine_rss}
                if not args.skip_writer:
                    for interval in (0.002, 0.05):
                        entry[f"writer_{interval * 1000:g}ms"] = under_writer(db, work,
                                                                              interval)
                results[f"{kind} {mb:g} MB"] = entry
                size = engine.human_size(db.stat().st_size)
                rows.append((f"{kind} {size}", entry))
                print(f"  {kind:10s} {size:>9s}  invoke backup {ours:6.2f} s  "
                      f"by hand {hand:6.2f} s ({ours / hand:.2f}x)  +sha256sum "
                      f"{hand_sha:6.2f} s ({ours / hand_sha:.2f}x)  peak RSS {rss:.0f} MiB "
                      f"(the machine's engine: {engine_rss:.0f} MiB)", flush=True)
                print(f"  {'':10s} {'':9s}  content_hash false {counts_only:6.2f} s "
                      f"({counts_only / hand:.2f}x, {counts_only / hand_sha:.2f}x)", flush=True)
                for key in ("writer_2ms", "writer_50ms"):
                    if key in entry:
                        w = entry[key]
                        print(f"      {key}: {w['seconds']:.2f} s ({w['seconds'] / ours:.2f}x "
                              f"idle), commits p50 {w['p50_ms']} ms p99 {w['p99_ms']} ms max "
                              f"{w['max_ms']} ms, WAL +{w['wal_growth_mb']:.1f} MB, RSS "
                              f"{w['rss_mib']:.0f} MiB", flush=True)
        if rows:
            print("\n| database | invoke backup | vs .backup + integrity_check | vs + sha256sum "
                  "| content_hash false | vs + sha256sum | peak RSS | machine engine RSS |\n"
                  "|---|---|---|---|---|---|---|---|")
            for label, e in rows:
                ours, off = e["invoke_backup_s"], e["counts_only_s"]
                print(f"| {label} | {ours:.2f} s | {ours / e['by_hand_s']:.2f}x "
                      f"| {ours / e['by_hand_sha_s']:.2f}x | {off:.2f} s "
                      f"| {off / e['by_hand_sha_s']:.2f}x | {e['peak_rss_mib']:.0f} MiB "
                      f"| {e['machine_engine_rss_mib']:.0f} MiB |")
        if not args.skip_deploy:
            db = build(work, args.sizes[-1])["indexed"]
            d = deploy_overlap(work, db, args.snapshot_seconds)
            results["deploy"] = d
            print(f"\ndeploy ({engine.human_size(db.stat().st_size)}, snapshot "
                  f"~{args.snapshot_seconds:g} s): backup {d['backup_s']:.1f} s, "
                  f"snapshot step {d['snapshot_s']:.1f} s, "
                  f"then waited {d['full_check_wait_s']:.1f} s more for the full check; "
                  f"snapshot + check wait / snapshot alone = {d['ratio_vs_snapshot']:.2f}x "
                  f"(with the backup step: {d['before_deploy_s'] / d['snapshot_s']:.2f}x)")
        save_results(work, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
