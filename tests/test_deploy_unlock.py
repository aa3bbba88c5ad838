"""The machine's deploy lock is released by the runner's closing step, before the audit
line (review-break #1, #2): a signal while it is released is what the record, the exit
code and the by-hand lines say, and a release that failed is ✗ and recorded, never ✓.

A small `fly` shim first on PATH stops the run at the unlock's `fly ssh console`, found by
its script's `# ops: NAME` mark (the double's own faults match whole argv words; the unlock
script names this run's random holder), then execs the real double: the real CLI, a real
SIGTERM to the real process.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from types import SimpleNamespace

import pytest

from ops import remote
from ops.errors import ExitCode, OpsError
from ops.targets.fly import lock
from tests import helpers

UNLOCK_MARK = "# ops: deploy-unlock"  # the mark each remote script starts with (remote.purpose)
UNLOCK = "invoke deploy.unlock --yes"


def shim(site, mode: str, mark: str = UNLOCK_MARK) -> dict:
    """PATH with a `fly` that makes the call whose argv holds ``mark`` hang (``hang``) or
    fail (``fail``); it writes its pid to ``reached`` first (it is flyctl, for the run)."""
    folder = site.root / "shim"
    folder.mkdir(exist_ok=True)
    real = site.world.env(site.token)["PATH"]
    (folder / "fly").write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, sys, time
        if {mark!r} in " ".join(sys.argv[1:]):
            with open({str(folder / "reached.tmp")!r}, "w") as out:
                out.write(str(os.getpid()))
            os.rename({str(folder / "reached.tmp")!r}, {str(folder / "reached")!r})
            if {mode!r} == "fail":
                sys.stderr.write("Error: tunnel unavailable\\n")
                sys.exit(1)
            for _ in range(600):  # 60 s, or until the test says go
                if os.path.exists({str(folder / "go")!r}):
                    break
                time.sleep(0.1)
        os.execv({str(site.world.bin_dir / "fly")!r}, ["fly", *sys.argv[1:]])
        """))
    (folder / "fly").chmod(0o755)
    return {"PATH": f"{folder}:{real}"}


def test_sigterm_while_releasing_the_machine_lock_is_recorded_with_the_unlock_by_hand(site):
    run = site.start("deploy", env=shim(site, "hang"))
    helpers.wait_for((site.root / "shim" / "reached").exists, timeout=60,
                     what="the unlock's flyctl call")
    run.proc.send_signal(signal.SIGTERM)
    result = run.finish(timeout=40)

    assert result.returncode == ExitCode.TERMINATED, result
    (entry,) = site.audit()
    assert entry["outcome"] == "terminated by SIGTERM during record"
    assert entry["exit_code"] == ExitCode.TERMINATED
    assert entry["release"]["status"] == "complete"
    assert [s["outcome"] for s in entry["steps"] if s["step"] == "record"] == ["interrupted"]
    assert f"  {UNLOCK}   # record" in entry["manual"]
    assert f"  {UNLOCK}   # record" in result.stderr.splitlines()
    error = result.error_lines[0]
    assert "stopped while releasing the machine's deploy lock" in error and UNLOCK in error
    assert "the release may be out" not in error
    assert site.machine_lock.exists()  # the lock it names is indeed still there


def test_a_failed_release_of_the_machine_lock_is_a_cross_and_in_the_record(site):
    result = site.run("deploy", "--json", env=shim(site, "fail"))

    assert result.returncode == 0, result  # the release is out: the deploy succeeded
    lines = result.stderr.splitlines()
    assert not any("released the machine's deploy lock" in line for line in lines), \
        result.stderr
    assert any(line.startswith("✗ did NOT release the machine's deploy lock") for line in lines)
    (entry,) = site.audit()
    (closing,) = [s for s in entry["steps"] if s["step"] == "record"]
    assert closing["outcome"] == "failed" and UNLOCK in closing["detail"]
    assert entry["machine_lock_held"] and f"  {UNLOCK}   # record" in entry["manual"]
    assert result.json()["machine_lock_held"] == entry["machine_lock_held"]
    assert site.machine_lock.exists()


def test_sigterm_during_the_snapshot_wait_kills_the_full_checks_flyctl(site):
    """The full check runs its flyctl from a thread, which no signal reaches: the stop
    must kill it, not wait for it (review-break #3), then release the machine lock."""
    site.world.snapshot_behavior("never")
    run = site.start("deploy", env=shim(site, "hang", mark="# ops: verify\n"))
    reached = site.root / "shim" / "reached"
    helpers.wait_for(reached.exists, timeout=60, what="the full check's flyctl call")
    pid = int(reached.read_text())
    run.proc.send_signal(signal.SIGTERM)
    result = run.finish(timeout=45)  # the hung flyctl would sleep 60 s

    assert result.returncode == ExitCode.TERMINATED, result
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the full check's flyctl outlived the run"
    (entry,) = site.audit()
    assert entry["outcome"] == "terminated by SIGTERM during snapshot"
    closing = [s["outcome"] for s in entry["steps"] if s["step"] == "record"]
    assert closing == ["ok"] and not site.machine_lock.exists()


