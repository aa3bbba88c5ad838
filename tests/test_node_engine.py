"""The Node engine (ops/engine.js) with real Node and better-sqlite3, on a PATH that has
node but neither python3 nor the sqlite3 CLI: the app's own image (issue 17)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shlex
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ops import engine, machine, node, remote
from ops.errors import ExitCode, OpsError
from ops.targets import scripted
from tests import content_cases, helpers, node_env
from tests.helpers import BASE_TOOLS, machine_path, run_remote


@pytest.fixture
def app(tmp_path):
    """The app's folder (node_modules) and a node-only PATH."""
    folder = node_env.app_dir()
    return {"dir": str(folder), "path": node_env.node_path(tmp_path / "bin-node", BASE_TOOLS)}


def run_node(script: str, app: dict, **popen) -> remote.RemoteOutput:
    """A machine script, exactly as a session sends it, on the node-only PATH."""
    done = subprocess.run(shlex.split(remote.wrap(node.with_app_dir(app["dir"], script))),
                          input=node.engine_stdin(), capture_output=True,
                          env={"PATH": app["path"], "LANG": "C.UTF-8"}, **popen)
    assert done.returncode == 0, done.stderr
    return remote.parse_output(done.stdout.decode())


def node_describe(path: Path, app: dict, *, live: bool = False) -> dict:
    done = subprocess.run(["node", "-", "describe", str(path), *(["--live"] if live else [])],
                          input=node.js_source(), capture_output=True,
                          env={**os.environ, "OPS_APP_DIR": app["dir"]})
    return remote.parse_output(done.stdout.decode()).data("describe")


# ---------------------------------------------------------------- the same content hash

CASES = [pytest.param(label, sql, id=f"{label}-{side}")
         for label, first, second in content_cases.PAIRS + content_cases.SAME
         for side, sql in (("a", first), ("b", second))]


@pytest.mark.parametrize(("label", "sql"), CASES)
def test_node_hashes_every_shared_case_like_the_python_engine(tmp_path, app, label, sql):
    db = content_cases.make(tmp_path / "case.db", sql)
    tables, digest, fmt = engine.describe_file(db, live=True)
    assert node_describe(db, app, live=True) == {
        "tables": tables, "content_sha256": digest, "content_format": fmt}


def test_two_sqlite_versions_that_write_doubles_apart_hash_them_alike(tmp_path, app):
    """python's SQLite and better-sqlite3's own differ in printf's text for 0.1 (3.40:
    0.10000000000000001, 3.53: 0.1): json-2 hashes the IEEE-754 bits, so the same file
    hashes alike under both (the cases above run under both versions)."""
    db = content_cases.make(tmp_path / "d.db", content_cases.SAME[0][1])
    script = ("const D=require('module').createRequire(process.argv[1]+'/package.json')"
              "('better-sqlite3');const d=new D(process.argv[2],{readonly:true});"
              "console.log(JSON.stringify([d.prepare('SELECT sqlite_version()').pluck().get(),"
              "d.prepare(\"SELECT printf('%!.17g', v) FROM d ORDER BY rowid\").pluck().all()]))")
    done = subprocess.run(["node", "-e", script, app["dir"], str(db)], capture_output=True,
                          text=True, check=True)
    node_version, node_text = json.loads(done.stdout)
    conn = sqlite3.connect(db)
    python_text = [r[0] for r in conn.execute("SELECT printf('%!.17g', v) FROM d ORDER BY rowid")]
    conn.close()
    if node_version == sqlite3.sqlite_version or node_text == python_text:
        pytest.skip(f"one SQLite here ({node_version}): nothing to compare across versions")
    tables, digest, fmt = engine.describe_file(db, live=True)
    assert node_describe(db, app, live=True) == {
        "tables": tables, "content_sha256": digest, "content_format": fmt}


@pytest.mark.parametrize(("has_function", "has_backup", "code"), [
    (False, True, 5), (True, False, 7), (True, True, 0)])
