"""One SSH connection per task run: remote scripts in, ``RemoteOutput`` out, files via SFTP.

``run`` keeps the contract the Fly target's ``exec`` has: the script from
``ops.remote`` is wrapped (``sh -c``, a sentinel with the real status) and its output
parsed by ``remote.parse_output``, so the same scripts (the engine on stdin to
``python3``, else the ``sqlite3`` CLI) run on an SSH host exactly as over flyctl. The
remote PATH is the host's own (what its sshd and login shell give a command); the
toolkit never sets it. The connection opens on first use and closes with the ``with``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from fabric import Connection
from paramiko.ssh_exception import SSHException

from ops import limits, remote
from ops.errors import ExitCode, OpsError
from ops.ssh import connection as link
from ops.ssh import hostkeys, transfer
from ops.ssh.address import Address, parse_address, ssh_command
from ops.text import text_lines

DEFAULT = object()  # "ssh.timeout", as opposed to None: no limit
CHUNK = 1 << 16


class SshSession:
    """A host reached over SSH. Use as ``with connect(...) as session:``."""

    def __init__(self, address: Address, options: link.Options | None = None):
        self.address = address
        self.options = options or link.Options()
        self._cxn: Connection | None = None
        self._known: list[hostkeys.KnownKey] = []

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return f"ssh {self.address}"

    # -- the connection
    @property
    def connection(self) -> Connection:
        """The open Fabric connection (opened on first use, then reused)."""
        if self._cxn is None:
            cxn, known = link.build(self.address, self.options)
            try:
                link.open_connection(cxn, known, self.options)
            except BaseException:
                _close(cxn)  # a ProxyJump hop may be open
                raise
            self._cxn, self._known = cxn, known
        elif not self._cxn.is_connected:  # one connection per run: no silent reconnect
            raise OpsError(f"the connection to {self.where} was lost", link.UNREACHABLE)
        return self._cxn

    @property
    def where(self) -> str:
        return link.where(self._cxn) if self._cxn is not None else str(self.address)

    def lost(self, exc: BaseException, doing: str) -> OpsError:
        """A failure after connecting: a stall is a timeout (6), the rest a lost link (8)."""
        if link.timed_out(exc):
            return OpsError(f"{doing} on {self.where}: no data for "
                            f"{self.options.timeout:g}s (ssh.timeout)", ExitCode.TIMEOUT)
        text = str(exc) or type(exc).__name__
        return OpsError(f"{doing} on {self.where}: connection lost ({text})", link.UNREACHABLE)

    def close(self) -> None:
        """Close every hop; a connection that is already dead is closed all the same."""
        if self._cxn is not None:
            _close(self._cxn)

    def reconnect(self) -> None:
        """Drop a lost connection, so the next use opens a new one (host key checked
        again): only for asking what a restore whose answer was lost left there."""
        self.close()
        self._cxn = None

    def _deadline(self, timeout) -> float | None:
        seconds = self.options.timeout if timeout is DEFAULT else timeout
        return time.monotonic() + seconds if seconds else None

    # -- remote scripts
    def run(self, script: str, stdin_text: str = "", *, timeout=DEFAULT) -> remote.RemoteOutput:
        """Run a script from ``ops.remote``; its real status comes back through the sentinel.

        ``timeout`` defaults to ``ssh.timeout``; ``None`` means as long as it takes (a
        backup bounds itself with ``backup.timeout``). Output that is not UTF-8 is
        replaced, never raised.
        """
        cxn = self.connection
        deadline = self._deadline(timeout)
        try:
            channel = cxn.create_session()
            channel.exec_command(remote.wrap(script))
            out, err, code = _exchange(channel, stdin_text.encode(), deadline)
        except TimeoutError:
            limit = f"{self.options.timeout:g}s (ssh.timeout)" if timeout is DEFAULT \
                else f"{timeout:g}s"
            raise OpsError(f"a remote command on {self.where} did not finish within {limit}; "
                           "it may still be running there", ExitCode.TIMEOUT) from None
        except limits.OutputLimit as exc:
            raise OpsError(f"a remote command on {self.where} {exc}") from None
        except (OSError, EOFError, SSHException) as exc:
            raise self.lost(exc, "a remote command") from None
        output = remote.parse_output(out.decode("utf-8", "replace"), host=self.where,
                                     there=ssh_command(self.address, self.options.known_hosts))
        if output.status is None:
            if code == -1 and _link_went(cxn):  # paramiko's "no status"
                raise OpsError(f"a remote command on {self.where}: connection lost before "
                               "it finished (no status came back)", link.UNREACHABLE)
            said = text_lines(err.decode("utf-8", "replace"))
            reason = said[-1] if said else "no output"
            raise OpsError(f"the command on {self.where} ended without its status "
                           f"(exit {code}): {reason}", link.UNREACHABLE)
        return output

    # -- SFTP
    def sftp(self):
        """The connection's SFTP client; a read that waits ``ssh.timeout`` s gives up."""
        cxn = self.connection
        try:
            client = cxn.sftp()
        except (OSError, EOFError, SSHException) as exc:
            raise self.lost(exc, "opening SFTP") from None
        client.get_channel().settimeout(self.options.timeout or None)
        return client

    def remote_sha256(self, path: str) -> tuple[str, int]:
        """SHA-256 and size of a regular file on the host (python3, else sha256sum)."""
        return transfer.remote_sha256(self, path)

    def fetch(self, remote_file: str, directory: Path, expected_sha256: str | None = None,
              on_bytes: transfer.Progress | None = None):
        """``with session.fetch(...) as staged:`` a checked private copy, for ``engine.publish``."""
        return transfer.fetch(self, remote_file, directory, expected_sha256, on_bytes)

    def get(self, remote_file: str, local: Path, expected_sha256: str | None = None,
            on_bytes: transfer.Progress | None = None) -> transfer.Transferred:
        """Download to ``local``: temporary name, SHA-256 checked, linked (never replaces)."""
        return transfer.get(self, remote_file, local, expected_sha256, on_bytes)

    def put(self, local: Path, remote_file: str, expected_sha256: str | None = None,
            on_bytes: transfer.Progress | None = None) -> transfer.Transferred:
        """Upload to ``remote_file``: private temporary folder, SHA-256 checked, linked."""
        return transfer.put(self, local, remote_file, expected_sha256, on_bytes)


