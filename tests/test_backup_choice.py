"""Which backup a task picks (issue 16 #2-4, #10, #13): a restore's safety backup is never
`latest`, another database's backups never mix with the app's, a backup dated ahead is
never `latest` anywhere, and a restore holds its folder from the check to the end.

Through the real CLI, with real WAL databases, the flyctl double, real concurrent
processes and real signals.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops import engine
from tests import helpers
from tests.fake_production import days_ago, make_prod, run_deferred, use_engine
from tests.helpers import change, content

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

IGNORED = (".backup.lock", ".restore.lock")


def audit(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- 2. a retried restore


def test_a_retried_local_restore_never_puts_back_what_it_replaced(
        tmp_path, wal_db, backup_dir, run_invoke):
    made = engine.create_backup(wal_db, backup_dir)
    change(wal_db)
    bad = content(wal_db)

    first = run_invoke("restore", "--yes", "--json")
    assert first.returncode == 0, first
    safety = first.json()["safety_backup"]["name"]
    retried = run_invoke("restore", "--yes", "--json")  # as anyone does after a doubt

    assert retried.returncode == 0, retried
    assert retried.json()["backup"]["name"] == made.name  # never the safety backup
    assert content(wal_db) == engine.describe_file(made.path)[1] != bad
    # the safety backup says what it is and which restore made it
    listed = {item["name"]: item for item in run_invoke("backup.list", "--json").json()}
    assert listed[safety]["kind"] == "safety" and not listed[safety]["latest_may_name"]
    assert listed[safety]["restore"]["backup"] == made.name
    assert listed[safety]["restore"]["when"] == first.json()["when"]
    assert listed[made.name]["kind"] == "backup" and listed[made.name]["latest_may_name"]
    table = run_invoke("backup.list")
    assert f"safety: {safety} is the copy a restore made" in table.stderr, table
    assert f"invoke restore {safety} --yes" in table.stderr
    # every task that says `latest` means the same backup
    drill, verify, status, plan = helpers.run_mixed([
        functools.partial(run_invoke, "backup.drill", "--json"),
        functools.partial(run_invoke, "backup.verify", "latest", "--json"),
        functools.partial(run_invoke, "backup.status", "--json"),
        functools.partial(run_invoke, "restore", "--dry-run", "--json"),
    ])
    assert drill.json()["name"] == made.name, drill
    assert [item["name"] for item in verify.json()] == [made.name], verify
    assert status.json()["latest"]["name"] == made.name, status
    assert set(status.json()["safetyBackups"]) >= {safety}
    assert plan.json()["backup"] == made.name and f"latest is {made.name}" in plan.stderr
    # and the undo still works: a safety backup is restored when named
    undo = run_invoke("restore", safety, "--yes", "--json")
    assert undo.returncode == 0, undo
    assert content(wal_db) == bad


@pytest.mark.parametrize("tools", ["python3", "sqlite3", "node"])
def test_retrying_a_production_restore_after_a_slow_health_restores_the_backup_again(
        slow_health_prod, tools):
    prod = slow_health_prod
    use_engine(prod, tools)  # node: the app's own image, no python3 or sqlite3
    made = engine.create_backup(prod.db, prod.remote_dir)
    change(prod.db)
    bad = content(prod.db)

    first = prod.run("restore", "--production", "--yes", "--json")
    assert first.returncode == 14, first  # restored, but /health was slow
    safety = first.json()["safety_backup"]["name"]
    retried = prod.run("restore", "--production", "--yes", "--json")

    assert retried.returncode == 14, retried
    assert retried.json()["backup"]["name"] == made.name != safety
    # never the pre-restore data
    assert content(prod.db) == engine.describe_file(made.path)[1] != bad
    record = json.loads((prod.remote_dir / f"{safety}.json").read_text())
    assert record["kind"] == "safety" and record["restore"]["backup"] == made.name
    listed = {i["name"]: i for i in prod.run("backup.list", "--production", "--json").json()}
    assert listed[safety]["kind"] == "safety" and not listed[safety]["latest_may_name"]
    drill = prod.run("backup.drill", "--production", "--json")
    assert drill.json()["name"] == made.name, drill


def test_a_retried_restore_over_ssh_restores_the_backup_again(host, run_invoke):
    db, folder, env, addr = host["db"], host["dir"], host["env"], host["addr"]
    made = engine.create_backup(db, folder)
    change(db)
    for _ in range(2):
        result = run_invoke("restore", "--host", addr, "--yes", "--json", env=env)
        assert result.returncode == 0, result
        assert result.json()["backup"]["name"] == made.name
    assert content(db) == engine.describe_file(made.path)[1]
    assert run_invoke("backup.status", "--host", addr, "--json",
                      env=env).json()["latest"]["name"] == made.name


# ---------------------------------------------------------------- 3. sources


def test_another_databases_backups_never_touch_the_apps(tmp_path, wal_db, backup_dir,
                                                         run_invoke):
    """`backup --db OTHER --keep 2`, twice, removed every backup of the app's database
    and `restore latest` then put OTHER over it."""
    ours = []
    for _ in range(3):
        ours.append(engine.create_backup(wal_db, backup_dir).name)
        time.sleep(1.01)
    other = helpers.make_wal_db(tmp_path / "other.db", users=5, steps=10)
    for _ in range(2):
        result = run_invoke("backup", "--db", str(other), "--keep", "2", "--json")
        assert result.returncode == 0, result
        time.sleep(1.01)
    assert [item.name for item in engine.list_backups(backup_dir)] == ours  # all still here
    change(wal_db)
    restored = run_invoke("restore", "--yes", "--json")
    assert restored.returncode == 0, restored
    assert restored.json()["backup"]["name"] == ours[-1]
    assert engine.count_rows(wal_db, live=True)["steps"] == 3000  # the app's, not OTHER's


def test_a_folder_that_already_mixes_sources_keeps_them_apart(tmp_path, wal_db, backup_dir,
                                                              run_invoke):
    """Backups made before sources had folders of their own: another database's and a
    download from production in the app's folder are never latest, counted or pruned."""
    ours = engine.create_backup(wal_db, backup_dir)
    time.sleep(1.01)
    other = engine.create_backup(helpers.make_wal_db(tmp_path / "other.db", steps=10),
                                 backup_dir)
    time.sleep(1.01)
    downloaded = engine.create_backup(wal_db, backup_dir)  # recorded as the old downloads did
    record = backup_dir / f"{downloaded.name}.json"
    record.write_text(json.dumps(json.loads(record.read_text())
                                 | {"source": f"step-app:/data/backups/{downloaded.name}",
                                    "strategy": "download"}))
    status, plan, cleanup = helpers.run_mixed([  # in this order: cleanup last
        functools.partial(run_invoke, "backup.status", "--json"),
        functools.partial(run_invoke, "restore", "--dry-run", "--json"),
        functools.partial(run_invoke, "backup.cleanup", "--keep", "1", "--json"),
    ])
    assert status.json()["latest"]["name"] == ours.name and status.json()["count"] == 1
    assert status.json()["otherSources"] == 2
    assert plan.json()["backup"] == ours.name
    assert cleanup.returncode == 0, cleanup
    assert [d["name"] for d in cleanup.json()["decisions"]] == [ours.name]
    assert {item.name for item in engine.list_backups(backup_dir)} == {
        ours.name, other.name, downloaded.name}
    listed = run_invoke("backup.list")
    assert listed.stderr.count("other db") == 3, listed  # two rows and the legend line
    assert "other db: made from another database than " in listed.stderr, listed


