"""The machine-side scripts, run for real with sh, sqlite3 and python3 on a PATH that
holds only what a given production image would have."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ops import engine, machine, node, remote
from ops.errors import OpsError
from tests import node_env
from tests.helpers import BASE_TOOLS, machine_path, run_remote


@pytest.fixture
def live(tmp_path):
    db = tmp_path / "data" / "steps.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE steps (id INTEGER PRIMARY KEY, n INTEGER)")
    conn.executemany("INSERT INTO steps (n) VALUES (?)", [(i,) for i in range(5000)])
    conn.commit()
    yield db
    conn.close()


@pytest.mark.parametrize("strategy", ["python3", "sqlite3", "node"])
def test_backup_script_makes_a_verified_backup(tmp_path, live, strategy):
    if strategy == "sqlite3" and not shutil.which("sqlite3"):
        pytest.skip("sqlite3 CLI not installed")
    path = machine_path(tmp_path, python=strategy == "python3", sqlite=strategy == "sqlite3")
    script = remote.backup_script(str(live), str(tmp_path / "data" / "backups"),
                                  check="integrity")
    if strategy == "node":  # the app's own image: node and its node_modules (issue 17)
        path = node_env.node_path(tmp_path / "bin-node", BASE_TOOLS)
        script = node.with_app_dir(str(node_env.app_dir()), script)
    backups = tmp_path / "data" / "backups"
    out = run_remote(script, path, engine_source=True)
    assert out.strategy == strategy
    assert out.status == 0
    data = out.data("backup")
    final = backups / data["name"]
    assert final.is_file() and engine.parse_created(data["name"])
    assert data["sha256"] == engine.sha256_file(final)
    assert data["size"] == final.stat().st_size
    assert oct(final.stat().st_mode & 0o777) == "0o600"
    assert engine.run_check(final) == []
    # the sidecars are the ones the local engine writes and reads
    assert engine.read_recorded_sha256(final) == data["sha256"]
    assert json.loads((backups / f"{data['name']}.json").read_text())["sha256"] == data["sha256"]
    subprocess.run(["sha256sum", "-c", f"{data['name']}.sha256"], cwd=backups, check=True,
                   capture_output=True)
    leftovers = [p.name for p in backups.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []
    listed = run_remote(remote.list_script(str(backups)), path)
    assert [e[0] for e in listed.entries] == [data["name"]]
    assert listed.entries[0][2] == data["sha256"] and listed.entries[0][3] == "1"


@pytest.mark.parametrize("content_hash", [True, False])
def test_the_machine_records_row_counts_and_no_content_hash(tmp_path, live, content_hash):
    """Issue 21: backup.content_hash still loads, and no backup records a content hash."""
    path = machine_path(tmp_path, python=True, sqlite=False)
    backups = tmp_path / "data" / "backups"
    out = run_remote(remote.backup_script(str(live), str(backups), check="integrity",
                                          content_hash=content_hash), path, engine_source=True)
    data = out.data("backup")
    manifest = json.loads((backups / f"{data['name']}.json").read_text())
    assert manifest["tables"] == {"steps": 5000}
    assert manifest["content_sha256"] is None and manifest["content_format"] is None


def test_a_restore_on_the_machine_makes_its_safety_backup_as_configured(tmp_path, live):
    path = machine_path(tmp_path, python=True, sqlite=False)
    backups = tmp_path / "data" / "backups"
    made = engine.create_backup(live, backups)
    out = run_remote(remote.restore_script(str(live), str(backups), made.name,
                                           check="integrity", content_hash=False), path,
                     engine_source=True)
    safety = out.data("restore")["safety_backup"]
    assert safety["name"] != made.name and safety["tables"] == {"steps": 5000}
    manifest = json.loads((backups / f"{safety['name']}.json").read_text())
    assert manifest["content_sha256"] is None and manifest["tables"] == {"steps": 5000}


def test_sqlite_strategy_reports_a_missing_database(tmp_path):
    if not shutil.which("sqlite3"):
        pytest.skip("sqlite3 CLI not installed")
    path = machine_path(tmp_path, python=False, sqlite=True)
    out = run_remote(remote.backup_script(str(tmp_path / "nope.db"), str(tmp_path / "b"),
                                          check="quick"), path)
    assert out.strategy == "sqlite3" and out.status == 1
    with pytest.raises(OpsError, match="database not found"):
        out.data("backup")


def test_no_python_no_sqlite_and_no_remote_command_says_so(tmp_path, live):
    path = machine_path(tmp_path, python=False, sqlite=False)
    out = run_remote(remote.backup_script(str(live), str(tmp_path / "b"), check="integrity"),
                     path)
    assert out.strategy == "none"
    assert not (tmp_path / "b").exists()


def test_remote_command_strategy_reports_the_new_file(tmp_path, live):
    path = machine_path(tmp_path, python=False, sqlite=False)
    backups = tmp_path / "data" / "backups"
    backups.mkdir()
    (backups / "steps-2020-01-01T00-00-00.db").write_bytes(b"old")
    command = f"cat {live} > {backups}/steps-2026-01-02T03-04-05.db"  # the app's own script
    out = run_remote(remote.backup_script(str(live), str(backups), check="integrity",
                                          remote_command=command), path)
    assert out.strategy == "remote_command" and out.status == 0
    assert ["before", "steps-2020-01-01T00-00-00.db"] in out.entries
    assert ["after", "steps-2026-01-02T03-04-05.db"] in out.entries


def test_failing_remote_command_is_reported(tmp_path, live):
    path = machine_path(tmp_path, python=False, sqlite=False)
    out = run_remote(remote.backup_script(str(live), str(tmp_path), check="integrity",
                                          remote_command="exit 4"), path)
    assert out.status == 1
    with pytest.raises(OpsError, match="remote_command failed"):
        out.data("backup")


def test_verify_script_with_sqlite3_flags_a_tampered_backup(tmp_path, live):
    if not shutil.which("sqlite3"):
        pytest.skip("sqlite3 CLI not installed")
    backups = tmp_path / "backups"
    made = engine.create_backup(live, backups)
    good = engine.create_backup(live, backups)
    with open(made.path, "r+b") as handle:  # flip one byte in the last page
        handle.seek(-10, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-10, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0xFF]))
    path = machine_path(tmp_path, python=False, sqlite=True)
    out = run_remote(remote.verify_script(str(backups), [made.name, good.name], "integrity"),
                     path)
    assert out.strategy == "sqlite3"
    # name size sha256 sidecar manifest verdict
    verdicts = {entry[0]: entry for entry in out.entries}
    assert verdicts[good.name][1] == str(Path(good.path).stat().st_size)
    assert verdicts[good.name][2] == verdicts[good.name][3] == verdicts[good.name][4]
    assert verdicts[good.name][5] == "ok"
    assert verdicts[made.name][2] != verdicts[made.name][3]


# ---------------------------------------------------------------- decisions, as data

A, B = "a" * 64, "b" * 64


@pytest.mark.parametrize(("record", "expected"), [
    ({"sha256": A, "recorded": A, "manifest": A}, A),
    ({"sha256": A, "recorded": None, "manifest": A}, A),
    ({"sha256": A, "recorded": A, "manifest": None}, A),
    ({"sha256": A, "recorded": None, "manifest": None}, None),  # unverifiable: warned about
    ({"sha256": B, "recorded": A, "manifest": None}, "SHA-256 mismatch"),
    ({"sha256": B, "recorded": None, "manifest": A}, "SHA-256 mismatch"),
    ({"sha256": A, "recorded": A, "manifest": B}, "records disagree"),
])
def test_a_download_trusts_only_the_record_made_with_the_backup(record, expected):
    from ops.errors import ExitCode, OpsError
    from ops.targets.scripted import trusted_sha256

    name = "steps-2026-01-01T00-00-00.db"
    if expected in (A, None):
        assert trusted_sha256(name, record) == expected
    else:
        with pytest.raises(OpsError, match=expected) as caught:
            trusted_sha256(name, record)
        assert caught.value.code == ExitCode.VERIFY_FAILED


def test_list_script_prints_only_exact_names_and_hex_digests(tmp_path):
    path = machine_path(tmp_path, python=False, sqlite=False)
    folder = tmp_path / "b"
    folder.mkdir()
    good = "steps-2026-01-01T00-00-00.db"
    (folder / good).write_bytes(b"x" * 10)
    (folder / f"{good}.sha256").write_text(f"{A}\tsteps\n")
    (folder / "steps-2026-01-01T00-00-00.db.db").write_bytes(b"")
    (folder / "steps-2026-01-01T00-00-0.db").write_bytes(b"")
    out = run_remote(remote.list_script(str(folder)), path)
    # no NAME.json: what it is (a safety backup whose record was lost?) is unknown
    assert out.entries == [[good, "10", A, "0", "unrecorded", "-", "-", "-"]]
    (folder / f"{good}.sha256").write_text(A + "0\n")  # 65 hex digits: not a SHA-256
    assert run_remote(remote.list_script(str(folder)), path).entries == [
        [good, "10", "-", "0", "unrecorded", "-", "-", "-"]]


@pytest.mark.parametrize("record, kind, source", [
    ({"kind": "safety", "source": "/data/steps.db"}, "safety", "/data/steps.db"),
    ({"source": "/data/steps.db"}, "-", "/data/steps.db"),
    ({"kind": "Safety!", "source": "/a b/steps.db"}, "unknown", "?"),
    ({"path": '"kind": "safety"', "note": '"source": "/x"'}, "-", "-"),  # inside strings
    ({"tables": {"kind": 3, "source": 4}}, "-", "-"),  # table names are keys, not fields
])
@pytest.mark.parametrize("indent", [None, 2])
def test_the_listing_reads_each_backups_kind_and_source_as_one_token(
        tmp_path, record, kind, source, indent):
    """What the machine's listing says a backup is (a restore's safety backup is never
    `latest`), read by plain sh from NAME.json, whichever way the JSON is laid out."""
    path = machine_path(tmp_path, python=False, sqlite=False)
    folder = tmp_path / "b"
    folder.mkdir()
    good = "steps-2026-01-01T00-00-00.db"
    (folder / good).write_bytes(b"x" * 10)
    (folder / f"{good}.json").write_text(json.dumps({"name": good, **record}, indent=indent))
    entries = run_remote(remote.list_script(str(folder)), path).entries
    assert entries == [[good, "10", "-", "1", kind, source, "-", "-"]]


@pytest.mark.parametrize("restore, token", [
    ({"when": "2026-12-06T19:28:30Z", "backup": "steps-2026-12-06T19-28-23.db"},
     "2026-12-06T19:28:30Z,steps-2026-12-06T19-28-23.db"),
    ({"when": "2026-12-06T19:28:30Z", "backup": "../x"}, "-"),  # not a backup's name
    ({"when": "now; rm -rf /", "backup": "steps-2026-12-06T19-28-23.db"}, "-"),
    (None, "-"),
])
@pytest.mark.parametrize("indent", [None, 2])
def test_the_listing_reads_what_a_safety_backup_put_back(tmp_path, restore, token, indent):
    """review-op #8: `backup.list -p` names the restore a safety backup belongs to."""
    path = machine_path(tmp_path, python=False, sqlite=False)
    folder = tmp_path / "b"
    folder.mkdir()
    good = "steps-2026-01-01T00-00-00.db"
    (folder / good).write_bytes(b"x" * 10)
    record = {"name": good, "kind": "safety", "restore": restore, "tables": {"t": 1}}
    (folder / f"{good}.json").write_text(json.dumps(record, indent=indent))
    entries = run_remote(remote.list_script(str(folder)), path).entries
    assert entries == [[good, "10", "-", "1", "safety", "-", token, "-"]]


