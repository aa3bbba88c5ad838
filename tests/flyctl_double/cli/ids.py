"""Fly-shaped identifiers: ULIDs, snapshot and release ids, random strings."""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def ulid() -> str:
    n = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD[n & 31])
        n >>= 5
    return "".join(reversed(chars))


def rand_str(n: int, alphabet: str = ALNUM) -> str:
    raw = os.urandom(n)
    return "".join(alphabet[b % len(alphabet)] for b in raw)


def new_snapshot_id() -> str:
    return "vs_" + rand_str(24)


def new_release_id() -> str:
    return "Rel_" + rand_str(13, "0123456789abcdefghijklmnopqrstuvwxyz")
