"""Benchmark for issues 21/22: the CPU time of one `invoke` process's start.

Run on demand (not a test); every number compares runs made in this one run, interleaved
(one of each command per round, so a busy machine slows all of them alike):

    .venv/bin/python benchmarks/startup.py                   # 15 rounds
    .venv/bin/python benchmarks/startup.py --rounds 30 --against /path/to/other/checkout

Each round runs, as separate processes with this checkout's Python:
- `python -c 'import invoke'`: the floor, Invoke's own import (no tasks.py at all);
- `invoke --list`, `invoke backup --help`: the start alone (tasks.py and what it imports);
- `invoke backup` of a small sample database (ops.sample, ~1 MB) into a fresh folder.
It prints the median user+system CPU of each and its ratio to the floor, then how many
modules each imports and the size of their bytecode files: what a cold page cache reads
from the disk before the task starts (issue 21's shape: 32 MiB/s). ``--against DIR``
runs the same commands with another checkout's tasks.py and ops/ (e.g. `git worktree add
/tmp/main main`) in the same rounds: the before/after of a change. The processes run as an
operator's shell has them: without PYTHONDONTWRITEBYTECODE, the bytecode caches written first.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workspace import save_results, work_folder  # noqa: E402

from ops import sample  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable
COMMANDS = {
    "import invoke": ["-c", "import invoke"],
    "invoke --list": ["-m", "invoke", "--list"],
    "invoke backup --help": ["-m", "invoke", "backup", "--help"],
    "invoke backup": ["-m", "invoke", "backup", "--db", "{db}"],
}


def cpu_of(argv: list[str], env: dict, cwd: Path) -> float:
    """User + system CPU seconds of one child process (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv[1:5]} failed ({done.returncode}) in {cwd}: "
                         f"{done.stderr.decode(errors='replace')[-400:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bytecode_read(argv: list[str], env: dict, checkout: Path) -> tuple[int, int]:
    """(modules, bytes of their .pyc files) one run imports (Python's own import profile);
    ops' modules are looked up in ``checkout``, the others where this Python finds them."""
    done = subprocess.run(argv, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=checkout,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False)
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", done.stderr, re.M)
    total = 0
    for name in names:
        if name == "ops" or name.startswith("ops."):
            source = checkout / Path(*name.split("."))
            source = source / "__init__.py" if source.is_dir() else source.with_suffix(".py")
            origin = str(source)
        else:
            try:  # (a name Python tried and did not find, e.g. org.python.core, has none)
                spec = importlib.util.find_spec(name) if name != "__main__" else None
            except (ImportError, ValueError):
                spec = None
            origin = spec.origin if spec and spec.origin else ""
        if origin.endswith(".py"):
            cached = importlib.util.cache_from_source(origin)
            origin = cached if os.path.exists(cached) else origin
        if origin.endswith((".py", ".pyc")) and os.path.exists(origin):
            total += os.path.getsize(origin)
    return len(names), total


def environment(checkout: Path, out: Path) -> dict:
    """An operator's environment (bytecode caches on) whose `ops` is ``checkout``'s."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(checkout), "INVOKE_BACKUP_DIR": str(out),
            "INVOKE_BACKUP_KEEP": "3"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--against", type=Path, help="another checkout, measured alike")
    parser.add_argument("--work", help="folder for the sample and backups (kept)")
    args = parser.parse_args()
    checkouts = {"this": ROOT} | ({"against": args.against.resolve()} if args.against else {})
    with work_folder(args.work, "startup-bench-") as work:
        db = work / "sample.db"
        if not db.exists():
            sample.build_sample_database(db, target_mb=1)
        for checkout in checkouts.values():  # as the suite's conftest does: compile once
            compileall.compile_dir(checkout / "ops", quiet=2)
            compileall.compile_file(checkout / "tasks.py", quiet=2)
        cpu: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for label, checkout in checkouts.items():
                out = work / f"backups-{label}"
                env = environment(checkout, out)
                for name, rest in COMMANDS.items():
                    if name == "import invoke" and label != "this":
                        continue  # the floor does not depend on the checkout
                    shutil.rmtree(out, ignore_errors=True)
                    argv = [PYTHON, *(word.format(db=db) for word in rest)]
                    key = name if name == "import invoke" else f"{name} [{label}]"
                    cpu.setdefault(key, []).append(cpu_of(argv, env, checkout))
        floor = statistics.median(cpu["import invoke"])
        print(f"CPU per process, medians of {args.rounds} interleaved rounds "
              f"(user+system; floor = `python -c 'import invoke'`)")
        results = {}
        for key, values in cpu.items():
            median = statistics.median(values)
            results[key] = {"median_s": median, "ratio_to_floor": median / floor}
            print(f"  {key:<34} {median * 1000:7.0f} ms   {median / floor:5.2f}x the floor")
        print("Imported, and the size of its bytecode files (a cold cache reads them):")
        for label, checkout in checkouts.items():
            env = environment(checkout, work / f"backups-{label}")
            for name, rest in COMMANDS.items():
                if name == "import invoke" and label != "this":
                    continue
                shutil.rmtree(work / f"backups-{label}", ignore_errors=True)
                argv = [PYTHON, *(word.format(db=db) for word in rest)]
                key = name if name == "import invoke" else f"{name} [{label}]"
                modules, size = bytecode_read(argv, env, checkout)
                results[key].update(modules=modules, bytecode_bytes=size)
                print(f"  {key:<34} {modules:4d} modules  {size / 2**20:5.2f} MiB")
        save_results(work, results)


if __name__ == "__main__":
    main()