def test_a_node_sqlite_without_user_functions_is_no_engine(tmp_path, app, has_function,
                                                            has_backup, code):
    """json-2 needs ieee754_to_blob: node:sqlite before Node 22.13 has no function(), so
    the probe refuses it (exit 5: no Node engine) and machine.check says why; before 22.16
    it has no backup(), which every backup and restore uses (exit 7). Node 20 has no
    node:sqlite: a preloaded stand-in takes its place, with or without each."""
    preload = tmp_path / "fake-node-sqlite.js"
    preload.write_text(
        "const Module = require('module'); const load = Module._load;\n"
        "class DatabaseSync { constructor(f) { this.f = f; } close() {} }\n"
        f"if ({json.dumps(has_function)}) DatabaseSync.prototype.function = function () {{}};\n"
        f"const backup = {json.dumps(has_backup)} ? function () {{}} : undefined;\n"
        "Module._load = function (request, ...rest) {\n"
        "  return request === 'node:sqlite'\n"
        "    ? { DatabaseSync, backup } : load.call(this, request, ...rest);\n"
        "};\n")
    done = subprocess.run(["node", "--require", str(preload), "-e", node.PROBE_JS],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OPS_APP_DIR": str(tmp_path)})  # no better-sqlite3
    assert (done.returncode, done.stdout) == (code, "node:sqlite\n" if code == 0 else "")
    if code:
        facts = machine.parse([["node", "22.12.0", f"-{code}"]])
        assert facts["binding"] is None
        assert ("user functions" if code == 5 else "backup()") in facts["binding_problem"]


def test_a_binding_that_does_not_load_is_told_apart_from_a_missing_one(tmp_path, app):
    """better-sqlite3 built for another Node is installed but throws on require: the probe
    says so with its error (one escaped, bounded line), and the fix is a rebuild."""
    module = tmp_path / "node_modules" / "better-sqlite3"
    module.mkdir(parents=True)
    (module / "package.json").write_text('{"name": "better-sqlite3", "main": "index.js"}')
    (module / "index.js").write_text(
        "throw new Error('The module \\'/app/better_sqlite3.node\\'\\nwas compiled against "
        "NODE_MODULE_VERSION 108 \u00e9 \\u001b[31m' + 'x'.repeat(5000));\n")
    done = subprocess.run(["node", "-e", node.PROBE_JS], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "OPS_APP_DIR": str(tmp_path)})
    assert done.returncode == 6 and done.stdout.startswith('"The module'), done
    assert done.stdout.isascii() and done.stdout.count("\n") == 1 and len(done.stdout) < 2000
    script = machine.probe_script(str(tmp_path / "steps.db"), str(tmp_path), str(tmp_path))
    ran = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    facts = machine.parse(remote.parse_output(ran.stdout).entries)
    assert facts["binding"] is None
    assert facts["binding_problem"].startswith("better-sqlite3 in machine.app_dir does not load")
    assert "NODE_MODULE_VERSION 108" in facts["binding_problem"]
    lines = machine.fixes(facts | {"python3": None, "sqlite3": None},
                          machine.plan(facts | {"python3": None, "sqlite3": None})["cannot"])
    assert lines[0].startswith("RUN npm rebuild better-sqlite3") and "npm install" not in lines[0]


def test_node_hashes_the_apps_database_and_hostile_values_like_python(tmp_path, app):
    db = helpers.make_wal_db(tmp_path / "steps.db")
    conn = sqlite3.connect(db)
    conn.executescript("""CREATE TABLE odd ("we""ird" TEXT, rowid, b BLOB) ;
        CREATE TABLE k (a TEXT PRIMARY KEY, b) WITHOUT ROWID;
        PRAGMA user_version = 3;""")
    conn.executemany("INSERT INTO odd VALUES (?, ?, ?)", [
        (b"\x00\xff", None, b"\x00"), ("é\u2028", 1, None), ("x", 1, 2.5), (None, -0.0, "")])
    conn.executemany("INSERT INTO k VALUES (?, ?)", [("b", 1), ("a", b"\x01")])
    conn.commit()
    conn.close()
    tables, digest, fmt = engine.describe_file(db, live=True)
    assert node_describe(db, app, live=True) == {
        "tables": tables, "content_sha256": digest, "content_format": fmt}


