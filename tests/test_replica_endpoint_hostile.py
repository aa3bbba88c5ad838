"""A hostile replica.endpoint is a config value error: one `Error:` line, exit 2, never a
traceback (review-break s19 #4). An empty host label (`a..b`), a label over 63
characters, a zero-width space made the reachability probe's connect raise UnicodeError
(exit 1, a traceback), and port 0 was probed as port 80. Judged in the config (a literal
value) and again at the probe (the value of `$AWS_ENDPOINT_URL_S3`, the default)."""

from __future__ import annotations

import pytest

from ops import config
from ops import replica as rp
from ops.errors import ExitCode, OpsError
from ops.replica_checks import endpoint_problem
from tests.helpers import assert_one_line_error
from tests.replica_world import (  # noqa: F401
    moto_endpoint,
    replica_world,
)

HOSTILE = [
    "http://" + "a" * 64 + ".example:9000",
    "http://a..b:9000",
    "https://\u200b.example",
    "http://.example",
    "http://127.0.0.1:0",
    "http://127.0.0.1:99999",
    "http://127.0.0.1:nan",
    "http://[::1:9000",
]
FINE = ["http://127.0.0.1:9000", "https://fly.storage.tigris.dev", "http://[::1]:9000/",
        "https://example.com.", "https://b\u00fccher.de", "http://minio.internal/x",
        "$AWS_ENDPOINT_URL_S3", ""]


@pytest.mark.parametrize("endpoint", HOSTILE)
def test_a_hostile_endpoint_is_a_problem(endpoint):
    assert endpoint_problem(endpoint), endpoint
    with pytest.raises(OpsError) as refused:
        config.load_replica({"replica": {"endpoint": endpoint}})
    assert refused.value.code == ExitCode.USAGE
    assert "replica.endpoint" in str(refused.value)


@pytest.mark.parametrize("endpoint", FINE)
def test_a_fine_endpoint_is_none(endpoint):
    assert endpoint_problem(endpoint) is None


@pytest.mark.parametrize("endpoint", HOSTILE[:5])
def test_replica_restore_refuses_a_hostile_endpoint_in_one_line(endpoint, replica_world,
                                                                run_invoke, tmp_path):
    env = {**replica_world.env, "AWS_ENDPOINT_URL_S3": endpoint}
    result = run_invoke("replica.restore", "--output", str(tmp_path / "out.db"), env=env)
    line = assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert "replica.endpoint" in line and "Traceback" not in result.stderr, result
    assert not (tmp_path / "out.db").exists()


@pytest.mark.parametrize("task", [("replica.drill",), ("restore", "--from-replica", "--yes"),
                                  ("replica.status",)])
def test_every_replica_task_refuses_it_in_one_line(task, replica_world, run_invoke, tmp_path):
    env = {**replica_world.env, "AWS_ENDPOINT_URL_S3": "http://a..b:9000",
           "INVOKE_BACKUP_DIR": str(tmp_path / "backups")}
    result = run_invoke(*task, env=env)
    line = assert_one_line_error(result, ExitCode.USAGE, strict=False)
    assert "replica.endpoint" in line and "Traceback" not in result.stderr, result


@pytest.mark.parametrize("endpoint", HOSTILE)
def test_the_probe_refuses_it_from_any_config_file(endpoint, tmp_path):
    """A litestream config the operator wrote (replica.status --config) is read by the
    probe alone: the same refusal there, never the connect's UnicodeError."""
    yml = tmp_path / "litestream.yml"
    yml.write_text("dbs:\n  - path: /x.db\n    replica:\n      type: s3\n      bucket: b\n"
                   f"      endpoint: '{endpoint}'\n", encoding="utf-8")
    with pytest.raises(OpsError) as refused:
        rp.refuse_unreachable(["litestream", "ltx", "-config", str(yml), "/x.db"], {}, "w")
    assert refused.value.code == ExitCode.USAGE and "replica.endpoint" in str(refused.value)


def test_the_probe_leaves_an_endpoint_without_a_scheme_to_litestream(tmp_path):
    yml = tmp_path / "litestream.yml"
    yml.write_text("dbs:\n  - path: /x.db\n    replica:\n      type: s3\n      bucket: b\n"
                   "      endpoint: s3.example.com\n", encoding="utf-8")
    assert rp.refuse_unreachable(["litestream", "ltx", "-config", str(yml), "/x.db"], {},
                                 "w") is None
