"""Benchmark for issue 21: backups on a production-shaped machine, against the same work by hand.

A Fly machine with 256 MB of RAM and a volume capped at tens of MiB/s cannot keep the
database in its page cache: every pass over the backup that does not share the cache
with the others reads the whole file from a slow disk again. This benchmark builds that
machine out of a cgroup v1 ``memory`` + ``blkio`` group (as root) and runs, each from a
cold cache (``/proc/sys/vm/drop_caches``) and inside the group:

- ``invoke backup --quick`` and the machine's engine (``python3 ops/engine.py backup
  --check quick``) against by hand: ``sqlite3 .backup``, then ``PRAGMA quick_check``, then
  ``sha256sum``, at 256 MB with 128 MiB of memory and at 1 GB with 256 MiB, 32 MiB/s
  read and write (medians of --repeat);
- a deploy against the flyctl double whose snapshot takes --snapshot-seconds (longer
  than the full check), the whole deploy limited the same way: the time before
  ``fly deploy`` against the snapshot wait alone;
- outside the group, the idle 256 MB database without indexes of the issue's first
  rows: ``invoke backup`` against ``.backup`` + ``integrity_check`` + ``sha256sum`` and
  against ``.backup`` + ``integrity_check`` alone (medians of 5).

Run on demand (not a test), as root, on a machine nobody else is measuring on:

    .venv/bin/python benchmarks/production_shape.py
    .venv/bin/python benchmarks/production_shape.py --shapes 256:128:3 1000:256:1
    .venv/bin/python benchmarks/production_shape.py --shapes 256:128 --repeat 1 --skip-deploy

A machine without cgroup v1 ``memory`` and ``blkio`` (or not root) gets one line saying
what is missing, and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from perf_bench import PYTHON, build, deploy_overlap, run_timed  # noqa: E402
from workspace import save_results, work_folder  # noqa: E402

CGROUP = Path("/sys/fs/cgroup")
MIB = 1 << 20


def cannot(work: Path) -> str | None:
    """Why this machine cannot run the benchmark, or None."""
    if os.geteuid() != 0:
        return "needs root (it creates cgroups and drops the page cache)"
    for path in (CGROUP / "memory" / "memory.limit_in_bytes",
                 CGROUP / "blkio" / "blkio.throttle.read_bps_device",
                 CGROUP / "blkio" / "blkio.throttle.write_bps_device"):
        if not path.exists():
            return f"needs cgroup v1 memory and blkio with throttling: {path} is missing"
    if not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        return "cannot write /proc/sys/vm/drop_caches (no cold cache)"
    for tool in ("sqlite3", "sha256sum", "/usr/bin/time"):
        if not shutil.which(tool):
            return f"needs {tool}"
    if block_device(work) is None:
        return f"cannot tell which block device holds {work}"
    return None


def block_device(path: Path) -> str | None:
    """``MAJOR:MINOR`` of the whole disk under ``path`` (blkio throttles disks, not partitions)."""
    dev = os.stat(path).st_dev
    node = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not node.exists():
        return None
    if (node / "partition").exists():
        node = node.resolve().parent
    with contextlib.suppress(OSError):
        return (node / "dev").read_text().strip()
    return None


class Group:
    """One cgroup v1 memory + blkio group: ``limit_mib`` of memory, ``mib_s`` read and write."""

    def __init__(self, name: str, limit_mib: int, mib_s: int, device: str, iops: int = 0):
        self.dirs = [CGROUP / "memory" / name, CGROUP / "blkio" / name]
        for folder in self.dirs:
            folder.mkdir(exist_ok=True)
        (self.dirs[0] / "memory.limit_in_bytes").write_text(str(limit_mib * MIB))
        for which in ("read", "write"):
            (self.dirs[1] / f"blkio.throttle.{which}_bps_device").write_text(
                f"{device} {mib_s * MIB}")
            if iops:  # a Fly volume also caps operations (shared CPUs: 4,000-8,000)
                (self.dirs[1] / f"blkio.throttle.{which}_iops_device").write_text(
                    f"{device} {iops}")

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the group (the shell joins it, then execs)."""
        join = "; ".join(f"echo $$ > {d / 'cgroup.procs'}" for d in self.dirs)
        return ["sh", "-c", f'{join}; exec "$@"', "sh", *argv]

    @contextlib.contextmanager
    def this_process(self):
        """This process (and so every child it starts) inside the group for a while."""
        for folder in self.dirs:
            (folder / "cgroup.procs").write_text(str(os.getpid()))
        try:
            yield
        finally:
            for folder in self.dirs:
                (folder.parent / "cgroup.procs").write_text(str(os.getpid()))

    def peak_mib(self) -> float:
        return int((self.dirs[0] / "memory.max_usage_in_bytes").read_text()) / MIB

    def remove(self) -> None:
        for folder in self.dirs:
            with contextlib.suppress(OSError):
                folder.rmdir()