# ---------------------------------------------------------------- the machine's tasks

@pytest.fixture
def live(tmp_path):
    return helpers.make_wal_db(tmp_path / "data" / "steps.db")


def test_a_node_only_machine_backs_up_with_every_record(tmp_path, app, live):
    backups = tmp_path / "data" / "backups"
    writer = helpers.Writer(live, tmp_path / "writer").start()  # the app keeps writing
    try:
        helpers.wait_for(lambda: writer.max_id() >= 5, what="a few writer commits")
        out = run_node(remote.backup_script(str(live), str(backups), check="integrity"), app)
        during = writer.max_id()
    finally:
        writer.stop()
    assert during > 5
    assert out.strategy == "node" and out.status == 0
    data = out.data("backup")
    final = backups / data["name"]
    assert data["sha256"] == engine.sha256_file(final) == engine.read_recorded_sha256(final)
    assert engine.verify_backup(final).ok  # the python engine accepts what node wrote
    manifest = engine.read_manifest(final)
    tables = engine.describe_file(final)[0]  # no content hash at backup time (issue 21)
    assert (manifest["tables"], manifest["content_sha256"], manifest["content_format"]) == (
        tables, None, None)
    assert manifest["strategy"] == "node" and manifest["size"] == final.stat().st_size
    assert engine.list_backups(backups)[0].verified
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        [data["name"], f"{data['name']}.sha256", f"{data['name']}.json", engine.LOCK_NAME])


def test_node_verify_flags_a_changed_backup_and_an_unrecorded_one(tmp_path, app, live):
    backups = tmp_path / "data" / "backups"
    good = engine.create_backup(live, backups)
    bad = engine.create_backup(live, backups)
    with open(backups / bad.name, "r+b") as handle:  # one byte in the last page
        handle.seek(-10, os.SEEK_END)
        handle.write(b"\x01")
    out = run_node(remote.verify_script(str(backups), [good.name, bad.name], "integrity"), app)
    assert out.strategy == "node"
    verdicts = {v["name"]: v for v in out.data("verify")}
    assert verdicts[good.name]["ok"] and verdicts[good.name]["problems"] == []
    assert not verdicts[bad.name]["ok"]
    assert verdicts[bad.name]["problems"][0].startswith("SHA-256 mismatch: recorded")
    for sidecar in engine.sidecars(backups / good.name):
        sidecar.unlink()
    again = run_node(remote.verify_script(str(backups), [good.name], "integrity"), app)
    assert again.data("verify")[0]["problems"] == [engine.UNVERIFIABLE]


def test_node_drill_compares_row_counts_and_content(tmp_path, app, live):
    backups = tmp_path / "data" / "backups"
    made = engine.create_backup(live, backups)
    out = run_node(remote.drill_script(str(backups), made.name, "integrity"), app)
    assert out.strategy == "node"
    drill = out.data("drill")
    assert drill["ok"] and drill["restorable"] and drill["differences"] == []
    assert drill["tables"] == made.tables
    assert drill["content_sha256"] == engine.describe_file(made.path)[1]
    assert drill["backup_content_sha256"] == drill["content_sha256"]  # both sides, now
    # a record that says otherwise: the drill names both differences
    record = json.loads((backups / f"{made.name}.json").read_text())
    record["tables"]["steps"] += 1
    record["content_sha256"] = "0" * 64
    (backups / f"{made.name}.json").chmod(0o600)
    (backups / f"{made.name}.json").write_text(json.dumps(record))
    drill = run_node(remote.drill_script(str(backups), made.name, "integrity"), app).data("drill")
    assert not drill["ok"] and drill["restorable"]
    assert [d.split(":")[0] for d in drill["differences"]] == ["table steps", "content hash"]


