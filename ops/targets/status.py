"""The backup block the app's ``/health`` reports, computed from a listing (pure).

Every target's ``status`` has this shape; the Fly target reads it from ``/health``
first and checks it with ``valid_status``.
"""

from __future__ import annotations

import datetime as dt

from ops.engine import in_future, parse_iso


def status(backups, now: dt.datetime) -> dict:
    """The shape the app's ``/health`` reports under ``backup``.

    Backups dated in the future are not trusted as the newest (an age is never
    negative): they are left out of ``count``/``latest`` and named in ``futureDated``.
    """
    future = sorted(item.name for item in backups if in_future(item.created, now))
    counted = [item for item in backups if item.name not in future]
    extra = {"futureDated": future} if future else {}
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