def cold() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def run(argv: list[str], group: Group | None, env: dict | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one command, in ``group`` if given (``/usr/bin/time``
    measures the shell that joins the group and execs the command: the command itself)."""
    return run_timed(group.argv(argv) if group else argv, env=env, cwd=ROOT)


def fresh(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    return out


def operator_env() -> dict:
    """This environment as an operator's shell has it: without PYTHONDONTWRITEBYTECODE
    (set where these were measured), which would make every run compile ops/ again."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def invoke_backup(db: Path, out: Path, group, quick: bool = True,
                  extra: dict | None = None) -> tuple[float, float]:
    env = {**operator_env(), "INVOKE_BACKUP_DIR": str(fresh(out)), "INVOKE_BACKUP_KEEP": "100",
           **(extra or {})}
    return run([PYTHON, "-m", "invoke", "--search-root", str(ROOT), "backup", "--db", str(db),
                *(["--quick"] if quick else [])], group, env)


def machine_engine(db: Path, out: Path, group, check: str = "quick") -> tuple[float, float]:
    """The engine as the machine runs it (stdlib python3, the file shipped as is)."""
    return run([sys.executable, str(ROOT / "ops" / "engine.py"), "backup", "--db", str(db),
                "--dir", str(fresh(out)), "--check", check], group)


def by_hand(db: Path, out: Path, group, check: str = "quick", sha: bool = True) -> tuple:
    """``sqlite3 .backup``, then the check, then ``sha256sum``: back to back, one cold start."""
    copy = fresh(out) / "hand.db"
    seconds, rss = run(["sqlite3", str(db), f".backup '{copy}'"], group)
    more = run(["sqlite3", str(copy), f"PRAGMA {check}_check"], group)
    seconds, rss = seconds + more[0], max(rss, more[1])
    if sha:
        more = run(["sha256sum", str(copy)], group)
        seconds, rss = seconds + more[0], max(rss, more[1])
    return seconds, rss


def medians(action, repeat: int, cold_start: bool) -> tuple[float, float]:
    """(median seconds, highest peak RSS) of ``repeat`` runs, each from a cold cache if asked."""
    runs = []
    for _ in range(repeat):
        if cold_start:
            cold()
        runs.append(action())
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def shaped(work: Path, mb: int, limit: int, mib_s: int, repeat: int, device: str) -> dict:
    db, out = build(work, mb)["indexed"], work / "out"
    group = Group(f"ops-bench-{os.getpid()}-{mb}", limit, mib_s, device)
    try:
        entry = {"mb": round(db.stat().st_size / 1e6), "memory_mib": limit, "mib_s": mib_s}
        for key, action in (
                ("invoke_backup_quick", lambda: invoke_backup(db, out, group)),
                ("machine_engine_quick", lambda: machine_engine(db, out, group)),
                ("by_hand_quick_sha", lambda: by_hand(db, out, group))):
            entry[key], entry[f"{key}_rss_mib"] = medians(action, repeat, True)
            print(f"    {key:22s} {entry[key]:7.2f} s  peak RSS "
                  f"{entry[f'{key}_rss_mib']:.0f} MiB", flush=True)
        entry["group_peak_mib"] = group.peak_mib()
        return entry
    finally:
        group.remove()


