"""replica.config: litestream.yml rendered from settings (no credentials), and --check
refusing what litestream itself accepts silently; the Dockerfile and fly.toml checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from invoke.util import yaml

from ops import config
from ops import replica as rp
from ops.errors import ExitCode, OpsError

pytestmark = pytest.mark.cli_in_process(per="module")

LITESTREAM = Path(sys.executable).parent / "litestream"
SECRETS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}
SUM = "d1185d24b202a2928c22f46c75eb9dd6b50cec8d32e751c5216ebdeab0b0b8d7"  # 64 hex: no placeholder
GOOD_DOCKERFILE = """FROM node:22-slim
ARG LITESTREAM_VERSION=0.5.17
RUN curl -fsSL -o /tmp/ls.tar.gz \\
      https://github.com/benbjohnson/litestream/releases/download/v0.5.17/\\
litestream-0.5.17-linux-x86_64.tar.gz \\
 && echo "<SUM>  /tmp/ls.tar.gz" | sha256sum -c - \\
 && tar -xzf /tmp/ls.tar.gz -C /usr/local/bin litestream
COPY litestream.yml /etc/litestream.yml
CMD ["litestream", "replicate", "-config", "/etc/litestream.yml", "-restore-if-db-not-exists", \\
     "-exec", "node server.js"]
