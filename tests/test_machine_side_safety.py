"""The machine side never trusts what it finds there: planted symlinks, hostile names and
sidecars, files that vanish, backups changed after they were made, a lock held elsewhere.

Every test runs the real CLI against the flyctl double (see tests/test_production.py for
the fake production: ``vol/`` is the machine's ``/data``) and asserts what a user sees:
exit codes, one ``Error:`` line, files on the volume and locally, the flyctl calls.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from ops import engine, remote
from ops.errors import ExitCode, OpsError
from tests import helpers
from tests.fake_production import (
    RESOLVE,
    Prod,
    assert_error,
    flip_bytes,
    make_prod,
    near_names,
    remove_tools,
    run_deferred,
    sftp_calls,
)

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")

HEX = "ab" * 32


@pytest.fixture
def prod(fly_world, tmp_path) -> Prod:
    return make_prod(tmp_path, fly_world)


def digest(path: Path) -> str:
    return helpers.sha256(path)


def real_backups(prod: Prod) -> list[str]:
    """Backups on the fake volume, named exactly as the tool names them."""
    return sorted(p.name for p in prod.remote_dir.iterdir()
                  if remote.ENTRY_NAME.fullmatch(p.name) and p.is_file())


def tmp_leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")]


# ---------------------------------------------------------------- 1. planted symlinks


@pytest.mark.parametrize("plant", ["lock", "sidecars", "temporary"])
def test_sqlite3_strategy_never_writes_through_a_planted_symlink(prod, plant):
    """A symlink to the live database under any name the CLI strategy writes leaves the
    database byte-identical: the lock is refused, a sidecar name is never written through,
    a stale temporary is only unlinked."""
    prod.world.remove_machine_tools("python3")
    prod.remote_dir.mkdir(parents=True)
    before = digest(prod.db)
    target = os.path.relpath(prod.db, prod.remote_dir)
    planted = []
    if plant == "lock":
        planted.append(prod.remote_dir / engine.LOCK_NAME)
    elif plant == "sidecars":
        planted += [prod.remote_dir / f"{name}{ext}" for name in near_names()
                    for ext in (".sha256", ".json")]
    else:
        planted.append(prod.remote_dir / ".tmp-steps-2026-01-01T00-00-00.db.1234")
    for link in planted:
        link.symlink_to(target)

    result = prod.run("backup", "--production", "--json")

    assert digest(prod.db) == before
    assert helpers.rows(prod.db, "SELECT count(*) FROM steps") == [(3000,)]
    if plant == "temporary":  # swept under the lock: the link goes, not its target
        assert result.returncode == 0, result
        assert not planted[0].is_symlink()
        assert prod.remote_backups() == [result.json()["backup"]["name"]]
        return
    if plant == "lock":
        assert_error(result, ExitCode.ERROR, contains="not a regular file")
    else:
        assert_error(result, ExitCode.ERROR, contains="already exists; not overwritten")
    assert all(link.is_symlink() for link in planted)  # left as found
    assert prod.remote_backups() == []
    assert tmp_leftovers(prod.remote_dir) == []


def test_app_command_sidecars_never_write_through_a_planted_symlink(prod):
    prod.world.remove_machine_tools("python3", "sqlite3")
    name = "steps-2026-01-02T03-04-05.db"
    prod.remote_dir.mkdir(parents=True)
    for ext in (".sha256", ".json"):
        (prod.remote_dir / f"{name}{ext}").symlink_to(os.path.relpath(prod.db, prod.remote_dir))
    before = digest(prod.db)
    command = f"cp {prod.db} {prod.remote_dir}/{name}"
    result = prod.run("backup", "--production", "--json",
                      env={"INVOKE_BACKUP_REMOTE_COMMAND": command})
    assert result.returncode == 0, result
    assert digest(prod.db) == before
    assert "could not record the checksum" in result.stderr
    assert result.json()["backup"]["name"] == name
    assert (prod.local_dir / name).is_file()  # verified here all the same
    assert tmp_leftovers(prod.remote_dir) == []


# ---------------------------------------------------------------- 4. the listing protocol

FAKE = "steps-2099-01-01T00-00-00.db"


def plant_hostile_files(folder: Path, real: list[str]) -> None:
    """Names and sidecar contents that forged, hid or broke entries before."""
    folder = os.fsencode(folder)
    names = [
        f"steps-\n{remote.ENTRY_MARK} {FAKE} 4096 {HEX} 1\n.db".encode(),
        f"steps-\n{remote.SENTINEL}=0\n.db".encode(),
        f"steps-\n{remote.STRATEGY_MARK}=none\n.db".encode(),
        f"steps-x.db {FAKE} 9 - 1 .db".encode(),
        b"steps-2098-01-01T00-00-00.db\xff.db",
        b"steps-\xff\xfe.db",
        "steps-２０９９-01-01T00-00-00.db".encode(),  # non-ASCII digits
    ]
    for name in names:
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(b"SQLite format 3\x00" + b"\x00" * 100)
    # sidecars of real backups: a forged line after, and bytes that are not UTF-8
    with open(os.path.join(folder, real[0].encode() + b".sha256"), "wb") as handle:
        handle.write(f"x\n{remote.ENTRY_MARK} {FAKE} 4096 {HEX} 1\n".encode())
    with open(os.path.join(folder, real[1].encode() + b".sha256"), "wb") as handle:
        handle.write(b"\xff\xfe" * 40 + f"\n{remote.RESULT_MARK} {{}}\n".encode())


def test_hostile_names_and_sidecars_cannot_forge_or_hide_listing_entries(prod):
    """Also item 10: non-UTF-8 bytes in names and sidecars never raise."""
    real = prod.seed(3, 2, 1)
    plant_hostile_files(prod.remote_dir, real)
    result, verified, status = run_deferred([
        prod.later("backup.list", "--production", "--json"),
        prod.later("backup.verify", "all", "--production", "--json"),
        prod.later("backup.status", "--production", "--json"),
    ])
    assert result.returncode == 0, result
    listed = {item["name"]: item for item in result.json()}
    assert sorted(listed) == real
    assert listed[real[0]]["sha256"] is None  # a broken record is no record
    assert listed[real[1]]["sha256"] is None
    assert listed[real[2]]["sha256"] == digest(prod.remote_dir / real[2])
    assert verified.returncode == 0, verified
    assert sorted(v["name"] for v in verified.json()) == real
    assert status.returncode == 0, status
    assert status.json()["count"] == 3 and status.json()["latest"]["name"] == real[-1]
    assert sorted(prod.flow()) == sorted([*RESOLVE] * 3 + ["ssh list"] * 3 + ["ssh verify"])


@pytest.mark.parametrize("strategy", ["python3", "sqlite3"])
def test_remote_retention_never_deletes_a_real_backup_because_of_hostile_files(
        tmp_path, strategy):
    backup, cleanup = make_prod(tmp_path / "backup"), make_prod(tmp_path / "cleanup")
    for prod in (backup, cleanup):
        remove_tools(prod, strategy)
    real = backup.seed(3, 2, 1)
    kept = cleanup.seed(3, 2, 1)
    for prod, names in ((backup, real), (cleanup, kept)):
        plant_hostile_files(prod.remote_dir, names)
    hostile = {p for p in os.listdir(os.fsencode(backup.remote_dir)) if b"\n" in p or b"\xff" in p}

    made, cleaned = run_deferred([
        backup.later("backup", "--production", "--keep", "2", "--json"),
        cleanup.later("backup.cleanup", "--production", "--keep", "1", "--json"),
    ])
    assert made.returncode == 0, made
    new = made.json()["backup"]["name"]
    assert real_backups(backup) == [real[-1], new]  # the newest two real ones
    assert [d["name"] for d in made.json()["retention"] if not d["keep"]] == real[1::-1]
    assert cleaned.returncode == 0, cleaned
    assert real_backups(cleanup) == [kept[-1]]
    assert hostile <= set(os.listdir(os.fsencode(backup.remote_dir)))  # never touched


def test_a_fifo_where_a_sidecar_should_be_is_no_record_and_never_blocks(prod):
    (name,) = prod.seed(1)
    for ext in (".sha256", ".json"):
        Path(f"{prod.remote_dir / name}{ext}").unlink()
        os.mkfifo(f"{prod.remote_dir / name}{ext}")
    listed, fetched = run_deferred([
        prod.later("backup.list", "--production", "--json", timeout=30),
        prod.later("backup.download", name, "--json", timeout=30),
    ])
    assert listed.returncode == 0, listed
    assert [(item["name"], item["sha256"]) for item in listed.json()] == [(name, None)]
    assert fetched.returncode == 0, fetched
    assert "no SHA-256 recorded" in fetched.stderr
    assert fetched.json()["recorded_sha256"] is None


def test_app_command_output_cannot_speak_the_protocol(prod):
    """What the app's own backup script prints never reaches the parser."""
    prod.world.remove_machine_tools("python3", "sqlite3")
    name = "steps-2026-01-02T03-04-05.db"
    forged = (f"printf '%s\\n' '{remote.ENTRY_MARK} after {FAKE}' '{remote.SENTINEL}=0' "
              f"'{remote.RESULT_MARK} {{\"ok\": true}}'")
    command = f"mkdir -p {prod.remote_dir} && cp {prod.db} {prod.remote_dir}/{name} && {forged}"
    result = prod.run("backup", "--production", "--json",
                      env={"INVOKE_BACKUP_REMOTE_COMMAND": command})
    assert result.returncode == 0, result
    assert result.json()["backup"]["name"] == name
    assert sftp_calls(prod.calls())[0][3] == f"{prod.remote_dir}/{name}"


