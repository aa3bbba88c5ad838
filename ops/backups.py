"""Backup orchestration: backup then retention, cleanup, status; the same for any target.

Decisions (what retention removes, what the status says) are pure functions here
or in ``ops.retention``; the functions that act take a target and a UI.
"""

from __future__ import annotations

import datetime as dt

from ops import retention
from ops.engine import parse_iso
from ops.errors import ExitCode, OpsError
from ops.ui import UI, human_age, human_bytes


def make_backup(target, ui: UI) -> dict:
    """One verified backup on ``target``; raises before anything looks like a backup."""
    with ui.step(f"backup {target.describe()}") as step:
        if target.production:
            result = target.backup()
        else:
            with ui.transfer("copy", 0) as update:
                result = target.backup(on_bytes=update)
        step.detail = (
            f"{result['name']}  {human_bytes(result['size'])}  "
            f"{result['check']}_check ok  sha256 {result['sha256'][:12]}  "
            f"[{result.get('strategy', 'engine')}]"
        )
    return result


def cleanup(target, ui: UI, keep: int, *, dry_run: bool = False) -> list[retention.Decision]:
    """Apply retention on ``target``; with ``dry_run`` only say what would go."""
    label = f"retention keep {keep}" + (" (dry run)" if dry_run else "")
    with ui.step(label) as step:
        decisions = retention.plan_retention(target.list(), keep)
        doomed = retention.to_remove(decisions)
        if doomed and not dry_run:
            target.delete(doomed)
        verb = "would remove" if dry_run else "removed"
        step.detail = f"{verb} {len(doomed)}, kept {len(decisions) - len(doomed)}"
    return decisions


def status(backups, now: dt.datetime) -> dict:
    """The shape the app's ``/health`` reports under ``backup``."""
    if not backups:
        return {"hasBackups": False, "count": 0, "latest": None}
    latest = max(backups, key=lambda item: item.created)
    created = parse_iso(latest.created)
    return {
        "hasBackups": True,
        "count": len(backups),
        "latest": {
            "name": latest.name,
            "created": latest.created,
            "age": int((now - created).total_seconds() * 1000),
        },
    }


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


def staleness(report: dict, max_age_seconds: float | None) -> str | None:
    """Why ``report`` should alert, or None; used for ``--max-age``."""
    if max_age_seconds is None:
        return None
    if not report.get("hasBackups") or not report.get("latest"):
        return "there are no backups"
    age = report["latest"]["age"] / 1000
    if age > max_age_seconds:
        return f"the newest backup is {human_age(age)} old (limit {human_age(max_age_seconds)})"
    return None


def require_ok(results: list[dict]) -> None:
    bad = [item for item in results if not item["ok"]]
    if bad:
        first = bad[0]
        raise OpsError(
            f"{len(bad)} of {len(results)} backups failed verification; "
            f"{first['name']}: {first['problems'][0]}",
            ExitCode.VERIFY_FAILED,
        )
