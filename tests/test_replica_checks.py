"""The review's leftovers on the replica tasks: credentials in a URL, value types, the
Dockerfile's CMD form and checksum, output-path messages, the unreachable-endpoint message,
status reading the running litestream's own config, the repo's fly.toml."""

from __future__ import annotations

import pytest
from invoke.util import yaml

from ops import config, replica_checks
from ops import replica as rp
from ops.errors import ExitCode, OpsError
from tests import helpers
from tests.replica_world import moto_endpoint, replica_world  # noqa: F401

SECRET = "topSECRETvalue"


def rendered() -> dict:
    return yaml.safe_load(rp.render(config.load_replica({}), "/data/steps.db"))


@pytest.mark.parametrize("endpoint", [f"http://AKIAX:{SECRET}@127.0.0.1:5077",
                                      f"https://{SECRET}@s3.example.com",
                                      f"ftp://u:{SECRET}@h"])  # refused before the scheme
def test_settings_refuse_credentials_in_the_endpoint_without_echoing_them(endpoint):
    with pytest.raises(OpsError) as caught:
        config.load_replica({"replica": {"endpoint": endpoint}})
    assert caught.value.code == ExitCode.USAGE and "holds credentials" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_the_cli_renders_nothing_with_credentials_in_the_endpoint(tmp_path):
    result = helpers.run_here("replica.config", cwd=tmp_path, env={
        "INVOKE_REPLICA_ENDPOINT": f"http://AKIAX:{SECRET}@127.0.0.1:5077"})
    assert result.returncode == ExitCode.USAGE, result
    assert SECRET not in result.stdout + result.stderr
    assert result.stdout == ""


def test_range_messages_and_the_deploy_gate_setting():
    with pytest.raises(OpsError, match=r"from 0.1s to 3600s, got '99999h'"):
        config.load_replica({"replica": {"sync_interval": "99999h"}})
    with pytest.raises(OpsError, match="deploy_gate must be one of warn, fail, off"):
        config.load_replica({"replica": {"deploy_gate": "maybe"}})
    assert config.load_replica({"replica": {"deploy_gate": "FAIL"}}).deploy_gate == "fail"
    assert config.load_replica({}).deploy_gate == "warn"
    assert config.load_replica({"replica": {"deploy_gate": False}}).deploy_gate == "off"  # yaml


def test_check_flags_credentials_in_endpoint_or_url_without_showing_them():
    data = rendered()
    data["dbs"][0]["replica"]["endpoint"] = f"http://AKIAX:{SECRET}@127.0.0.1:5077"
    problems = rp.check_config(data)
    assert any("endpoint holds credentials" in p for p in problems), problems
    del data["dbs"][0]["replica"]["endpoint"]
    data["dbs"][0]["replica"]["url"] = f"s3://AKIAXX:{SECRET}@bucket/x"
    problems = rp.check_config(data)
    assert any("url holds credentials" in p for p in problems), problems
    assert SECRET not in " ".join(problems)


@pytest.mark.parametrize("where,key,value", [
    ("replica", "sync-interval", "banana"),
    ("replica", "sync-interval", 5),  # litestream reads a bare number as nanoseconds
    ("replica", "force-path-style", "yes"),
    ("snapshot", "retention", "3 days"),
    ("socket", "enabled", "true"),
    ("top", "l0-retention", "1 hour"),
])
def test_check_refuses_values_litestream_cannot_parse(where, key, value):
    data = rendered()
    section = {"replica": data["dbs"][0]["replica"], "top": data}.get(where) or data[where]
    section[key] = value
    problems = rp.check_config(data)
    assert any(f"{key} must be" in p for p in problems), problems


def test_a_var_may_stand_for_any_value():
    data = rendered()
    data["dbs"][0]["replica"]["sync-interval"] = "$SYNC_INTERVAL"
    data["dbs"][0]["replica"]["force-path-style"] = "${PATH_STYLE}"
    assert rp.check_config(data) == []


GOOD_SUM = "d1185d24b202a2928c22f46c75eb9dd6b50cec8d32e751c5216ebdeab0b0b8d7"
DOCKERFILE = f"""FROM node:22-slim
RUN curl -fsSL -o /tmp/ls.tar.gz https://github.com/benbjohnson/litestream/releases/\\
download/v0.5.17/litestream-0.5.17-linux-x86_64.tar.gz \\
 && echo "{GOOD_SUM}  /tmp/ls.tar.gz" | sha256sum -c - \\
 && tar -xzf /tmp/ls.tar.gz -C /usr/local/bin litestream
CMD ["litestream", "replicate", "-restore-if-db-not-exists", "-exec", "node server.js"]
"""