def backed_up_then_changed(tmp_path: Path, live: Path, where: str):
    """A backup of ``live``, then rows deleted from it (``where``): what a restore undoes."""
    backups = tmp_path / "data" / "backups"
    made = engine.create_backup(live, backups)
    conn = sqlite3.connect(live)
    conn.execute(f"DELETE FROM steps WHERE {where}")
    conn.commit()
    conn.close()
    return backups, made


def test_node_restore_proves_the_live_database_is_the_backup(tmp_path, app, live):
    backups, made = backed_up_then_changed(tmp_path, live, "id % 3 = 0")
    before = engine.describe_file(live, live=True)
    out = run_node(remote.restore_script(str(live), str(backups), made.name, check="integrity"),
                   app)
    assert out.strategy == "node"
    data = out.data("restore")
    data |= scripted.node_proof(data)  # judged as the toolkit judges it
    assert data["ok"] and data["problems"] == [] and data["proof"]["holds"] == "backup"
    assert data["proof"]["content_sha256"] == engine.describe_file(made.path)[1] == \
        engine.describe_file(live, live=True)[1]
    assert data["tables_after"] == made.tables and data["tables_before"] == before[0]
    safety = backups / data["safety_backup"]["name"]
    assert engine.verify_backup(safety).ok and engine.describe_file(safety)[1] == before[1]
    counts = run_node(remote.counts_script(str(live), str(backups), made.name), app)
    assert counts.data("count rows") == {"live": made.tables, "backup": made.tables,
                                         "live_page_size": 4096, "live_journal_mode": "wal"}


@pytest.mark.parametrize("when", [None, "before", "after"])
def test_a_node_restore_says_whether_the_app_committed_around_its_copy(
        tmp_path, app, live, when):
    """The binding copies on a connection of its own, so the engine counts the commits
    (the wal-index's) from the moment its copy holds the write lock to the proof's read: a
    commit in between is named; one before the copy is overwritten, and not counted."""
    backups, made = backed_up_then_changed(tmp_path, live, "id % 3 = 0")
    out = run_node(remote.restore_script(str(live), str(backups), made.name, check="integrity"),
                   {**app, "dir": str(node_env.app_committing(
                       tmp_path / "app-committing", app["dir"], live, when))})
    data = out.data("restore")
    # a commit before the copy took the write lock is overwritten by it: not counted
    assert data["proof_inputs"]["app_wrote"] is (when == "after")
    data |= scripted.node_proof(data)
    assert data["proof"]["app_wrote"] is (when == "after")
    if when == "after":  # the proof read the app's row: it fails closed, and says why
        assert not data["ok"] and data["proof"]["holds"] == "other"
        assert data["problems"] == [
            f"not proven: the app committed while the restore ran, and the live database "
            f"differs from the backup (table steps: backup {made.tables['steps']} rows, "
            f"live {made.tables['steps'] + 1} rows; content hash (json-2): backup "
            f"{data['proof']['backup_content_sha256'][:12]}…, live "
            f"{data['proof']['content_sha256'][:12]}…): the app's writes can do that, and so "
            "can a wrong copy; a copy cannot be proven while the app writes"]
    else:  # the copy replaced what the app wrote before it
        assert data["ok"] and data["proof"]["holds"] == "backup", data["problems"]
    rows = engine.count_rows(live, live=True)["steps"]
    assert rows == made.tables["steps"] + (when == "after")


@pytest.mark.parametrize("stale_shm", [False, True])
def test_a_node_restore_without_a_wal_index_says_it_cannot_tell(tmp_path, app, stale_shm):
    """A database in rollback-journal mode has no wal-index to count commits in: unknown,
    also when a -shm from its WAL days is still beside it (review-break s24 #3)."""
    db = helpers.make_wal_db(tmp_path / "data" / "steps.db")
    conn = sqlite3.connect(db)
    conn.execute("SELECT count(*) FROM steps").fetchone()  # the -shm is in use now
    kept = Path(f"{db}-shm").read_bytes()
    conn.close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    backups, made = backed_up_then_changed(tmp_path, db, "id % 5 = 0")
    if stale_shm:
        Path(f"{db}-shm").write_bytes(kept)
    out = run_node(remote.restore_script(str(db), str(backups), made.name, check="quick"), app)
    data = out.data("restore")
    assert data["proof_inputs"]["app_wrote"] is None
    assert scripted.node_proof(data)["ok"]