def shaped_deploy(work: Path, mb: int, limit: int, mib_s: int, snapshot_seconds: float,
                  device: str, extra: int) -> dict:
    """The whole deploy in one group: the local CLI, the flyctl double and this process
    share it with the machine's engine, so they get ``extra`` MiB on top of the machine's
    ``limit`` (with none, 128 MiB for all of them thrashed: memory.failcnt 1.26 million).
    The site (the database copied onto its volume) is set up first, outside the group,
    and written to the disk before the cache is dropped: a live database is not a file
    just written (until s20 it was copied inside the group after the drop, so the deploy
    began with 257 MiB of it dirty in the group's memory)."""
    db = build(work, mb)["indexed"]
    group = Group(f"ops-bench-{os.getpid()}-deploy", limit + extra, mib_s, device)

    @contextlib.contextmanager
    def limited():
        cold()
        with group.this_process():
            yield
    try:
        return deploy_overlap(work, db, snapshot_seconds, around_run=limited)
    finally:
        group.remove()


@contextlib.contextmanager
def ops_bytecode_aside():
    """ops/'s bytecode cache out of Python's sight for a while (renamed, then back): the
    standard library's and the packages' stay, as they were before tasks.py's change."""
    caches = [path for path in (ROOT / "ops").rglob("__pycache__") if path.is_dir()]
    for path in caches:
        aside = path.with_name("__pycache__.aside")
        shutil.rmtree(aside, ignore_errors=True)  # left by a run killed in between
        path.rename(aside)
    try:
        yield
    finally:
        for path in caches:
            path.with_name("__pycache__.aside").rename(path)


