"""The backup block the app's ``/health`` reports, computed from a listing (pure).

Every target's ``status`` has this shape; the Fly target reads it from ``/health``
first and checks it with ``valid_status``.
"""

from __future__ import annotations

import datetime as dt

from ops.engine import in_future, latest_candidates, parse_iso, same_source


def status(backups, now: dt.datetime, source: str | None = None) -> dict:
    """The shape the app's ``/health`` reports under ``backup``.

    ``latest`` and ``count`` follow the one rule of ``engine.latest_of``: backups dated
    in the future are not trusted as the newest (an age is never negative) and are named
    in ``futureDated``; a restore's safety backups (``safetyBackups``) and backups of
    another database than ``source`` (``otherSources``, a count) are not this
    database's latest backup either (issue 16 #2-3).
    """
    future = sorted(item.name for item in backups if in_future(item.created, now))
    counted = latest_candidates(backups, now, source, unrecorded_ok=True)  # as /health
    safety = sorted(item.name for item in backups
                    if item.kind == "safety" and item.name not in future)
    other = sum(1 for item in backups if not same_source(item.source, source))
    extra = {"futureDated": future} if future else {}
    extra |= ({"safetyBackups": safety} if safety else {}) | (
        {"otherSources": other} if other else {})
    if not counted:
        return {"hasBackups": False, "count": 0, "latest": None} | extra
    latest = max(counted, key=lambda item: (item.created, item.name))
    created = parse_iso(latest.created)
    return {
        "hasBackups": True,
        "count": len(counted),
        "latest": {
            "name": latest.name,
            "created": latest.created,
            "age": max(0, int((now - created).total_seconds() * 1000)),
        },
    } | extra


def valid_status(block) -> bool:
    """Whether a /health ``backup`` block has the shape ``status`` produces."""
    if not isinstance(block, dict) or not isinstance(block.get("hasBackups"), bool):
        return False
    latest = block.get("latest")
    if latest is None:
        return not block["hasBackups"]
    return (isinstance(latest, dict) and isinstance(latest.get("name"), str)
            and isinstance(latest.get("age"), int | float)
            and not isinstance(latest.get("age"), bool))
