"""Benchmark: the engine's backup against `sqlite3 .backup`, `VACUUM INTO` and `cp`.

Run on demand (not a test):

    .venv/bin/python benchmarks/backup_bench.py            # 256 MB database
    .venv/bin/python benchmarks/backup_bench.py --mb 64 --writer-seconds 5

Everything is measured in the same run on the same database, and printed as
ratios against baselines from that run: copy methods against `cp` (the unsafe
floor) and `sqlite3 .backup` (what the old npm scripts effectively did), the
app's write throughput during a backup against the same writer alone, and the
engine's peak memory against an idle Python interpreter's.
"""

from __future__ import annotations

import argparse
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

from workspace import save_results, work_folder  # noqa: E402

from ops import engine, sample  # noqa: E402


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def fresh(path: Path) -> Path:
    for extra in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        extra.unlink(missing_ok=True)
    return path


def copy_methods(db: Path, work: Path, repeat: int) -> dict[str, float]:
    """Median seconds of each way to copy the database, no writer running."""
    out = work / "out.db"
    methods = {
        "cp (unsafe on a live db)": lambda: shutil.copyfile(db, fresh(out)),
        "sqlite3 CLI .backup": lambda: subprocess.run(
            ["sqlite3", str(db), f".backup '{fresh(out)}'"], check=True),
        "VACUUM INTO": lambda: _vacuum_into(db, fresh(out)),
        "engine copy only": lambda: engine.copy_database(db, fresh(out)),
        "engine backup (copy+fsync+integrity_check+sha256)": lambda: _engine_backup(db, work),
        "engine backup, quick_check": lambda: _engine_backup(db, work, check="quick"),
    }
    results = {}
    for name, action in methods.items():
        results[name] = statistics.median(timed(action) for _ in range(repeat))
        print(f"  {name:55s} {results[name]:7.2f} s", flush=True)
    fresh(out)
    return results