def test_a_folder_moved_with_its_database_keeps_its_backups(tmp_path, run_invoke):
    """The recorded source is read relative to where the record says the folder was:
    a renamed project is still one database."""
    old = tmp_path / "old"
    made = engine.create_backup(helpers.make_wal_db(old / "data" / "steps.db"),
                                old / "data" / "backups")
    (old).rename(tmp_path / "new")
    result = run_invoke("backup.status", "--json", cwd=tmp_path / "new")
    assert result.json()["latest"]["name"] == made.name, result


def test_a_download_lands_in_the_hosts_own_folder_not_the_local_latest(fly_world, tmp_path):
    prod = make_prod(tmp_path, fly_world)
    local_db = helpers.make_wal_db(prod.cwd / "data" / "steps.db")
    ours = engine.create_backup(local_db, prod.local_dir.parent)
    time.sleep(1.01)
    remote = engine.create_backup(prod.db, prod.remote_dir)
    fetched = prod.run("backup.download", "latest", "--json")
    assert fetched.returncode == 0, fetched
    assert Path(fetched.json()["path"]).parent == prod.local_dir  # backup.dir/fly-<app>
    status = prod.run("backup.status", "--json")
    assert status.json()["latest"]["name"] == ours.name != remote.name


# ---------------------------------------------------------------- 4. dated ahead, on Fly