def test_dockerfile_cmd_form_flag_and_checksum():
    assert rp.check_dockerfile(DOCKERFILE) == []
    placeholder = DOCKERFILE.replace(GOOD_SUM, "<sha256 of that tarball>")  # the docs' line
    assert any("placeholder" in p for p in rp.check_dockerfile(placeholder))
    shell = DOCKERFILE.replace(
        'CMD ["litestream", "replicate", "-restore-if-db-not-exists", "-exec", "node server.js"]',
        'CMD litestream replicate -restore-if-db-not-exists -exec "node server.js"')
    assert [p for p in rp.check_dockerfile(shell) if "shell form" in p]
    lost = DOCKERFILE.replace('"-restore-if-db-not-exists", ', "")
    assert [p for p in rp.check_dockerfile(lost) if "-restore-if-db-not-exists" in p]


def test_this_repos_fly_toml_gives_litestream_time_for_its_final_sync():
    assert rp.check_fly_toml((helpers.REPO_ROOT / "fly.toml").read_text()) == []


def test_config_output_messages_name_the_path_given(tmp_path):
    (tmp_path / "adir").mkdir()
    cases = [(["--output", str(tmp_path / "missing" / "x.yml")], ExitCode.NOT_FOUND,
              f"no folder {tmp_path / 'missing'} for x.yml"),
             (["--output", str(tmp_path / "adir")], ExitCode.USAGE, "is a directory"),
             (["--output", str(tmp_path / "adir"), "--force"], ExitCode.USAGE, "is a directory")]
    for args, code, words in cases:
        result = helpers.run_here("replica.config", *args, cwd=tmp_path)
        assert result.returncode == code, result
        assert words in result.error_lines[0] and "--force replaces it)" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]  # no temp file left
    assert list((tmp_path / "adir").iterdir()) == []


def test_a_bucket_that_does_not_answer_is_named_without_credentials(tmp_path):
    yml = tmp_path / "litestream.yml"
    data = rendered()
    data["dbs"][0]["replica"]["endpoint"] = "$AWS_ENDPOINT_URL_S3"
    yml.write_text(yaml.safe_dump(data))
    env = {"BUCKET_NAME": "my-bucket", "AWS_ENDPOINT_URL_S3": f"http://k:{SECRET}@10.9.9.9:1"}
    with pytest.raises(OpsError) as caught:  # a real process that never answers in time
        rp.run(["sh", "-c", "sleep 5", "sh", "-config", str(yml)], env, timeout=0.2,
               what="cannot read the replica's bucket", timeout_code=ExitCode.REPLICA)
    assert caught.value.code == ExitCode.REPLICA
    text = str(caught.value)
    assert "endpoint http://10.9.9.9:1, bucket my-bucket" in text and SECRET not in text


def test_restore_into_a_folder_that_takes_no_files_names_the_output(replica_world,
                                                                    run_invoke, tmp_path):
    replica_world.start()
    out = "/proc/replica-restore-test.db"
    result = run_invoke("replica.restore", "--output", out, env=replica_world.env)
    assert result.returncode == ExitCode.USAGE, result
    assert result.error_lines[0].startswith(f"Error: cannot write {out}:"), result
    assert ".replica-restore-" not in result.stderr


def test_status_reads_the_running_litestreams_own_config(replica_world, run_invoke):
    replica_world.start()  # ships to its bucket under the db's name
    elsewhere = {**replica_world.env, "INVOKE_REPLICA_PATH": "nothing-here"}
    result = run_invoke("replica.status", env=elsewhere)
    assert result.returncode == ExitCode.STALE, result  # the shell's settings: another place
    result = run_invoke("replica.status", "--config", str(replica_world.config), "--json",
                        env=elsewhere)  # $BUCKET_NAME in the file: litestream expands it
    assert result.returncode == 0, result
    assert result.json()["ok"] is True and result.json()["lag_seconds"] == 0


def test_status_config_must_be_litestreams_file_for_this_database(tmp_path):
    data = rendered()
    with pytest.raises(OpsError, match="does not replicate /elsewhere.db"):
        replica_checks.socket_of(data, "/elsewhere.db")
    assert replica_checks.socket_of(data, "/data/steps.db") == data["socket"]["path"]
    del data["socket"]
    with pytest.raises(OpsError, match="no control socket"):
        replica_checks.socket_of(data, "/data/steps.db")
    with pytest.raises(OpsError) as caught:
        replica_checks.running_socket(tmp_path / "none.yml", "/data/steps.db")
    assert caught.value.code == ExitCode.NOT_FOUND

