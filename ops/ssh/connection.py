"""The one connection factory: a Fabric ``Connection`` that trusts only known host keys.

Fabric gives every connection (and every ProxyJump hop) ``AutoAddPolicy``, which accepts
any key that answers. Here each of them gets the known_hosts keys (``~/.ssh/known_hosts``
and ``ssh.known_hosts``) and a policy that refuses the rest. ``~/.ssh/config`` (User,
Port, HostName, IdentityFile, ProxyJump, ProxyCommand), key files and the agent are
Fabric's and Paramiko's own handling. Every failure to connect becomes one line.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from fabric import Config, Connection
from paramiko.ssh_exception import (
    AuthenticationException,
    BadHostKeyException,
    ConfigParseError,
    NoValidConnectionsError,
    PasswordRequiredException,
    ProxyCommandFailure,
    SSHException,
)

from ops.errors import ExitCode, OpsError
from ops.ssh import hostkeys
from ops.ssh.address import Address

# 8: the remote cannot be reached, trusted or logged into (by flyctl or by SSH)
UNREACHABLE = ExitCode.FLY


@dataclass(frozen=True)
class Options:
    known_hosts: str = ""  # ssh.known_hosts: read besides ~/.ssh/known_hosts
    connect_timeout: float = 15.0  # ssh.connect_timeout: TCP connect, SSH banner, login
    timeout: float = 600.0  # ssh.timeout: one remote command; a transfer's longest stall

    @property
    def known_hosts_files(self) -> list[str]:
        files = [hostkeys.USER_KNOWN_HOSTS]
        return files + [self.known_hosts] if self.known_hosts else files


def build(address: Address, options: Options) -> tuple[Connection, list[hostkeys.KnownKey]]:
    """A Connection that is not open yet, every hop of it refusing unknown host keys; and
    the known keys it trusts (their file and line name the old entry of a changed key)."""
    if options.known_hosts and not os.path.isfile(os.path.expanduser(options.known_hosts)):
        raise OpsError(f"config ssh.known_hosts: no such file {options.known_hosts}",
                       ExitCode.USAGE)
    limit = options.connect_timeout
    try:
        config = Config(overrides={
            "connect_kwargs": {"banner_timeout": limit, "auth_timeout": limit,
                               "channel_timeout": limit},
            "timeouts": {"connect": max(1, int(limit))},
        })
        cxn = Connection(address.host, user=address.user, port=address.port, config=config,
                         connect_timeout=max(1, int(limit)))
    except ConfigParseError as exc:
        raise OpsError(f"~/.ssh/config cannot be read: {exc}", ExitCode.USAGE) from None
    except (ValueError, TypeError) as exc:  # e.g. a Port or ConnectTimeout that is no number
        raise OpsError(f"~/.ssh/config for {address.host} is not usable: {exc}",
                       ExitCode.USAGE) from None
    known = hostkeys.read_known_hosts(options.known_hosts_files)
    for hop in chain(cxn):
        hop.connect_timeout = limit  # Fabric rounds it to whole seconds
        hop.client.set_missing_host_key_policy(hostkeys.RefuseUnknown())
        hostkeys.load_into(hop.client.get_host_keys(), known)
    return cxn, known


def chain(cxn: Connection) -> list[Connection]:
    """The connection and its ProxyJump hops (a ProxyCommand gateway is a string)."""
    hops = [cxn]
    while isinstance(hops[-1].gateway, Connection):
        hops.append(hops[-1].gateway)
    return hops


def where(cxn: Connection) -> str:
    user = f"{cxn.user}@" if cxn.user else ""
    host = f"[{cxn.host}]" if ":" in cxn.host else cxn.host
    return f"{user}{host}:{cxn.port}"


def open_connection(cxn: Connection, known: list[hostkeys.KnownKey], options: Options) -> None:
    """Connect (once) or raise one line: 6 for a timeout, 8 for anything else."""
    try:
        cxn.open()
    except Exception as exc:  # noqa: BLE001 - every way Paramiko can fail is mapped below
        raise connect_error(exc, cxn, known, options) from None


def _hop(cxn: Connection, hostname: str | None) -> Connection:
    """The hop a host key error is about (the target, or a ProxyJump host)."""
    for hop in chain(cxn):
        if hostname in (hop.host, hostkeys.lookup_name(hop.host, hop.port)):
            return hop
    return cxn


def connect_error(exc: Exception, cxn: Connection, known: list[hostkeys.KnownKey],
                  options: Options) -> OpsError:
    limit = f"{options.connect_timeout:g}s (ssh.connect_timeout)"
    if isinstance(exc, hostkeys.UnknownHostKey | BadHostKeyException):
        hop = _hop(cxn, getattr(exc, "name", None) or getattr(exc, "hostname", None))
        refused = hostkeys.refusal(hop.host, hop.port, exc.key, known)
        if refused:
            return OpsError(refused, UNREACHABLE)
    if isinstance(exc, hostkeys.UnknownHostKey):
        hop = _hop(cxn, exc.name)
        return OpsError(hostkeys.unknown_message(hop.host, hop.port, exc.key,
                                                 options.known_hosts_files), UNREACHABLE)
    if isinstance(exc, BadHostKeyException):
        hop = _hop(cxn, exc.hostname)
        old = hostkeys.entries_for(known, hostkeys.lookup_name(hop.host, hop.port))
        return OpsError(hostkeys.changed_message(hop.host, hop.port, exc.key, old), UNREACHABLE)
    if isinstance(exc, PasswordRequiredException):
        return OpsError(f"SSH to {where(cxn)}: a private key needs its passphrase; load it "
                        "into the agent first (`ssh-add`)", UNREACHABLE)
    if isinstance(exc, AuthenticationException) or "no authentication methods" in str(exc).lower():
        return OpsError(f"SSH to {where(cxn)}: the host refused our keys ({tried(cxn)}); try "
                        f"`ssh -p {cxn.port} {cxn.user}@{cxn.host} true`", UNREACHABLE)
    # Paramiko's handshake wait ends quietly at its deadline; the next step then finds
    # "No existing session": a timeout too
    if timed_out(exc) or "no existing session" in str(exc).lower():
        return OpsError(f"SSH to {where(cxn)}: no answer within {limit}", ExitCode.TIMEOUT)
    if isinstance(exc, NoValidConnectionsError):
        return OpsError(f"SSH to {where(cxn)}: connection refused", UNREACHABLE)
    if isinstance(exc, socket.gaierror):
        return OpsError(f"SSH to {where(cxn)}: cannot resolve {cxn.host}", UNREACHABLE)
    if isinstance(exc, ProxyCommandFailure):
        return OpsError(f"SSH to {where(cxn)}: the ProxyCommand failed: {exc}", UNREACHABLE)
    if isinstance(exc, OSError):
        return OpsError(f"SSH to {where(cxn)}: {exc.strerror or exc}", UNREACHABLE)
    if isinstance(exc, SSHException | EOFError):
        return OpsError(f"SSH to {where(cxn)} failed: {exc or 'connection closed'}", UNREACHABLE)
    return OpsError(f"SSH to {where(cxn)} failed: {type(exc).__name__}: {exc}", UNREACHABLE)


def timed_out(exc: BaseException) -> bool:
    """A socket timeout, also when Paramiko wrapped it (no banner, no auth answer)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TimeoutError | socket.timeout):
            return True
        if isinstance(exc, SSHException) and "timeout" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def tried(cxn: Connection) -> str:
    """What we offered: key files, the agent, ~/.ssh/id_*."""
    offered = [str(path) for path in cxn.connect_kwargs.get("key_filename") or []]
    offered += [f"~/.ssh/{name}" for name in ("id_rsa", "id_ecdsa", "id_ed25519")
                if os.path.isfile(os.path.expanduser(f"~/.ssh/{name}"))]
    if os.environ.get("SSH_AUTH_SOCK"):
        offered.append("the ssh-agent's keys")
    return "tried " + ", ".join(dict.fromkeys(offered)) if offered else "no key found to offer"
