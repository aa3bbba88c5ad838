"""Deploy safety through the real CLI: what must be refused before anything happens, what
must be confirmed before `fly deploy`, and how every run ends in the audit log.

Same setting as ``tests/test_deploy.py`` (flyctl double, a WAL database on the fake
volume, a local /health on 127.0.0.1), whose fixtures and helpers are reused here.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ops import health, remote
from ops.errors import ExitCode, OpsError
from tests import helpers
from tests.fake_production import (
    APP,
    BACKUP,
    GUARDED,
    MID,
    NEW_IMAGE,
    PREFLIGHT,
    SNAPSHOT,
    VOL,
    deploy_argv,
    error_line,
    label,
    run_cases,
)
from tests.flyctl_double import IMAGE_V12
from tests.helpers import run_parallel

# the first CLI run of this file (per xdist worker) is a process, the rest in-process
# (helpers.HERE_AFTER_FIRST): what its tests check is the task's answer, not the process
pytestmark = pytest.mark.cli_in_process(per="module")

TOKEN = "FlyV1 fm2_sEcReTtOkEnFoRtHeDePlOyTeStS"


def nothing_happened(one, result, code=ExitCode.USAGE, *, contains=""):
    """Refused before anything: one line, the code, no flyctl call, no backup, no audit."""
    line = helpers.assert_one_line_error(result, code, contains=contains)
    assert one.world.calls() == [], one.world.calls()
    assert len(one.backup_names()) == 1 and len(one.world.snapshots(VOL)) == 2
    assert one.audit() == []
    return line


def wait_for_call(one, name: str, count: int = 1) -> None:

    helpers.wait_for(lambda: [label(a) for a in one.world.calls()].count(name) >= count,
                     timeout=60, what=f"flyctl call {name!r}")


# ---------------------------------------------------------------- issue 7 #5


def test_a_deploy_never_stands_on_a_backup_that_is_gone(sites):
    """Retention (here: ten future-dated 'verified' junk names) or anything else removing
    or changing the new backup before the snapshot stops the deploy with exit 11."""
    junk, deleted, rewritten = sites("junk"), sites("deleted"), sites("rewritten")
    for day in range(1, 11):
        name = f"steps-2099-01-{day:02d}T00-00-00.db"
        (junk.backups / name).write_bytes(b"not a database")
        (junk.backups / f"{name}.json").write_text("{}")
    for one in (deleted, rewritten):  # the retention's listing waits; meanwhile...
        listing = remote.wrap(remote.list_script(str(one.backups)))
        one.world.hang(["ssh", "console", "-C", listing], seconds=2)

    def meanwhile(one, act):
        wait_for_call(one, "ssh list")
        new = max(one.backup_names())
        act(one.backups / new)

    runs = [threading.Thread(target=meanwhile, args=(deleted, Path.unlink)),
            threading.Thread(target=meanwhile, args=(rewritten, lambda path: Path(
                f"{path}.sha256").write_text(f"{'0' * 64}  {path.name}\n")))]
    for thread in runs:
        thread.start()
    r_junk, r_deleted, r_rewritten = run_parallel([
        lambda: junk.run("deploy", "--json"),
        lambda: deleted.run("deploy", "--json"),
        lambda: rewritten.run("deploy", "--json"),
    ])  # fmt: skip
    for thread in runs:
        thread.join()

    # whatever retention does with junk, `fly deploy` never runs without the backup
    if "deploy" in junk.labels():
        assert r_junk.returncode == 0, r_junk
        made = r_junk.json()["backup"]
        assert helpers.sha256(junk.backups / made["name"]) == made["sha256"]
    else:
        assert r_junk.returncode == ExitCode.DEPLOY_ABORTED_BACKUP, r_junk
        assert "is no longer in" in error_line(r_junk)
    for one, result, words in ((deleted, r_deleted, "is no longer in"),
                               (rewritten, r_rewritten, "no longer has its recorded SHA-256")):
        assert result.returncode == ExitCode.DEPLOY_ABORTED_BACKUP, result
        assert words in error_line(result)
        labels = one.labels()
        assert labels == PREFLIGHT + BACKUP, labels  # no snapshot, no `fly deploy`
        (entry,) = one.audit()
        assert entry["outcome"] == "backup failed" and entry["exit_code"] == 11
        assert entry["backup"]["name"]  # what was made, then lost, is on record


# ---------------------------------------------------------------- issue 7 #10, #17


def test_health_url_must_be_http_or_https(sites):
    urls = ["file:///etc/passwd", "ftp://example.com/health", "javascript:alert(1)",
            "http:///health", "gopher://127.0.0.1:70/x"]
    made = [sites(f"u{n}") for n in range(len(urls))]
    results = run_cases(
        [(one, ("deploy", "--json"), {"INVOKE_HEALTH_URL": url})
         for one, url in zip(made, urls, strict=True)]
        + [(made[0], ("deploy", "--dry-run"), {"INVOKE_HEALTH_URL": urls[0]})])
    for one, url, result in zip(made + made[:1], urls + urls[:1], results, strict=True):
        line = nothing_happened(one, result, contains="health.url must be an http:// or https://")
        assert repr(url) in line


class HostileHealth:
    """/health that answers 200 and then never ends its body (``endless``) or sends
    one byte at a time forever (``trickle``)."""

    def __init__(self, mode: str):
        class Handler(BaseHTTPRequestHandler):
            timeout = 30
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"[" * 65536 if mode == "endless" else b" "
                try:
                    while not stop.is_set():
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        if mode == "trickle":
                            self.wfile.flush()
                            time.sleep(0.2)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        stop = self.stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("mode,words", [
    ("endless", "unusable answer: the body is larger than 1048576 bytes"),
    ("trickle", "unusable answer: the body did not end in time"),
])
def test_a_health_body_that_never_ends_is_unusable_not_a_hang(site, mode, words):
    hostile = HostileHealth(mode)
    try:
        result = site.run("deploy", "--json", "--skip-backup", "--image", NEW_IMAGE,
                          env={"INVOKE_HEALTH_URL": hostile.url, "INVOKE_HEALTH_TIMEOUT": "1.5"},
                          timeout=40)
    finally:
        hostile.close()
    assert result.returncode == ExitCode.HEALTH_FAILED, result
    assert words in error_line(result)
    assert result.json()["outcome"] == "health failed"


def test_the_health_url_built_from_fly_toml_keeps_the_apps_host():
    host = f"https://{APP}.fly.dev"
    for path, url in (("/health", "/health"), ("health", "/health"), ("@evil/x", "/@evil/x"),
                      ("/api/health?full=1", "/api/health?full=1"), ("/a@b:c", "/a@b:c")):
        assert health.url_for(APP, path) == host + url, path
    for path in ("//evil.example/x", "\\\\evil.example\\x", "\\evil", "https://evil.example/x",
                 "http://evil", "/x#frag", "#x", "/he alth", " /health", "/health\n",
                 "/x\\@evil", "", None, 5, ["/health"], "/%zz\t"):
        with pytest.raises(OpsError) as caught:
            health.url_for(APP, path)
        assert caught.value.code == ExitCode.USAGE and "\n" not in str(caught.value), path
    with pytest.raises(OpsError):
        health.url_for("evil.example/x", "/health")


def test_fly_toml_check_paths_cannot_send_the_gate_elsewhere(sites):
    cases = [("health", f"https://{APP}.fly.dev/health"),
             ("@evil.example/x", f"https://{APP}.fly.dev/@evil.example/x"),
             ("//evil.example/x", None), ("\\\\evil.example\\x", None),
             ("https://evil.example/health", None), ("/health#x", None), ("/he alth", None)]
    made = [sites(f"p{n}") for n in range(len(cases))]
    for one, (path, _url) in zip(made, cases, strict=True):
        one.world.write_fly_toml(
            one.cwd, extra=f"\n[http_service]\n  internal_port = 8080\n\n"
                           f"[[http_service.checks]]\n  path = '{path}'\n")
    results = run_cases([(one, ("deploy", "--dry-run", "--json"), {"INVOKE_HEALTH_URL": None})
                         for one in made])
    for one, (_path, url), result in zip(made, cases, results, strict=True):
        if url:
            assert result.returncode == 0, result
            (gate,) = [s for s in result.json()["steps"] if s["key"] == "health"]
            assert gate["title"].startswith(f"poll {url} until 200"), gate
        else:
            nothing_happened(one, result, contains="is not a plain URL path like /health")


# ---------------------------------------------------------------- issue 7 #11


def lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("sig,during,started", [
    (signal.SIGTERM, "deploy", True),
    (signal.SIGHUP, "backup", False),
])
def test_a_signal_during_a_deploy_is_recorded_and_releases_both_locks(site, sig, during,
                                                                      started):
    if during == "deploy":
        site.world.hang(["deploy"], seconds=60)
        args = ("deploy", "--json", "--skip-backup", "--image", NEW_IMAGE)
        call = "deploy"
    else:
        backup = remote.wrap(remote.backup_script(str(site.db), str(site.backups),
                                                  check="integrity"))
        site.world.hang(["ssh", "console", "-C", backup], seconds=60)
        args = ("deploy", "--json")
        call = "ssh backup"
    run = site.start(*args)
    wait_for_call(site, call)
    assert site.machine_lock.exists()  # held while the step runs
    run.proc.send_signal(sig)
    result = run.finish(timeout=40)

    name = signal.Signals(sig).name
    assert result.returncode == ExitCode.TERMINATED, result
    line = error_line(result)
    assert f"terminated by {name}" in line
    assert ("the release may be out" in line) is started
    assert ("nothing was deployed" in line) is not started
    (entry,) = site.audit()
    assert entry == result.json()
    assert entry["outcome"] == f"terminated by {name} during {during}"
    assert entry["exit_code"] == ExitCode.TERMINATED
    assert entry["fly_deploy_started"] is started
    *ran, closing = entry["steps"]  # the machine lock's release: the runner's closing step
    assert ran[-1] == {**ran[-1], "step": during, "outcome": "interrupted"}
    assert (closing["step"], closing["outcome"]) == ("record", "ok")
    assert not site.machine_lock.exists()
    assert site.labels(locks=True)[-1] == "ssh unlock"
    assert lock_is_free(site.lock_file)
    assert ("deploy" in site.labels()) is started


@pytest.mark.parametrize("body", [
    {"status": "ok", "backup": "yes"},
    {"status": "ok", "backup": {"latest": "steps-2099-01-01T00-00-00.db"}},
    {"status": "ok", "backup": {"latest": {"name": ["x"], "created": 5}}},
    ["not", "an", "object"],
    "a string",
])
def test_whatever_health_answers_the_audit_line_tells_the_truth(site, body):
    site.health.mode, site.health.body = "body", body
    result = site.run("deploy", "--json", "--health-timeout", "0.3")

    assert result.returncode == ExitCode.HEALTH_FAILED, result
    assert "Traceback" not in result.stderr
    error_line(result)
    (entry,) = site.audit()
    assert entry["outcome"] == "health failed" and entry["exit_code"] == result.returncode


# ---------------------------------------------------------------- issue 7 #15, issue 8 #13


def test_rollback_to_a_release_that_cannot_exist_is_refused(sites):
    values = ["0", "v0", "-1", "-0", "99999999999999999999", "１２", "v", "1.5", "12x"]
    made = [sites(f"r{n}") for n in range(len(values))]
    results = run_cases([(one, ("deploy.rollback", f"--to={value}", "--json"))
                         for one, value in zip(made, values, strict=True)])
    for one, value, result in zip(made, values, results, strict=True):
        nothing_happened(one, result, contains="--to must be a release version")
        assert repr(value) in error_line(result)


def test_rollback_past_the_releases_flyctl_lists_offers_the_image(site):
    for version in range(13, 41):
        site.world.add_release(APP, version, image_ref=f"{IMAGE_V12[:-4]}{version:04d}",
                               created_at=f"2026-09-{version - 10:02d}T10:00:00Z")
    older = site.run("deploy.rollback", "--to", "12")
    missing = site.run("deploy.rollback", "--to", "41")  # one site: its lock, one at a time

    assert older.returncode == ExitCode.NOT_FOUND, older
    line = error_line(older)
    assert "release v12 is older than the last 25 releases flyctl returns (v16 to v40)" in line
    assert "invoke deploy --image IMAGE" in line
    assert missing.returncode == ExitCode.NOT_FOUND, missing
    assert "no release v41 (recent: v40," in error_line(missing)
    assert "deploy" not in site.labels()
    assert site.world.machine_image(MID) == IMAGE_V12


# ---------------------------------------------------------------- issue 7 #16


@pytest.mark.parametrize("form", [
    ["-t", TOKEN], ["--access-token", TOKEN], [f"--access-token={TOKEN}"], [f"-t{TOKEN}"],
    ["-yt", TOKEN], ["--build-arg", "X=1", "-t", "ab"],
])
@pytest.mark.cli_in_process(per="none")  # a secret printed by any process
def test_tokens_after_double_dash_are_never_shown(site, form):
    token = form[-1].split("=", 1)[-1].removeprefix("-t")
    site.world.add_token(token)
    plan = site.run("deploy", "--dry-run", "--json", "--", *form)
    real = site.run("deploy", "--json", "--skip-backup", "--image", NEW_IMAGE, "--", *form)

    assert plan.returncode == 0, plan
    (step,) = [s for s in plan.json()["steps"] if s["key"] == "deploy"]
    argv, _ = step["commands"]  # `fly deploy`, then the release it made
    assert token not in argv and not any(token in word for word in argv), argv
    assert argv[-1].endswith("***"), argv
    assert real.returncode == 0, real
    assert real.json()["fly_deploy"][-1].endswith("***")
    assert "deploy" in site.labels()  # flyctl got the token (the double logs it redacted)
    if len(token) >= 4:
        for text in (plan.stdout, plan.stderr, real.stdout, real.stderr,
                     site.audit_log.read_text()):
            assert token not in text


# ---------------------------------------------------------------- issue 8 #1, #2, #3


def test_strategies_that_need_a_second_machine_are_refused_with_a_volume(sites):
    cases = [
        ("deploy", "--strategy", "bluegreen"),
        ("deploy", "--json", "--", "--strategy", "bluegreen"),
        ("deploy", "--", "--strategy=canary"),
        ("deploy", "--strategy", "rolling", "--", "--strategy", "bluegreen"),
        ("deploy.rollback", "--strategy", "bluegreen"),
        ("deploy", "--dry-run", "--strategy", "bluegreen"),
        ("deploy",),  # fly.toml says bluegreen
    ]
    made = [sites(f"s{n}") for n in range(len(cases))]
    made[-1].world.write_fly_toml(made[-1].cwd, extra='\n[deploy]\n  strategy = "bluegreen"\n')
    results = run_cases(list(zip(made, cases, strict=True)))
    for one, result in zip(made, results, strict=True):
        line = nothing_happened(one, result)
        assert "fly.toml has [mounts]" in line or "canary is refused" in line, line
    assert "fly.toml's [deploy] strategy bluegreen" in error_line(results[-1])


def test_bluegreen_is_fine_without_a_volume(site):
    site.world.write_fly_toml(site.cwd, mounts=False)
    result = site.run("deploy", "--dry-run", "--json", "--strategy", "bluegreen")
    # the strategy is not refused (exit 2): the dry run goes on to preflight, where the
    # double's machine without [mounts] stops it (exit 10, as the run would)
    assert result.returncode == ExitCode.DEPLOY_ABORTED_PREFLIGHT, result
    assert result.json()["warnings"] == [
        "fly.toml has no [mounts] source: cannot tell which volume holds the database"]


@pytest.mark.parametrize("value", ["none", "0", "0s", "0ms", "0h0m", "-5s", "+0", "00", "-1",
                                   "500ms", ".5s"])
def test_wait_timeouts_flyctl_reads_as_no_wait_are_refused(sites, value):
    flag, after, equals = sites("flag"), sites("after"), sites("equals")
    results = run_cases([
        (flag, ("deploy", f"--wait-timeout={value}")),
        (after, ("deploy", "--", "--wait-timeout", value)),
        (equals, ("deploy", "--json", "--", f"--wait-timeout={value}")),
    ])  # fmt: skip
    for one, result in zip((flag, after, equals), results, strict=True):
        nothing_happened(one, result, contains=f"--wait-timeout {value} leaves flyctl no time")


def test_wait_timeouts_flyctl_accepts_pass(site):
    bad = site.run("deploy", "--", "--wait-timeout=5 minutes")  # first: dry runs read flyctl
    nothing_happened(site, bad, contains="--wait-timeout must be a duration")
    for value in ("300", "5m", "1m30s", "1.5h", "90s"):
        result = site.here("deploy", "--dry-run", "--json", "--", "--wait-timeout", value)
        assert result.returncode == 0, result


# ---------------------------------------------------------------- issue 8 #14


def test_fly_config_elsewhere_is_built_from_its_own_folder(site):
    other = site.root / "other"
    other.mkdir()
    site.world.write_fly_toml(other)
    (other / "Dockerfile").write_text("FROM node:20-slim\n")
    (site.cwd / "Dockerfile").unlink()  # the current folder is not the app
    env = {"INVOKE_FLY_CONFIG": "../other/fly.toml"}
    plan = site.run("deploy", "--dry-run", "--json", env=env)
    result = site.run("deploy", "--json", "--skip-backup", env=env)

    other = other.resolve()
    expected = ["deploy", "-a", APP, "-c", str(other / "fly.toml"), str(other)]
    assert plan.returncode == 0, plan
    (step,) = [s for s in plan.json()["steps"] if s["key"] == "deploy"]
    assert step["commands"][:1] == [expected]
    assert f"builds {other}" in step["title"]
    assert result.returncode == 0, result
    assert deploy_argv(site) == expected
    here = site.run("deploy", "--dry-run", "--json")  # fly.toml here: no folder argument
    (step,) = [s for s in here.json()["steps"] if s["key"] == "deploy"]
    assert step["commands"][:1] == [["deploy", "-a", APP, "-c", "fly.toml"]]


# ---------------------------------------------------------------- issue 9 #1


def test_the_gate_accepts_a_newer_backup_and_says_why_it_waits(sites):
    newer, future, slow = sites("newer"), sites("future"), sites("slow")
    newer.health.mode = "newer"
    future.health.mode = "future"
    slow.health.unhealthy_first = 3
    r_newer, r_future, r_slow = run_parallel([
        lambda: newer.run("deploy", "--json"),
        lambda: future.run("deploy", "--json", "--health-timeout", "0.5"),
        lambda: slow.run("deploy", "--json"),
    ])  # fmt: skip

    assert r_newer.returncode == 0, r_newer
    assert newer.labels() == PREFLIGHT + BACKUP + SNAPSHOT + GUARDED
    health_step = r_newer.json()["steps"][-3]  # then the data guard and the closing "record"
    assert health_step["step"] == "health" and health_step["outcome"] == "ok"
    assert r_newer.json()["backup"]["name"] not in health_step["detail"]  # it saw the newer
    # a future-dated latest hides ours for good: it cannot hold the gate shut, it is warned
    assert r_future.returncode == 0, r_future
    assert "'steps-2099-01-01T00-00-00.db', dated in the future" in r_future.stderr
    assert "check the machine's clock" in r_future.stderr
    assert r_slow.returncode == 0, r_slow
    waits = [line for line in r_slow.stderr.splitlines() if "health: not yet" in line]
    assert waits == ["  health: not yet: HTTP 503"], r_slow.stderr  # one line per change


@pytest.mark.cli_in_process(per="none")  # a secret printed by any process
def test_a_short_token_from_the_environment_is_not_echoed_either(site):
    token = site.token = "tk4x9"  # below the 6 characters fly.redact needs
    site.world.add_token(token)
    site.world.fail(["deploy"], stdout=f"using access token {token}\n",
                    stderr=f"Error: token {token} may not deploy {APP}\n")
    result = site.run("deploy", "--json", "--skip-backup", "--image", NEW_IMAGE)

    assert result.returncode == ExitCode.DEPLOY_FAILED, result
    assert "token *** may not deploy" in error_line(result)
    for text in (result.stdout, result.stderr, site.audit_log.read_text()):
        assert token not in text
