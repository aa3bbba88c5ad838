"""``[user@]host[:port]`` (IPv6 in brackets) as data; anything else is refused in one line.

Kept free of Fabric imports so configuration can validate ``ssh.host`` cheaply.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shlex
from dataclasses import dataclass

from ops.errors import ExitCode, OpsError

USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,252})")
PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class Address:
    host: str  # a name (possibly a ~/.ssh/config alias), an IPv4 or a bare IPv6 address
    user: str | None = None  # None: ~/.ssh/config's User, else the local user
    port: int | None = None  # None: ~/.ssh/config's Port, else 22

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        if self.port is None:
            return f"{user}{self.host}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{user}{host}:{self.port}"


def ssh_command(address: Address, known_hosts: str = "") -> str:
    """The ``ssh`` command line that opens a shell on ``address`` (for an operator). With
    ``ssh.known_hosts`` it reads that file too, as the toolkit does: else ssh would ask the
    operator to accept a key the toolkit checked against it."""
    user = f"{address.user}@" if address.user else ""
    port = f"-p {address.port} " if address.port is not None else ""
    files = ""
    if known_hosts and not any(c in known_hosts for c in "'\"\\") and "${" not in known_hosts:
        # as ssh reads the option's value: a list split at spaces (a path with one is
        # double-quoted), % tokens (%% is a %); a quote, a backslash or ${VAR} it cannot
        # take, so then the option is left out. From any folder: an absolute path.
        path = known_hosts
        with contextlib.suppress(OSError):  # the working folder removed under us: as given
            path = os.path.abspath(known_hosts)
        path = path.replace("%", "%%")
        extra = f'"{path}"' if any(c.isspace() for c in path) else path
        files = f"-o {shlex.quote(f'UserKnownHostsFile=~/.ssh/known_hosts {extra}')} "
    return f"ssh {files}{port}{user}{address.host}"


def parse_address(text: str, what: str = "--host") -> Address:
    """``box``, ``deploy@box``, ``box:2222``, ``10.0.0.5``, ``[::1]:2222``, ``root@::1``."""
    value = str(text).strip()
    user, at, hostport = value.rpartition("@")
    if at and not USER.fullmatch(user):
        raise _junk(text, what)
    host, port = hostport, None
    if hostport.startswith("["):
        inner, bracket, rest = hostport[1:].partition("]")
        if not bracket or not _ipv6(inner) or (rest and not rest.startswith(":")):
            raise _junk(text, what)
        host, port = inner, rest[1:] if rest else None
    elif hostport.count(":") > 1:
        if not _ipv6(hostport):
            raise _junk(text, what)
    elif ":" in hostport:
        host, port = hostport.split(":")
    if not (_ipv6(host) or HOST.fullmatch(host)) or ".." in host:
        raise _junk(text, what)
    if port is not None:
        if not PORT.fullmatch(port) or not 0 < int(port) < 65536:
            raise _junk(text, what)
        port = int(port)
    return Address(host=host, user=user or None, port=port)


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _junk(text, what: str) -> OpsError:
    shown = repr(str(text))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return OpsError(f"{what} must be [user@]host[:port] (IPv6 in brackets: [::1]:2222), "
                    f"got {shown}", ExitCode.USAGE)
