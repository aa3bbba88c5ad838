"""The app's /health endpoint: build its URL, read it, judge it (pure), wait until it passes.

Everything /health sends is hostile until checked: the URL is built so fly.toml's
check path can never change the host, the body is read with a size limit and a
deadline, and any JSON shape ends in a reason, never in an exception.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request

from ops import poll
from ops.engine import parse_created, parse_iso
from ops.errors import ExitCode, OpsError

MAX_BODY = 1 << 20  # /health is a few hundred bytes; anything past 1 MiB is not an answer
FUTURE_SKEW = dt.timedelta(minutes=5)  # a backup dated later than this is not trusted
APP_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
PATH_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*(\?[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*)?")


def url_for(app: str, path: object) -> str:
    """``https://<app>.fly.dev<path>`` for fly.toml's check path; refuses what could
    name another host (``//evil``, ``\\\\evil``, a scheme, spaces, ``#``)."""
    if not isinstance(app, str) or not APP_NAME.fullmatch(app):
        raise OpsError(f"app name {app!r} cannot be part of a health URL", ExitCode.USAGE)
    text = path if isinstance(path, str) else ""
    if not text or text.startswith(("//", "\\")) or not PATH_CHARS.fullmatch(text) \
            or "://" in text:
        raise OpsError(f"fly.toml's check path {path!r} is not a plain URL path like /health; "
                       "fix it or set health.url", ExitCode.USAGE)
    url = f"https://{app}.fly.dev" + (text if text.startswith("/") else "/" + text)
    parts = urllib.parse.urlsplit(url)
    if parts.hostname != f"{app}.fly.dev" or parts.port or parts.username or parts.fragment:
        raise OpsError(f"fly.toml's check path {path!r} would leave {app}.fly.dev",
                       ExitCode.USAGE)
    return url


def check_url(url: str, key: str = "health.url") -> str:
    """An http(s) URL with a host, or one line saying why not."""
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OpsError(f"{key} must be an http:// or https:// URL with a host, got {url!r}",
                       ExitCode.USAGE)
    return url


def fetch(url: str, timeout: float = 10.0) -> tuple[int | None, dict | None, str]:
    """(HTTP status, JSON body or None, a word on what went wrong); reads at most
    ``MAX_BODY`` bytes and gives up after ``timeout`` seconds in all."""
    if urllib.parse.urlsplit(str(url)).scheme not in ("http", "https"):
        return None, None, f"not an http(s) URL: {url!r}"
    deadline = time.monotonic() + timeout
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            status, raw = response.status, _read_limited(response, deadline)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, None, f"HTTP {exc.code}"
    except _Unusable as exc:
        return None, None, str(exc)
    except (OSError, ValueError, UnicodeError) as exc:
        return None, None, unreachable(exc)
    try:
        body = json.loads(raw)
    except ValueError:
        return status, None, "the body is not JSON"
    return status, body if isinstance(body, dict) else None, ""


def unreachable(exc: BaseException) -> str:
    """Why a URL gave no answer, in words: "cannot connect (Connection refused)", not
    "[Errno 111] Connection refused" (review-op s19)."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, OSError) and reason.strerror:
        return f"cannot connect ({reason.strerror})"
    if isinstance(reason, TimeoutError):
        return "no answer in time"
    return str(reason)


class _Unusable(Exception):
    pass


class _SameHost(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only on the same host (http → https is fine, another host is not)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if new.scheme not in ("http", "https") or new.hostname != old.hostname:
            raise _Unusable(f"unusable answer: HTTP {code} redirects to another host")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameHost)


def _read_limited(response, deadline: float) -> bytes:
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise _Unusable("unusable answer: the body did not end in time")
        chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            raise _Unusable(f"unusable answer: the body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)


def backup_time(name: object, created: object = None) -> dt.datetime | None:
    """When a backup was made: the time in its name, else its ``created`` field."""

    if isinstance(name, str):
        when = parse_created(name)
        if when is not None:
            return when
    if isinstance(created, str):
        try:
            when = parse_iso(created)
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return None


def judge(status: int | None, body: dict | None, expected_backup: str | None) -> str | None:
    """Why the app is not healthy yet, or None when it is.

    With ``expected_backup``, /health must report a latest backup at least as new as
    that one (another backup may finish meanwhile). One dated in the future (a clock that
    ran ahead, or junk in the folder) hides ours for good, so it cannot hold the gate
    shut: the caller warns about it (``future_dated``).
    """
    if status != 200:
        return f"HTTP {status}" if status else "no answer"
    if not expected_backup:
        return None
    block = body.get("backup") if isinstance(body, dict) else None
    latest = block.get("latest") if isinstance(block, dict) else None
    if not isinstance(latest, dict):
        return "/health reports no latest backup"
    name, created = latest.get("name"), latest.get("created")
    if name == expected_backup:
        return None
    shown = name if isinstance(name, str) else created
    when, ours = backup_time(name, created), backup_time(expected_backup)
    if when is None or ours is None:
        return f"/health reports latest backup {shown!r}, expected {expected_backup!r}"
    if when < ours:
        return (f"/health reports latest backup {shown!r}, older than this deploy's "
                f"{expected_backup!r}")
    return None


def future_dated(block, now: dt.datetime | None = None) -> str | None:
    """The name of a /health ``backup.latest`` dated in the future, if it is."""
    latest = block.get("latest") if isinstance(block, dict) else None
    if not isinstance(latest, dict):
        return None
    when = backup_time(latest.get("name"), latest.get("created"))
    if when is None or when <= (now or dt.datetime.now(dt.UTC)) + FUTURE_SKEW:
        return None
    return str(latest.get("name") or latest.get("created"))


def by_hand(url: str) -> str:
    """What an operator runs to wait for ``url`` to answer 200 (a "finish by hand" line)."""
    return f"until curl -fsS -o /dev/null {shlex.quote(url)}; do sleep 5; done"


def wait_healthy(url: str, *, expected_backup: str | None, timeout: float,
                 interval: float, on_reason=None) -> dict:
    """Poll until healthy; ``on_reason(text)`` hears each new reason it is not yet;
    raises HEALTH_FAILED with the last reason at the deadline."""

    def reason_of(status, body, problem):
        reason = judge(status, body, expected_backup) if status else problem
        if reason and status == 200 and problem:
            reason = problem  # e.g. "the body is not JSON" says more than "no backup"
        return reason

    def expired(count: int, waited: float, last: str | None) -> OpsError:
        # what happened, not the limit: a DNS error with a poll every 5s and a 3s
        # limit ends after one poll in 0.1s (review-ox 17)
        from ops.ui import human_seconds  # rich: loaded only when it says this

        return OpsError(f"{url} not healthy after {count} poll(s) in {human_seconds(waited)} "
                        f"(limit {timeout:g}s, a poll every {interval:g}s): {last}",
                        ExitCode.HEALTH_FAILED)

    return _wait(url, reason_of, timeout=timeout, interval=interval, on_reason=on_reason,
                 expired=expired)


def wait_for_backup_block(url: str, *, valid, timeout: float, interval: float,
                          on_reason=None) -> str:
    """Poll ``url`` until it answers 200 with a ``backup`` block ``valid(block)`` accepts
    (a restore's last step; ``valid``: ``ops.targets.status.valid_status``).

    ``on_reason(text)`` hears why it is still waiting each time that changes (HTTP 503,
    no answer, no valid backup block), so the operator is not left with a bare spinner
    until the deadline (review-op E3); at the deadline HEALTH_FAILED says the last one."""

    def reason_of(status, body, problem):
        if status == 200 and valid((body or {}).get("backup")):
            return None
        return problem or (f"HTTP {status}" if status != 200 else "no valid backup block")

    def expired(count: int, waited: float, last: str | None) -> OpsError:
        return OpsError(f"restored, but {url} not healthy within {timeout:g}s: {last}",
                        ExitCode.HEALTH_FAILED)

    result = _wait(url, reason_of, timeout=timeout, interval=interval, on_reason=on_reason,
                   expired=expired)
    return f"200 with a backup block after {result['polls']} poll(s)"


def _wait(url: str, reason_of, *, timeout: float, interval: float, on_reason, expired) -> dict:
    """The one /health poll: ``reason_of(status, body, problem)`` says why not yet (None:
    done), ``on_reason`` hears each new reason, ``expired(polls, waited, last reason)``
    is raised at the deadline."""
    deadline = time.monotonic() + timeout
    last: list[str | None] = [None]
    polls = [0]

    def attempt() -> dict | None:
        polls[0] += 1
        left = max(deadline - time.monotonic(), 1.0)
        status, body, problem = fetch(url, timeout=min(10.0, left))
        reason = reason_of(status, body, problem)
        if reason is None:
            backup = body.get("backup") if isinstance(body, dict) else None
            return {"status": status, "polls": polls[0], "backup": backup}
        if on_reason and reason != last[0]:
            on_reason(reason)
        last[0] = reason
        return None

    return poll.until(attempt, timeout=timeout, interval=interval,
                      expired=lambda count, waited: expired(count, waited, last[0]))
