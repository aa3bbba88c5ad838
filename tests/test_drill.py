"""backup.drill, and restore --production, through the real CLI and the flyctl double.

The drill restores a backup into a scratch database and compares it with the row counts
and content hash recorded when it was made. Production restores run on the fake
machine (python3, or only the sqlite3 CLI) against real files, then restart the machine
and wait for /health; asserted are the exact flyctl calls and their order.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ops import engine
from ops.errors import ExitCode
from tests import helpers, node_env
from tests.fake_production import MID, STOPPED, changed_after_backup
from tests.fake_production import RESTORE_RESOLVE as RESOLVE
from tests.fake_production import restore_label as label
from tests.helpers import assert_one_line_error

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")

# ---------------------------------------------------------------- drill, local


@pytest.fixture
def prod(served_prod):
    """Production whose /health answers (a restore restarts the machine and waits for it)."""
    return served_prod


def test_drill_passes_and_reports_the_restore_time(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    result = run_invoke("backup.drill", "--json")
    assert result.returncode == 0, result
    data = result.json()
    assert data["name"] == made.name and data["ok"] and data["restorable"]
    assert data["tables"] == made.tables
    assert data["content_sha256"] == engine.describe_file(made.path)[1]
    assert data["differences"] == [] and data["seconds"] > 0
    assert "recovery time objective" in result.stderr
    assert not [p for p in backup_dir.iterdir() if p.name.startswith(".drill-")]


def test_invoke_backup_records_row_counts_and_no_content_hash(wal_db, backup_dir,
                                                              run_invoke):
    """Issue 21: the drill and the restore's proof hash the verified file instead."""
    result = run_invoke("backup", "--json")
    assert result.returncode == 0, result
    made = result.json()["backup"]
    manifest = json.loads((backup_dir / f"{made['name']}.json").read_text())
    tables, digest, _ = engine.describe_file(backup_dir / made["name"])
    assert manifest["tables"] == tables == {"steps": 3000, "teams": 20, "users": 200}
    assert manifest["content_sha256"] is None and manifest["content_format"] is None
    assert digest == engine.describe_file(wal_db, live=True)[1]


