"""A signal at the edge of publishing a backup, and before a restore's copy commits
(s18 review-break #3 and #4).

Publishing links both records first and the backup file last: once the file's link exists
the publish is complete, so a SIGTERM landing just after it must leave the backup WITH its
records (never a bare file that `backup.list` calls an old npm-script backup and
`backup.adopt` would make `latest`), and one landing before it must leave nothing. The
signal is a real one, sent by the process to itself from a wrapped ``os.link`` just after
the chosen link returned (the reviewer's harness, in-process).

A signal before the restore's copy commits, with the app writing, leaves the live database
as it was (plus the app's writes): the run says so and never advises putting the safety
backup back (which would discard those writes).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ops import engine, remote
from ops.commands.replica import what_was_kept
from ops.sample import WriterProcess
from ops.signals import Terminated, stop_on_signals
from ops.targets.scripted import stopped_before_commit
from tests import helpers


@pytest.fixture(autouse=True)
def handlers_back():
    """``stop_on_signals`` leaves SIGTERM/SIGHUP ignored once one came (the run is
    stopping): put this worker's handlers back, or its later children inherit SIG_IGN."""
    signals = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    kept = [signal.getsignal(sig) for sig in signals]
    yield
    for sig, handler in zip(signals, kept, strict=True):
        signal.signal(sig, handler)


