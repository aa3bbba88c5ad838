"""Who holds a lock is told by name to a run that finds it taken (break #6 of the s18
review: a concurrent run saw "unknown"), with real processes contending for one lock: a
holder writes its name into an empty file right after its flock and empties it as it
lets go, and a run finding it empty reads again until the name is there."""

from __future__ import annotations

import fcntl
import os
import re

from tests import helpers

CONTEND = """
import sys, time
from pathlib import Path
from ops import engine
path, rounds = Path(sys.argv[1]), int(sys.argv[2])
for _ in range(rounds):
    try:
        with engine.file_lock(path, 0, "the test's run"):
            time.sleep(0.002)  # held a moment: the others meet it
    except engine.EngineError as exc:
        print(str(exc), flush=True)
"""

TAKE_ONLY = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)  # a holder between its flock and its name
print("flocked", flush=True)
time.sleep(600)  # killed by the test
"""

REFUSED = re.compile(r"the test's run holds the lock \S+: (.*) \(use --lock-wait SECONDS "
                     r"to wait for it\)")


def test_runs_contending_for_one_lock_always_name_its_holder(tmp_path):
    path = tmp_path / ".backup.lock"
    runs = [helpers.python(CONTEND, path, 150) for _ in range(3)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    pids = {str(run.pid) for run in runs}
    refused = [line for out, _ in outputs for line in out.splitlines()]
    assert refused, "the runs never met: nothing was proven"
    for line in refused:
        holder = REFUSED.fullmatch(line)
        assert holder and "unknown" not in line, line
        assert re.search(r"\(pid (\d+) on ", holder.group(1)).group(1) in pids, line


def test_a_holder_that_has_let_go_is_never_named(tmp_path):
    """A's name goes with its lock: C has taken it and not yet written its name, and B,
    refused, names no one rather than A (the file kept A's name before)."""
    path = tmp_path / ".backup.lock"
    first = helpers.python(CONTEND, path, 1)  # A: takes the lock once and lets go
    assert first.communicate(timeout=60)[0] == "" and first.returncode == 0
    assert path.read_text() == ""
    taker = helpers.python(TAKE_ONLY, path)
    try:
        assert taker.stdout.readline().strip() == "flocked"
        refused = helpers.python(CONTEND, path, 1)  # B
        out, err = refused.communicate(timeout=60)
    finally:
        taker.kill()
        taker.wait()
    assert REFUSED.fullmatch(out.strip()), (out, err)
    assert f"pid {first.pid} " not in out and out.strip().endswith(
        ": unknown (use --lock-wait SECONDS to wait for it)"), out


def test_the_name_is_written_under_the_flock_and_read_whole(tmp_path):
    """In one process: inside ``file_lock`` the file holds exactly our name; after it,
    nothing (the flock itself is the kernel's: a second descriptor is refused)."""
    from ops import engine

    path = tmp_path / ".backup.lock"
    with engine.file_lock(path, 0, "the test's run"):
        text = path.read_text()
        assert re.fullmatch(rf".+ \(pid {os.getpid()} on .+\) since .+", text), text
        fd = os.open(path, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken = True
            except BlockingIOError:
                taken = False
            assert not taken
        finally:
            os.close(fd)
    assert path.read_text() == ""
