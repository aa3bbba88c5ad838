"""The deploy lock on the machine's volume: one run's holder line beside the database.

Both functions work over the machine session, through its narrow ``MachineSession``.
"""

from __future__ import annotations

import posixpath

from ops import digits, machine, remote
from ops.errors import ExitCode, OpsError
from ops.targets.fly.machine import MachineSession


def lock_path(db: str) -> str:
    return f"{posixpath.dirname(db)}/{remote.DEPLOY_LOCK}"


def lock(session: MachineSession, path: str, wait: float, holder: str, on_wait=None) -> bool:
    """Take the machine's deploy lock; True if we had to wait for someone else's.

    With ``wait`` and ``on_wait``, a first try does not wait, so ``on_wait(holder)`` can
    say whose lock it is before the wait starts (the machine's answer only comes at the
    end of a call). When the answer is lost (no status line, a deadline, a dropped
    tunnel) the lock may or may not be ours: it is removed if it is, and the step fails.
    """
    if wait and on_wait is not None:
        try:
            return lock(session, path, 0, holder)
        except OpsError as exc:
            if exc.code != ExitCode.LOCKED or not hasattr(exc, "holder"):
                raise
            on_wait(exc.holder)
        lock(session, path, wait, holder)
        return True
    s = session.settings  # once taken, the same call says what the machine can run
    probe = machine.probe_script(s.db_remote_path, s.backup_remote_dir, s.machine_app_dir)
    try:
        output = session.run(remote.deploy_lock_script(path, holder, wait) + "\n" + probe,
                             timeout=session.settings.fly_timeout + wait, what="deploy lock",
                             key="fly.timeout")
    except OpsError as exc:  # flyctl failed, or its answer could not be read (parse_output):
        after, held = _forget(session, path, holder)
        error = OpsError(f"could not take the deploy lock {path}: {exc}; {after}",
                         ExitCode.LOCKED if held else exc.code)
        if held:  # another deploy's: --lock-wait waits for it as for any held lock
            error.holder = held
        raise error from None
    entries = {entry[0]: " ".join(entry[1:]) for entry in output.entries if entry}
    if output.status == remote.NOT_A_LOCK:  # no wait helps: nobody will let go of it
        raise NotALock(path, entries.get("notlock", ""))
    if output.status == 4:
        raise held_error(session.app, path, entries.get("held") or "unknown", wait)
    if output.status != 0 or "acquired" not in entries:
        _forget(session, path, holder)  # best effort: the step fails either way
        raise OpsError(f"could not take the deploy lock {path} (exit {output.status})")
    session.machine_facts = machine.parse(output.entries)  # deploy preflight's machine.check
    return "waiting" in entries


def held_error(app: str, path: str, held: str, wait: float) -> OpsError:
    """The run's refusal of a deploy lock another run holds (exit 4), and its dry run's."""
    hint = "" if wait else " (use --lock-wait SECONDS to wait for it)"
    error = OpsError(f"another deploy of {app} holds the lock on the machine ({path}): "
                     f"{held}{hint}; if none is running: invoke deploy.unlock --yes",
                     ExitCode.LOCKED)
    error.holder = held
    return error


KINDS = {"file": "a regular file", "fifo": "a FIFO", "socket": "a socket",
         "symlink": "a symbolic link", "dangling": "a symbolic link to nothing"}


class NotALock(OpsError):
    """Something a deploy never makes sits at the deploy lock's name (exit 4). The run,
    its dry run and ``deploy.unlock`` say this one thing; only ``deploy.unlock --yes``
    removes it (``removed``), and only that entry, never a directory or a link's target."""

    def __init__(self, path: str, found: str, *, removed: bool = False):
        self.path, self.removed = path, removed
        word, _, size = found.partition(" ")
        self.what = KINDS.get(word, "something that is not a directory") + (
            f" of {size} bytes" if word == "file" and digits.is_whole(size) else "")
        if removed:
            message = (f"removed {path} on the machine: it was {self.what}, not a deploy "
                       "lock (a deploy's lock is a directory); the deploy lock is free")
        else:
            message = (f"the deploy lock's name on the machine ({path}) holds {self.what}, "
                       "not a deploy lock (a deploy's lock is a directory), so no deploy can "
                       "take the lock; if nobody put it there on purpose: invoke "
                       "deploy.unlock --yes (it removes that entry alone: never a directory, "
                       "nor what a link points to)")
        super().__init__(message, ExitCode.LOCKED)


def would_wait(session: MachineSession, path: str, wait: float) -> str | None:
    """A dry run at the machine's deploy lock, taking nothing (the unlock script's look,
    ``remove=False``): None when free; the run's refusal when it would refuse at once;
    else how long the run would wait for whom."""
    held = unlock(session, path, remove=False)
    if held is None:
        return None
    if wait <= 0:
        raise held_error(session.app, path, held, wait)
    return (f"another deploy of {session.app} holds the lock on the machine ({path}): "
            f"{held}; the run would wait up to {wait:g}s for it, then stop with exit 4 if "
            "it is still held")


def _forget(session: MachineSession, path: str, holder: str) -> tuple[str, str | None]:
    """Remove the deploy lock if ``holder`` holds it: what became of it, in words, and
    who else holds it, if another run does (then this run took none: exit 4, as a held
    lock is)."""
    try:
        unlock(session, path, holder=holder)
    except OpsError as exc:
        if getattr(exc, "holder", None):  # someone else's: not ours to remove
            return (f"another deploy holds it ({exc.holder}), so this run took none; if "
                    "none is running: invoke deploy.unlock --yes"), exc.holder
        if exc.code == ExitCode.LOCKED:  # not a lock at all (NotALock): none was taken
            return "this run took none", None
        return "if the lock is this run's: invoke deploy.unlock --yes", None
    return "any lock this run took was removed", None


def unlock(session: MachineSession, path: str, *, remove: bool = True,
           holder: str | None = None) -> str | None:
    """Who holds the machine's deploy lock (None: nobody), removing it unless told not to.

    With ``holder`` it is removed only if that holder holds it (a deploy releasing
    its own lock); without, it is removed whoever holds it (``deploy.unlock --yes``).
    """
    output = session.run(remote.deploy_unlock_script(path, remove=remove, holder=holder),
                         what="deploy unlock")
    if output.status == 3:
        return None
    found = {e[0]: " ".join(e[1:]) for e in output.entries if e}
    if output.status == remote.NOT_A_LOCK:
        raise NotALock(path, found.get("notlock", ""), removed="removed" in found)
    shown = found.get("holder", "unknown")  # its own entry, never another line's words
    if output.status == 5:
        error = OpsError(f"the deploy lock {path} is no longer this run's: "
                         f"it is held by {shown}; left in place", ExitCode.LOCKED)
        error.holder = shown or "unknown"
        raise error
    if output.status != 0:
        raise OpsError(f"could not read or remove the deploy lock {path}")
    return shown
