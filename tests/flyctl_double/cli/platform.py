"""Fly's platform around the machine commands: the proxy, leases, machines that take time to
stop or start, regions, host room and commands split as flyctl splits them.

Each piece names the flyctl / fly-go source it follows; guesses say so.  The switches live
in ``state["features"]`` and on machines/volumes (``_`` keys), set through ``FlyWorld``.
"""

from __future__ import annotations

import re

from .clock import now_rfc3339
from .output import FlyError, go_quote, out

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..state import App, Machine, World

# fly-go flaps/flaps_machines_wait.go: ``WithWaitTimeout`` clamps every wait to [1 s, 60 s].
WAIT_CLAMP = (1.0, 60.0)
# ``fly platform regions`` (the regions the double knows; prompt.Region refuses others).
REGIONS = (
    "ams", "arn", "atl", "bog", "bom", "bos", "cdg", "den", "dfw", "ewr", "eze", "fra",
    "gdl", "gig", "gru", "hkg", "iad", "jnb", "lax", "lhr", "mad", "mia", "nrt", "ord",
    "otp", "phx", "qro", "scl", "sea", "sin", "sjc", "syd", "waw", "yul", "yyz",
)
DEFAULT_GUEST_MB = 256  # fly.DefaultVMSize (shared-cpu-1x): flag.GetMachineGuest(ctx, nil)


# ------------------------------------------------------------------ commands split as flyctl


def go_shlex_split(text: str) -> list[str]:
    """github.com/google/shlex ``Split`` (flyctl's splitter: machine/run.go ``--command``,
    machine/clone.go ``--override-cmd``; hallpass's is closed source, the double uses the
    same for ``ssh console -C``).  Unlike Python's ``shlex.split``: ``#`` at the start of a
    word starts a comment to the end of the line, and in double quotes a backslash escapes
    any character.  An unterminated quote or a trailing backslash is an error."""
    words: list[str] = []
    i, n = 0, len(text)
    space = " \t\r\n"
    while i < n:
        while i < n and text[i] in space:
            i += 1
        if i >= n:
            break
        if text[i] == "#":  # a comment token, skipped by the Lexer
            while i < n and text[i] != "\n":
                i += 1
            continue
        word: list[str] = []
        while i < n and text[i] not in space:
            ch = text[i]
            if ch == "\\":
                if i + 1 >= n:
                    raise ValueError("EOF found after escape character")
                word.append(text[i + 1])
                i += 2
            elif ch == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    raise ValueError("EOF found when expecting closing quote")
                word.append(text[i + 1:end])
                i = end + 1
            elif ch == '"':
                i += 1
                while True:
                    if i >= n:
                        raise ValueError("EOF found when expecting closing quote")
                    if text[i] == "\\":
                        if i + 1 >= n:
                            raise ValueError("EOF found after escape character")
                        word.append(text[i + 1])
                        i += 2
                    elif text[i] == '"':
                        i += 1
                        break
                    else:
                        word.append(text[i])
                        i += 1
            else:
                word.append(ch)
                i += 1
        words.append("".join(word))
    return words


# ------------------------------------------------------------------ Go durations


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}


def parse_go_duration(raw: str) -> float:
    """Go's ``time.ParseDuration`` (seconds), as pflag's Duration flag uses it."""
    text = raw.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", body)
    if not body or "".join(a + b for a, b in parts) != body:
        raise ValueError(f"time: invalid duration {go_quote(raw)}")
    return sign * sum(float(a) * _UNITS[b] for a, b in parts)