def test_a_sqlite3_cli_without_ieee754_to_blob_backs_up_and_restores_without_a_hash(
        tmp_path, live):
    """An older shell (JSON functions, no ieee754 functions) cannot compute json-2: its
    backup records the row counts and no content hash, and a restore still runs (without
    the hash proof), the path a shell without JSON functions takes."""
    real = shutil.which("sqlite3")
    if not real:
        pytest.skip("sqlite3 CLI not installed")
    path = machine_path(tmp_path, python=False, sqlite=False)
    shim = Path(path) / "sqlite3"
    shim.write_text(f"""#!/bin/sh
case "$*" in *ieee754_to_blob*) echo 'Error: no such function: ieee754_to_blob' >&2; exit 1;; esac
exec {shlex.quote(real)} "$@"
""")
    shim.chmod(0o755)
    backups = tmp_path / "data" / "backups"
    out = run_remote(remote.backup_script(str(live), str(backups), check="integrity"), path)
    assert out.strategy == "sqlite3" and out.status == 0
    name = out.data("backup")["name"]
    manifest = json.loads((backups / f"{name}.json").read_text())
    assert manifest["tables"] == {"steps": 5000} and manifest["content_sha256"] is None
    conn = sqlite3.connect(live)
    conn.execute("DELETE FROM steps WHERE id > 10")
    conn.commit()
    conn.close()
    restored = run_remote(remote.restore_script(str(live), str(backups), name,
                                                check="integrity"), path)
    assert restored.strategy == "sqlite3" and restored.data("restore")["backup"] == name
    assert ["hash", "backup", "-"] in restored.entries
    conn = sqlite3.connect(live)
    assert conn.execute("SELECT count(*) FROM steps").fetchone() == (5000,)
    conn.close()