def test_drill_reports_content_changed_after_the_backup_was_made(wal_db, backup_dir,
                                                                  run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    path = backup_dir / made.name
    conn = sqlite3.connect(path)
    conn.execute("UPDATE users SET name = 'someone else' WHERE id = 7")  # same row counts
    conn.execute("INSERT INTO teams (name) VALUES ('sneaked in')")
    conn.commit()
    conn.close()
    digest = helpers.sha256(path)  # both checksums updated to match: only the content tells
    Path(f"{path}.sha256").write_text(f"{digest}  {made.name}\n")
    record = Path(f"{path}.json")
    record.write_text(json.dumps(json.loads(record.read_text())
                                 | {"sha256": digest, "size": path.stat().st_size}))
    assert engine.verify_backup(path).ok
    result = run_invoke("backup.drill", made.name, "--json")
    assert_one_line_error(result, 5, contains="drill of", strict=False)
    data = result.json()
    assert data["restorable"] and not data["ok"]
    assert f"✗ drill {made.name}" in result.stderr and "differs from its record" in result.stderr
    assert "table teams: recorded 20 rows, restored 21" in data["differences"]
    # a record holds no content hash (issue 21): with both checksums forged to match, the
    # changed value is the file's own content now, the same in the file and its copy
    assert not any(d.startswith("content hash") for d in data["differences"])


def test_drill_of_an_old_backup_says_nothing_was_recorded(wal_db, backup_dir, run_invoke):
    """A backup with a checksum record but no counts (an early version of this tool)."""
    old = helpers.old_script_backup(backup_dir, helpers.utc(2026, 1, 2, 3, 4, 5), wal_db)
    Path(f"{old}.sha256").write_text(f"{helpers.sha256(old)}  {old.name}\n")
    result = run_invoke("backup.drill", old.name)
    assert result.returncode == 0, result
    assert "nothing recorded to compare" in result.stderr


def test_drill_of_a_backup_that_cannot_be_restored_exits_5(wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    path = backup_dir / made.name
    with open(path, "r+b") as handle:
        handle.truncate(4096 * 3)
    result = run_invoke("backup.drill", "--json")
    assert_one_line_error(result, 5, strict=False)
    assert not result.json()["ok"]
    # the step line agrees with the verdict: never a green tick before NOT restorable (#15)
    step = next(line for line in result.stderr.splitlines() if "drill latest" in line)
    assert step.startswith("✗ drill latest") and "not restorable" in step, result.stderr
    # only the finding of the backup (a step of its own since the drill is a plan) is ✓
    assert [line for line in result.stderr.splitlines() if line.startswith("✓")] == [
        next(line for line in result.stderr.splitlines() if line.startswith("✓ find backup"))]


# ---------------------------------------------------------------- production


@pytest.mark.parametrize("tools", ["python3", "sqlite3"])
def test_restore_production_restarts_the_machine_and_waits_for_health(prod, tools):
    if tools == "sqlite3":
        prod.world.remove_machine_tools("python3")
    made = changed_after_backup(prod)
    result = prod.run("restore", "--production", "--yes", "--json")
    assert result.returncode == 0, result
    assert [label(a) for a in prod.calls()] == [
        *RESOLVE, *STOPPED, "ssh list", "ssh counts", "ssh restore", "machine restart"]
    assert engine.describe_file(prod.db, live=True)[1] == engine.describe_file(made.path)[1]
    record = result.json()
    assert record["strategy"] == tools and record["outcome"] == "ok"
    assert record["tables_before"]["steps"] == 1000 and record["tables_after"]["steps"] == 3000
    safety = prod.remote_dir / record["safety_backup"]["name"]
    assert engine.verify_backup(safety).ok and engine.count_rows(safety)["steps"] == 1000
    assert f"invoke restore {safety.name} --production --yes" in result.stderr
    assert prod.health_server.requests  # it waited for /health
    audit = [json.loads(x) for x in Path(prod.env["INVOKE_DEPLOY_AUDIT_LOG"]).read_text()
             .splitlines()]
    assert audit[-1]["kind"] == "restore" and audit[-1]["backup"]["name"] == made.name


@pytest.mark.parametrize("fails", ["restart", "health"])
def test_a_proven_restore_whose_app_did_not_come_back_says_it_is_done(prod, fails):
    """s28 review-op2 #2: the copy made and proven, then `fly machine restart` (exit 8) or
    /health (exit 14) failed: the run ended "failed" with only an undo line, which under
    stress reads as "undo it". It says the restore is done and what is left."""
    made = changed_after_backup(prod)
    env = {}
    if fails == "restart":
        prod.world.fail(["machine", "restart"], times=1)
    else:
        prod.health_server.mode = "503"
        env = {"INVOKE_HEALTH_TIMEOUT": "1"}
    result = prod.run("restore", "--production", "--yes", env=env)
    code = ExitCode.FLY if fails == "restart" else ExitCode.HEALTH_FAILED
    assert result.returncode == code, result
    said = " ".join(result.stderr.split())
    assert (f"The restore itself was done and proven: the live database holds backup "
            f"{made.name}; what is left is the app's side.") in said, said
    assert "To undo this restore: invoke restore steps-" in said, said  # the undo, after it
    if fails == "restart":
        assert f"`fly machine restart {MID} -a " in said, said
    else:
        assert "The machine was restarted: check the app's /health" in said, said
    assert engine.describe_file(prod.db, live=True)[1] == engine.describe_file(made.path)[1]


def test_a_retried_restore_whose_restart_failed_never_says_run_again(prod):
    """s28 review-break4 #3: the live database already held the backup (as on a retry),
    the restart failed: it said "done and proven", then "To restore, run again"."""
    made = engine.create_backup(prod.db, prod.remote_dir)  # the live database holds it
    prod.world.fail(["machine", "restart"], times=1)
    result = prod.run("restore", made.name, "--production", "--yes")
    assert result.returncode == ExitCode.FLY, result
    said = " ".join(result.stderr.split())
    assert "The restore itself was done and proven" in said, said
    assert "run again" not in said and "Nothing to undo." in said, said


def test_a_production_restores_commands_never_carry_this_computers_folder(prod, tmp_path):
    """s28 review-break4 #4: `--backup-dir` (this computer's folder) was put into every
    production command the run printed."""
    changed_after_backup(prod)
    result = prod.run("restore", "--production", "--yes", "--backup-dir", str(tmp_path))
    assert result.returncode == 0, result
    assert "invoke restore steps-" in result.stderr and "--production --yes" in result.stderr
    assert "--backup-dir" not in result.stderr, result.stderr


def test_restore_production_without_sqlite_on_the_machine_prints_the_manual_steps(prod):
    prod.world.remove_machine_tools("python3", "sqlite3")
    changed_after_backup(prod)
    before = engine.describe_file(prod.db, live=True)[1]
    result = prod.run("restore", "--production", "--yes")
    line = assert_one_line_error(result, 1, contains="neither python3 nor the sqlite3 CLI",
                                 strict=False)
    assert "apt-get install -y sqlite3" in line and "invoke restore steps-" in line
    assert "better-sqlite3" in line  # the Node engine's way (issue 17)
    # said before the confirmation and the restore step, not after "Type yes"
    assert [label(a) for a in prod.calls()][-2:] == ["ssh list", "ssh counts"]
    assert engine.describe_file(prod.db, live=True)[1] == before


def test_restore_from_a_local_file_uploads_checks_and_restores(prod, tmp_path):
    local_dir = tmp_path / "mine"
    made = engine.create_backup(prod.db, local_dir)  # a backup kept on the laptop
    conn = sqlite3.connect(prod.db)
    conn.execute("DELETE FROM users WHERE id > 10")
    conn.commit()
    conn.close()
    result = prod.run("restore", "--production", "--from", str(local_dir / made.name), "--yes",
                      "--json")
    assert result.returncode == 0, result
    assert [label(a) for a in prod.calls()] == [
        *RESOLVE, *STOPPED, "ssh counts", "ssh mkdir", "sftp put", "ssh adopt",
        "ssh restore", "machine restart"]
    arrived = prod.remote_dir / made.name
    assert helpers.sha256(arrived) == made.sha256
    assert (prod.remote_dir / f"{made.name}.sha256").read_text() == f"{made.sha256}  {made.name}\n"
    assert json.loads((prod.remote_dir / f"{made.name}.json").read_text())["tables"] == made.tables
    assert not [p for p in prod.remote_dir.iterdir() if p.name.startswith(".upload-")]
    assert engine.describe_file(prod.db, live=True)[1] == engine.describe_file(made.path)[1]


def test_restore_from_a_file_that_fails_its_checksum_uploads_nothing(prod, tmp_path):
    local_dir = tmp_path / "mine"
    made = engine.create_backup(prod.db, local_dir)
    with open(local_dir / made.name, "r+b") as handle:
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 0xFF]))  # a byte SQLite may not notice; the SHA-256 does
    before = engine.describe_file(prod.db, live=True)[1]
    result = prod.run("restore", "--production", "--from", str(local_dir / made.name), "--yes")
    assert_one_line_error(result, 5, contains="nothing was changed", strict=False)
    assert [label(a) for a in prod.calls()] == [*RESOLVE, *STOPPED]
    assert engine.describe_file(prod.db, live=True)[1] == before