def test_ctrl_c_then_sigterm_exits_with_the_code_the_audit_line_records(site):
    """GitHub cancels a job with SIGINT, then SIGTERM: the second stop, arriving while the
    first one cleans up (here: releasing the machine lock), must not change the exit code
    after the record was written with the first (review-break #9)."""
    site.world.hang(["deploy"], seconds=60)
    run = site.start("deploy", "--skip-backup", env=shim(site, "hang"))
    helpers.wait_for(lambda: [argv[0] for argv in site.world.calls()][-1:] == ["deploy"],
                     timeout=60, what="`fly deploy`")
    run.proc.send_signal(signal.SIGINT)
    helpers.wait_for((site.root / "shim" / "reached").exists, timeout=60,
                     what="the unlock's flyctl call")
    run.proc.send_signal(signal.SIGTERM)
    (site.root / "shim" / "go").touch()
    result = run.finish(timeout=60)

    (entry,) = site.audit()
    assert result.returncode == entry["exit_code"] == ExitCode.INTERRUPTED, result
    assert entry["outcome"] == "interrupted during deploy"
    assert not site.machine_lock.exists()  # the release was not cut short either


class LockMachine:
    """The machine session the deploy lock talks to: each lock call takes the next of
    ``locks`` (the answer's text; None: an answer that cannot be read as a whole), every
    other call (the release) answers ``unlocked``; ``calls`` are the scripts' marks."""

    app = "step-app"
    settings = SimpleNamespace(db_remote_path="/data/steps.db", fly_timeout=5,
                               backup_remote_dir="/data/backups", machine_app_dir="/app")

    def __init__(self, unlocked: str, *locks: str | None):
        self.unlocked, self.locks, self.calls = unlocked, list(locks) or [None], []

    def run(self, script, **_):
        self.calls.append(script.splitlines()[0])
        answer = self.locks.pop(0) if script.startswith("# ops: deploy-lock") else self.unlocked
        if answer is None:
            raise OpsError("the machine's output has a line this tool did not print")
        return remote.parse_output(answer)


@pytest.mark.parametrize(("unlocked", "said", "code"), [
    ("__OPS_ENTRY__ holder me\n__OPS_EXIT__=0\n", "any lock this run took was removed",
     ExitCode.ERROR),
    ("__OPS_EXIT__=3\n", "any lock this run took was removed", ExitCode.ERROR),  # none there
    # another deploy's lock: named, and exit 4 as any held lock (s25: "any lock this run
    # took was removed", as if there had been one, and the answer's exit code)
    ("__OPS_ENTRY__ holder ann deploy since 2026-12-07T10:00:00Z\n__OPS_EXIT__=5\n",
     "another deploy holds it (ann deploy since 2026-12-07T10:00:00Z), so this run took none; "
     "if none is running: invoke deploy.unlock --yes", ExitCode.LOCKED),
    ("__OPS_ENTRY__ holder\n__OPS_EXIT__=5\n", "another deploy holds it (unknown)",
     ExitCode.LOCKED),
    # the holder is its own entry's words, never another line's (s26 review-break2 #6)
    ("__OPS_ENTRY__ note me, trust me\n__OPS_ENTRY__ holder bob deploy\n__OPS_EXIT__=5\n",
     "another deploy holds it (bob deploy)", ExitCode.LOCKED),
    ("__OPS_ENTRY__ note me\n__OPS_EXIT__=5\n", "another deploy holds it (unknown)",
     ExitCode.LOCKED),
    ("__OPS_ENTRY__ notlock file 3\n__OPS_EXIT__=6\n", "this run took none", ExitCode.ERROR),
    ("__OPS_EXIT__=1\n", "if the lock is this run's: invoke deploy.unlock --yes",
     ExitCode.ERROR),  # the release cannot tell
])
def test_a_lock_answer_that_cannot_be_read_says_what_became_of_the_lock(unlocked, said, code):
    with pytest.raises(OpsError) as failed:
        lock.lock(LockMachine(unlocked), "/data/.ops-deploy.lock", 0, "me")
    assert str(failed.value).startswith("could not take the deploy lock "
                                        "/data/.ops-deploy.lock: the machine's output has a "
                                        f"line this tool did not print; {said}"), failed.value
    assert failed.value.code == code


def test_with_lock_wait_an_unreadable_answer_over_another_deploys_lock_waits_for_it():
    """The answer could not be read and the release found another deploy's lock: with
    --lock-wait the run says whose it is and waits, as for any held lock."""
    waited = []
    machine = LockMachine("__OPS_ENTRY__ holder bob deploy\n__OPS_EXIT__=5\n", None,
                          "__OPS_ENTRY__ waiting\n__OPS_ENTRY__ acquired 3\n__OPS_EXIT__=0\n")
    assert lock.lock(machine, "/data/.ops-deploy.lock", 30, "me", on_wait=waited.append)
    assert waited == ["bob deploy"]
    assert machine.calls == ["# ops: deploy-lock", "# ops: deploy-unlock", "# ops: deploy-lock"]


def test_a_lock_answer_that_cannot_be_read_removes_the_lock_the_call_may_have_taken():
    """The lock script runs first in its call; when the machine's answer is refused as a
    whole (a line this tool did not print: s25 review-break3 #2), the lock may be held
    with no step left to release it. It is released as when flyctl fails."""
    machine = LockMachine("__OPS_ENTRY__ held me\n__OPS_EXIT__=0\n")
    with pytest.raises(OpsError, match="did not print; any lock this run took was removed"):
        lock.lock(machine, "/data/.ops-deploy.lock", 0, "me")
    assert machine.calls == ["# ops: deploy-lock", "# ops: deploy-unlock"]
