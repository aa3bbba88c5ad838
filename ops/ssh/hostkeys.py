"""Known host keys: read from known_hosts files, and the one-line refusals.

Fabric hard-codes ``AutoAddPolicy`` (trust whatever key answers) and never reads
known_hosts; Paramiko reads them but not the line an entry came from. Here every
entry keeps its file and line, so a changed key names the old entry, and an unknown
key is refused with its fingerprint and the command that adds it.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from paramiko import HostKeys, MissingHostKeyPolicy, PKey
from paramiko.hostkeys import HostKeyEntry, InvalidHostKey
from paramiko.ssh_exception import SSHException

USER_KNOWN_HOSTS = "~/.ssh/known_hosts"


@dataclass(frozen=True)
class KnownKey:
    path: str
    line: int
    names: tuple[str, ...]  # plain names, or hashed ones (``|1|salt|hash``)
    key: PKey


def read_known_hosts(paths: list[str]) -> list[KnownKey]:
    """Every usable entry of the files that exist; lines OpenSSH would skip are skipped.

    ``@cert-authority`` and ``@revoked`` lines are skipped too (Paramiko cannot use them),
    so a host known only through a CA is refused as unknown: the safe side.
    """
    found = []
    for path in map(os.path.expanduser, paths):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        for number, text in enumerate(lines, 1):
            text = text.strip()
            if not text or text.startswith(("#", "@")):
                continue
            try:
                entry = HostKeyEntry.from_line(text, number)
            except (SSHException, InvalidHostKey, ValueError, TypeError, IndexError):
                continue
            if entry is not None and entry.key is not None:
                found.append(KnownKey(path, number, tuple(entry.hostnames), entry.key))
    return found


def lookup_name(host: str, port: int) -> str:
    """The name known_hosts files (and ``ssh-keyscan``) use: ``host``, or ``[host]:port``."""
    return host if port == 22 else f"[{host}]:{port}"


def matches(entry: KnownKey, name: str) -> bool:
    for known in entry.names:
        if known == name:
            return True
        if known.startswith("|1|") and hmac.compare_digest(HostKeys.hash_host(name, known), known):
            return True
    return False


def entries_for(known: list[KnownKey], name: str) -> list[KnownKey]:
    return [entry for entry in known if matches(entry, name)]


def load_into(host_keys: HostKeys, known: list[KnownKey]) -> None:
    """Give Paramiko the keys, so it compares them and prefers the known key's type."""
    for entry in known:
        for name in entry.names:
            host_keys.add(name, entry.key.get_name(), entry.key)


class UnknownHostKey(SSHException):
    def __init__(self, name: str, key: PKey):
        super().__init__(f"host key for {name} is not known")
        self.name, self.key = name, key


class RefuseUnknown(MissingHostKeyPolicy):
    """Paramiko's RejectPolicy, keeping the offered key for the message."""

    def missing_host_key(self, client, hostname, key):
        raise UnknownHostKey(hostname, key)


def keyscan(host: str, port: int) -> str:
    return f"ssh-keyscan -p {port} {host}" if port != 22 else f"ssh-keyscan {host}"


def describe_key(key: PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def unknown_message(host: str, port: int, key: PKey, files: list[str]) -> str:
    where = " or ".join(files)
    return (f"host key of {lookup_name(host, port)} is not known (not in {where}); it offers "
            f"{describe_key(key)}. Check that fingerprint out of band (on the host: "
            f"`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`), then add it: "
            f"`{keyscan(host, port)} >> ~/.ssh/known_hosts`")


def changed_message(host: str, port: int, key: PKey, old: list[KnownKey]) -> str:
    name = lookup_name(host, port)
    if old:
        first = old[0]
        had = f"{first.path}:{first.line} holds {describe_key(first.key)}"
        remove = f"`ssh-keygen -R '{name}' -f {first.path}`"
    else:
        had, remove = "known_hosts holds another key", f"`ssh-keygen -R '{name}'`"
    return (f"host key of {name} has CHANGED: it offers {describe_key(key)} but {had}. "
            "Someone may be intercepting the connection, or the host was rebuilt: check the "
            f"new fingerprint out of band; only then remove the old entry with {remove} and "
            f"add the new key with `{keyscan(host, port)} >> ~/.ssh/known_hosts`")
