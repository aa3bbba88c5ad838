"""An endpoint that answers HTTP but is not S3 (the app's own port, a plain web server)
is exit 15 in one clear line naming the endpoint and replica.endpoint, not the SDK's raw
"operation error S3: ListObjectsV2, https response error StatusCode: 404, RequestID: ,
HostID: , api error NotFound: Not Found" (review-op s19 #7). A real web server
(http.server) and real litestream; the line's rewording as data."""

from __future__ import annotations

import http.server
import threading

import pytest

from ops import replica as rp
from ops.errors import ExitCode
from tests.helpers import assert_one_line_error
from tests.replica_world import (  # noqa: F401
    moto_endpoint,
    replica_world,
)

HTML = ("cannot plan a restore: operation error S3: ListObjectsV2, https response error "
        "StatusCode: 404, RequestID: , HostID: , error while deserializing xml error response "
        ": XML syntax error on line 6: element <meta> closed by </head>")
RAW = ("cannot read the replica's bucket: ltx: operation error S3: ListObjectsV2, https "
       "response error StatusCode: 404, RequestID: , HostID: , api error NotFound: Not Found")
S3 = ("cannot read the replica's bucket: operation error S3: ListObjectsV2, https response "
      "error StatusCode: 403, RequestID: 7Q2X, HostID: abc=, api error AccessDenied: Access "
      "Denied")


@pytest.mark.parametrize("message, found, has, lacks", [
    (RAW, {"endpoint": "http://127.0.0.1:8080"},
     ["http://127.0.0.1:8080", "HTTP 404", "not an S3 endpoint", "replica.endpoint"],
     ["RequestID", "HostID", "operation error"]),
    (S3, {"endpoint": "https://fly.storage.tigris.dev", "bucket": "b"},
     ["https://fly.storage.tigris.dev", "HTTP 403", "AccessDenied", "credentials"],
     ["HostID", "not an S3 endpoint"]),
    (S3, {}, ["the default AWS S3 endpoint"], ["HostID"]),
    (HTML, {"endpoint": "http://127.0.0.1:8000"},
     ["cannot plan a restore: http://127.0.0.1:8000 answered ListObjectsV2 with HTTP 404",
      "not an S3 endpoint"], ["HostID"]),
])
def test_the_sdk_error_read_as_one_line(message, found, has, lacks):
    line = rp.sdk_error_line(message, found)
    assert all(text in line for text in has), line
    assert not any(text in line for text in lacks), line
    assert "\n" not in line


def test_a_line_without_the_sdk_error_is_left_alone():
    assert rp.sdk_error_line("cannot read: NoSuchKey", {}) is None


@pytest.fixture
def web_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("task", [("replica.drill",), ("restore", "--from-replica", "--yes")])
def test_a_web_server_as_endpoint_is_one_clear_line(task, web_server, replica_world,
                                                    run_invoke, tmp_path):
    env = {**replica_world.env, "AWS_ENDPOINT_URL_S3": web_server,
           "INVOKE_BACKUP_DIR": str(tmp_path / "backups")}
    result = run_invoke(*task, cwd=tmp_path, env=env)
    line = assert_one_line_error(result, ExitCode.REPLICA, strict=False)
    assert web_server in line and "replica.endpoint" in line, line
    assert "HostID" not in line and "RequestID" not in line, line
