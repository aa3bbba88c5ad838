"""A remote command that never stops printing ends in one line with bounded memory
(issue 20 item 14): over SSH (the real sshd) and through the flyctl runner."""

from __future__ import annotations

import tracemalloc

import pytest

from ops import limits
from ops.cli import one_line
from ops.errors import ExitCode, OpsError
from ops.fly import Fly, FlyError
from tests.helpers import session_to

MIB = 1 << 20


def peak_mib(call) -> tuple[BaseException, float]:
    """The exception ``call`` raised and the most memory Python held meanwhile (MiB)."""
    tracemalloc.start()
    try:
        with pytest.raises((OpsError, FlyError)) as excinfo:
            call()
        return excinfo.value, tracemalloc.get_traced_memory()[1] / MIB
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("endless", ["yes", "cat /dev/zero"])
def test_a_host_that_never_stops_printing_is_stopped_in_one_line(ssh_host, endless):
    with session_to(ssh_host) as ssh:
        error, peak = peak_mib(lambda: ssh.run(endless, timeout=60))
        assert ssh.run("echo still here").stdout.startswith("still here\n")  # link survived
    line = one_line(error)
    assert error.code == ExitCode.ERROR and str(error) == line
    assert "printed more than 64 MiB or 500,000 lines, and was stopped" in line
    assert peak < 2 * limits.MAX_BYTES / MIB, peak


@pytest.mark.parametrize("endless", [["/usr/bin/yes"], ["/bin/cat", "/dev/zero"]])
def test_flyctl_output_that_never_ends_is_stopped_in_one_line(endless):
    runner = Fly(endless[0], timeout=60)
    error, peak = peak_mib(lambda: runner.run(endless[1:], what="`fly ssh console`"))
    assert isinstance(error, FlyError) and error.code == ExitCode.FLY
    assert str(error).startswith("`fly ssh console` printed more than 64 MiB or 500,000 lines")
    assert peak < 2 * limits.MAX_BYTES / MIB, peak


def test_the_cap_counts_both_streams_and_stays_over():
    cap = limits.Cap(max_bytes=10, max_lines=2)
    assert cap.take(b"a\n") and cap.take(b"bb")
    assert not cap.take(b"c\nd\n")  # the third line
    assert not cap.take(b"")  # once over, over
    assert limits.Cap(max_bytes=3).take(b"abc") and not limits.Cap(max_bytes=3).take(b"abcd")


class FourMiBCap(limits.Cap):
    """A smaller cap: the stop, not the amount, is what the floods below test (the real
    64 MiB over SSH is the test above); 30 floods of 64 MiB cost ~2 GB of encryption."""

    def __init__(self):
        super().__init__(max_bytes=4 * MIB)


def test_the_link_survives_many_stopped_floods(ssh_host, monkeypatch):
    """Stopping a flooding command closes its channel while paramiko's transport thread
    is still delivering data; that must never break the connection (it did, in one of
    ~25 floods, when the reader waited on ``channel.fileno()``'s pipe: EBADF). 4 MiB is
    twice paramiko's window, so data is still arriving when the reader stops."""
    monkeypatch.setattr(limits, "Cap", FourMiBCap)
    with session_to(ssh_host) as ssh:
        for attempt in range(30):
            with pytest.raises(OpsError) as stopped:
                ssh.run("cat /dev/zero", timeout=60)
            assert "printed more than 4 MiB" in str(stopped.value), (attempt, stopped.value)
        assert ssh.run("echo still here").stdout.startswith("still here\n")
