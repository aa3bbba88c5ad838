"""What a deploy, a backup and a listing print (issue 9 #7, #8, #10): one line per step,
children under their parent, a short summary, lines that fit an 80-column terminal and
never wrap in a log; the dry run's real commands and its warnings; an emergency-stopped
machine is never deployed to.

Terminal runs use a real pseudo-terminal of 80 columns (``TTY_INTERACTIVE=0``: Rich
then draws no spinner, so what the terminal shows is the lines themselves)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from ops.errors import ExitCode
from ops.ui import UI, command_lines
from tests import helpers
from tests.fake_production import APP, MID, VOL, error_line
from tests.fake_production import DEPLOY_READS as READS
from tests.flyctl_double import IMAGE_V12
from tests.helpers import run_parallel

# each test's first CLI run is a process, its later ones in-process (helpers.HERE_AFTER_FIRST)
pytestmark = pytest.mark.cli_in_process(per="module")

WHOLE_NAME = re.compile(r"steps-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.db")  # never cut
STYLE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_terminal(cwd, args: list[str], env: dict, columns: int = 80) -> tuple[int, list[str]]:
    """The real CLI with stderr on an 80-column pseudo-terminal; the lines it showed."""
    code, shown = helpers.on_terminal(args, cwd=cwd, env=env, streams=("stderr",),
                                      columns=columns)
    return code, STYLE.sub("", shown).splitlines()


def top_level(stderr: str) -> list[str]:
    """The lines a step or the summary starts with (no indentation)."""
    return [line for line in stderr.splitlines() if line and not line.startswith(" ")]


# ---------------------------------------------------------------- one line per step (#8)


def test_a_deploy_prints_each_step_once_children_under_their_parent_then_a_summary(site):
    result = site.run("deploy")
    assert result.returncode == 0, result
    lines = result.stderr.splitlines()
    duration = r" \((\d+\.\ds|\d+s|\d+m\d\ds)\)$"
    expected = [
        r"✓ locked on this computer  .*/\.deploy-step-app-4x-yhw\.lock" + duration,
        r"▸ preflight$",
        rf"✓ preflight ok  release v12 is live  machine {MID}, volume {VOL}" + duration,
        r"✓ locked on the machine  .*/vol/\.ops-deploy\.lock" + duration,
        r"▸ backup on the machine$",
        r"✓ backup (steps-\S+\.db) published \(quick_check ok, sha256 [0-9a-f]{12}\); "
        r"integrity_check next, beside the snapshot" + duration,
        r"▸ volume snapshot$",
        # the full check may still run when the snapshot is done: its own line says the end
        r"✓ snapshot (vs_\w+) created; integrity_check "
        # its own time in words, so the line ends with one "(…s)", the step's (review-op s26 #8)
        r"(ok in [\d.]+s|running on the machine for [\d.]+s so far)" + duration,
        r"✓ full check  integrity_check ok, SHA-256 matches, in [\d.]+s beside the snapshot"
        + duration,
        r"▸ fly deploy$",
        r"✓ deployed release v13" + duration,
        r"✓ healthy  200 after \d+ poll\(s\), reports steps-\S+\.db" + duration,
        r"▸ data guard$",  # it finds the machine again first (a child line) for both
        r"✓ data  \d+ tables against steps-\S+\.db: 0 changed, 0 schema changes" + duration,
        r"✓ released the machine's deploy lock" + duration,
        rf"deploy of {APP}: ok in [\d.ms]+$",
    ]
    shown = top_level(result.stderr)
    assert len(shown) == len(expected), result.stderr
    for pattern, line in zip(expected, shown, strict=True):
        assert re.match(pattern, line), (pattern, line)
    record = site.audit()[0]

    # children: indented, right under their parent's "▸" line, before its own line
    def under(parent: str, closing: str) -> list[str]:
        start, end = lines.index(parent), next(
            i for i, line in enumerate(lines) if line.startswith(closing))
        assert start < end, result.stderr
        return lines[start + 1:end]

    assert ["  " + line.strip().split("  ")[0]
            for line in under("▸ backup on the machine", "✓ backup ")] == [
        f"  ✓ backup {record['backup']['name']}", "  ✓ retention keep 10"]
    snap = record["snapshot"]["id"]
    children = [re.sub(duration, "", line) for line in under("▸ volume snapshot", "✓ snapshot")]
    assert children[0] == f"  ✓ snapshot of {VOL} requested"  # then the wait, its lines
    assert children[-1].startswith(f"  ✓ snapshot {snap} created  196.1 MB"), children
    assert under("▸ preflight", "✓ preflight")[0].startswith(f"  ✓ found machine {MID} (")
    assert under("▸ data guard", "✓ data")[0].startswith(f"  ✓ found machine {MID} (")
    flyctl = under("▸ fly deploy", "✓ deployed")  # flyctl's own output, under its step
    assert "  Visit your newly deployed app at https://step-app-4x-yhw.fly.dev/" in flyctl

    # the summary ends the output: outcome, backup, snapshot, release, the way back
    end = lines[lines.index(shown[-1]):]
    assert end[1:] == [
        f"  backup    {record['backup']['name']} (sha256 {record['backup']['sha256'][:12]})",
        f"  snapshot  {snap}",
        "  data      3 tables unchanged",
        "  release   v13 (was v12)",
        "  rollback  invoke deploy.rollback --to 12, or by hand:",
        f"    fly deploy -a {APP} --image {IMAGE_V12}",
    ], result.stderr
    assert not set("┃│┏━") & set(result.stderr)  # no table


def test_a_failed_step_says_why_on_its_own_line_and_the_summary_says_nothing_deployed(sites):
    busy, missing = sites("busy"), sites("missing")
    busy.world.fail(["volumes", "snapshots", "create"], stderr="Error: volume is busy\n")
    r_busy, r_missing = run_parallel([
        lambda: busy.run("deploy"),
        lambda: missing.run("deploy", env={"PATH": "/usr/bin:/bin"}),
    ])  # fmt: skip

    assert r_busy.returncode == ExitCode.DEPLOY_ABORTED_SNAPSHOT, r_busy
    shown = top_level(r_busy.stderr)
    failed = next(line for line in shown if line.startswith("✗"))
    # why, once: on the step that failed, not again on each step around it (s26: a long
    # refusal was printed four times)
    assert re.match(r"✗ volume snapshot  failed \(\d+\.\ds\)$", failed), r_busy.stderr
    child = next(line for line in r_busy.stderr.splitlines() if line.startswith("  ✗"))
    assert re.match(rf"  ✗ schedule snapshot of {VOL}  failed: `fly volumes snapshots create "
                    r"\S+ -a \S+( \S+)*` failed: volume is busy \(\d+\.\ds\)$", child), \
        r_busy.stderr
    assert r_busy.stderr.count("volume is busy") == 2, r_busy.stderr  # and the Error line
    assert shown[-2:] == [f"deploy of {APP}: snapshot failed (exit 12) in "
                          + shown[-2].rsplit(" in ", 1)[1], error_line(r_busy)]
    summary = r_busy.stderr.splitlines()
    assert "  snapshot  none" in summary and "  release   nothing deployed (v12 is live)" in summary
    assert "rollback" not in r_busy.stderr

    assert r_missing.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, r_missing
    failed = next(line for line in top_level(r_missing.stderr) if line.startswith("✗"))
    assert failed.startswith("✗ preflight  failed: flyctl is not installed"), r_missing.stderr
    assert "  release   nothing deployed" in r_missing.stderr.splitlines()


# ---------------------------------------------------------------- 80 columns (#7, #8)


def test_deploy_backup_and_list_fit_80_columns_on_a_terminal(site, tmp_path):
    code, lines = on_terminal(site.cwd, ["deploy"], site.env())
    assert code == 0, lines
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    record = site.audit()[0]
    for whole in (record["backup"]["name"], record["snapshot"]["id"], "release v13",
                  "invoke deploy.rollback --to 12"):
        assert any(whole in line for line in lines), (whole, lines)
    # the rollback command is pasteable as it is shown: continued with " \"
    at = lines.index("  rollback  invoke deploy.rollback --to 12, or by hand:")
    assert lines[at + 1:at + 3] == [f"    fly deploy -a {APP} --image \\", f"    {IMAGE_V12}"]

    local = tmp_path / "local"
    helpers.make_wal_db(local / "data" / "steps.db")
    for args in (["backup"], ["backup"], ["backup.list"], ["backup.verify", "all"]):
        code, lines = on_terminal(local, args, {})
        assert code == 0, lines
        assert max(len(line) for line in lines) <= 80, "\n".join(lines)
        assert all(WHOLE_NAME.search(line) for line in lines if "steps-" in line), lines
    made = next(line for line in on_terminal(local, ["backup"], {})[1]
                if line.startswith("✓ backup steps-"))
    assert re.match(r"✓ backup steps-\S+\.db  [\d.]+ [kMG]?B  sha256 [0-9a-f]{12}", made), made


def test_in_a_log_a_step_line_is_never_cut_or_wrapped(site):
    env = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "0", "COLUMNS": None}  # as deploy.yml
    result = site.run("deploy", env=env)
    assert result.returncode == 0, result
    lines = STYLE.sub("", result.stderr).splitlines()
    made = next(line for line in lines if line.startswith("  ✓ backup steps-"))
    assert made.endswith(f"[python3]  from production {APP}:{site.db}" + made[-7:]), made
    assert len(made) > 80 and "…" not in result.stderr
    assert f"    fly deploy -a {APP} --image {IMAGE_V12}" in lines


def test_a_narrow_terminal_drops_the_least_important_parts_of_a_line():
    buffer = io.StringIO()
    ui = UI(err=Console(file=buffer, width=80, force_terminal=True,
                    force_interactive=False, color_system=None))
    with ui.step("deploy"), ui.step("backup local data/steps.db") as step:
        step.label = "backup steps-2026-11-24T09-30-00.db"
        step.detail = ("41.2 MB  sha256 c1f0f6ab12cd  integrity_check ok  [engine]  from "
                       "local /a/rather/long/path/to/the/data/steps.db")
    with ui.step("resolve the volume, its machine and snapshot latest") as step:
        step.detail = ("vs_M3n4O5p6Q7r8S9t0U1v2W3x4 of 2026-08-17 02:10:54 UTC, 111d old  "
                       "vol_4y5p2k8qz1m7r3dv on e2865013c41e86 (started)")
    with ui.step("x" * 100):
        pass
    lines = STYLE.sub("", buffer.getvalue()).splitlines()
    # review-ox item 9: what must stay is broken between words, never cut inside an id
    # (the step's time is whatever the machine took: 0.1s under load, so matched as \d.\d)
    assert lines[3] == "✓ resolve the volume, its machine and snapshot latest", lines
    assert re.fullmatch(r"    vs_M3n4O5p6Q7r8S9t0U1v2W3x4 of 2026-08-17 02:10:54 UTC, 111d "
                        r"old \(\d\.\ds\)", lines[4]), lines
    assert lines[0] == "▸ deploy"
    assert re.match(r"  ✓ backup steps-2026-11-24T09-30-00\.db  41\.2 MB  sha256 c1f0f6ab12cd"
                    r" … \(\d\.\ds\)$", lines[1]), lines
    assert all(len(line) <= 80 for line in lines), lines
    assert "xxx" in lines[-2] and lines[-1].endswith("s)")
    assert command_lines(["fly", "deploy", "--image", "a b"], None) == [
        "    fly deploy --image 'a b'"]
    long = command_lines(["fly", "deploy", "-a", "app", "--image", "x" * 90], 80)
    assert long == ["    fly deploy -a app --image \\", "    " + "x" * 90]  # never cut


# ---------------------------------------------------------------- dry run (#10)


def test_a_dry_run_warns_when_preflight_would_fail_and_only_reads(sites):
    logged_out, no_flyctl, stopped, gone = (sites(n) for n in ("out", "none", "stop", "gone"))
    logged_out.world.unauthenticated()
    stopped.world.set_machine_state(MID, "stopped")
    gone.world.remove_volume(VOL)
    results = run_parallel([
        lambda: logged_out.run("deploy", "--dry-run", "--json"),
        lambda: no_flyctl.run("deploy", "--dry-run", "--json", env={"PATH": "/usr/bin:/bin"}),
        lambda: stopped.run("deploy", "--dry-run", "--json"),
        lambda: gone.run("deploy", "--dry-run", "--json"),
    ])  # fmt: skip
    expected = [(logged_out, "authenticated", READS[:2]),
                (no_flyctl, "flyctl is not installed", []),
                (stopped, "no started machine has a 'data' volume attached", READS),
                (gone, "no started machine has a 'data' volume attached", READS)]
    for (one, problem, reads), result in zip(expected, results, strict=True):
        # exit 10 as the run would: a dry run in a CI gate fails where the deploy stops
        assert result.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, result
        warning = [line for line in result.stderr.splitlines() if line.startswith("WARNING:")]
        assert len(warning) == 1 and problem in warning[0], result.stderr
        assert warning[0].startswith("WARNING: a real run would stop at preflight: ")
        assert problem in result.json()["warnings"][0]
        assert one.world.calls() == reads  # read-only, and nothing after what failed
        assert one.audit() == [] and len(one.backup_names()) == 1
    # what it could not learn stays a placeholder, and the plan says so
    assert "<machine>" in results[2].stderr and "Resolved at run time: <machine>" in (
        results[2].stderr)


# ---------------------------------------------------------------- emergency stop (#10)


def test_a_deploy_is_refused_while_the_machine_is_emergency_stopped(site):
    assert site.run("emergency.stop", "--yes").returncode == 0
    before = len(site.world.calls())

    results = [site.run("deploy"), site.run("deploy", "--skip-backup", "--image", IMAGE_V12),
               site.run("deploy.rollback")]

    for result in results:
        assert result.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, result
        line = error_line(result)
        assert f"machine {MID} is emergency-stopped" in line, line
        assert "run `invoke emergency.resume` first" in line, line
    calls = site.world.calls()[before:]
    assert [" ".join(argv[:2]) for argv in calls] == [
        "version --json", "auth whoami", "volumes list", "machine list"] * 3
    assert site.world.machine(MID)["config"]["init"]["cmd"] == ["sleep", "2147483647"]
    assert [entry["outcome"] for entry in site.audit() if entry["kind"] != "emergency.stop"] == [
        "preflight failed"] * 3
    planned = site.run("deploy", "--dry-run")
    assert planned.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, planned  # as the run
    assert "invoke emergency.resume" in planned.stderr, planned

    assert site.run("emergency.resume", "--yes").returncode == 0
    assert site.run("deploy").returncode == 0


# ---------------------------------------------------------------- what is known (#9)


def test_the_listing_says_what_is_recorded_and_verify_names_a_checksum_failure(
        tmp_path, backup_now, backup_dir):
    import datetime as dt

    good, changed = backup_now(), backup_now()
    helpers.old_script_backup(backup_dir, dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    with open(changed.path, "r+b") as raw:  # one byte of a user's name: still sound SQLite
        raw.seek(raw.read().index(b"@example.comUser ") + len(b"@example.com"))
        raw.write(b"X")

    code, lines = on_terminal(tmp_path, ["backup.list"], {})
    assert code == 0, lines
    header = next(line for line in lines if "name" in line and "age" in line)
    assert "recorded sha256" in header and "sidecars" in header, lines
    assert "manifest" not in "\n".join(lines) and "agrees" not in "\n".join(lines)
    old = next(line for line in lines if "steps-" in line and "no record" in line)
    assert re.search(r"no record\s*│\s*none\s*│", old), old
    for made in (good, changed):  # cheap evidence only: the records agree with each other
        row = next(line for line in lines if made.name in line)
        assert made.sha256[:12] in row and re.search(r"│\s*agree\s*│", row), row
    shown = "\n".join(lines)
    assert not re.search(r"WARNING|FAILED|missing|corrupt|error", shown, re.I), shown
    assert max(len(line) for line in lines) <= 80, shown

    result = helpers.run_invoke("backup.verify", "all", cwd=tmp_path)
    assert result.returncode == ExitCode.VERIFY_FAILED, result
    verdicts = {line.split()[0]: line for line in result.stderr.splitlines()
                if line.startswith("  steps-")}
    assert verdicts[good.name] == f"  {good.name}  checksum ok  integrity_check ok"
    assert verdicts[changed.name].startswith(
        f"  {changed.name}  checksum FAILED  integrity_check ok: SHA-256 mismatch: recorded "
    ), verdicts
    old_name = next(name for name in verdicts if name not in (good.name, changed.name))
    assert verdicts[old_name] == f"  {old_name}  checksum: no record  integrity_check ok"
