"""The restore's /health wait says why it is still waiting, each time that changes
(review-op E3): a /health that answered 200 without a backup block for 40 s showed only a
spinner until the final error after `health.timeout`.

``health.wait_for_backup_block`` against a real local HTTP server that answers a scripted
sequence, one answer per poll."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ops import health
from ops.errors import ExitCode, OpsError
from ops.targets.status import valid_status

GOOD = {"status": "ok", "backup": {"hasBackups": True,
                                   "latest": {"name": "steps-2026-12-06T22-01-32.db", "age": 5}}}
NO_BLOCK = {"status": "ok"}


@pytest.fixture
def answers():
    """``answers(*replies)``: a /health URL answering each (status, body) in turn (the
    last one from then on)."""
    servers = []

    def serve(*replies):
        queue = list(replies)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = queue.pop(0) if len(queue) > 1 else queue[0]
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/health"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_each_new_reason_is_heard_once_then_the_block_ends_the_wait(answers):
    url = answers((503, {}), (503, {}), (200, NO_BLOCK), (200, NO_BLOCK), (200, NO_BLOCK),
                  (200, GOOD))
    heard = []
    done = health.wait_for_backup_block(url, valid=valid_status, timeout=30, interval=0.01,
                                        on_reason=heard.append)
    assert heard == ["HTTP 503", "no valid backup block"]
    assert done == "200 with a backup block after 6 poll(s)"


def test_the_deadline_names_the_last_reason(answers):
    url = answers((200, NO_BLOCK))
    heard = []
    with pytest.raises(OpsError) as failed:
        health.wait_for_backup_block(url, valid=valid_status, timeout=0.05, interval=0.01,
                                     on_reason=heard.append)
    assert failed.value.code == ExitCode.HEALTH_FAILED
    assert str(failed.value) == (f"restored, but {url} not healthy within 0.05s: "
                                 "no valid backup block")
    assert heard == ["no valid backup block"]