def go_duration_string(seconds: float) -> str:
    """Go's ``time.Duration.String`` for whole seconds (300 -> 5m0s)."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


# ------------------------------------------------------------------ the proxy


def autostarts(machine: Machine) -> bool:
    """fly-go ``MachineService.Autostart`` (*bool): absent means on."""
    services = (machine.get("config") or {}).get("services") or []
    return any(s.get("autostart") is not False for s in services)


def proxy_tick(state: World) -> None:
    """Fly's proxy with traffic arriving (``features.proxy_traffic``): for each app with no
    started machine, the first stopped (or suspended) machine whose services autostart and
    that is not cordoned is started.  A started machine is never "started again", whatever
    it runs (fly.io/docs/launch/autostop-autostart/; reference/flyctl.md §13)."""
    if not (state.get("features") or {}).get("proxy_traffic"):
        return
    for app in (state.get("apps") or {}).values():
        machines = [m for m in app.get("machines", [])
                    if m.get("state") not in ("destroyed", "destroying")]
        if any(m.get("state") == "started" for m in machines):
            continue
        for m in machines:
            if m.get("state") in ("stopped", "suspended") and autostarts(m) \
                    and not m.get("cordoned"):
                m["state"] = "started"
                m["updated_at"] = now_rfc3339()
                m.setdefault("events", []).insert(0, {
                    "type": "start", "status": "started", "source": "flyproxy",
                    "timestamp": 0})
                m["_started_by_proxy"] = True
                break


# ------------------------------------------------------------------ leases


def acquire_lease(machine: Machine) -> None:
    """internal/machine/lease.go ``AcquireLease``: after 2 s without the lease flyctl prints
    ``Waiting on lease for machine ID...`` on stdout; a lease held by someone else ends in
    ``failed to obtain lease: failed to get lease on VM ID: …`` (fly-go flaps_machines.go;
    the API's text after that is a guess).  Machines on an unreachable host are skipped
    (``AcquireLeases``)."""
    lease = machine.get("_lease")
    if not lease or machine.get("host_status", "ok") != "ok":
        return
    out(f"Waiting on lease for machine {machine['id']}...\n")
    raise FlyError(f"failed to obtain lease: failed to get lease on VM {machine['id']}: "
                   f"machine ID {machine['id']} lease currently held by {lease['holder']}, "
                   f"expires at {lease['expires']}")


# ------------------------------------------------------------------ machines taking time


def settle_pending(app: App) -> None:
    """One observation (``machine list``): machines on their way (``stopping``, ``starting``)
    get one step closer; at zero they reach their target state."""
    for m in app.get("machines", []):
        pending = m.get("_pending")
        if not pending:
            continue
        if pending["lists"] > 0:
            pending["lists"] -= 1
            continue
        m["state"] = pending["state"]
        m["updated_at"] = now_rfc3339()
        del m["_pending"]


def begin(machine: Machine, via: str, target: str, state: World) -> None:
    """``machine stop``/``start`` return before the machine gets there (stop.go, start.go):
    it is ``via`` for ``features.transition_lists`` (default 1) ``machine list`` calls."""
    lists = int((state.get("features") or {}).get("transition_lists", 1))
    if lists <= 0:
        machine["state"] = target
        machine.pop("_pending", None)
        return
    machine["state"] = via
    machine["_pending"] = {"state": target, "lists": lists}


def wait_for(machine: Machine, target: str, wait: float) -> None:
    """``flaps.Wait`` with ``WithWaitTimeout(wait)``: clamped to 60 s; a machine whose
    ``_takes`` (platform seconds to get there, default 5) exceeds it is not there yet."""
    clamped = max(WAIT_CLAMP[0], min(wait, WAIT_CLAMP[1]))
    takes = float(machine.get("_takes", 5))
    if takes > clamped:
        # guess: the Machines API's text for a wait that timed out
        raise TimeoutError(f"failed to wait for VM {machine['id']} in [{target}] state: "
                           "deadline_exceeded: machine did not reach the desired state in "
                           f"{go_duration_string(clamped)}")
    machine["state"] = target
    machine.pop("_pending", None)


# ------------------------------------------------------------------ regions and host room


def check_region(region: str) -> None:
    """internal/prompt/prompt.go ``Region``: a code not in the platform's list."""
    if region not in REGIONS:
        raise FlyError(f"region {region} not found")


def host_room(state: World, region: str) -> int | None:
    """``features.host_room_mb[region]``: the most memory a host there with free volume
    space can still give a machine (None: plenty)."""
    room = ((state.get("features") or {}).get("host_room_mb") or {}).get(region)
    return None if room is None else int(room)


def no_capacity(state: World, region: str) -> bool:
    return region in ((state.get("features") or {}).get("no_capacity") or [])
