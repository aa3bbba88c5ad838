"""replica.endpoint and replica.path, the whole class of bad values: an endpoint carrying
credentials in any URL part (user:password@, a presigned query string, a fragment), a
key prefix that climbs out or is not one (``a\\..\\b``, ``../x``, absolute, empty parts,
control characters). Each is refused in one line with exit 2 (USAGE, the configuration
code in docs/exit-codes.md), a secret never shown; in the settings, in
``$AWS_ENDPOINT_URL_S3`` for work here, and in a litestream.yml that --check reads."""

from __future__ import annotations

import pytest

from ops import config
from ops import replica as rp
from ops.errors import ExitCode, OpsError
from ops.replica_checks import endpoint_problem, path_problem
from tests import helpers

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRET"
PRESIGNED = ("https://fly.storage.tigris.dev/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             f"&X-Amz-Credential=AKIA%2F20261207&X-Amz-Signature={SECRET}")

BAD_ENDPOINTS = [
    (PRESIGNED, "query string"),
    (f"https://h.example/?{SECRET}", "query string"),
    (f"https://h.example?token={SECRET}", "query string"),
    (f"https://h.example/#{SECRET}", "query string"),
    ("https://h.example/?", "query string"),
    (f"$AWS_ENDPOINT_URL_S3?X-Amz-Signature={SECRET}", "query string"),
    (f"https://key:{SECRET}@h.example", "credentials"),
    (f"https://{SECRET}@h.example", "credentials"),
    (f"https://h.example/ {SECRET}", "spaces or control"),
    ("https://h.example/\x1b[2J", "spaces or control"),
    ("https://h.example\x7f", "spaces or control"),
    ("ftp://h.example", "http:// or https://"),
    ("h.example", "http:// or https://"),
    ("https://", "no host"),
    ("https://:9000/", "no host"),
]
GOOD_ENDPOINTS = ["", "$AWS_ENDPOINT_URL_S3", "${AWS_ENDPOINT_URL_S3}",
                  "https://fly.storage.tigris.dev", "http://127.0.0.1:9000/",
                  "HTTPS://S3.EXAMPLE.COM/prefix"]
BAD_PATHS = ["a\\..\\b", "a\\b", "..\\x", "../x", "a/../b", "a/..", "..", ".", "./a",
             "a/./b", "/abs", "/", "a//b", "a/", "a\x07b", "a\x1bb", "a\x7f",
             "x" * 1000]
GOOD_PATHS = ["", "steps.db", "prod/steps.db", "app-1/db.v2", "é/ø", "a.b/c..d"]


@pytest.mark.parametrize(("endpoint", "words"), BAD_ENDPOINTS)
def test_bad_endpoints_are_refused_as_data(endpoint, words):
    problem = endpoint_problem(endpoint)
    assert problem and words in problem
    assert SECRET not in problem


@pytest.mark.parametrize("endpoint", GOOD_ENDPOINTS)
def test_good_endpoints_pass(endpoint):
    assert endpoint_problem(endpoint) is None


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_paths_are_refused_in_the_settings(path):
    assert path_problem(path)
    with pytest.raises(OpsError) as caught:
        config.load_replica({"replica": {"path": path}})
    assert caught.value.code == ExitCode.USAGE and "replica.path" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_good_paths_pass(path):
    assert path_problem(path) is None
    assert config.load_replica({"replica": {"path": path}}).path == path


@pytest.mark.parametrize(("endpoint", "words"), BAD_ENDPOINTS + [
    (f"{PRESIGNED}\nx", "one line")])  # the one-line check never shows it either
def test_bad_endpoints_are_refused_in_the_settings_never_shown(endpoint, words):
    with pytest.raises(OpsError) as caught:
        config.load_replica({"replica": {"endpoint": endpoint}})
    assert caught.value.code == ExitCode.USAGE and words in str(caught.value)
    assert SECRET not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("task", [("replica.config",), ("replica.status",),
                                  ("replica.restore", "--output", "out.db"),
                                  ("replica.drill",), ("restore", "--from-replica", "--yes")])
def test_every_replica_task_refuses_them_in_one_line(tmp_path, task):
    for env in ({"INVOKE_REPLICA_ENDPOINT": PRESIGNED},
                {"INVOKE_REPLICA_PATH": "a\\..\\b"}):
        result = helpers.run_here(*task, cwd=tmp_path, env={
            "BUCKET_NAME": "b-1", "INVOKE_DB_PATH": str(tmp_path / "app.db"), **env})
        assert result.returncode == ExitCode.USAGE, result
        assert len(result.error_lines) == 1 and "replica." in result.error_lines[0]
        assert SECRET not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing made


def test_a_presigned_endpoint_in_the_environment_is_refused_for_work_here(tmp_path):
    """replica.endpoint defaults to $AWS_ENDPOINT_URL_S3: here it is judged as set."""
    result = helpers.run_here("replica.restore", "--output", "out.db", cwd=tmp_path, env={
        "BUCKET_NAME": "b-1", "AWS_ENDPOINT_URL_S3": PRESIGNED,
        "INVOKE_DB_PATH": str(tmp_path / "app.db")})
    assert result.returncode == ExitCode.USAGE, result
    assert "$AWS_ENDPOINT_URL_S3" in result.error_lines[0]
    assert "query string" in result.error_lines[0] and SECRET not in result.stderr


def test_check_reads_them_in_a_litestream_yml(tmp_path, run_invoke):
    yml = tmp_path / "litestream.yml"
    text = rp.render(config.load_replica({}), str(tmp_path / "app.db"))
    yml.write_text(text.replace("endpoint: $AWS_ENDPOINT_URL_S3", f"endpoint: '{PRESIGNED}'")
                   .replace("path: app.db", "path: 'a\\..\\b'"))
    result = run_invoke("replica.config", "--check", "--output", str(yml), "--json",
                        env={"INVOKE_DB_PATH": str(tmp_path / "app.db")})
    assert result.returncode == ExitCode.USAGE, result
    problems = result.json()["problems"]
    assert any("query string" in p for p in problems), problems
    assert any("backslash" in p for p in problems), problems
    assert SECRET not in result.stdout + result.stderr


def test_an_unreachable_bucket_error_never_shows_a_presigned_query(tmp_path):
    """``destination`` (what a litestream timeout names) cuts the query out of an endpoint
    that came through $VAR expansion, as it cuts user:password@."""
    from ops.replica_checks import destination

    yml = tmp_path / "litestream.yml"
    yml.write_text(rp.render(config.load_replica({"replica": {"endpoint": "$E"}}),
                             str(tmp_path / "app.db")))
    shown = destination(["litestream", "restore", "-config", str(yml), "app.db"],
                        {"E": PRESIGNED, "BUCKET_NAME": "b-1"})
    assert "endpoint https://fly.storage.tigris.dev/b/k" in shown and "b-1" in shown
    assert SECRET not in shown and "X-Amz" not in shown


@pytest.mark.parametrize(("value", "words"), [("../other", "'..'"), ("/abs", "absolute"),
                                              (None, "not set here")])
def test_a_path_through_a_variable_is_judged_as_litestream_will_expand_it(tmp_path, value,
                                                                          words):
    """litestream expands $VARS in its config: ``replica.path: $P/db`` with P=.. would
    climb into another database's replica."""
    env = {"BUCKET_NAME": "b-1", "INVOKE_DB_PATH": str(tmp_path / "app.db"),
           "INVOKE_REPLICA_PATH": "$P/db" if value != "/abs" else "${P}",
           **({"P": value} if value else {})}
    result = helpers.run_here("replica.restore", "--output", "out.db", cwd=tmp_path, env=env)
    assert result.returncode == ExitCode.USAGE, result
    assert len(result.error_lines) == 1 and words in result.error_lines[0], result
