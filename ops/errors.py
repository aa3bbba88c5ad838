"""Exit codes (a documented enum, like httpie's ExitStatus) and the one error type tasks raise."""

from __future__ import annotations

from enum import IntEnum, unique


@unique  # two names on one number would make a code's meaning ambiguous in docs and logs
class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # anything else that failed
    USAGE = 2  # a bad flag, configuration value or name
    NOT_FOUND = 3  # database, backup, app, machine or volume not found
    LOCKED = 4  # another backup or deploy holds the lock
    VERIFY_FAILED = 5  # integrity check or checksum failed, or the file is not a sound database
    TIMEOUT = 6  # a backup, snapshot, transfer or health wait ran out of time
    STALE = 7  # backup.status: no backup, or the newest is older than --max-age
    FLY = 8  # flyctl missing, not logged in, or a flyctl call failed
    NO_SPACE = 9  # the destination is full or would be
    DEPLOY_ABORTED_PREFLIGHT = 10  # nothing was deployed: preflight failed
    DEPLOY_ABORTED_BACKUP = 11  # nothing was deployed: the pre-deploy backup failed
    DEPLOY_ABORTED_SNAPSHOT = 12  # nothing was deployed: the volume snapshot failed
    DEPLOY_FAILED = 13  # fly deploy itself failed
    HEALTH_FAILED = 14  # deployed, but the health gate did not pass
    REPLICA = 15  # replica.*: litestream not running or missing, or the bucket cannot be read
    DATA_LOST = 16  # deployed, but the data guard found a table gone or rows lost
    INTERRUPTED = 130  # Ctrl-C
    BROKEN_PIPE = 141  # stdout or stderr was closed by its reader (`| head`): ended quietly
    TERMINATED = 143  # SIGTERM or SIGHUP (a deploy records where it was stopped)


# The engine is stdlib-only and names its failures by kind; this maps them here.
ENGINE_KINDS = {
    "usage": ExitCode.USAGE,
    "linked": ExitCode.USAGE,  # a live database with another name (engine.refuse_other_names)
    "not_found": ExitCode.NOT_FOUND,
    "locked": ExitCode.LOCKED,
    "verify_failed": ExitCode.VERIFY_FAILED,
    "corrupt": ExitCode.VERIFY_FAILED,
    "timeout": ExitCode.TIMEOUT,
    "check_failed": ExitCode.ERROR,  # the check could not run (no memory, I/O): no verdict
    "no_space": ExitCode.NO_SPACE,
}


class OpsError(Exception):
    """A failure a user can act on: printed as one line, exits with ``code``."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR):
        super().__init__(message)
        self.code = code

    @classmethod
    def from_engine(cls, exc) -> OpsError:
        return cls(str(exc), ENGINE_KINDS.get(getattr(exc, "kind", ""), ExitCode.ERROR))