def test_has_python_and_has_node_ask_once_per_script_and_trust_no_inherited_answer(tmp_path):
    """The probes start python3 and node once per script (the first answer is kept), and an
    ``ops_has_py``/``ops_has_node`` in the machine's environment is no answer."""
    path = machine_path(tmp_path, python=False, sqlite=False)
    asked = tmp_path / "asked"
    real = {"python3": os.path.realpath(sys.executable), "node": shutil.which("node")}
    for tool, found in real.items():
        if found:  # a wrapper that logs each start, then is the real tool
            wrapper = Path(path) / tool
            wrapper.write_text(f"#!/bin/sh\necho {tool} >> {shlex.quote(str(asked))}\n"
                               f"exec {shlex.quote(found)} \"$@\"\n")
            wrapper.chmod(0o755)
    script = (f"{remote.PRELUDE}\n{node.HAS_NODE}\n"
              "has_python; a=$?; has_python; b=$?; has_node; c=$?; has_node; d=$?\n"
              "echo $a $b $c $d\n")
    planted = {"PATH": path, "LANG": "C.UTF-8", "ops_has_py": "yes", "ops_has_node": "yes"}
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                          env=planted, timeout=60)
    # python3 (>= 3.8, with sqlite3) answers yes; node finds no SQLite binding here (no /app,
    # no node:sqlite on Node 20): no, and so does a machine without node
    assert done.stdout == "0 0 1 1\n", done
    assert sorted(asked.read_text().split()) == sorted(t for t, f in real.items() if f)

    for tool in real:  # neither tool: the planted answers count for nothing
        (Path(path) / tool).unlink(missing_ok=True)
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                          env=planted, timeout=60)
    assert done.stdout == "1 1 1 1\n", done