def test_on_fly_latest_is_never_a_backup_dated_in_the_future(fly_world, tmp_path):
    prod = make_prod(tmp_path, fly_world)
    (real,) = prod.seed(1)
    ahead = engine.backup_name(days_ago(-2))  # a clock that ran two days ahead
    source = prod.remote_dir / real
    for suffix in ("", ".sha256", ".json"):
        text = Path(f"{source}{suffix}").read_bytes().replace(real.encode(), ahead.encode())
        Path(f"{prod.remote_dir / ahead}{suffix}").write_bytes(text)
    plan, drill, verify, download = run_deferred([
        prod.later("restore", "--production", "--dry-run", "--json"),
        prod.later("backup.drill", "--production", "--json"),
        prod.later("backup.verify", "latest", "--production", "--json"),
        prod.later("backup.download", "latest", "--json"),
    ])
    assert plan.json()["backup"] == real, plan
    assert drill.json()["name"] == real, drill
    assert [item["name"] for item in verify.json()] == [real], verify
    assert download.json()["name"] == real, download


# ---------------------------------------------------------------- 10. a concurrent cleanup


def test_a_cleanup_during_a_restore_cannot_remove_the_chosen_backup(tmp_path, wal_db,
                                                                   backup_dir, run_invoke):
    """The restore holds the folder's backup lock from the chosen backup's check to the
    end: a real `backup.cleanup --keep 1`, run while the restore waits for its answer,
    is refused (exit 4, naming the holder) instead of deleting the backup under it."""
    chosen = engine.create_backup(wal_db, backup_dir)
    time.sleep(1.01)
    engine.create_backup(wal_db, backup_dir)
    change(wal_db)
    proc, read = on_a_terminal(["restore", chosen.name], tmp_path)
    try:
        read(until="Type yes")
        cleanup = run_invoke("backup.cleanup", "--keep", "1")
        assert cleanup.returncode == 4, cleanup
        assert "a restore holds the lock" in cleanup.stderr
        assert (backup_dir / chosen.name).exists()
        proc.answer("yes")
        shown = read(until=None)
    finally:
        proc.finish()
    assert proc.returncode == 0, shown
    assert content(wal_db) == engine.describe_file(chosen.path)[1]
    line = audit(tmp_path / "data" / "deploys.jsonl")[-1]
    assert line["outcome"] == "ok" and line["backup"]["name"] == chosen.name


# ---------------------------------------------------------------- 13. SIGTERM


def test_sigterm_at_the_question_records_it_and_says_nothing_changed(tmp_path, wal_db,
                                                                    backup_dir):
    made = engine.create_backup(wal_db, backup_dir)
    before = content(wal_db)
    proc, read = on_a_terminal(["restore"], tmp_path)
    try:
        read(until="Type yes")
        proc.popen.send_signal(signal.SIGTERM)
        shown = read(until=None)
    finally:
        proc.finish()
    assert proc.returncode == 143, shown
    assert "Traceback" not in shown
    # as every task's prompt ends (tests/test_prompt_signals.py; review-op s21 #7): one
    # line of its own, not glued to the prompt's, no `--yes` to run it again
    assert "Type yes to go on: \nError: terminated by SIGTERM at the prompt; not " \
        "confirmed; nothing was changed\n" in shown, shown
    assert "--yes" not in shown and made.name in shown
    assert content(wal_db) == before
    (line,) = audit(tmp_path / "data" / "deploys.jsonl")  # recorded once
    assert (line["outcome"], line["exit_code"]) == ("not confirmed", 143)


def test_sigterm_while_the_restore_waits_for_the_app_leaves_an_honest_record(
        tmp_path, wal_db, backup_dir):
    """The app holds its write lock; the restore has made its safety backup and waits.
    A real SIGTERM (a cancelled CI job): exit 143, the audit line says so, and the lines
    printed say how to finish by hand with the safety backup's name."""
    made = engine.create_backup(wal_db, backup_dir)
    change(wal_db)
    before = content(wal_db)
    with helpers.app_holds_write_lock(wal_db):
        argv = [sys.executable, "-m", "invoke", "--search-root", str(helpers.REPO_ROOT),
                "restore", made.name, "--yes", "--busy-timeout", "50"]
        proc = subprocess.Popen(argv, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=helpers.clean_env(helpers.project_root(tmp_path, None)))
        shown = ""
        for line in proc.stderr:  # each step's line comes when it ends
            shown += line
            if "for the app's write lock" in line:  # said from inside the copy's wait
                break
        assert "safety backup of" in shown, shown  # the safety backup came first
        proc.send_signal(signal.SIGTERM)
        shown += proc.stderr.read()
        proc.wait(timeout=30)
    assert proc.returncode == 143, shown
    assert "Traceback" not in shown
    line = audit(tmp_path / "data" / "deploys.jsonl")[-1]
    assert line["exit_code"] == 143 and line["outcome"] in (
        "terminated by SIGTERM", "not restored"), line  # proven unchanged: not restored
    assert line["outcome"] == "terminated by SIGTERM" or line["interrupted"] == "SIGTERM"
    safety = line["safety_backup"]["name"]
    assert f"invoke restore {safety} --yes" in shown or "not changed" in shown, shown
    assert f"invoke restore {made.name} --yes" in shown
    assert content(wal_db) == before  # the app's lock held: nothing was written