def test_under_a_steady_writer_a_proven_node_restore_says_the_app_did_not_write_into_it(
        tmp_path, app, live):
    """The app's commits while the copy waits for its write lock are overwritten by the
    copy: they are not "the app committed around the restore" (review-break s24 #1: they
    made app_wrote true on every restore under a writer, so every failed proof blamed the
    app). A proof that read an app commit after the copy says so, and fails."""
    backups, made = backed_up_then_changed(tmp_path, live, "id % 3 = 0")
    seen = []
    writer = helpers.Writer(live, tmp_path / "writer", interval=0.001).start()
    try:
        helpers.wait_for(lambda: writer.max_id() >= 5, what="the writer's commits")
        for _ in range(3):
            out = run_node(remote.restore_script(str(live), str(backups), made.name,
                                                 check="quick", busy_timeout=30), app)
            data = out.data("restore")
            judged = scripted.node_proof(data)
            seen.append((judged["ok"], judged["proof"]["app_wrote"]))
    finally:
        report = writer.stop()
    assert report["commits"] > 5
    assert all(ok is (not wrote) for ok, wrote in seen), seen  # never a proven restore "raced"
    assert (True, False) in seen, seen  # the usual outcome: proven, nothing in between


def test_node_restore_refuses_a_changed_backup_and_changes_nothing(tmp_path, app, live):
    backups = tmp_path / "data" / "backups"
    made = engine.create_backup(live, backups)
    (backups / made.name).chmod(0o600)
    with open(backups / made.name, "r+b") as handle:
        handle.seek(-10, os.SEEK_END)
        handle.write(b"\x01")
    before = engine.describe_file(live, live=True)
    out = run_node(remote.restore_script(str(live), str(backups), made.name, check="integrity"),
                   app)
    with pytest.raises(OpsError) as info:
        out.data("restore")
    assert info.value.code == ExitCode.VERIFY_FAILED
    assert "failed verification, nothing was changed: SHA-256 mismatch" in str(info.value)
    assert engine.describe_file(live, live=True) == before
    assert [b.name for b in engine.list_backups(backups)] == [made.name]


def blobs_digest(db: Path) -> str:
    """The restored table's content, read live (the writer's own table keeps growing)."""
    digest = hashlib.sha256()
    for row in helpers.live_rows(db, "SELECT id, hex(data) FROM blobs ORDER BY id"):
        digest.update(repr(row).encode())
    return digest.hexdigest()