def sigterm_after_link(monkeypatch, chosen) -> list[str]:
    """``os.link`` that sends this process SIGTERM right after a link ``chosen(dst)``
    picks has returned; the names linked, in order."""
    real, linked = os.link, []

    def link(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        linked.append(Path(dst).name)
        if chosen(Path(dst)):
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(os, "link", link)
    return linked


def is_backup_file(path: Path) -> bool:
    return engine.parse_created(path.name) is not None


def names(folder: Path) -> list[str]:
    return sorted(p for p in os.listdir(folder) if not p.startswith("."))


@pytest.mark.parametrize("last", [".sha256", ".json", ".db"])
def test_a_sigterm_after_a_link_leaves_a_whole_backup_or_nothing(monkeypatch, wal_db,
                                                                 tmp_path, last):
    folder = tmp_path / "backups"
    linked = sigterm_after_link(monkeypatch, lambda p: p.name.endswith(last))
    with pytest.raises(Terminated), stop_on_signals():
        engine.create_backup(wal_db, folder)
    monkeypatch.undo()
    assert linked[-1].endswith(last)  # the signal came right after that link
    left = names(folder)
    if last != ".db":  # the file was never linked: nothing of this run is left
        assert left == []
        return
    name = linked[-1]
    assert left == [name, f"{name}.json", f"{name}.sha256"]
    assert engine.verify_backup(folder / name, "integrity").ok
    assert [b.name for b in engine.list_backups(folder)] == [name]
    assert engine.recorded_sha256s(folder / name)  # its records, as every backup has


@pytest.mark.parametrize("last", [".sha256", ".json"])
def test_a_sigterm_in_adopt_leaves_both_records_or_none(monkeypatch, wal_db, tmp_path, last):
    folder = tmp_path / "backups"
    folder.mkdir(mode=0o700)
    bare = folder / helpers.old_name(helpers.utc(2025, 1, 2, 3, 4, 5))
    engine.copy_database(wal_db, bare)
    linked = sigterm_after_link(monkeypatch, lambda p: p.name.endswith(last))
    with pytest.raises(Terminated), stop_on_signals():
        engine.adopt_backups(folder, bare.name, by="test")
    monkeypatch.undo()
    assert linked[-1].endswith(last)
    expected = [bare.name] + ([f"{bare.name}.json", f"{bare.name}.sha256"]
                              if last == ".json" else [])
    assert names(folder) == expected


def test_a_restore_stopped_after_its_safety_backup_is_linked_leaves_it_recorded(
        monkeypatch, tmp_path, wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    helpers.change(wal_db)
    before = helpers.content(wal_db)
    linked = sigterm_after_link(monkeypatch, lambda p: is_backup_file(p)
                                and not p.name.startswith("."))
    result = helpers.run_here("restore", made.name, "--yes", cwd=tmp_path)
    monkeypatch.undo()
    assert result.returncode == 143, result
    assert "Traceback" not in result.stderr
    safety = linked[-1]
    assert safety != made.name
    assert helpers.content(wal_db) == before  # the copy never started
    record = json.loads((backup_dir / f"{safety}.json").read_text())
    assert record["kind"] == "safety" and record["restore"]["backup"] == made.name
    assert engine.verify_backup(backup_dir / safety, "integrity").ok
    listed = helpers.run_here("backup.list", cwd=tmp_path)
    assert "backup.adopt" not in listed.stdout + listed.stderr  # nothing unrecorded
    adopted = helpers.run_here("backup.adopt", "all", cwd=tmp_path)
    assert json.loads((backup_dir / f"{safety}.json").read_text())["kind"] == "safety", adopted
    again = helpers.run_here("restore", "--yes", cwd=tmp_path)  # latest: never the safety
    assert again.returncode == 0, again
    assert f"with backup {made.name}" in again.stderr + again.stdout
    assert helpers.content(wal_db) == helpers.content(Path(made.path))


def test_the_from_replica_signal_line_says_what_the_folder_holds(tmp_path):
    out = tmp_path / helpers.old_name(helpers.utc(2025, 1, 2, 3, 4, 5))
    assert what_was_kept(None) == "nothing restored, "
    assert what_was_kept(out) == "nothing restored, "
    out.write_bytes(b"SQLite format 3\x00")
    assert "WITHOUT its records" in what_was_kept(out)
    for record in engine.sidecars(out):
        record.write_text("x\n")
    assert what_was_kept(out) == (f"the replica's checked backup {out} is kept with its "
                                  "records; ")


def test_signals_wait_until_the_held_block_has_ended():
    done = []
    with pytest.raises(Terminated), stop_on_signals():
        with engine.signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("after the signal, still in the block")
        done.append("never: the signal comes as the block ends")
    assert done == ["after the signal, still in the block"]


def test_signals_are_held_with_another_thread_running():
    """A process-directed signal may be taken by any thread: still held."""
    done, stop = [], threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        with pytest.raises(Terminated), stop_on_signals(), engine.signals_held():
            for _ in range(3):  # each one noted; one Terminated once the block ends
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.01)  # lets the main thread run a pending handler
            done.append("held")
    finally:
        stop.set()
        other.join()
    assert done == ["held"]


def test_a_sigterm_before_the_copy_with_the_app_writing_is_not_restored(
        monkeypatch, tmp_path, wal_db, backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    helpers.change(wal_db)
    real = engine.restore_live

    def stopped_first(*args, **kwargs):  # the app commits after the safety backup, then
        seen = helpers.live_rows(wal_db, "SELECT count(*) FROM writer_log")[0][0]
        helpers.wait_for(lambda: helpers.live_rows(
            wal_db, "SELECT count(*) FROM writer_log")[0][0] > seen, what="an app write")
        os.kill(os.getpid(), signal.SIGTERM)  # a SIGTERM lands before the copy starts
        return real(*args, **kwargs)

    with WriterProcess(wal_db, tmp_path / "w", interval=0.01):
        monkeypatch.setattr(engine, "restore_live", stopped_first)
        result = helpers.run_here("restore", made.name, "--yes", cwd=tmp_path)
        monkeypatch.undo()
    assert result.returncode == 143, result
    out = result.stdout + result.stderr
    assert "not restored, the live database is as it was (the app may have written since)" \
        in out
    assert "The restore was stopped by SIGTERM during step restore." in out
    assert "To put back what it held before" not in out
    assert "neither" not in out
    line = json.loads((tmp_path / "data" / "deploys.jsonl").read_text().splitlines()[-1])
    safety = line["safety_backup"]["name"]
    assert f"invoke restore {safety}" not in out
    assert (line["outcome"], line["holds"], line["exit_code"]) == ("not restored", "before", 143)
    assert helpers.live_rows(wal_db, "SELECT count(*) FROM teams")[0][0] != \
        made.tables["teams"]  # helpers.change's rows: the backup was never copied in


def with_ln_stopping_after(script: str, suffix: str) -> subprocess.CompletedProcess:
    """The machine's script run by ``sh``, ending (exit 9) right after ``ln`` linked a name
    ending in ``suffix``: what a dropped session's signal there would leave."""
    hook = 'ln() { command ln "$@" || return; case $3 in *' + suffix + ') exit 9;; esac; }\n'
    return subprocess.run(["sh", "-c", hook + script], capture_output=True, text=True,
                          timeout=60)


def test_the_machines_sqlite3_backup_stopped_after_its_link_keeps_its_records(wal_db,
                                                                              tmp_path):
    folder = tmp_path / "backups"
    script = remote.PRELUDE + "\n" + remote._sqlite_backup(str(wal_db), str(folder),
                                                           "integrity")
    done = with_ln_stopping_after(script, ".db")
    assert done.returncode == 9, done
    [name] = [n for n in names(folder) if n.endswith(".db")]
    assert names(folder) == [name, f"{name}.json", f"{name}.sha256"]
    assert engine.verify_backup(folder / name, "integrity").ok


def test_an_upload_adopted_on_the_machine_and_stopped_after_its_link_keeps_its_records(
        wal_db, tmp_path):
    folder = tmp_path / "backups"
    made = engine.create_backup(wal_db, tmp_path / "elsewhere")
    folder.mkdir(mode=0o700)
    upload = folder / ".upload-test"
    upload.write_bytes(Path(made.path).read_bytes())
    manifest = (tmp_path / "elsewhere" / f"{made.name}.json").read_text()
    done = with_ln_stopping_after(remote.adopt_upload_script(
        str(folder), str(upload), made.name, made.sha256, manifest), ".db")
    assert done.returncode == 9, done
    assert names(folder) == [made.name, f"{made.name}.json", f"{made.name}.sha256"]
    assert engine.verify_backup(folder / made.name, "integrity").ok
    assert not upload.exists()


def holds_sigterm(pid: int) -> bool:
    """Whether process ``pid`` (the engine: SIGTERM's default, death, outside the held
    block) catches SIGTERM now, i.e. holds it back (its SigCgt mask in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines()
                      if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("commits", [False, True])
def test_the_machines_engine_tells_whether_its_copy_committed_before_a_sigterm(
        wal_db, tmp_path, commits):
    """The machine's python3 restore (``engine.restore_database``, the engine's own CLI as
    the machine runs it) gets SIGTERM while its copy waits for the app's write lock: the
    signal waits for the copy's fate, and ``copied`` is printed exactly when it committed."""
    folder = tmp_path / "backups"
    made = engine.create_backup(wal_db, folder)
    helpers.change(wal_db)
    before = helpers.content(wal_db)
    app = sqlite3.connect(wal_db, isolation_level=None)
    app.execute("BEGIN IMMEDIATE")  # the app holds the write lock: the copy waits for it
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.engine", "restore", "--db", str(wal_db), "--dir",
         str(folder), "--which", made.name, "--busy-timeout", "4"],
        cwd=helpers.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        helpers.wait_for(lambda: holds_sigterm(proc.pid), what="the copy under held signals")
        proc.send_signal(signal.SIGSTOP)  # frozen where it was seen: still in the held block
        assert holds_sigterm(proc.pid)  # (a busy machine could have let it time out)
        proc.send_signal(signal.SIGTERM)
        if commits:
            app.execute("COMMIT")  # the lock is free: the copy commits, then the signal ends it
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        app.close()
    assert proc.returncode == -signal.SIGTERM, (out, err)
    assert "__OPS_ENTRY__ safety " in out
    assert ("__OPS_ENTRY__ copied" in out) is commits, out
    assert helpers.content(wal_db) == (helpers.content(Path(made.path)) if commits else before)
    seen = remote.parse_output(f"{remote.STRATEGY_MARK}=python3\n{out}"
                               f"{remote.SENTINEL}=143\n")
    assert stopped_before_commit(seen) is not commits  # what the run then tells