@pytest.mark.parametrize("fault", ["corrupted", "cut"])
def test_an_upload_that_arrives_damaged_changes_nothing(prod, tmp_path, fault):
    local_dir = tmp_path / "mine"
    made = engine.create_backup(prod.db, local_dir)
    if fault == "corrupted":
        prod.world.sftp_put_fault(flip_at=5000)
    else:
        prod.world.sftp_put_fault(after_bytes=8192)
    before = engine.describe_file(prod.db, live=True)[1]
    files = helpers.snapshot(prod.remote_dir)
    result = prod.run("restore", "--production", "--from", str(local_dir / made.name), "--yes")
    if fault == "corrupted":
        assert_one_line_error(result, 5, contains="arrived corrupt", strict=False)
        tail = ["ssh adopt"]
    else:
        assert_one_line_error(result, 8, contains="copy file: connection lost", strict=False)
        tail = ["ssh rm"]
    assert [label(a) for a in prod.calls()] == [
        *RESOLVE, *STOPPED, "ssh counts", "ssh mkdir", "sftp put", *tail]
    assert engine.describe_file(prod.db, live=True)[1] == before
    assert helpers.snapshot(prod.remote_dir) == files  # no upload left, no backup adopted


def test_restore_from_a_missing_file_calls_nothing(prod, tmp_path):
    result = prod.run("restore", "--production", "--from", str(tmp_path / "nope.db"), "--yes")
    assert_one_line_error(result, 3, contains="no such file", strict=False)
    assert prod.calls() == []