def _vacuum_into(db: Path, out: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        conn.execute("VACUUM INTO ?", (str(out),))
    finally:
        conn.close()


def _engine_backup(db: Path, work: Path, check: str = "integrity") -> None:
    target = work / "engine"
    shutil.rmtree(target, ignore_errors=True)
    engine.create_backup(db, target, check=check)


def start_writer(db: Path, work: Path, seconds: float, interval: float) -> sample.WriterProcess:
    return sample.WriterProcess(db, work / f"writer-{time.monotonic_ns()}", interval=interval,
                                duration=seconds).start()


def writer_under_load(db: Path, work: Path, seconds: float, interval: float, load) -> dict:
    writer = start_writer(db, work, seconds, interval)
    deadline = time.monotonic() + seconds - 0.5
    loads = 0
    while load and time.monotonic() < deadline:
        load()
        loads += 1
    return writer.stop(seconds + 15, ask=False) | {"loads": loads}


def cli_backup_under_writer(db: Path, work: Path, interval: float, limit: float) -> dict:
    """The restart livelock: small-step `.backup` vs one held read transaction."""
    results = {}
    out = work / "cli.db"
    for label, commands in (
        ("sqlite3 .backup (100-page steps)", [f".backup '{out}'"]),
        ("sqlite3 .backup inside BEGIN (as the tool runs it)",
         ["BEGIN", "SELECT count(*) FROM sqlite_master", f".backup '{out}'", "COMMIT"]),
    ):
        writer = start_writer(db, work, limit + 5, interval)
        fresh(out)
        started = time.perf_counter()
        try:
            subprocess.run(["sqlite3", "-readonly", str(db), ".timeout 5000", *commands],
                           check=True, timeout=limit, stdout=subprocess.DEVNULL)
            results[label] = time.perf_counter() - started
        except subprocess.TimeoutExpired:
            results[label] = None
        writer.stop()
        shown = f"{results[label]:.2f} s" if results[label] else f"not done in {limit:g} s"
        print(f"  {label:55s} {shown}", flush=True)
    fresh(out)
    return results


def peak_memory(db: Path, work: Path) -> tuple[int, int]:
    """Peak RSS (KiB) of a process running one engine backup, and of an idle interpreter.

    Read from the child's own VmHWM: ``ru_maxrss`` would carry this (large) process's
    high-water mark across fork and exec.
    """
    report = ("print(next(line.split()[1] for line in open('/proc/self/status') "
              "if line.startswith('VmHWM')))")
    setup = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from ops import engine"
    backup = f"engine.create_backup({str(db)!r}, {str(work / 'mem')!r})"

    def rss(code: str) -> int:
        done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                              text=True)
        return int(done.stdout.split()[-1])

    return rss(f"{setup}; {backup}; {report}"), rss(f"{setup}; {report}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=256, help="database size (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per copy method (median)")
    parser.add_argument("--writer-seconds", type=float, default=10)
    parser.add_argument("--writer-interval", type=float, default=0.002)
    parser.add_argument("--livelock-limit", type=float, default=30,
                        help="seconds before the small-step .backup is declared stuck")
    parser.add_argument("--work", help="folder for the files (default: a temporary one)")
    args = parser.parse_args()
    if not shutil.which("sqlite3"):
        print("needs the sqlite3 CLI (apt-get install sqlite3)", file=sys.stderr)
        return 2

    with work_folder(args.work, "ops-bench-") as work:
        db = work / "steps.db"
        fresh(db)
        print(f"building a {args.mb:g} MB sample database in {work} ...", flush=True)
        stats = sample.build_sample_database(db, target_mb=args.mb)
        size = stats["bytes"]
        print(f"  {engine.human_size(size)}, {stats['steps']} step rows, built in "
              f"{stats['seconds']:.1f} s; SQLite {sqlite3.sqlite_version}, "
              f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")

        print(f"copy methods (median of {args.repeat}, no writer):")
        copies = copy_methods(db, work, args.repeat)
        cp = copies["cp (unsafe on a live db)"]
        cli = copies["sqlite3 CLI .backup"]
        print("\n  ratios                                                   vs cp   vs .backup")
        for name, seconds in copies.items():
            print(f"  {name:55s} {seconds / cp:5.2f}x   {seconds / cli:5.2f}x"
                  f"   ({size / seconds / 1e6:6.0f} MB/s)")

        print(f"\nbackups while a writer commits every {args.writer_interval * 1000:g} ms:")
        livelock = cli_backup_under_writer(db, work, args.writer_interval, args.livelock_limit)

        print(f"\nwriter throughput over {args.writer_seconds:g} s:")
        alone = writer_under_load(db, work, args.writer_seconds, args.writer_interval, None)
        loaded = writer_under_load(db, work, args.writer_seconds, args.writer_interval,
                                   lambda: _engine_backup(db, work))
        for label, data in (("alone", alone), (f"with {loaded['loads']} engine backups", loaded)):
            print(f"  {label:30s} {data['commits_per_s']:8.1f} commits/s   p50 "
                  f"{data['p50_ms']:.2f} ms   p99 {data['p99_ms']:.2f} ms   max "
                  f"{data['max_ms']:.1f} ms")
        print(f"  throughput ratio (with backups / alone): "
              f"{loaded['commits_per_s'] / alone['commits_per_s']:.2f}x")

        used, idle = peak_memory(db, work)
        print(f"\npeak RSS of one engine backup: {used / 1024:.1f} MiB "
              f"(idle interpreter {idle / 1024:.1f} MiB, ratio {used / idle:.2f}x; "
              f"database {engine.human_size(size)})")
        summary = {"db_bytes": size, "copies_s": copies, "under_writer_s": livelock,
                   "writer_alone": alone, "writer_with_backups": loaded,
                   "peak_rss_kib": used, "idle_rss_kib": idle}
        save_results(work, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
