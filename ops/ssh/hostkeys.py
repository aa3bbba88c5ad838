"""Known host keys: read from known_hosts files, and the one-line refusals.

Fabric hard-codes ``AutoAddPolicy`` (trust whatever key answers) and never reads
known_hosts; Paramiko reads them but not the line an entry came from. Here every
entry keeps its file and line, so a changed key names the old entry, and an unknown
key is refused with its fingerprint and the command that adds it.
"""

from __future__ import annotations

import hmac
import os
import re
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
    marker: str = ""  # "@revoked" or "@cert-authority" (known_hosts markers), else ""


MARKERS = ("@revoked", "@cert-authority")


def read_known_hosts(paths: list[str]) -> list[KnownKey]:
    """Every usable entry of the files that exist; lines OpenSSH would skip are skipped.

    ``@revoked`` and ``@cert-authority`` lines are kept with their marker: a revoked key is
    refused even where it is also listed as a host's key (as OpenSSH refuses it), and a
    host known only through a CA (which Paramiko cannot check) is refused saying so.
    """
    found = []
    for path in map(os.path.expanduser, paths):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        for number, text in enumerate(lines, 1):
            text, marker = text.strip(), ""
            if text.startswith("@"):
                marker, _, text = text.partition(" ")
                if marker not in MARKERS:
                    continue
            if not text or text.startswith("#"):
                continue
            try:
                entry = HostKeyEntry.from_line(text.strip(), number)
            except (SSHException, InvalidHostKey, ValueError, TypeError, IndexError):
                continue
            if entry is not None and entry.key is not None:
                found.append(KnownKey(path, number, tuple(entry.hostnames), entry.key, marker))
    return found


def _glob(pattern: str, name: str) -> bool:
    """OpenSSH's match_pattern: ``*`` any run, ``?`` one character, the rest literal
    (``[host]:port`` is a name, not a character class)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None


def revoked(known: list[KnownKey], key: PKey) -> KnownKey | None:
    """The ``@revoked`` line of ``key``, if any. Whatever host it names: a revoked key
    "must not ever be accepted" (sshd(8)); OpenSSH itself applies the line's patterns."""
    return next((entry for entry in known if entry.marker == "@revoked"
                 and entry.key.get_name() == key.get_name()
                 and entry.key.asbytes() == key.asbytes()), None)


def pattern_matches(entry: KnownKey, name: str) -> bool:
    """OpenSSH's host patterns: ``*`` and ``?``, ``!`` negates, hashed names exactly."""
    hit = False
    for known in entry.names:
        negated, pattern = known.startswith("!"), known.lstrip("!")
        if pattern.startswith("|1|"):
            matched = hmac.compare_digest(HostKeys.hash_host(name, pattern), pattern)
        else:
            matched = _glob(pattern.lower(), name.lower())
        if matched and negated:
            return False
        hit = hit or matched
    return hit


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
    return [entry for entry in known if not entry.marker and matches(entry, name)]


def load_into(host_keys: HostKeys, known: list[KnownKey]) -> None:
    """Give Paramiko the keys, so it compares them and prefers the known key's type; never
    a revoked one (then Paramiko asks ``RefuseUnknown``, before we log in)."""
    for entry in known:
        if entry.marker or revoked(known, entry.key):
            continue
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


def revoked_message(host: str, port: int, key: PKey, line: KnownKey) -> str:
    return (f"host key of {lookup_name(host, port)} is REVOKED: it offers {describe_key(key)}, "
            f"marked @revoked in {line.path}:{line.line}. Do not connect until the host has a "
            "new key, checked out of band")


def certificate_message(host: str, port: int, key: PKey, ca: KnownKey) -> str:
    return (f"host key of {lookup_name(host, port)} is trusted only through @cert-authority "
            f"({ca.path}:{ca.line}), which this tool cannot check (Paramiko does not verify "
            f"host certificates); it offers {describe_key(key)}. Check that fingerprint out of "
            f"band, then add the key itself: `{keyscan(host, port)} >> ~/.ssh/known_hosts`")


def refusal(host: str, port: int, key: PKey, known: list[KnownKey]) -> str | None:
    """The line for a revoked key, or for an unknown one a @cert-authority line covers."""
    line = revoked(known, key)
    if line is not None:
        return revoked_message(host, port, key, line)
    name = lookup_name(host, port)
    for entry in known:
        if entry.marker == "@cert-authority" and any(
                pattern_matches(entry, candidate) for candidate in dict.fromkeys((name, host))):
            return certificate_message(host, port, key, entry)
    return None


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