def test_production_dry_run_only_lists_to_say_which_backup_latest_is(prod):
    made = changed_after_backup(prod)
    result = prod.run("restore", "--production", "--dry-run", "--json")
    assert result.returncode == 0, result
    steps = result.json()["steps"]
    assert [s["key"] for s in steps] == ["resolve", "choose", "restore", "restart", "health",
                                         "record"]
    assert steps[3]["commands"][0][:2] == ["machine", "restart"]
    assert result.json()["backup"] == made.name and f"latest is {made.name}" in result.stderr
    # reads only: the run's own resolve (with its emergency-stopped check), listing, the
    # live database's count (its state: a missing or corrupt one is warned about) and the
    # restore's own verify there, read-only (s20-restore2)
    assert [label(a) for a in prod.calls()] == [*RESOLVE, *STOPPED, "ssh list", "ssh counts",
                                                "ssh restore.verify"]


@pytest.mark.parametrize("tools", ["python3", "node", "none"])
def test_drill_production_on_the_machine_or_after_downloading(prod, tools):
    if tools != "python3":
        prod.world.remove_machine_tools("python3", "sqlite3")
    if tools == "node":  # the app's own image: node and its node_modules
        prod.env["INVOKE_MACHINE_APP_DIR"] = str(node_env.app_dir())
    made = engine.create_backup(prod.db, prod.remote_dir)
    result = prod.run("backup.drill", "--production", "--json")
    data = result.json()
    assert data["ok"] and data["tables"] == made.tables
    assert data["where"] == ("downloaded" if tools == "none" else "machine")
    expected = [*RESOLVE, "ssh list", "ssh drill"]
    if tools == "none":
        expected += ["ssh manifest", "ssh sha256", "sftp get", "ssh list"]
    assert [label(a) for a in prod.calls()] == [*expected, "ssh check"]
    assert prod.local_files() == []
    if tools == "none":  # the backup is sound, but nothing there could restore it in place
        assert result.returncode == 5, result
        assert "a restore cannot run on" in result.stderr and "no engine" in result.stderr
        assert "fix: RUN npm install better-sqlite3" in result.stderr
    else:
        assert result.returncode == 0, result
        assert data["strategy"] == tools and data["machine"]["engines"]["restore"] == tools


def test_a_downloaded_backup_keeps_what_the_machine_recorded_for_the_drill(prod):
    made = engine.create_backup(prod.db, prod.remote_dir)
    fetched = prod.run("backup.download", made.name, "--json")
    assert fetched.returncode == 0, fetched
    local = json.loads((prod.local_dir / f"{made.name}.json").read_text())
    assert (local["tables"], local["content_sha256"]) == (made.tables, made.content_sha256)
    here = {"INVOKE_BACKUP_DIR": str(prod.local_dir)}  # downloads have a folder of their own
    drilled = prod.run("backup.drill", made.name, "--json", env=here)
    assert drilled.returncode == 0, drilled
    data = drilled.json()
    assert data["recorded"] and data["ok"] and data["differences"] == []
    assert "match their recorded row counts" in drilled.stderr


