"""The call log (``calls.jsonl``): one line per invocation, tokens redacted."""

from __future__ import annotations

import fcntl
import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass


REDACTED = "[REDACTED]"


def calls_path_for(state_path: str) -> str:
    return os.path.join(os.path.dirname(state_path), "calls.jsonl")


def log_call(state_path: str, argv: list[str], has_token: bool) -> None:
    line = json.dumps({"argv": argv, "token": has_token}) + "\n"
    fd = os.open(calls_path_for(state_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode("utf-8"))
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def redact(args: list[str], tokens: list[str]) -> list[str]:
    toks = [t for t in tokens if t]
    res = []
    for a in args:
        if a in toks:
            res.append(REDACTED)
            continue
        for t in toks:
            for prefix in ("--access-token=", "-t=", "-t"):
                if a == prefix + t:
                    a = prefix + REDACTED
            if len(t) >= 6:
                a = a.replace(t, REDACTED)
        res.append(a)
    return res