def test_kill_9_of_a_node_restore_under_a_writer_leaves_old_or_new_content(tmp_path, app):
    db = helpers.make_blob_db(tmp_path / "data" / "steps.db", 24)
    backups = tmp_path / "data" / "backups"
    made = engine.create_backup(db, backups)
    new = blobs_digest(db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE blobs SET data = randomblob(1 << 20) WHERE id % 2 = 0")
    conn.commit()
    conn.close()
    old = blobs_digest(db)
    script = remote.wrap(node.with_app_dir(app["dir"], remote.restore_script(
        str(db), str(backups), made.name, check="quick", busy_timeout=30)))
    rng = random.Random(17)
    seen = set()
    for _ in range(4):
        writer = helpers.Writer(db, tmp_path / "writer", interval=0.02).start()
        try:
            proc = subprocess.Popen(shlex.split(script), stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={"PATH": app["path"], "LANG": "C.UTF-8"},
                                    start_new_session=True)
            proc.stdin.write(node.engine_stdin())
            proc.stdin.close()
            time.sleep(rng.uniform(0.1, 1.2))
            os.killpg(proc.pid, signal.SIGKILL)  # sh, node, and anything they started
            proc.wait()
        finally:
            writer.stop()
        assert engine.check_live(db) == []
        now = blobs_digest(db)
        assert now in (old, new)  # never a mix of the two
        seen.add("new" if now == new else "old")
        if now == new:  # put the old content back for the next round, through SQLite
            safeties = [b for b in engine.list_backups(backups) if b.name != made.name]
            engine.restore_live(safeties[-1].path, db)
            assert blobs_digest(db) == old
    assert seen  # what the random moments hit: {"old"}, {"new"} or both
    print("kill -9 rounds ended with", sorted(seen))


GOOD = {"check": "integrity", "check_problems": [], "tables": {"t": 2}, "backup_tables": {"t": 2},
        "content_sha256": "a" * 64, "backup_content_sha256": "a" * 64, "content_format": "json-2",
        "safety_sha256": "b" * 64, "app_wrote": None, "error": None}


@pytest.mark.parametrize(("inputs", "ok", "holds", "says"), [
    (GOOD, True, "backup", None),
    (GOOD | {"content_sha256": "b" * 64}, False, "safety", "still holds its content from before"),
    (GOOD | {"tables": {"t": 1}, "content_sha256": "c" * 64}, False, "other", "table t: backup 2"),
    (GOOD | {"check_problems": ["page 3 is never used"]}, False, "backup",
     "failed integrity_check"),
    (None, False, "other", "sent no proof"),
    (GOOD | {"tables": "many", "content_sha256": "not hex"}, False, "other", "table t"),
    (GOOD | {"content_sha256": "c" * 64, "app_wrote": True}, False, "other",
     "not proven: the app committed while the restore ran"),
    (GOOD | {"content_sha256": "c" * 64, "app_wrote": "yes"}, False, "other", "content hash"),
])
def test_a_node_restore_is_judged_by_the_engines_rule(inputs, ok, holds, says):
    data = {"check": "integrity"} | ({"proof_inputs": inputs} if inputs is not None else {})
    judged = scripted.node_proof(data)
    assert (judged["ok"], judged["proof"]["holds"]) == (ok, holds)
    assert (says is None) == (judged["problems"] == [])
    assert says is None or says in " ".join(judged["problems"])
    # app_wrote is believed only as a boolean: anything else is "unknown", never a caveat
    wrote = (inputs or {}).get("app_wrote")
    assert judged["proof"]["app_wrote"] is (wrote if isinstance(wrote, bool) else None)
    assert ("the app committed" in " ".join(judged["problems"])) is (wrote is True)
    # with a failed check, the app's writes are no excuse: the check's failure comes first
    if wrote is True:
        failed = scripted.node_proof({"proof_inputs": inputs | {"check_problems": ["bad"]}})
        assert failed["problems"][0] == "the live database failed integrity_check after the " \
                                        "restore: bad"
        assert "not proven" not in " ".join(failed["problems"])


def test_node_takes_the_same_lock_and_refuses_a_planted_one(tmp_path, app, live):
    backups = tmp_path / "data" / "backups"
    backups.mkdir(parents=True)
    script = remote.backup_script(str(live), str(backups), check="quick")
    with engine.backup_lock(backups):  # python's fcntl.flock, held by this process
        held = run_node(script, app)
    with pytest.raises(OpsError) as info:
        held.data("backup")
    assert info.value.code == ExitCode.LOCKED and "another backup holds the lock" in str(
        info.value)
    (backups / engine.LOCK_NAME).unlink()
    (backups / engine.LOCK_NAME).symlink_to(live)  # never written through
    before = engine.sha256_file(live)
    planted = run_node(script, app)
    with pytest.raises(OpsError) as info:
        planted.data("backup")
    assert "refusing the lock file" in str(info.value) and "a symlink" in str(info.value)
    assert engine.sha256_file(live) == before and list(backups.glob("steps-*")) == []


def opened_by_any_process(path: Path) -> bool:
    """Some process has ``path`` open (its descriptors in /proc)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:  # gone, or not ours to read
            continue
        if str(path) in fds:
            return True
    return False


def test_a_node_restore_that_meets_a_locked_database_waits_instead_of_copying_nothing(
        tmp_path, app, live):
    """better-sqlite3 resolves a backup whose first step met a locked database as done,
    having copied nothing: the restore waits for the lock (busy timeout) and copies all.
    The app holds the write lock until the test lets go: once the restore has named its
    safety backup and opened the chosen backup to copy it in (was: a 3 s hold, which under
    load could end before node even started)."""
    backups, made = backed_up_then_changed(tmp_path, live, "id > 10")
    script = remote.restore_script(str(live), str(backups), made.name, check="quick",
                                   busy_timeout=30)
    with helpers.app_holds_write_lock(live) as holder:
        run = subprocess.Popen(shlex.split(remote.wrap(node.with_app_dir(app["dir"], script))),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={"PATH": app["path"], "LANG": "C.UTF-8"})
        try:
            run.stdin.write(node.engine_stdin())
            run.stdin.close()
            lines = []
            while not (lines and lines[-1].startswith(b"__OPS_ENTRY__ safety ")):
                lines.append(run.stdout.readline())
                assert lines[-1], run.stderr.read()  # the safety line, before the copy
            helpers.wait_for(lambda: opened_by_any_process(backups / made.name)
                             or run.poll() is not None, timeout=60,
                             what="the copy into the live database")
            assert run.poll() is None, run.stderr.read()  # still waiting: the lock is held
            holder.kill()  # the app lets go (it wrote nothing)
            holder.wait()
            rest, err = run.stdout.read(), run.stderr.read()  # to its end (small)
            run.wait(timeout=60)
        finally:
            run.kill()
            run.wait()
            run.stdout.close()
            run.stderr.close()
    assert run.returncode == 0, err
    out = remote.parse_output(b"".join(lines).decode() + rest.decode())
    data = out.data("restore")
    data |= scripted.node_proof(data)
    assert data["ok"], data["problems"]
    assert engine.count_rows(live, live=True)["steps"] == made.tables["steps"]


@pytest.mark.parametrize("sidecar", ["{sha}  {name}\n", "{sha} *{name}", "{sha}\x1f{name}\n",
                                     "{sha}  {name} extra\n", "{sha}\n", "{sha}  other.db\n",
                                     "é {sha}  {name}\n"])
def test_node_reads_a_sha256_sidecar_exactly_as_python_does(tmp_path, app, live, sidecar):
    backups = tmp_path / "data" / "backups"
    made = engine.create_backup(live, backups)
    (backups / f"{made.name}.json").unlink()  # the .sha256 alone decides
    path = backups / f"{made.name}.sha256"
    path.unlink()
    path.write_bytes(sidecar.format(sha=made.sha256, name=made.name).encode())
    out = run_node(remote.verify_script(str(backups), [made.name], "quick"), app)
    node_verdict = out.data("verify")[0]
    python_verdict = engine.verify_backup(backups / made.name, "quick")
    assert (node_verdict["ok"], node_verdict["recorded_sha256"], node_verdict["problems"]) == (
        python_verdict.ok, python_verdict.recorded_sha256, python_verdict.problems)


def test_kill_9_of_a_node_backup_leaves_no_backup_and_the_next_one_sweeps(tmp_path, app):
    """kill -9 at random moments of a backup: never a file named like a backup without its
    records; what is left is hidden temporaries, removed by the next backup under the lock."""
    db = helpers.make_blob_db(tmp_path / "data" / "steps.db", 24)
    backups = tmp_path / "data" / "backups"
    script = remote.wrap(node.with_app_dir(app["dir"], remote.backup_script(
        str(db), str(backups), check="integrity")))
    rng = random.Random(5)
    for _ in range(3):
        proc = subprocess.Popen(shlex.split(script), stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={"PATH": app["path"], "LANG": "C.UTF-8"},
                                start_new_session=True)
        proc.stdin.write(node.engine_stdin())
        proc.stdin.close()
        time.sleep(rng.uniform(0.1, 0.9))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for made in engine.list_backups(backups):  # published: whole, with both records
            assert made.verified and engine.verify_backup(made.path).ok
    out = run_node(remote.backup_script(str(db), str(backups), check="quick"), app)
    assert out.data("backup")["name"]
    assert [p.name for p in backups.iterdir() if p.name.startswith(".tmp-")] == []
    assert all(engine.verify_backup(b.path).ok for b in engine.list_backups(backups))


def test_verify_of_several_names_goes_on_past_one_that_is_gone(tmp_path, app, live):
    """Both engines: a name that is no longer a backup (removed, or now a link) between
    the listing and the check is its own failed verdict; the others are still verified."""
    folder = tmp_path / "backups"
    good = engine.create_backup(live, folder)
    gone = "steps-2026-01-01T00-00-00.db"
    (folder / gone).symlink_to(live)
    script = remote.verify_script(str(folder), [gone, good.name], "integrity")
    python_path = machine_path(tmp_path, python=True, sqlite=False)
    for output in (run_remote(script, python_path, engine_source=True), run_node(script, app)):
        verdicts = {v["name"]: v for v in output.data("verify")}
        assert verdicts[good.name]["ok"], output.strategy
        assert not verdicts[gone]["ok"] and "no backup named" in verdicts[gone]["problems"][0]


def test_a_failing_backup_call_is_named_not_the_live_database(tmp_path, app, live):
    """The binding's backup() rejecting (SQLITE_IOERR) is the backup call's failure: the
    live database was readable, so the message must not send the operator there."""
    module = tmp_path / "app" / "node_modules" / "better-sqlite3"
    module.mkdir(parents=True)
    (module / "package.json").write_text('{"name": "better-sqlite3", "main": "index.js"}')
    real = Path(app["dir"]) / "node_modules" / "better-sqlite3"
    (module / "index.js").write_text(
        f"const D = require({json.dumps(str(real))});\n"
        "D.prototype.backup = function () { const e = new Error('disk I/O error');\n"
        "  e.code = 'SQLITE_IOERR'; return Promise.reject(e); };\n"
        "module.exports = D;\n")
    broken = app | {"dir": str(tmp_path / "app")}
    script = remote.backup_script(str(live), str(tmp_path / "b"), check="integrity")
    output = run_node(script, broken)
    assert output.strategy == "node"
    with pytest.raises(OpsError) as failed:
        output.data("backup")
    message = str(failed.value)
    assert "better-sqlite3's backup() of" in message and "disk I/O error" in message
    assert "cannot read database" not in message
    assert not list((tmp_path / "b").glob("steps-*"))  # nothing published


def test_a_local_backup_list_names_what_is_named_like_a_backup_but_is_none(
        tmp_path, run_invoke, wal_db, backup_dir):
    """The python listing skips a symlink, FIFO or folder with a backup's name (as the
    shell and Node ones do) and backup.list says it is there."""
    made = engine.create_backup(wal_db, backup_dir)
    (backup_dir / "steps-2030-01-01T00-00-00.db").symlink_to(wal_db)
    os.mkfifo(backup_dir / "steps-2020-01-01T00-00-00.db")
    (backup_dir / "steps-2021-01-01T00-00-00.db").mkdir()
    listed = run_invoke("backup.list")
    assert listed.returncode == 0, listed
    said = " ".join(listed.stderr.split())
    assert ("3 entry(ies) named like a backup but not a regular file (a symlink, FIFO or "
            "folder), never used as one: steps-2020-01-01T00-00-00.db, "
            "steps-2021-01-01T00-00-00.db, steps-2030-01-01T00-00-00.db") in said
    assert [item.name for item in engine.list_backups(backup_dir)] == [made.name]