def test_a_downloaded_record_is_compared_and_cannot_speak_the_protocol(prod):
    """The machine's NAME.json crosses as one line: its counts are carried over (a changed
    count is a difference the local drill reports), its newlines and marks are not lines."""
    made = engine.create_backup(prod.db, prod.remote_dir)
    record = prod.remote_dir / f"{made.name}.json"
    data = json.loads(record.read_text())
    data["tables"]["steps"] = 2999
    data["note"] = "X"
    record.write_text(json.dumps(data, indent=2).replace(
        '"X"', '"\n__OPS_EXIT__=0\r__OPS_ENTRY__ forged 1 2 3\n"'))
    fetched = prod.run("backup.download", made.name, "--json")
    assert fetched.returncode == 0, fetched
    drilled = prod.run("backup.drill", made.name, "--json",
                       env={"INVOKE_BACKUP_DIR": str(prod.local_dir)})
    assert_one_line_error(drilled, 5, strict=False)
    assert drilled.json()["differences"] == ["table steps: recorded 2999 rows, restored 3000"]


# ---------------------------------------------------------------- the content hash itself


@pytest.mark.parametrize("fmt", engine.CONTENT_FORMATS)
def test_the_content_hash_ignores_layout_and_sees_types_order_and_schema(tmp_path, fmt):
    def make(name: str, page_size: int, rows: list, extra: str = "") -> Path:
        path = tmp_path / name
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA page_size = {page_size}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
        conn.execute("CREATE TABLE k (a TEXT PRIMARY KEY, b) WITHOUT ROWID")
        conn.executemany("INSERT INTO t (id, v) VALUES (?, ?)", rows)
        conn.executemany("INSERT INTO k VALUES (?, ?)", [("b", 2), ("a", 1)])
        if extra:
            conn.execute(extra)
        conn.commit()
        conn.close()
        return path

    def describe(path: Path) -> tuple:
        return engine.describe_file(path, fmt=fmt)

    rows = [(1, 1), (2, "1"), (3, b"1"), (4, 1.0), (5, None)]
    base = describe(make("a.db", 4096, rows))
    assert base[0] == {"k": 2, "t": 5}
    assert describe(make("b.db", 8192, list(reversed(rows))))[1] == base[1]
    vacuumed = make("c.db", 4096, rows)
    conn = sqlite3.connect(vacuumed)
    conn.execute("DELETE FROM t WHERE id = 5")
    conn.execute("INSERT INTO t (id, v) VALUES (5, NULL)")
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    assert describe(vacuumed)[1] == base[1]
    swapped = [(1, "1"), (2, 1), *rows[2:]]  # the same values, another type per row
    assert describe(make("d.db", 4096, swapped))[1] != base[1]
    assert describe(make("e.db", 4096, rows, "CREATE INDEX i ON t (v)"))[1] \
        != base[1]


@pytest.mark.parametrize("guarded", [False, True])
def test_json_content_hash_keeps_every_stored_value_apart(tmp_path, monkeypatch, guarded):
    """One row per database, one value different each time: every hash differs, whatever
    the column's affinity (a BLOB in a TEXT column included) and however close two
    doubles are; plain and tagged rows never look alike. The BLOB guard SQLite 3.45+
    needs (``engine.JSONB``) gives the very same hashes on this SQLite."""
    monkeypatch.setattr(engine, "JSONB", guarded)
    variants = [
        ("e", 1), ("e", "1"), ("e", 1.0), ("e", b"1"), ("e", None), ("e", "null"),
        ("e", 0.1), ("e", 0.1 + 2 ** -56), ("e", 10 ** 18), ("e", 10 ** 18 + 1),
        ("n", 1), ("n", 1.5), ("n", "1.5x"), ("n", b"\x00"),
        ("b", "x"), ("b", b"x"), ("b", "tx"), ("b", 'b"78"'), ("b", "é"),
        ("b", "line\nbreak"), ("b", "quote\"d"), ("b", b"\x00"), ("b", b""),
    ]
    hashes = []
    for i, (column, value) in enumerate(variants):
        path = tmp_path / f"v{i}.db"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, b TEXT, e)")
        conn.execute(f"INSERT INTO t (id, {column}) VALUES (1, ?)", (value,))
        conn.commit()
        conn.close()
        hashes.append(engine.describe_file(path)[1])
    assert len(set(hashes)) == len(variants)
    monkeypatch.setattr(engine, "JSONB", not guarded)  # the other way, the same hashes
    assert [engine.describe_file(tmp_path / f"v{i}.db")[1]
            for i in range(len(variants))] == hashes

    def pair(path: Path, values: tuple) -> str:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t (a TEXT, b TEXT)")
        conn.execute("INSERT INTO t VALUES (?, ?)", values)
        conn.commit()
        conn.close()
        return engine.describe_file(path)[1]

    # tagged text "t" + "foo", blob "b" + "0A": the same characters as plain "tfoo", "b0A"
    assert pair(tmp_path / "p1.db", ("tfoo", "b0A")) != pair(tmp_path / "p2.db", ("foo", b"\n"))