def _link_went(cxn: Connection) -> bool:
    """Whether the connection itself ended: its transport closes the channels before it
    marks itself inactive, so a command cut by the drop may see a live link for a moment."""
    transport = cxn.transport
    if transport is not None and transport.is_alive():
        transport.join(1.0)
    return not cxn.is_connected


def _close(cxn: Connection) -> None:
    for hop in link.chain(cxn):
        with contextlib.suppress(OSError, EOFError, SSHException):
            hop.close()  # its SFTP channel first, which fails on a dead link
        hop.client.close()


def _exchange(channel, stdin: bytes, deadline: float | None) -> tuple[bytes, bytes, int]:
    """Send stdin, then read stdout and stderr until the command ends or the deadline
    (or until it printed more than ``limits.Cap`` allows: ``OutputLimit``)."""
    out, err = bytearray(), bytearray()
    cap = limits.Cap()
    channel.settimeout(_left(deadline))
    try:
        channel.sendall(stdin)
        channel.shutdown_write()
    except OSError:
        pass  # it ended without reading stdin: what it printed tells
    channel.settimeout(None)
    # Woken by an Event, not ``channel.fileno()``: paramiko's pipe is closed in ``close()``
    # while its transport thread may still write to it (a host flooding output), and
    # that EBADF kills the whole connection, or writes into whatever reused the fd.
    ready = threading.Event()
    channel.in_buffer.set_event(ready)
    channel.in_stderr_buffer.set_event(ready)
    try:
        while True:
            ready.clear()
            while channel.recv_ready():
                out += _taken(cap, channel.recv(CHUNK))
            while channel.recv_stderr_ready():
                err += _taken(cap, channel.recv_stderr(CHUNK))
            if channel.eof_received or channel.closed:
                if not (channel.recv_ready() or channel.recv_stderr_ready()):
                    break
                continue
            left = _left(deadline)
            if left == 0:
                raise TimeoutError
            ready.wait(left)
        if not channel.status_event.wait(_left(deadline)):
            raise TimeoutError
        return bytes(out), bytes(err), channel.recv_exit_status()
    finally:
        channel.close()


def _taken(cap: limits.Cap, data: bytes) -> bytes:
    if not cap.take(data):
        raise cap.error()  # closing the channel (``finally``) ends the command
    return data


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def connect(host: str | Address, options: link.Options | None = None) -> SshSession:
    """``with connect("deploy@box:2222") as session:``; nothing is opened until first use."""
    address = host if isinstance(host, Address) else parse_address(host)
    return SshSession(address, options)


def from_settings(settings, host: str | None = None) -> SshSession:
    """The session for ``--host`` (when given) or ``ssh.host``, with the ``ssh.*`` settings."""
    text = host or settings.ssh_host
    if not text:
        raise OpsError("no SSH host: pass --host [user@]host[:port] or set ssh.host",
                       ExitCode.USAGE)
    address = parse_address(text, "--host" if host else "config ssh.host")
    return SshSession(address, link.Options(
        known_hosts=settings.ssh_known_hosts,
        connect_timeout=settings.ssh_connect_timeout,
        timeout=settings.ssh_timeout,
    ))