# ---------------------------------------------------------------- helpers


class Terminal:
    def __init__(self, popen, leader):
        self.popen, self.leader = popen, leader

    @property
    def returncode(self):
        return self.popen.returncode

    def answer(self, text: str) -> None:
        os.write(self.leader, text.encode() + b"\n")

    def finish(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)
        os.close(self.leader)


def on_a_terminal(args: list[str], cwd: Path):
    """The real CLI on a pseudo-terminal, and ``read(until=TEXT)``: what it showed until
    TEXT appeared (None: until it exits)."""
    import select

    leader, follower = os.openpty()
    popen = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(helpers.REPO_ROOT), *args],
        cwd=cwd, env=helpers.clean_env(helpers.project_root(cwd, None)), close_fds=True,
        stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    term = Terminal(popen, leader)
    shown = []

    def read(until: str | None, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until is not None and until in "".join(shown):
                break
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                shown.append(chunk.decode(errors="replace"))
            elif popen.poll() is not None and until is None:
                break
        if until is None:
            popen.wait(timeout=30)
        return "".join(shown).replace("\r\n", "\n")

    return term, read


# ---------------------------------------------------------------- 14. old npm backups


def test_drill_verify_and_restore_agree_on_an_npm_backup_until_it_is_adopted(
        tmp_path, wal_db, backup_dir, run_invoke):
    """An npm backup (no records): verify, drill and restore all refuse it as
    unverifiable, each naming `invoke backup.adopt NAME`; once adopted all three pass."""
    old = helpers.old_script_backup(backup_dir, days_ago(3), wal_db)
    change(wal_db)
    verify, drill, restore, listed = helpers.run_parallel([
        lambda: run_invoke("backup.verify", "all"),
        lambda: run_invoke("backup.drill", old.name, "--json"),
        lambda: run_invoke("restore", old.name, "--yes"),
        lambda: run_invoke("backup.list"),
    ])
    for result in (verify, drill, restore):
        line = helpers.assert_one_line_error(result, 5, strict=False)
        assert "unverifiable" in line and f"invoke backup.adopt {old.name}" in line, result
    assert "✗ drill" in drill.stderr and "unverifiable" in drill.stderr
    assert "invoke backup.adopt NAME" in listed.stderr

    dry = run_invoke("backup.adopt", "all", "--dry-run", "--json")
    assert dry.returncode == 0, dry
    assert [(v["name"], v["ok"], v["adopted"]) for v in dry.json()["adopted"]] == [
        (old.name, True, False)]
    assert not Path(f"{old}.json").exists()  # a dry run writes nothing

    adopted = run_invoke("backup.adopt", "all", "--json")
    assert adopted.returncode == 0, adopted
    assert [(v["name"], v["adopted"]) for v in adopted.json()["adopted"]] == [(old.name, True)]
    record = json.loads(Path(f"{old}.json").read_text())
    assert record["kind"] == "adopted" and record["check"] == "integrity"
    assert record["adopted"]["by"] and record["adopted"]["when"].endswith("Z")
    assert record["sha256"] == helpers.sha256(old)
    again = run_invoke("backup.adopt", "all")  # nothing left to adopt
    assert again.returncode == 0 and "nothing to adopt" in again.stderr, again

    verify, drill = helpers.run_parallel([
        lambda: run_invoke("backup.verify", "all"),
        lambda: run_invoke("backup.drill", old.name, "--json"),
    ])
    assert verify.returncode == 0, verify
    assert drill.returncode == 0 and drill.json()["ok"], drill
    restore = run_invoke("restore", old.name, "--yes")
    assert restore.returncode == 0, restore
    assert engine.count_rows(wal_db, live=True)["steps"] == 3000


def test_adopt_refuses_a_damaged_backup_and_a_planted_record(tmp_path, wal_db, backup_dir,
                                                              run_invoke):
    bad = helpers.old_script_backup(backup_dir, days_ago(2), wal_db)
    helpers.break_an_index(bad)
    planted = helpers.old_script_backup(backup_dir, days_ago(1), wal_db)
    Path(f"{planted}.json").symlink_to(wal_db)  # never written through
    recorded = engine.create_backup(wal_db, backup_dir)
    result = run_invoke("backup.adopt", "all", "--json")
    line = helpers.assert_one_line_error(result, 5, strict=False)
    assert "2 of 2 backups not adopted" in line
    verdicts = {v["name"]: v for v in result.json()["adopted"]}
    assert set(verdicts) == {bad.name, planted.name}  # the recorded one is not touched
    assert "integrity_check failed" in verdicts[bad.name]["problem"]
    assert "exists but is not a usable record" in verdicts[planted.name]["problem"]
    assert not Path(f"{bad}.json").exists() and not Path(f"{bad}.sha256").exists()
    assert Path(f"{planted}.json").is_symlink() and engine.count_rows(wal_db)["steps"] == 3000
    one = run_invoke("backup.adopt", recorded.name)
    helpers.assert_one_line_error(one, 2, contains="already has a checksum record")


def test_adopt_on_production(fly_world, tmp_path):
    prod = make_prod(tmp_path, fly_world)
    (old,) = prod.seed(2, sidecars=False)
    refused = prod.run("restore", old, "--production", "--yes")
    line = helpers.assert_one_line_error(refused, 5, strict=False)
    assert f"invoke backup.adopt {old} --production" in line
    result = prod.run("backup.adopt", old, "--production", "--json")
    assert result.returncode == 0, result
    record = json.loads((prod.remote_dir / f"{old}.json").read_text())
    assert record["kind"] == "adopted"
    drill = prod.run("backup.drill", old, "--production", "--json")
    assert drill.returncode == 0 and drill.json()["ok"], drill
    listed = {i["name"]: i for i in prod.run("backup.list", "--production", "--json").json()}
    assert listed[old]["kind"] == "adopted" and listed[old]["latest_may_name"]


def test_adopt_on_a_machine_without_python3_changes_nothing(fly_world, tmp_path):
    """Its records carry the engine's content hash (what a drill compares): python3 only."""
    prod = make_prod(tmp_path, fly_world)
    prod.world.remove_machine_tools("python3")
    (old,) = prod.seed(2, sidecars=False)
    result = prod.run("backup.adopt", old, "--production", "--json")
    helpers.assert_one_line_error(result, 2, contains="needs python3", strict=False)
    assert not (prod.remote_dir / f"{old}.json").exists()


def test_adopt_over_ssh(host, run_invoke):
    db, folder, env, addr = host["db"], host["dir"], host["env"], host["addr"]
    old = helpers.old_script_backup(folder, days_ago(1), db)
    refused = run_invoke("backup.verify", "all", "--host", addr, env=env)
    line = helpers.assert_one_line_error(refused, 5, strict=False)
    assert f"invoke backup.adopt {old.name} --host {addr}" in line
    adopted = run_invoke("backup.adopt", "all", "--host", addr, "--json", env=env)
    assert adopted.returncode == 0, adopted
    assert json.loads(Path(f"{old}.json").read_text())["kind"] == "adopted"
    assert run_invoke("backup.verify", "all", "--host", addr, env=env).returncode == 0


@pytest.mark.parametrize("text", [
    '{"name": "N", "kind": "safety", "source": "/d/steps.db", "tables": {"a": 1',  # cut
    '{"kind": "safety", "x": ' + "[" * 20000 + "]" * 20000 + "}",  # too deep to parse
])
def test_a_record_that_does_not_parse_still_marks_a_safety_backup(tmp_path, text):
    """Read like the machine's listing reads it: a damaged record errs towards "not
    latest", never towards naming a restore's safety backup as the newest."""
    made = engine.create_backup(helpers.make_wal_db(tmp_path / "steps.db"), tmp_path / "b")
    Path(tmp_path / "b" / f"{made.name}.json").write_text(text.replace("N", made.name))
    (found,) = engine.list_backups(tmp_path / "b")
    assert found.kind == "safety"
    with pytest.raises(engine.EngineError, match="a restore's safety backup"):
        engine.resolve_backup(tmp_path / "b", "latest")


def test_a_planted_symlink_at_a_sources_folder_is_refused(fly_world, tmp_path, wal_db):
    """`backup.dir/fly-<app>` (or `db-…`) as a symlink would send backups elsewhere."""
    prod = make_prod(tmp_path / "p", fly_world)
    remote = engine.create_backup(prod.db, prod.remote_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    prod.local_dir.parent.mkdir(parents=True)
    prod.local_dir.symlink_to(elsewhere)
    fetched = prod.run("backup.download", remote.name)
    helpers.assert_one_line_error(fetched, 2, contains="is not a folder this tool made",
                                  strict=False)
    assert list(elsewhere.iterdir()) == []