def test_json_content_hash_of_a_table_wider_than_json_array_takes(tmp_path):
    hashes = []
    for last in (1, 2):
        path = tmp_path / f"wide{last}.db"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE w (" + ", ".join(f"c{i} INTEGER" for i in range(250)) + ")")
        conn.execute(f"INSERT INTO w VALUES ({', '.join(['1'] * 249)}, {last})")
        conn.commit()
        conn.close()
        tables, digest, fmt = engine.describe_file(path)
        assert (tables, fmt) == ({"w": 1}, engine.CONTENT_FORMAT)
        hashes.append(digest)
    assert hashes[0] != hashes[1]


def test_drill_compares_a_record_from_before_content_format_in_its_own_format(
        wal_db, backup_dir, run_invoke):
    """The first drills recorded quote-1 hashes and no format: they are still compared."""
    made = engine.create_backup(wal_db, backup_dir)
    path, record = backup_dir / made.name, backup_dir / f"{made.name}.json"
    old = json.loads(record.read_text())
    del old["content_format"]
    old["content_sha256"] = engine.describe_file(path, fmt=engine.LEGACY_FORMAT)[1]
    assert old["content_sha256"] != engine.describe_file(made.path)[1]
    record.write_text(json.dumps(old))
    result = run_invoke("backup.drill", "--json")
    assert result.returncode == 0, result
    assert result.json()["content_format"] == engine.LEGACY_FORMAT
    old["content_sha256"] = engine.describe_file(made.path)[1]  # json-1 read as quote-1 differs
    record.write_text(json.dumps(old))
    result = run_invoke("backup.drill", "--json")
    assert_one_line_error(result, 5, contains="content hash", strict=False)


def test_backup_content_hash_off_records_row_counts_and_the_drill_says_so(
        wal_db, backup_dir, run_invoke):
    result = run_invoke("backup", "--json", env={"INVOKE_BACKUP_CONTENT_HASH": "false"})
    assert result.returncode == 0, result
    made = result.json()["backup"]
    manifest = json.loads((backup_dir / f"{made['name']}.json").read_text())
    assert manifest["tables"] == {"steps": 3000, "teams": 20, "users": 200}
    assert manifest["content_sha256"] is None and manifest["content_format"] is None
    drilled = run_invoke("backup.drill", "--json")
    assert drilled.returncode == 0, drilled
    assert "both computed now" in drilled.stderr  # the key still loads (issue 21)
    conn = sqlite3.connect(backup_dir / made["name"])  # a lost row is still seen
    conn.execute("DELETE FROM teams WHERE id = 3")
    conn.commit()
    conn.close()
    drilled = run_invoke("backup.drill", "--json")
    assert drilled.returncode == 5 and "table teams: recorded 20 rows, restored 19" in \
        drilled.json()["differences"]