@pytest.mark.parametrize("stdout", [
    f"{remote.SENTINEL}=0\n{remote.SENTINEL}=0\n",
    f"{remote.SENTINEL}=x\n",
    f"{remote.STRATEGY_MARK}=python3\n{remote.STRATEGY_MARK}=none\n{remote.SENTINEL}=0\n",
    f"{remote.RESULT_MARK} [1]\n{remote.SENTINEL}=0\n",
    f"{remote.RESULT_MARK} {{\"ok\": true}}\n{remote.RESULT_MARK} {{\"ok\": true}}\n"
    f"{remote.SENTINEL}=0\n",
    f"{remote.ENTRY_MARK}x\n{remote.SENTINEL}=0\n",
    f"{remote.SENTINEL}=\udcff\n",
])
def test_parse_output_refuses_marked_lines_it_did_not_expect(stdout):
    with pytest.raises(OpsError, match="did not print") as caught:
        remote.parse_output(stdout)
    assert caught.value.code == ExitCode.ERROR


def test_parse_output_reads_noise_around_the_marks():
    out = remote.parse_output(f"motd \udcff\n{remote.STRATEGY_MARK}=sqlite3\n"
                              f"{remote.ENTRY_MARK} a b\n\n{remote.SENTINEL}=3\n")
    assert (out.status, out.strategy, out.entries, out.result) == (3, "sqlite3", [["a", "b"]],
                                                                   None)


