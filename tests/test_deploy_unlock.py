"""The machine's deploy lock is released by the runner's closing step, before the audit
line (review-break #1, #2): a signal while it is released is what the record, the exit
code and the by-hand lines say, and a release that failed is ✗ and recorded, never ✓.

A small `fly` shim first on PATH stops the run at the unlock's `fly ssh console` (the
double's own faults match whole argv words; the unlock script names this run's random
holder), then execs the real double: the real CLI, a real SIGTERM to the real process.
"""

from __future__ import annotations

import signal
import sys
import textwrap

from ops.errors import ExitCode
from tests import helpers, test_deploy

site = test_deploy.site  # the same fake production (a fixture)
UNLOCK_MARK = '/holder 2>/dev/null)"\nrm -rf'  # the unlock script (test_deploy.label)
UNLOCK = "invoke deploy.unlock --yes"


def shim(site, mode: str) -> dict:
    """PATH with a `fly` that makes the unlock call hang (``hang``) or fail (``fail``)."""
    folder = site.root / "shim"
    folder.mkdir(exist_ok=True)
    real = site.world.env(site.token)["PATH"]
    (folder / "fly").write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, sys, time
        if {UNLOCK_MARK!r} in " ".join(sys.argv[1:]):
            open({str(folder / "reached")!r}, "w").close()
            if {mode!r} == "fail":
                sys.stderr.write("Error: tunnel unavailable\\n")
                sys.exit(1)
            time.sleep(60)
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