@pytest.mark.parametrize("value", ["maybe", "", "nan", "2"])
def test_backup_content_hash_must_be_true_or_false(wal_db, backup_dir, run_invoke, value):
    result = run_invoke("backup", env={"INVOKE_BACKUP_CONTENT_HASH": value})
    assert_one_line_error(result, 2, contains="backup.content_hash must be true or false")
    assert not backup_dir.exists() or not list(backup_dir.glob("steps-*"))


@pytest.mark.parametrize("manifest", [
    "not json",
    '["a list"]',
    '{"tables": {"users": "200"}, "content_sha256": "' + "a" * 64 + '"}',
    '{"tables": {"users": true}, "content_sha256": "' + "a" * 64 + '"}',
    '{"tables": {"users": 200}, "content_sha256": "nan"}',
    '{"tables": {"users": 200}}',
    '{"tables": {"users": 200}, "content_sha256": "' + "a" * 64 + '", "content_format": "json-9"}',
    '{"tables": {"users": 200}, "content_sha256": null, "content_format": "json-1"}',
])
def test_drill_treats_a_malformed_record_as_a_failure(wal_db, backup_dir, run_invoke, manifest):
    made = engine.create_backup(wal_db, backup_dir)
    (backup_dir / f"{made.name}.json").write_text(manifest)
    result = run_invoke("backup.drill", "--json")
    assert_one_line_error(result, 5, contains=".json", strict=False)
    assert result.json()["restorable"] and not result.json()["ok"]


@pytest.mark.parametrize("tools", ["python3", "sqlite3"])
def test_restore_production_of_a_damaged_backup_changes_nothing(prod, tools):
    if tools == "sqlite3":
        prod.world.remove_machine_tools("python3")
    made = changed_after_backup(prod)
    path = prod.remote_dir / made.name
    with open(path, "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0x01]))
    before = engine.describe_file(prod.db, live=True)[1]
    locks = (".restore.lock", ".backup.lock")  # both held (their holder line rewritten)
    files = helpers.snapshot(prod.remote_dir, locks)
    result = prod.run("restore", made.name, "--production", "--yes")
    assert_one_line_error(result, 5, contains="nothing was changed", strict=False)
    assert [label(a) for a in prod.calls()] == [
        *RESOLVE, *STOPPED, "ssh list", "ssh counts", "ssh restore"]
    assert engine.describe_file(prod.db, live=True)[1] == before
    assert helpers.snapshot(prod.remote_dir, locks) == files  # no safety backup
    assert not (prod.remote_dir / ".restore.lock.d").exists()


def test_a_differing_content_hash_names_both_sqlite_versions_when_they_differ():
    recorded = {"tables": {"t": 1}, "content_sha256": "a" * 64, "sqlite_version": "3.31.1"}
    assert engine.differences(recorded, {"t": 1}, "b" * 64) == [
        "content hash: recorded aaaaaaaaaaaa…, restored bbbbbbbbbbbb… (recorded with SQLite "
        f"3.31.1, compared with {sqlite3.sqlite_version})"]
    same = recorded | {"sqlite_version": sqlite3.sqlite_version}
    assert engine.differences(same, {"t": 1}, "b" * 64) == [
        "content hash: recorded aaaaaaaaaaaa…, restored bbbbbbbbbbbb…"]
    assert engine.differences(recorded, {"t": 1}, "a" * 64) == []
    record = engine.checked_manifest({"tables": {"t": 1}, "content_sha256": "a" * 64,
                                      "sqlite_version": "3.40.1; rm -rf /"}, "x.json")
    assert "sqlite_version" not in record  # only a version number is ever repeated


def test_a_json_1_record_on_a_sqlite_without_json_is_a_clear_failure(tmp_path, monkeypatch):
    path = tmp_path / "a.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    monkeypatch.setattr(engine, "best_format", lambda conn: engine.LEGACY_FORMAT)
    assert engine.describe_file(path)[2] == engine.LEGACY_FORMAT
    for fmt in (engine.CONTENT_FORMAT, engine.JSON1_FORMAT):
        with pytest.raises(engine.EngineError, match="no JSON functions: it cannot compute a "
                                                     f"{fmt} content hash"):
            engine.describe_file(path, fmt=fmt)