def idle_index_free(work: Path, repeat: int) -> dict:
    """The issue's first rows: no limits, the cache as it comes (as they were measured).

    The runs take turns (one of each, ``repeat`` times), so a load that changes while
    they run weighs on each the same. ``invoke_backup_uncached`` is ``invoke backup`` with
    no bytecode cache for ops/ (compiled from source on every run, as every run was
    before tasks.py let Python cache it)."""
    db, out = build(work, 256)["index-free"], work / "out"
    entry = {"mb": round(db.stat().st_size / 1e6)}
    def uncached():
        with ops_bytecode_aside():
            return invoke_backup(db, out, None, quick=False,
                                 extra={"PYTHONDONTWRITEBYTECODE": "1"})

    actions = {
        "invoke_backup": lambda: invoke_backup(db, out, None, quick=False),
        "invoke_backup_uncached": uncached,
        "by_hand_sha": lambda: by_hand(db, out, None, "integrity"),
        "by_hand": lambda: by_hand(db, out, None, "integrity", sha=False)}
    invoke_backup(db, out, None, quick=False)  # untimed: ops/'s bytecode cache is written
    runs: dict = {key: [] for key in actions}
    for _ in range(repeat):
        for key, action in actions.items():
            before = children_cpu()
            seconds, rss = action()
            runs[key].append((seconds, rss, children_cpu() - before))
    for key, done in runs.items():
        entry[key] = statistics.median(r[0] for r in done)
        entry[f"{key}_rss_mib"] = max(r[1] for r in done)
        entry[f"{key}_cpu_s"] = statistics.median(r[2] for r in done)
        entry[f"{key}_runs"] = [round(r[0], 2) for r in done]
    return entry


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far: unlike the wall
    clock, it hardly moves with the load of others on the machine."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def table(results: dict) -> str:
    lines = ["| shape | `invoke backup --quick` | machine's engine | by hand (`.backup`, "
             "`quick_check`, `sha256sum`) | invoke / by hand | engine / by hand | peak RSS |",
             "|---|---|---|---|---|---|---|"]
    for label, e in results.items():
        if not label.startswith("shaped"):
            continue
        hand = e["by_hand_quick_sha"]
        lines.append(
            f"| {e['mb']} MB, {e['memory_mib']} MiB, {e['mib_s']} MiB/s | "
            f"{e['invoke_backup_quick']:.1f} s | {e['machine_engine_quick']:.1f} s | "
            f"{hand:.1f} s | {e['invoke_backup_quick'] / hand:.2f}× | "
            f"{e['machine_engine_quick'] / hand:.2f}× | "
            f"{max(e['invoke_backup_quick_rss_mib'], e['machine_engine_quick_rss_mib']):.0f} "
            "MiB |")
    if "idle" in results:
        e = results["idle"]
        lines += ["", "| idle, no limits | `invoke backup` | by hand + `sha256sum` | ratio | "
                  "`.backup` + `integrity_check` | ratio | peak RSS |",
                  "|---|---|---|---|---|---|---|",
                  f"| index-free, {e['mb']} MB | {e['invoke_backup']:.2f} s | "
                  f"{e['by_hand_sha']:.2f} s | {e['invoke_backup'] / e['by_hand_sha']:.2f}× | "
                  f"{e['by_hand']:.2f} s | {e['invoke_backup'] / e['by_hand']:.2f}× | "
                  f"{e['invoke_backup_rss_mib']:.0f} MiB |"]
        if "invoke_backup_uncached" in e:
            u = e["invoke_backup_uncached"]
            lines += [f"| the same, ops/ compiled on every run (before) | {u:.2f} s | "
                      f"{e['by_hand_sha']:.2f} s | {u / e['by_hand_sha']:.2f}× | "
                      f"{e['by_hand']:.2f} s | {u / e['by_hand']:.2f}× | "
                      f"{e['invoke_backup_uncached_rss_mib']:.0f} MiB |"]
        if "invoke_backup_cpu_s" in e:
            lines += ["", "CPU seconds (user + system, medians): " + ", ".join(
                f"{key} {e[f'{key}_cpu_s']:.2f} s" for key in
                ("invoke_backup", "invoke_backup_uncached", "by_hand_sha", "by_hand")
                if f"{key}_cpu_s" in e)]
    if "deploy" in results:
        d = results["deploy"]
        lines += ["", f"deploy ({d['shape']}): backup {d['backup_s']:.1f} s, snapshot step "
                  f"{d['snapshot_s']:.1f} s, then {d['full_check_wait_s']:.1f} s more for the "
                  f"full check: (snapshot + check wait) / snapshot alone "
                  f"{d['ratio_vs_snapshot']:.2f}×; with the backup step "
                  f"{d['before_deploy_s'] / d['snapshot_s']:.2f}×"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["256:128", "1000:256"],
                        help="MB:MiB[:runs]: database size, memory limit and runs per "
                             "median (default 256:128 1000:256, --repeat runs)")
    parser.add_argument("--mib-s", type=int, default=32, help="disk limit, read and write")
    parser.add_argument("--repeat", type=int, default=3, help="runs per median (limited)")
    parser.add_argument("--idle-repeat", type=int, default=5, help="runs per median (idle)")
    parser.add_argument("--snapshot-seconds", type=float, default=60)
    parser.add_argument("--skip-deploy", action="store_true")
    parser.add_argument("--deploy-extra-mib", type=int, default=256,
                        help="memory on top of the shape's for the local side of the deploy")
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--skip-shapes", action="store_true",
                        help="only the deploy and the idle rows")
    parser.add_argument("--work", help="folder for the files (kept; default: temporary)")
    args = parser.parse_args()
    with work_folder(args.work, "ops-shape-") as work:
        why = cannot(work)
        if why:
            print(f"production_shape: this machine cannot run it: {why}", file=sys.stderr)
            return 2
        device = block_device(work)
        print(f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, disk {device}; "
              f"work {work}", flush=True)
        results: dict = {}
        for shape in [] if args.skip_shapes else args.shapes:
            mb, limit, repeat = ([int(part) for part in shape.split(":")] + [args.repeat])[:3]
            print(f"  {mb} MB in {limit} MiB at {args.mib_s} MiB/s, medians of {repeat}",
                  flush=True)
            results[f"shaped {shape}"] = shaped(work, mb, limit, args.mib_s, repeat, device)
        if not args.skip_deploy:
            mb, limit = (int(part) for part in args.shapes[0].split(":")[:2])
            d = shaped_deploy(work, mb, limit, args.mib_s, args.snapshot_seconds, device,
                              args.deploy_extra_mib)
            results["deploy"] = {**d, "shape": f"{mb} MB in {limit} MiB at {args.mib_s} "
                                 f"MiB/s, snapshot ~{args.snapshot_seconds:g} s"}
        if not args.skip_idle:
            results["idle"] = idle_index_free(work, args.idle_repeat)
        results["load_after"] = os.getloadavg()[0]
        print("\n" + table(results))
        print(f"\nload average {results['load_after']:.1f} at the end")
        save_results(work, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
