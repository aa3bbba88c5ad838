"""Go ``time.Time`` as flyctl's JSON shows it (RFC 3339, the zero time)."""

from __future__ import annotations

import re
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as _dt


ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time in JSON (a snapshot still running)


def format_time(t: _dt.datetime) -> str:
    """RFC 3339 UTC with fractional seconds and no trailing zeros (Go ``time.Time``)."""
    import datetime as _dt

    t = t.astimezone(_dt.UTC)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


# Now without the datetime module (each `fly` call is a process; importing datetime, math and
# two C extensions cost ~3 ms of its ~30): the same text format_time gives for now.
def now_rfc3339() -> str:
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    frac = f"{micros:06d}".rstrip("0")
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            + (f".{frac}" if frac else "") + "Z")


def now_seconds() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_time(value: str) -> _dt.datetime:
    import datetime as _dt

    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return _dt.datetime.fromisoformat(value)
    frac = (m.group(2) or "")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return _dt.datetime.fromisoformat(m.group(1) + frac + tz)