@pytest.mark.parametrize(("device", "avail_kb"), [
    ("//nas/backup share", 1),  # a CIFS share: the device name holds a space
    ("my fuse fs  with 123 456 789", 1),  # numbers inside it read as no column either
    ("/dev/vdb", 1),
    ("/dev/vdb", None),  # a filesystem that reports no capacity ("-"): unknown, not zero
    ("/dev/vdb", "09"),  # a leading zero: sh read 09 as octal and the script died
    ("/dev/vdb", "99999999999999999999"),  # past the shell's numbers: plenty, no wrap-around
])
def test_the_free_space_is_read_beside_the_capacity_whatever_the_device_is_named(
        tmp_path, live, device, avail_kb):
    """df -P's fourth column was taken as the free space: a device name with spaces shifted
    it, and the backup went on (or the probe said wrong) on a full folder (s25 note)."""
    if not shutil.which("sqlite3"):
        pytest.skip("sqlite3 CLI not installed")
    path = machine_path(tmp_path, python=False, sqlite=True)
    df = Path(path) / "df"
    df.unlink()
    capacity = "99%" if avail_kb is not None else "-"
    df.write_text("#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
                  f"echo '{device} 999999 999998 {avail_kb or '-'} {capacity} /data'\n")
    df.chmod(0o755)
    backups = tmp_path / "data" / "backups"
    backups.mkdir()
    out = run_remote(remote.backup_script(str(live), str(backups), check="quick"), path)
    if avail_kb is None or len(str(avail_kb)) > 15:
        assert out.status == 0, out  # unknown (or more than any database) is not a refusal
    else:
        assert out.strategy == "sqlite3" and out.status == 1 and out.result["kind"] == "no_space"
        assert "not enough free space in" in out.result["error"], out
        assert f" {int(avail_kb) * 1024} bytes free" in out.result["error"], out
        assert [p for p in backups.iterdir() if not p.name.startswith(".")] == []
    probe = run_remote(machine.probe_script(str(live), str(backups), str(tmp_path)), path)
    facts = machine.parse(probe.entries)
    assert facts["free"] == (None if avail_kb is None else int(avail_kb) * 1024), facts