""".replace("<SUM>", SUM)


def rendered(**replica) -> dict:
    settings = config.load_replica({"replica": replica})
    return yaml.safe_load(rp.render(settings, "/data/steps.db"))


def test_rendered_config_has_one_replica_and_passes_its_own_check():
    data = rendered()
    assert rp.check_config(data) == []
    replica = data["dbs"][0]["replica"]
    assert data["dbs"][0]["path"] == "/data/steps.db"
    assert replica["bucket"] == "$BUCKET_NAME" and replica["path"] == "steps.db"
    assert replica["endpoint"] == "$AWS_ENDPOINT_URL_S3"
    assert replica["sync-interval"] == "1s" and data["snapshot"]["retention"] == "72h"
    assert data["socket"]["path"] == "/data/.steps.db-litestream.sock"


def test_durations_render_as_go_durations():
    assert rendered(retention="2d", sync_interval="0.5s")["snapshot"]["retention"] == "48h"
    assert rendered(sync_interval="0.5s")["dbs"][0]["replica"]["sync-interval"] == "0.5s"
    assert rp.go_duration(90) == "90s" and rp.go_duration(120) == "2m"


@pytest.mark.parametrize("retention,rendered_as", [
    ("1000001s", "1000001s"), ("1234567.5s", "1234567.5s"), ("3601s", "3601s"),
    ("3600.25s", "3600.25s"), ("366d", "8784h"), ("90m", "90m")])
def test_any_allowed_duration_renders_as_one_go_parses_exactly(retention, rendered_as):
    """`{:g}` wrote 1000001 s as "1e+06s" (rounded, and no Go duration): replica.config
    wrote a file its own --check and litestream refused (s27 review-break2 #2)."""
    data = rendered(retention=retention)
    assert data["snapshot"]["retention"] == rendered_as
    assert re.fullmatch(r"([0-9]+(\.[0-9]+)?(h|m|s))+", rendered_as)
    assert rp.check_config(data) == []


def test_a_value_cannot_add_keys_to_the_file():
    data = rendered(path="app/x: y #c", region="r: {a: 1}")
    assert data["dbs"][0]["replica"]["path"] == "app/x: y #c"
    assert data["dbs"][0]["replica"]["region"] == "r: {a: 1}"
    settings = config.load_replica({})
    sneaky = type(settings)(**{**settings.__dict__, "path": "p\nretention: 1s"})
    data = yaml.safe_load(rp.render(sneaky, "/data/steps.db"))  # quoted even unchecked
    assert data["dbs"][0]["replica"]["path"] == "p\nretention: 1s"
    assert "retention" not in data["dbs"][0]["replica"]
    assert [p for p in rp.check_config(data) if "control characters" not in p] == []


@pytest.mark.parametrize("key,value,words", [
    ("sync_interval", "nan", "replica.sync_interval"),
    ("sync_interval", "inf", "replica.sync_interval"),
    ("sync_interval", [1], "replica.sync_interval"),
    ("sync_interval", "0s", "replica.sync_interval"),
    ("retention", True, "replica.retention"),
    ("max_lag", "-1s", "replica.max_lag"),
    ("bucket", "Not A Bucket", "replica.bucket"),
    ("bucket", 7, "replica.bucket"),
    ("endpoint", "ftp://x", "replica.endpoint"),
    ("path", "/abs", "replica.path"),
    ("path", "a/../b", "replica.path"),
    ("region", "a\nb", "replica.region"),
])
def test_bad_replica_settings_are_refused_in_one_line(key, value, words):
    with pytest.raises(OpsError) as caught:
        config.load_replica({"replica": {key: value}})
    assert caught.value.code == ExitCode.USAGE
    assert words in str(caught.value) and "\n" not in str(caught.value).strip()


def test_check_refuses_a_typo_litestream_would_accept(tmp_path):
    data = rendered()
    data["dbs"][0]["replica"]["sync-intervall"] = "10s"
    problems = rp.check_config(data)
    assert len(problems) == 1 and "'sync-intervall'" in problems[0]
    # the real binary runs with the typo (this is why the check exists)
    path = tmp_path / "typo.yml"
    path.write_text(yaml.safe_dump(data))
    env = {**{k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}, "BUCKET_NAME": "b"}
    done = subprocess.run([str(LITESTREAM), "databases", "-config", str(path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("change,words", [
    (lambda d: d["dbs"][0]["replica"].update(retention="72h"), "snapshot.retention"),
    (lambda d: d["dbs"][0]["replica"].update({"access-key-id": "AKIA1"}), "literal credential"),
    (lambda d: d.update({"secret-access-key": "x"}), "literal credential"),
    (lambda d: d["dbs"][0].update(replicas=[{"bucket": "b"}]), "exactly one replica"),
    (lambda d: d.update(age={"identities": []}), "age"),
    (lambda d: d["snapshot"].update(intervall="1h"), "'intervall'"),
    (lambda d: d.update(dbs=[]), "no database"),
])
def test_check_problems(change, words):
    data = rendered()
    change(data)
    problems = rp.check_config(data)
    assert any(words in p for p in problems), problems


def test_credentials_from_the_environment_are_fine():
    data = rendered()
    data["dbs"][0]["replica"]["access-key-id"] = "$AWS_ACCESS_KEY_ID"
    assert rp.check_config(data) == []


def test_dockerfile_checks():
    assert rp.check_dockerfile(GOOD_DOCKERFILE) == []
    fly_npm = "FROM node:22\nRUN npm install @flydotio/litestream\nCMD [\"node\", \"s.js\"]\n"
    words = " ".join(rp.check_dockerfile(fly_npm))
    assert "@flydotio/litestream" in words and "CMD is not" in words
    unverified = GOOD_DOCKERFILE.replace(f' && echo "{SUM}  /tmp/ls.tar.gz" | sha256sum -c - \\\n',
                                         "")
    assert any("checksum" in p for p in rp.check_dockerfile(unverified))
    entry = GOOD_DOCKERFILE.replace("CMD [", "ENTRYPOINT [")
    assert any("ENTRYPOINT" in p for p in rp.check_dockerfile(entry))
    by_arg = GOOD_DOCKERFILE.replace("download/v0.5.17/", "download/v${LITESTREAM_VERSION}/")
    assert rp.check_dockerfile(by_arg.replace("litestream-0.5.17-", "litestream-${V}-")) == []
    image = ("FROM node:22\nCOPY --from=litestream/litestream:0.5.17@sha256:" + SUM + " "
             "/usr/local/bin/litestream /usr/local/bin/litestream\n"
             'CMD ["litestream", "replicate", "-restore-if-db-not-exists", "-exec", "node s.js"]\n')
    assert rp.check_dockerfile(image) == []
    old = GOOD_DOCKERFILE.replace("0.5.17", "0.3.13")
    assert any("pinned litestream 0.5" in p for p in rp.check_dockerfile(old))


@pytest.mark.parametrize("text,ok", [
    ('app = "a"\n', False),  # Fly's default 5 s
    ('app = "a"\nkill_timeout = 5\n', False),
    ('app = "a"\nkill_timeout = "30s"\n', True),
    ('app = "a"\nkill_timeout = 60\n', True),
    ('app = "a"\nkill_timeout = "soon"\n', False),
])
def test_fly_toml_kill_timeout(text, ok):
    assert (rp.check_fly_toml(text) == []) is ok


def test_cli_renders_without_credentials_and_never_overwrites(tmp_path, run_invoke):
    out = tmp_path / "litestream.yml"
    env = {**SECRETS, "INVOKE_DB_PATH": str(tmp_path / "app.db")}
    shown = run_invoke("replica.config", env=env)
    assert shown.returncode == 0, shown
    assert yaml.safe_load(shown.stdout)["dbs"][0]["path"] == str(tmp_path / "app.db")
    remote = run_invoke("replica.config", "--remote", "--json", env=env)
    assert remote.returncode == 0, remote
    assert remote.json()["config"]["dbs"][0]["path"] == "/data/steps.db"  # db.remote_path
    written = run_invoke("replica.config", "--output", str(out), env=env)
    assert written.returncode == 0, written
    for secret in SECRETS.values():
        assert secret not in shown.stdout + shown.stderr + out.read_text() + written.stderr
    again = run_invoke("replica.config", "--output", str(out), env=env)
    assert again.returncode == ExitCode.USAGE and "--force" in again.error_lines[0]
    target = tmp_path / "elsewhere.txt"
    target.write_text("untouched")
    link = tmp_path / "link.yml"
    link.symlink_to(target)
    through = run_invoke("replica.config", "--output", str(link), env=env)
    assert through.returncode == ExitCode.USAGE, through
    forced = run_invoke("replica.config", "--output", str(link), "--force", env=env)
    assert forced.returncode == 0, forced
    assert target.read_text() == "untouched" and not link.is_symlink()
    dry = run_invoke("replica.config", "--output", str(tmp_path / "dry.yml"), "--dry-run",
                     env=env)
    assert dry.returncode == 0 and not (tmp_path / "dry.yml").exists()
    env_ca = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    accepted = subprocess.run([str(LITESTREAM), "databases", "-config", str(out)],
                              env={**env_ca, "BUCKET_NAME": "b"}, capture_output=True,
                              text=True, timeout=60)
    assert accepted.returncode == 0, accepted.stderr


def test_cli_check_refuses_a_typo_naming_the_key(tmp_path, run_invoke):
    out = tmp_path / "litestream.yml"
    env = {"INVOKE_DB_PATH": str(tmp_path / "app.db")}
    assert run_invoke("replica.config", "--output", str(out), env=env).returncode == 0
    good = run_invoke("replica.config", "--check", "--output", str(out), "--json", env=env)
    assert good.returncode == 0, good
    assert good.json()["ok"] is True
    out.write_text(out.read_text().replace("sync-interval:", "sync-intervall:"))
    bad = run_invoke("replica.config", "--check", "--output", str(out), env=env)
    assert bad.returncode == ExitCode.USAGE, bad
    assert "sync-intervall" in bad.error_lines[0]
    mixed = run_invoke("replica.config", "--check", "--force", env=env)
    assert mixed.returncode == ExitCode.USAGE and "--check only reads" in mixed.error_lines[0]
    missing = run_invoke("replica.config", "--check", "--output", str(tmp_path / "no.yml"),
                         env=env)
    assert missing.returncode == ExitCode.NOT_FOUND, missing
    (tmp_path / "fly.toml").write_text('app = "a"\n')
    out.write_text(out.read_text().replace("sync-intervall:", "sync-interval:"))
    fly = run_invoke("replica.config", "--check", "--output", str(out), "--json", env=env)
    assert fly.returncode == ExitCode.USAGE, fly
    assert any("kill_timeout" in p for p in fly.json()["problems"])


def test_overwrite_refusal_as_data(tmp_path):
    db, backups = tmp_path / "data" / "steps.db", tmp_path / "backups"
    refuse = lambda target, head=b"": rp.overwrite_refusal(target, db, backups, head)  # noqa: E731
    for suffix in ("", "-wal", "-shm", "-journal"):
        assert "is the database" in refuse(tmp_path / "data" / f"steps.db{suffix}")
    assert "is the database" in refuse(tmp_path / "data" / "x" / ".." / "steps.db")
    assert "backup.dir" in refuse(backups / "steps-2026.db.gz")
    assert "SQLite database" in refuse(tmp_path / "other.db", b"SQLite format 3\0")
    assert "write-ahead log" in refuse(tmp_path / "other.db-wal", b"\x37\x7f\x06\x82")
    assert refuse(tmp_path / "data" / "litestream.yml", b"# litestream") is None
    assert refuse(tmp_path / "data" / "steps.db.yml") is None


def test_force_never_replaces_a_database(tmp_path, run_invoke):
    """The review's data loss: --output <the live db> --force wrote YAML over it."""
    from tests import helpers

    db = helpers.make_wal_db(tmp_path / "data" / "steps.db", users=5, steps=20)
    wal = db.with_name("steps.db-wal")
    wal.write_bytes(wal.read_bytes() if wal.exists() else b"wal bytes")
    other = tmp_path / "copy.db"
    other.write_bytes(db.read_bytes())
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "b.db.gz").write_bytes(b"gzip bytes")
    env = {"INVOKE_DB_PATH": str(db), "INVOKE_BACKUP_DIR": str(backups)}
    for target in (db, wal, other, backups / "b.db.gz"):
        before = target.read_bytes()
        result = run_invoke("replica.config", "--output", str(target), "--force", "--json",
                            env=env)
        assert result.returncode == ExitCode.USAGE, result
        assert len(result.error_lines) == 1 and "never a database" in result.error_lines[0]
        assert target.read_bytes() == before
    assert not [p for p in db.parent.iterdir() if p.name.startswith(".steps")]
    dry = run_invoke("replica.config", "--output", str(db), "--force", "--dry-run", env=env)
    assert dry.returncode == ExitCode.USAGE, dry  # the dry run says what the run would do
    yml = tmp_path / "litestream.yml"
    yml.write_text("# old\n")
    assert run_invoke("replica.config", "--output", str(yml), "--force",
                      env=env).returncode == 0
    assert "dbs:" in yml.read_text()
