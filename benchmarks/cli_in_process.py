"""Benchmark for issue 22: the CPU of one CLI run made inside an already-started process.

Run on demand (not a test):

    .venv/bin/python benchmarks/cli_in_process.py                        # this checkout
    .venv/bin/python benchmarks/cli_in_process.py --against /path/to/other/checkout

A forked or in-process run (the tests' CLI server, ``helpers.run_here``) pays no start-up:
what is left is Invoke loading tasks.py, parsing the command line and running the task.
Each round starts, per checkout, one Python process that makes one warm-up run and then
``--runs`` runs of each command with ``invoke.Program(...).run``, and reports the median
CPU per run; rounds interleave the checkouts, so a busy machine slows both alike. It prints
each command's median per checkout and the ratio of this checkout to ``--against``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workspace import save_results, work_folder  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable
COMMANDS = {
    "--list": ["--list"],
    "backup --help": ["backup", "--help"],
    "backup.list --json": ["backup.list", "--json"],
    "restore latest --dry-run": ["restore", "latest", "--dry-run"],
}
LOOP = """
import contextlib, io, json, sys, time
import invoke
root, runs, commands = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
def once(words):
    program = invoke.Program(name="Invoke", binary="inv[oke]", binary_names=["invoke", "inv"],
                             version=invoke.__version__)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            program.run(["invoke", "--search-root", root, *words])
        except SystemExit:
            pass
result = {}
for name, words in commands.items():
    once(words)  # imports and caches: not part of a run
    start = time.process_time()
    for _ in range(runs):
        once(words)
    result[name] = (time.process_time() - start) / runs
print(json.dumps(result))
"""


def measure(checkout: Path, runs: int, work: Path) -> dict[str, float]:
    done = subprocess.run([PYTHON, "-c", LOOP, str(checkout), str(runs), json.dumps(COMMANDS)],
                          cwd=work, capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(checkout),
                               "LANG": "C.UTF-8", "INVOKE_BACKUP_DIR": str(work / "backups")})
    if done.returncode != 0:
        raise SystemExit(f"the runs in {checkout} failed: {done.stderr[-400:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="runs of each command per round")
    parser.add_argument("--against", type=Path, help="another checkout, measured alike")
    parser.add_argument("--work", help="folder for the runs' files (kept)")
    args = parser.parse_args()
    checkouts = {"this": ROOT} | ({"against": args.against.resolve()} if args.against else {})
    with work_folder(args.work, "cli-in-process-") as work:
        (work / "backups").mkdir(exist_ok=True)
        seen: dict[str, dict[str, list[float]]] = {label: {} for label in checkouts}
        for _ in range(args.rounds):
            for label, checkout in checkouts.items():
                for name, cpu in measure(checkout, args.runs, work).items():
                    seen[label].setdefault(name, []).append(cpu)
        medians = {label: {name: statistics.median(values) for name, values in runs.items()}
                   for label, runs in seen.items()}
        print(f"CPU per in-process run, medians of {args.rounds} interleaved rounds "
              f"of {args.runs} runs each")
        for name in COMMANDS:
            line = f"  invoke {name:<28} {medians['this'][name] * 1000:6.1f} ms"
            if "against" in medians:
                against = medians["against"][name]
                line += (f"   against {against * 1000:6.1f} ms   "
                         f"{medians['this'][name] / against:.2f}x")
            print(line)
        save_results(work, {"medians_s": medians, "rounds": args.rounds, "runs": args.runs})


if __name__ == "__main__":
    main()
