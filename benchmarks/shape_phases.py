"""Benchmark for issue 21: each pass of a backup alone, in the production shape, with the
bytes it read through the throttle.

``production_shape.py`` times whole backups; this one splits them so the cost of each
pass can be seen and a hypothesis kept only if it pays. Each variant starts from a cold
cache (``drop_caches``), runs in a cgroup v1 ``memory`` + ``blkio`` group (as root) and
makes its own copy first, because what the copy leaves in the page cache is part of the
pipeline. For every pass it prints the seconds and the MiB the group read from the disk
(``blkio.throttle.io_service_bytes``): at 32 MiB/s the bytes are the time.

Variants (``--variants``, default all):

- ``hand``: ``sqlite3 .backup``, then ``sqlite3 'PRAGMA quick_check'``, then ``sha256sum``;
- ``ours``: the engine's copy, fsync, then ``verify_new_copy`` (check, SHA-256 and counts
  at once, as ``invoke backup --quick`` does; the check without read-ahead);
- ``ours-readahead``: the same with the kernel's read-ahead on the check (as before);
- ``ours-no-counts``: ``ours`` without the row counts;
- ``ours-counts-after``: ``ours`` with the counts after the check, in its thread;
- ``ours-dontneed``: ``ours`` with the SHA-256 dropping what it hashed from the cache;
- ``check-py`` / ``check-cli``: after the engine's copy, the check alone, by Python's
  sqlite3 (as the engine runs it) and by the ``sqlite3`` CLI (as by hand does);
- ``check-random``: the check alone with ``posix_fadvise(POSIX_FADV_RANDOM)`` on SQLite's
  own descriptor (no kernel read-ahead on its scattered reads);
- ``check-cache``: the check alone with ``PRAGMA cache_size`` of --cache-mib;
- ``sha``: the SHA-256 alone after the copy;
- ``start``: no backup: ``invoke --list``, ``python3 -c pass`` and ``engine.py --help``,
  each from a cold cache in the group (what a run pays before its first byte is copied).

    sudo .venv/bin/python benchmarks/shape_phases.py --mb 256 --limit-mib 128
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from perf_bench import build  # noqa: E402
from production_shape import Group, block_device, cannot, cold, fresh  # noqa: E402
from workspace import work_folder  # noqa: E402

from ops import engine  # noqa: E402

MIB = 1 << 20
VARIANTS = ("hand", "ours", "check-py", "check-cli", "check-random",
            "ours-readahead", "ours-no-counts", "ours-counts-after", "ours-dontneed",
            "check-cache", "sha", "start")


def read_bytes(blkio: Path) -> int:
    total = 0
    for line in (blkio / "blkio.throttle.io_service_bytes").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "Read":
            total += int(parts[2])
    return total


def thread_read_mib() -> int:
    """MiB this thread has read from the disk so far (Linux's per-task I/O accounting)."""
    for line in Path("/proc/thread-self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return round(int(line.split()[1]) / MIB)
    return -1


def random_check(cache_kib: int = 0):
    """``engine.run_check``'s work with read-ahead off on SQLite's descriptor (or a cache)."""
    def check(path, check="quick", *, mmap_size=0, cancel=None):
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True,
                               check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file
            if cache_kib:
                conn.execute(f"PRAGMA cache_size=-{cache_kib}")
            else:
                for fd in os.listdir("/proc/self/fd"):
                    try:  # the listing's own descriptor is gone by now
                        target = os.readlink(f"/proc/self/fd/{fd}")
                    except OSError:
                        continue
                    if target == os.path.abspath(path):
                        os.posix_fadvise(int(fd), 0, 0, os.POSIX_FADV_RANDOM)
            pragma = "integrity_check" if check == "integrity" else "quick_check"
            rows = [row[0] for row in conn.execute(f"PRAGMA {pragma}")]
        finally:
            conn.close()
        return [] if rows == ["ok"] else rows
    return check


def sha_dropping_behind(path, on_bytes=None, cancel=None) -> str:
    """The SHA-256 pass, dropping from the cache what it has hashed (POSIX_FADV_DONTNEED),
    so its pages do not push out the check's."""
    import hashlib
    digest, done = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(engine.HASH_CHUNK):
            digest.update(chunk)
            os.posix_fadvise(handle.fileno(), done, len(chunk), os.POSIX_FADV_DONTNEED)
            done += len(chunk)
    return digest.hexdigest()


def child(variant: str, db: Path, out: Path, blkio: Path, cache_mib: int) -> None:
    """One variant, inside the group: one JSON line per pass."""
    def timed(name, action):
        before, started = read_bytes(blkio), time.monotonic()
        result = action()
        print(json.dumps({"pass": name, "s": round(time.monotonic() - started, 2),
                          "read_mib": round((read_bytes(blkio) - before) / MIB)}), flush=True)
        return result

    copy = fresh(out) / "copy.db"
    if variant == "hand":
        timed("copy (.backup)", lambda: subprocess.run(
            ["sqlite3", str(db), f".backup '{copy}'"], check=True))
        timed("quick_check (CLI)", lambda: subprocess.run(
            ["sqlite3", str(copy), "PRAGMA quick_check"], check=True, capture_output=True))
        timed("sha256sum", lambda: subprocess.run(
            ["sha256sum", str(copy)], check=True, capture_output=True))
        return
    os.close(os.open(copy, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    timed("copy (engine)", lambda: engine.copy_database(db, copy))
    timed("fsync", lambda: engine.fsync_path(copy))
    if variant.startswith("ours"):
        if variant == "ours-readahead":  # as before: the check with the kernel's read-ahead
            engine.no_readahead = lambda path: None
        if variant == "ours-dontneed":
            engine.sha256_file = sha_dropping_behind
        if variant == "ours-counts-after":  # the counts after the check, in its thread
            check = engine.run_check

            def check_then_count(path, *args, **kwargs):
                problems = check(path, *args, **kwargs)
                engine.count_rows(path)
                return problems
            engine.run_check = check_then_count
        started, ends = time.monotonic(), {}

        def on_phase(name, done=None, total=None, finished=False):
            if finished:  # when each pass of the shared pass ended, the group's bytes by
                # then, and the bytes its own thread read from the disk (it calls on_phase)
                ends[name] = (round(time.monotonic() - started, 1),
                              round((read_bytes(blkio) - before) / MIB), thread_read_mib())
        before = read_bytes(blkio)
        found = timed("check+sha+counts", lambda: engine.verify_new_copy(
            copy, "quick", on_phase=on_phase,
            counts=variant not in ("ours-no-counts", "ours-counts-after")))
        print(json.dumps({"pass": "  ends (s, MiB)", "s": 0, "read_mib": 0,
                          "ends": ends}), flush=True)
        assert not found[0], found[0]
    elif variant == "check-py":
        timed("quick_check (python)", lambda: engine.run_check(copy, "quick"))
    elif variant == "check-cli":
        timed("quick_check (CLI)", lambda: subprocess.run(
            ["sqlite3", f"file:{copy}?mode=ro&immutable=1", "PRAGMA quick_check"],
            check=True, capture_output=True))
    elif variant == "check-random":
        timed("quick_check (RANDOM)", lambda: random_check()(copy))
    elif variant == "check-cache":
        timed(f"quick_check (cache {cache_mib} MiB)",
              lambda: random_check(cache_mib * 1024)(copy))
    elif variant == "sha":
        timed("sha256", lambda: engine.sha256_file(copy))


def cold_starts(args, device: str) -> None:
    """Seconds and MiB read by a process's start alone, from a cold cache, in the group."""
    from perf_bench import PYTHON
    from production_shape import operator_env

    for argv in ([PYTHON, "-m", "invoke", "--search-root", str(ROOT), "--list"],
                 [sys.executable, "-c", "pass"],
                 [sys.executable, str(ROOT / "ops" / "engine.py"), "--help"]):
        group = Group(f"ops-phases-{os.getpid()}-start", args.limit_mib, args.mib_s, device)
        try:
            cold()
            before, started = read_bytes(group.dirs[1]), time.monotonic()
            subprocess.run(group.argv(argv), env=operator_env(), cwd=ROOT,
                           capture_output=True, check=True)
            print(f"  start {' '.join(Path(a).name for a in argv[1:]):40.40s} "
                  f"{time.monotonic() - started:5.2f} s / "
                  f"{(read_bytes(group.dirs[1]) - before) / MIB:.1f} MiB", flush=True)
        finally:
            group.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--limit-mib", type=int, default=128)
    parser.add_argument("--mib-s", type=int, default=32)
    parser.add_argument("--cache-mib", type=int, default=32)
    parser.add_argument("--iops", type=int, default=0, help="also cap read and write "
                        "operations per second (0: bandwidth only)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--work", help="folder for the files (kept; default: temporary)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, db, out, blkio = args.child
        child(variant, Path(db), Path(out), Path(blkio), args.cache_mib)
        return 0
    with work_folder(args.work, "ops-phases-") as work:
        why = cannot(work)
        if why:
            print(f"shape_phases: this machine cannot run it: {why}", file=sys.stderr)
            return 2
        device = block_device(work)
        db = build(work, args.mb)["indexed"]
        print(f"{db.stat().st_size / 1e6:.0f} MB in {args.limit_mib} MiB at {args.mib_s} "
              f"MiB/s, {args.iops or 'no'} IOPS cap, SQLite {sqlite3.sqlite_version}, "
              f"load {os.getloadavg()[0]:.1f}",
              flush=True)
        for variant in args.variants:
            if variant == "start":
                cold_starts(args, device)
                continue
            group = Group(f"ops-phases-{os.getpid()}-{variant}", args.limit_mib, args.mib_s,
                          device, args.iops)
            try:
                cold()
                started = time.monotonic()
                lines = subprocess.run(
                    group.argv([sys.executable, __file__, "--cache-mib", str(args.cache_mib),
                                "--child", variant, str(db), str(work / "out"),
                                str(group.dirs[1])]),
                    check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT).stdout
                total = time.monotonic() - started
                passes = [json.loads(line) for line in lines.splitlines() if line]
                shown = "; ".join(f"{p['pass']} {p['s']:.1f} s / {p['read_mib']} MiB"
                                  + (f" {p['ends']}" if "ends" in p else "") for p in passes)
                print(f"  {variant:13s} {total:6.1f} s  {shown}", flush=True)
            finally:
                group.remove()
        print(f"load {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
