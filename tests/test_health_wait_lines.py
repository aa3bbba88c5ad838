"""While a restore waits for /health, why it waits reads as words under its step, as the
deploy's does ("  health: not yet: …"), never a bare "[Errno 111] Connection refused" line
(review-op s19)."""

from ops import health
from ops.errors import ExitCode
from tests.fake_production import free_port


def test_a_restore_waiting_for_an_unreachable_health_says_why_in_words(site):
    made = site.run("backup", "--production")
    assert made.returncode == 0, made
    dead = f"http://127.0.0.1:{free_port()}/health"  # nothing listens there
    result = site.run("restore", "--production", "--yes", env={
        "INVOKE_HEALTH_URL": dead, "INVOKE_HEALTH_TIMEOUT": "0.5"}, timeout=60)
    assert result.returncode == ExitCode.HEALTH_FAILED, result
    assert "Errno" not in result.stderr, result
    waits = [line for line in result.stderr.splitlines() if "not yet" in line]
    assert waits == ["  health: not yet: cannot connect (Connection refused)"], result


def test_what_keeps_a_url_from_answering_reads_as_words():
    port = free_port()
    assert health.fetch(f"http://127.0.0.1:{port}/", timeout=2) == (
        None, None, "cannot connect (Connection refused)")
    status, body, problem = health.fetch("http://no-such-host.invalid/", timeout=2)
    assert (status, body) == (None, None) and problem.startswith("cannot connect (")
