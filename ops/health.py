"""The app's /health endpoint: read it, judge it (pure), and wait until it passes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from ops.errors import ExitCode, OpsError


def fetch(url: str, timeout: float = 10.0) -> tuple[int | None, dict | None, str]:
    """(HTTP status, JSON body or None, a word on what went wrong)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, None, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return None, None, str(getattr(exc, "reason", exc))
    try:
        body = json.loads(raw)
    except ValueError:
        return status, None, "the body is not JSON"
    return status, body if isinstance(body, dict) else None, ""


def judge(status: int | None, body: dict | None, expected_backup: str | None) -> str | None:
    """Why the app is not healthy yet, or None when it is."""
    if status != 200:
        return f"HTTP {status}" if status else "no answer"
    if expected_backup:
        block = (body or {}).get("backup") or {}
        latest = (block.get("latest") or {}).get("name")
        if latest != expected_backup:
            return f"/health reports latest backup {latest!r}, expected {expected_backup!r}"
    return None


def wait_healthy(url: str, *, expected_backup: str | None, timeout: float,
                 interval: float) -> dict:
    """Poll until healthy; raises HEALTH_FAILED with the last reason at the deadline."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        status, body, problem = fetch(url, timeout=min(10.0, max(timeout, 1.0)))
        polls += 1
        reason = judge(status, body, expected_backup) if status else problem
        if reason is None:
            return {"status": status, "polls": polls, "backup": (body or {}).get("backup")}
        if time.monotonic() + interval > deadline:
            raise OpsError(f"{url} not healthy within {timeout:g}s: {reason}",
                           ExitCode.HEALTH_FAILED)
        time.sleep(interval)
