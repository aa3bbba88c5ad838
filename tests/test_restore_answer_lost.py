"""A production restore whose answer is lost (the link drops, flyctl fails, the call runs
out of time) while the machine restores: its copy may have committed there. The run asks
the machine what it holds, as after a signal, and says it: the safety backup and the undo
when the copy went through, what is not known when it did not (s26 review-op2 #3: the
record said "failed" with no proof and no safety backup, as if nothing had been copied).

A `fly` shim first on PATH runs the real double for the restore's call (found by its
script's `# ops: restore` mark), or not at all, and then fails as a dropped tunnel does:
its stdout is lost and it exits 1."""

from __future__ import annotations

import sys
import textwrap

import pytest

from ops import engine
from tests.fake_production import changed_after_backup, served_prod, use_engine  # noqa: F401

MARK = "# ops: restore\n"


def lose_answer(prod, *, ran: bool, hang: bool = False) -> dict:
    """PATH with a `fly` whose restore call loses its answer, after the machine ran it
    (``ran``) or before it began; ``hang``: it then hangs instead (until fly.timeout)."""
    folder = prod.root / "shim"
    folder.mkdir(exist_ok=True)
    (folder / "fly").write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, subprocess, sys
        real = {str(prod.world.bin_dir / "fly")!r}
        if any(arg.startswith({MARK!r}) for arg in sys.argv[1:]) or \\
                {MARK!r} in " ".join(sys.argv[1:]):
            if {ran!r}:
                subprocess.run([real, *sys.argv[1:]], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, stdin=sys.stdin)
            if {hang!r}:
                import time
                time.sleep(60)
            sys.stderr.write("Error: tunnel unavailable: connection reset by peer\\n")
            sys.exit(1)
        os.execv(real, ["fly", *sys.argv[1:]])
        """))
    (folder / "fly").chmod(0o755)
    return {"PATH": f"{folder}:{prod.env['PATH']}"}


@pytest.mark.parametrize("strategy", ["python3", "sqlite3"])
def test_a_lost_answer_after_the_copy_names_the_safety_backup_and_the_undo(
        served_prod, strategy):  # noqa: F811
    prod = served_prod
    use_engine(prod, strategy)
    made = changed_after_backup(prod)
    result = prod.run("restore", "--production", "--yes", "--json",
                      env=lose_answer(prod, ran=True), timeout=120)
    assert result.returncode == 8, result
    assert "tunnel unavailable" in result.error_lines[-1], result
    record = result.json()
    assert record["outcome"] == "failed" and record["holds"] == "backup", record
    assert record.get("answer_lost") is True and "interrupted" not in record, record
    assert engine.count_rows(prod.db, live=True) == made.tables  # it did copy
    safety = record["safety_backup"]["name"]
    assert (prod.remote_dir / safety).is_file()  # the undo it names is there
    shown = " ".join(result.stderr.split())
    assert (f"No answer came during the restore on the machine: its live database now holds "
            f"backup {made.name}'s content (safety backup {safety} was made before the "
            "copy)") in shown, result.stderr
    assert f"Safety backup: {safety}. To undo this restore" in shown, result.stderr
    assert ("Not proven (its answer was lost) and not restarted: to keep it, fly machine "
            "restart") in shown, result.stderr
    assert prod.audit()[-1]["safety_backup"]["name"] == safety


def test_a_restore_call_past_fly_timeout_is_asked_about_too(served_prod):  # noqa: F811
    prod = served_prod
    made = changed_after_backup(prod)
    quick = {"INVOKE_FLY_TIMEOUT": "2", "INVOKE_FLY_MIN_RATE": "1e12",  # the restore
             "INVOKE_BACKUP_TIMEOUT": "0"}  # call's deadline (session.deadline): ~2 s
    result = prod.run("restore", "--production", "--yes", "--json", timeout=120,
                      env={**lose_answer(prod, ran=True, hang=True), **quick})
    assert result.returncode == 6, result  # the timeout's code, as before
    record = result.json()
    assert record["answer_lost"] is True and record["holds"] == "backup", record
    assert record["outcome"] == "failed" and record["safety_backup"], record
    assert engine.count_rows(prod.db, live=True) == made.tables


def test_a_lost_answer_before_the_restore_began_says_what_is_not_known(served_prod):  # noqa: F811
    prod = served_prod
    made = changed_after_backup(prod)
    before = engine.count_rows(prod.db, live=True)
    result = prod.run("restore", "--production", "--yes", "--json",
                      env=lose_answer(prod, ran=False), timeout=120)
    assert result.returncode == 8, result
    record = result.json()
    assert record["outcome"] == "failed" and record["machine_unsettled"] is True, record
    assert not record.get("safety_backup"), record
    assert engine.count_rows(prod.db, live=True) == before != made.tables
    lines = result.stderr.splitlines()
    assert "The restore's answer was lost during step restore." in lines, result.stderr
    assert any(line.startswith("Not known: whether the restore there is still waiting")
               for line in lines), result.stderr
    assert any(f"To finish the restore: invoke restore {made.name} --production --yes" in line
               for line in lines), result.stderr
