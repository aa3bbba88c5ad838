"""Fly volume snapshots: schedule one, then wait until the one we asked for is created.

``fly volumes snapshots create`` only schedules; which listed snapshot is ours is a
pure function (``new_snapshot``).
"""

from __future__ import annotations

import time
from dataclasses import asdict

from ops import fly, poll
from ops.errors import ExitCode, OpsError
from ops.targets.fly.machine import MachineSession
from ops.ui import human_bytes, human_seconds

FAILED_SNAPSHOT = ("failed", "error", "destroyed")


def new_snapshot(before: list[fly.Snapshot], after: list[fly.Snapshot]) -> fly.Snapshot | None:
    """The snapshot our request made: one whose id was not listed before it, by id alone.

    A snapshot that is still running has its id but a zero ``created_at`` (fly-go's
    ``VolumeSnapshot.CreatedAt``; flyctl's snapshots/list.go checks ``IsZero``), so the
    time says nothing, and a scheduled snapshot that was running before our request
    and finishes while we wait is never ours. If several are new, a created one wins,
    then one still running; a failed one only when nothing else is left.
    """
    seen = {snap.id for snap in before if snap.id}
    fresh = [snap for snap in after if snap.id and snap.id not in seen]
    if not fresh:
        return None
    return min(fresh, key=lambda snap: (_rank(snap.status), snap.created_at))


def _rank(status: str) -> int:
    return 0 if status == "created" else 2 if status in FAILED_SNAPSHOT else 1


def take(session: MachineSession, *, wait: bool = True, timeout: float = 600, interval: float = 5.0,
         beside=None, on_snapshot=None) -> dict:
    """Snapshot the production volume; with ``wait``, until it is created (or failed).

    ``beside`` is work that runs while Fly takes the snapshot (a deploy's full check):
    ``start()`` once the snapshot is requested, ``status()`` for the waiting line,
    ``sleep(seconds)`` between polls (it may end early), and ``failed()`` stops the wait:
    the snapshot is left to finish and reported with its status so far.

    ``on_snapshot(seen)`` hears what is known of ours as soon as it is known: once
    requested (``{"id": None, "status": "requested", ...}``) and whenever its listed
    id or status changes, so a run stopped mid-wait can still say which one it asked for.
    """
    app, volume, report = session.app, session.volume, session.report
    before = session.fly.snapshots(app, volume.id)
    with report.step(f"schedule snapshot of {volume.id}") as step:
        session.fly.run(fly.snapshots_create(app, volume.id))
        step.label = f"snapshot of {volume.id} requested"
    if on_snapshot is not None:
        on_snapshot({"id": None, "volume": volume.id, "size": None, "status": "requested"})
    if beside is not None:
        beside.start()
    if not wait:
        return {"volume": volume.id, "status": "scheduled", "id": None}
    with report.step(f"wait for snapshot of {volume.id}") as step:
        return _wait(session, before, step, timeout, interval, beside, on_snapshot)


def _wait(session: MachineSession, before, step, timeout: float, interval: float, beside,
          on_snapshot=None) -> dict:
    """Poll the listing until our snapshot is created; a line when its status changes."""
    app, volume, report = session.app, session.volume, session.report
    started = time.monotonic()
    shown = [None]
    last: list[fly.Snapshot | None] = [None]

    def attempt() -> dict | None:
        snap = last[0] = new_snapshot(before, session.fly.snapshots(app, volume.id))
        state = (snap.id, snap.status) if snap else ("(not listed yet)", "scheduled")
        also = f"; {beside.status()}" if beside is not None else ""
        if snap and snap.status == "created":
            step.label = f"snapshot {snap.id} created"
            step.detail = human_bytes(snap.size) + also
            return asdict(snap) | {"volume": volume.id}
        if state != shown[0]:
            shown[0] = state  # a line when Fly's status changes, not on every poll
            if snap and on_snapshot is not None:
                on_snapshot({"id": snap.id, "volume": volume.id, "size": None,
                             "status": snap.status})
            report.waiting(f"  snapshot {state[0]}: {state[1]} after "
                           f"{human_seconds(time.monotonic() - started)} "
                           f"(waiting up to {timeout:g}s)"
                           f"{also}")
        if snap and snap.status in FAILED_SNAPSHOT:
            raise OpsError(f"snapshot {snap.id} of {volume.id} ended as {snap.status}; "
                           f"see `fly volumes snapshots list {volume.id}`")
        if beside is not None and beside.failed():
            step.label = f"snapshot {snap.id if snap else 'requested'} left to finish"
            step.detail = "not waited for: the backup failed its check"
            return {"id": snap.id if snap else None, "volume": volume.id, "size": None,
                    "status": snap.status if snap else "not listed yet"}
        return None

    def expired(_polls: int, _waited: float) -> OpsError:
        state = last[0].status if last[0] else "not listed yet"
        return OpsError(f"snapshot of {volume.id} not created within {timeout:g}s "
                        f"(status: {state}); check `fly volumes snapshots list {volume.id}`",
                        ExitCode.TIMEOUT)

    return poll.until(attempt, timeout=timeout, interval=interval, expired=expired,
                      sleep=beside.sleep if beside is not None else time.sleep)