# ---------------------------------------------------------------- 6. one table, both strategies


def corrupt_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    pages = len(data) // 4096
    for number in range(pages // 3, pages // 3 + 6):  # garbage over middle b-tree pages
        data[number * 4096:(number + 1) * 4096] = bytes((number * 37 + i) % 251
                                                        for i in range(4096))
    path.write_bytes(bytes(data))


def source_case(prod: Prod, case: str) -> Path:
    """``db.remote_path`` for a backup case."""
    path = prod.root / "vol" / "case.db"
    if case == "healthy":
        return prod.db
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "no header":
        path.write_bytes(b"just some text, not a database\n" * 200)
    elif case == "corrupt":
        path.write_bytes(prod.db.read_bytes())
        corrupt_pages(path)
    return path


def backup_case(prod: Prod, case: str) -> str:
    """A backup name on the machine for a verify case."""
    (name,) = prod.seed(1)
    path = prod.remote_dir / name
    if case == "corrupt backup":
        corrupt_pages(path)  # with records that match it: only SQLite's check can tell
        Path(f"{path}.sha256").write_text(f"{digest(path)}  {name}\n")
        Path(f"{path}.json").write_text(json.dumps({"name": name, "sha256": digest(path)}))
    elif case == "changed after it was made":
        flip_bytes(path, path.read_bytes().index(b"User 150"), 4)
    elif case == "empty backup":
        path.write_bytes(b"")
        for ext in (".sha256", ".json"):
            Path(f"{path}{ext}").unlink()
    elif case == "backup without header":
        path.write_bytes(b"x" * 8192)
        for ext in (".sha256", ".json"):
            Path(f"{path}{ext}").unlink()
    elif case == "only NAME.json":  # the manifest's record counts on its own
        Path(f"{path}.sha256").unlink()
    elif case == "records that disagree":  # the file matches one of them
        Path(f"{path}.sha256").write_text(f"{HEX}  {name}\n")
    elif case == "no record":
        for ext in (".sha256", ".json"):
            Path(f"{path}{ext}").unlink()
    elif case == "records that are not ours":  # another file's, a symlink, a FIFO, junk
        Path(f"{path}.sha256").write_text(f"{digest(path)}  steps-2020-01-01T00-00-00.db\n")
        Path(f"{path}.json").unlink()
        Path(f"{path}.json").symlink_to(f"{name}.sha256")
    elif case == "a manifest without its size, a sidecar with a NUL":
        Path(f"{path}.json").write_text(json.dumps({"name": name, "sha256": digest(path)}))
        Path(f"{path}.sha256").write_bytes(f"{digest(path)}  {name}\x00\n".encode())
    elif case == "directory named like a backup":
        for ext in ("", ".sha256", ".json"):
            Path(f"{path}{ext}").unlink()
        path.mkdir()
    return name


CASES = [  # task, case, exit code, words in the one error line
    ("backup", "healthy", ExitCode.OK, ""),
    ("backup", "missing", ExitCode.NOT_FOUND, "database not found"),
    ("backup", "directory", ExitCode.USAGE, "is a directory"),
    ("backup", "empty", ExitCode.VERIFY_FAILED, "is not a SQLite database"),
    ("backup", "no header", ExitCode.VERIFY_FAILED, "is not a SQLite database"),
    ("backup", "corrupt", ExitCode.VERIFY_FAILED, "integrity_check"),
    ("verify", "sound backup", ExitCode.OK, ""),
    ("verify", "corrupt backup", ExitCode.VERIFY_FAILED, "failed verification"),
    ("verify", "changed after it was made", ExitCode.VERIFY_FAILED, "SHA-256 mismatch"),
    ("verify", "empty backup", ExitCode.VERIFY_FAILED, "is not a SQLite database"),
    ("verify", "backup without header", ExitCode.VERIFY_FAILED, "is not a SQLite database"),
    ("verify", "directory named like a backup", ExitCode.NOT_FOUND, "no backup named"),
    ("verify", "only NAME.json", ExitCode.OK, ""),
    ("verify", "records that disagree", ExitCode.VERIFY_FAILED, "the records disagree"),
    ("verify", "no record", ExitCode.VERIFY_FAILED, "unverifiable"),
    ("verify", "records that are not ours", ExitCode.VERIFY_FAILED, "unverifiable"),
    ("verify", "a manifest without its size, a sidecar with a NUL", ExitCode.VERIFY_FAILED,
     "unverifiable"),
]


@pytest.mark.parametrize(("task", "case", "code", "words"), CASES,
                         ids=[f"{task}-{case}" for task, case, *_ in CASES])
def test_python3_and_sqlite3_strategies_agree(tmp_path, task, case, code, words):
    """The same input gives the same outcome and exit code with either tool on the machine."""
    prods = {strategy: make_prod(tmp_path / strategy) for strategy in ("python3", "sqlite3")}
    remove_tools(prods["sqlite3"], "sqlite3")
    runs, names = [], {}
    for strategy, prod in prods.items():
        if task == "backup":
            env = {"INVOKE_DB_REMOTE_PATH": str(source_case(prod, case))}
            runs.append(prod.later("backup", "--production", "--json", env=env))
        else:
            names[strategy] = backup_case(prod, case)
            runs.append(prod.later("backup.verify", names[strategy], "--production", "--json"))
    results = dict(zip(prods, run_deferred(runs), strict=True))
    for strategy, result in results.items():
        prod = prods[strategy]
        if code == ExitCode.OK:
            assert result.returncode == 0, (strategy, result)
        else:
            assert_error(result, code, contains=words)
        if task == "backup":
            made = [p for p in prod.remote_dir.glob("steps-*.db")] if prod.remote_dir.exists() \
                else []
            assert len(made) == (1 if code == ExitCode.OK else 0), (strategy, result)
            if prod.remote_dir.exists():
                assert tmp_leftovers(prod.remote_dir) == []
            if code == ExitCode.OK:
                assert result.json()["backup"]["strategy"] == strategy
        elif isinstance(result.json(), dict):  # a failure before any verdict (review-ox 7)
            assert result.json()["exit_code"] == code, (strategy, result)
        else:
            (verdict,) = result.json()
            assert verdict["ok"] is (code == ExitCode.OK), (strategy, verdict)
    if task == "verify" and isinstance(results["python3"].json(), list):
        python3, sqlite3 = (results[s].json()[0] for s in ("python3", "sqlite3"))
        if case != "corrupt backup":  # there each tool words SQLite's complaint its own way
            def same(strategy, verdict):  # the same words, but for the folder and the time
                return [p.replace(str(prods[strategy].root), "").replace(names[strategy], "N")
                        for p in verdict["problems"]]

            assert same("python3", python3) == same("sqlite3", sqlite3)
        assert (python3["sha256"], python3["recorded_sha256"], python3["size"]) == (
            sqlite3["sha256"], sqlite3["recorded_sha256"], sqlite3["size"])


# ---------------------------------------------------------------- 7. read-only check, one lock

FAKE_SQLITE3 = """#!/bin/sh
# the real sqlite3, except that whatever a .backup wrote is then {what}
{real} "$@"; rc=$?
for arg in "$@"; do
  case $arg in .backup*) t=${{arg#.backup \\'}}; t=${{t%\\'}}; {action};; esac
done
exit $rc
"""


@pytest.mark.parametrize("what", ["removed", "emptied"])
def test_sqlite3_strategy_never_publishes_a_file_it_cannot_read_back(prod, what):
    real = prod.world.machine_bin_dir("e2865013c41e86") / "sqlite3"
    real_target = os.path.realpath(real)
    fake = prod.root / "fake-sqlite3"
    action = 'rm -f "$t"' if what == "removed" else ': > "$t"'
    fake.write_text(FAKE_SQLITE3.format(what=what, real=real_target, action=action))
    fake.chmod(0o755)
    prod.world.remove_machine_tools("python3")
    prod.world.add_machine_tool("sqlite3", fake)
    result = prod.run("backup", "--production")
    assert_error(result, ExitCode.VERIFY_FAILED, contains="the new backup")
    assert helpers.backup_files(prod.root / "vol") == []
    assert tmp_leftovers(prod.remote_dir) == []
    assert prod.flow() == [*RESOLVE, "ssh backup"]


def test_one_lock_protocol_a_sqlite3_backup_holds_off_the_engine(prod):
    """The CLI strategy's lock is the engine's: flock on ``.backup.lock``."""
    prod.remote_dir.mkdir(parents=True)
    script = remote.wrap(f"{remote.PRELUDE}\ntake_lock {prod.remote_dir} 0\n"
                         "echo held; sleep 30")
    holder = subprocess.Popen(shlex.split(script), stdout=subprocess.PIPE, text=True,
                              env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    try:
        assert holder.stdout.readline().strip() == "held"
        helpers.wait_for(lambda: (prod.remote_dir / engine.LOCK_NAME).exists())
        with pytest.raises(engine.EngineError, match="holds the lock"), \
                engine.backup_lock(prod.remote_dir):
            pass
        result = prod.run("backup", "--production")  # the python3 strategy, on the machine
        assert_error(result, ExitCode.LOCKED, contains="another backup")
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------- 8. downloads


def test_download_refuses_a_backup_that_no_longer_matches_its_record(tmp_path):
    changed, json_only, disagree = (make_prod(tmp_path / label)
                                    for label in ("changed", "json", "disagree"))
    for prod in (changed, json_only):
        (name,) = prod.seed(1)
        path = prod.remote_dir / name
        flip_bytes(path, path.read_bytes().index(b"User 150"), 4)  # still a sound database
    (json_only.remote_dir / f"{name}.sha256").unlink()  # the manifest's record still counts
    (other,) = disagree.seed(1)
    (disagree.remote_dir / f"{other}.sha256").write_text(f"{HEX}  {other}\n")
    results = run_deferred(prod.later("backup.download", "latest", "--json")
                           for prod in (changed, json_only, disagree))
    for prod, result in zip((changed, json_only, disagree), results, strict=True):
        assert_error(result, ExitCode.VERIFY_FAILED, contains="not downloaded")
        assert result.json()["exit_code"] == ExitCode.VERIFY_FAILED  # only the error
        assert prod.local_files() == []  # nothing kept, not even a temporary
        assert sftp_calls(prod.calls()) == []
    assert "SHA-256 mismatch" in results[0].error_lines[-1]
    assert "records disagree" in results[2].error_lines[-1]


def test_download_of_a_backup_without_a_record_warns_that_it_is_unverifiable(prod):
    (name,) = prod.seed(1, sidecars=False)
    result = prod.run("backup.download", name, "--json")
    assert result.returncode == 0, result
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "no SHA-256 recorded" in warnings[0], result.stderr
    assert result.json()["recorded_sha256"] is None
    assert (prod.local_dir / name).is_file()


def test_download_is_private_while_it_downloads_and_holds_the_folders_lock(prod):
    """flyctl writes 0644: the file is made inside a 0700 folder, under its folder's lock
    (backup.dir/fly-<app>, the app's downloads' own folder): a local backup started
    meanwhile runs in backup.dir beside it and sweeps nothing of it."""
    names = prod.seed(1)
    helpers.make_wal_db(prod.cwd / "local-db" / "steps.db")
    local_env = {"INVOKE_DB_PATH": str(prod.cwd / "local-db" / "steps.db")}
    prod.world.hang(["ssh", "sftp", "get"], seconds=6)
    run = helpers.start_invoke("backup.download", names[0], "--json", cwd=prod.cwd,
                               env=prod.env)
    helpers.wait_for(lambda: sftp_calls(prod.calls()), timeout=30, what="the sftp call")
    private = Path(sftp_calls(prod.calls())[0][4]).parent
    modes = (stat.S_IMODE(prod.local_dir.stat().st_mode), stat.S_IMODE(private.stat().st_mode))
    local = prod.run("backup", env=local_env)
    swept = not private.exists()
    done = run.finish()
    assert modes == (0o700, 0o700)
    assert private.parent == prod.local_dir
    assert local.returncode == 0 and not swept, local
    assert done.returncode == 0, done
    assert (prod.local_dir / names[0]).is_file()
    assert stat.S_IMODE((prod.local_dir / names[0]).stat().st_mode) == 0o600
    assert not private.exists()


def test_remote_retention_runs_under_the_machines_backup_lock(prod):
    names = prod.seed(3, 2, 1)
    with helpers.lock_held_elsewhere(prod.remote_dir, prod.root):
        result = prod.run("backup.cleanup", "--production", "--keep", "1")
    assert_error(result, ExitCode.LOCKED, contains="another backup holds the lock")
    assert prod.remote_backups() == names
    assert prod.flow() == [*RESOLVE, "ssh list", "ssh verify", "ssh delete"]
