"""The deploy audit log: one JSON line per deploy, appended and fsynced."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path


def who() -> str:
    """The person or CI job behind this run, as well as we can tell."""
    actor = os.environ.get("GITHUB_ACTOR")
    if actor:
        return f"{actor} (GitHub Actions run {os.environ.get('GITHUB_RUN_ID', '?')})"
    return f"{os.environ.get('USER') or 'unknown'}@{socket.gethostname()}"


def append(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, sort_keys=True, default=str) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
