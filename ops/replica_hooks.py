"""Deploy and restore.volume know about the Litestream replica (issue 18 item 5;
docs/replica-operations.md).

Only when the project replicates (a ``litestream.yml`` in the project root: the file the
image copies, and ``replica.config --check``'s default) and ``replica.deploy_gate`` is not
``off``. The decisions are pure functions over what one script on the machine printed:

- the deploy's preflight: the machine's replica lag (``litestream list`` answering on the
  control socket, ``ltx`` for the bucket's newest file, ``status`` for the live TXID, the
  machine's clock) against ``replica.max_lag``: a warning, or with ``deploy_gate = fail`` a
  stop before anything changes;
- after ``fly deploy``: the new machine's litestream is current (``litestream sync -wait``
  answers with ``replica_txid >= txid``), polled until ``deploy.health_timeout``;
- restore.volume: the replica's newest point against the snapshot's time (a line saying
  the replica reaches later data, with the commands that restore from it).
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from ops import digits, poll
from ops import replica as rp
from ops.errors import ExitCode, OpsError
from ops.ui import human_age, human_seconds, over_limit

MARK = "@@replica"
SYNC_WAIT = 10  # seconds one `litestream sync -wait` may take on the machine
BUCKET_WAIT = 60  # seconds for `ltx` (litestream retries an unreachable bucket for minutes)
# the replica restored here, checked, then uploaded and restored like any backup (once
# `restore --from-replica` exists, issue 18 item 3, it is one command)
FROM_REPLICA = ("invoke replica.restore --output FILE && invoke restore --production --from "
                "FILE (FILE: a new file, e.g. restored.db)")


def configured(config, settings):
    """``replica.*`` settings when the deploy should look at the replica, else None."""
    from ops.config import load_replica  # noqa: PLC0415 (config imports nothing of ours)

    root = Path(settings.root or ".")
    if not (root / "litestream.yml").is_file():
        return None
    replica = load_replica(config)
    return None if replica.deploy_gate == "off" else replica


# ---------------------------------------------------------------- the machine's scripts

def _preamble(replica, db: str) -> str:
    return "\n".join([
        "unset AWS_CA_BUNDLE  # litestream 0.5 cannot start with it",
        f"db={shlex.quote(db)}; sock={shlex.quote(rp.socket_path(replica, db))}",
        f"command -v litestream >/dev/null 2>&1 || {{ echo '{MARK} missing'; exit 0; }}",
        f'section() {{ echo "{MARK} $1"; shift; "$@" 2>&1; echo "{MARK} rc $?"; }}',
    ])


def lag_script(replica, db: str) -> str:
    """Reads only: the socket, the bucket (with the toolkit's rendered config for ``db``,
    written to a temporary file there), the live TXID, the machine's clock."""
    return "\n".join([
        _preamble(replica, db),
        "cfg=$(mktemp) || exit 1; trap 'rm -f \"$cfg\"' EXIT",
        f"printf '%s' {shlex.quote(rp.render(replica, db))} > \"$cfg\"",
        f"t=; command -v timeout >/dev/null 2>&1 && t='timeout {BUCKET_WAIT}'",
        'section list litestream list -json -timeout 10 -socket "$sock"',
        'section ltx $t litestream ltx -level all -json -config "$cfg" "$db"',
        'section status litestream status -json -config "$cfg"',
        f'echo "{MARK} now $(date -u +%s)"',
    ])


def sync_script(replica, db: str) -> str:
    """``litestream sync -wait``: ships what is pending and answers {txid, replica_txid}."""
    return "\n".join([_preamble(replica, db),
                      f'section sync litestream sync -wait -json -timeout {SYNC_WAIT} '
                      '-socket "$sock" "$db"'])


def sections(stdout: str) -> dict[str, tuple[int | None, str]]:
    """``{name: (exit status, output)}`` from a script's marked lines; ``missing`` when
    there is no litestream, ``now`` with the machine's clock as its output."""
    found, name, lines = {}, None, []
    for line in stdout.splitlines():
        if not line.startswith(MARK + " "):
            if name is not None:
                lines.append(line)
            continue
        word, _, rest = line[len(MARK) + 1:].partition(" ")
        if word == "rc" and name is not None:
            found[name] = (digits.whole(rest.strip()), "\n".join(lines))
            name, lines = None, []
        elif word in ("missing", "now"):
            found[word] = (0, rest.strip())
        else:
            name, lines = word, []
    return found


def _said(text: str) -> str:
    return rp.said(text, 200) or "no output"


def _json(found, name: str):
    status, text = found.get(name, (None, ""))
    if status != 0:
        return None
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Reading:
    """What the machine's script said: a problem, or the lag (None: no replica yet)."""

    problem: str | None = None
    lag: float | None = None
    replica: rp.Position | None = None
    local: int | None = None


def reading(found: dict) -> Reading:
    if "missing" in found:
        return Reading("litestream is not installed on the machine")
    if found.get("list", (None,))[0] != 0:
        return Reading("litestream is not running on the machine (its control socket does "
                       f"not answer: {_said(found.get('list', (None, ''))[1])})")
    if found.get("ltx", (None,))[0] != 0:
        return Reading(f"the replica's bucket cannot be read from the machine: "
                       f"{_said(found.get('ltx', (None, ''))[1])}")
    try:
        newest = rp.newest(_json(found, "ltx"))
        now = dt.datetime.fromtimestamp(int(found["now"][1]), dt.UTC)
    except (OpsError, KeyError, ValueError, OverflowError):  # a date +%s of 20 digits
        return Reading("the machine's litestream printed something unexpected")
    local = rp.local_txid(_json(found, "status"))
    return Reading(rp.lag_unknown(local, newest, now), rp.lag(local, newest, now), newest,
                   local)


def gate(mode: str, read: Reading, max_lag: float) -> tuple[str, str]:
    """("ok" | "warn" | "fail", what the preflight's line says)."""
    if read.problem is None and read.lag is not None and read.lag <= max_lag:
        return "ok", f"replica lag {human_age(read.lag)} (max {human_age(max_lag)})"
    problem = read.problem or ("the bucket holds no replica of the database yet"
                               if read.lag is None else
                               f"the replica is {human_age(read.lag)} behind "
                               f"{over_limit(read.lag, max_lag, name='replica.max_lag')}")
    return ("fail" if mode == "fail" else "warn"), problem


def current(found: dict) -> tuple[bool, str]:
    """Whether ``sync -wait`` says the replica holds the machine's newest TXID."""
    if "missing" in found:
        return False, "litestream is not installed on the new machine"
    answer = _json(found, "sync")
    if not isinstance(answer, dict):
        return False, f"litestream sync: {_said(found.get('sync', (None, ''))[1])}"
    txid, replica_txid = answer.get("txid"), answer.get("replica_txid")
    if type(txid) is not int or type(replica_txid) is not int:  # JSON true is no TXID
        return False, "litestream sync printed no TXIDs"
    if replica_txid < txid:
        return False, f"replica at TXID {replica_txid:x}, the database at {txid:x}"
    return True, f"replica holds TXID {txid:016x}"


def volume_offer(snapshot_created: str, replica: rp.Position | None) -> str | None:
    """The line restore.volume prints when the replica reaches later than the snapshot
    (its ``created_at`` as Fly gives it; not a time: nothing to compare, no line)."""
    try:
        snapshot_created = rp.parse_time(snapshot_created)
    except ValueError:
        return None
    if replica is None or replica.time <= snapshot_created:
        return None
    gap = (replica.time - snapshot_created).total_seconds()
    return (f"the Litestream replica is newer than this snapshot: TXID {replica.txid:016x} "
            f"at {replica.as_dict()['time']}, {human_age(gap)} later. To lose less, restore "
            f"from it instead: {FROM_REPLICA}")


# ---------------------------------------------------------------- acting (thin)

def read_lag(session, replica, db: str) -> Reading:
    out = session.run(lag_script(replica, db), what="the replica's lag")
    return reading(sections(out.stdout))


def wait_current(session, replica, db: str, *, timeout: float, interval: float,
                 on_reason=None) -> str:
    """Poll ``sync -wait`` on the machine until the replica is current; HEALTH_FAILED with
    the last reason at the deadline."""
    last = {"reason": "not asked yet"}

    def attempt():
        ok, reason = current(sections(session.run(sync_script(replica, db),
                                                  what="litestream sync -wait").stdout))
        if not ok and reason != last["reason"] and on_reason:
            on_reason(reason)
        last["reason"] = reason
        return reason if ok else None

    return poll.until(attempt, timeout=timeout, interval=interval, expired=lambda p, w: (
        OpsError(f"the new machine's replica is not current after {human_seconds(w)}: "
                 f"{last['reason']} (the release is out; check litestream on the machine)",
                 ExitCode.HEALTH_FAILED)))


# ---------------------------------------------------------------- the deploy's steps

def deploy_steps(o, act, ssh_console) -> tuple[list, list]:
    """(the preflight's replica step, the step after the health gate) of a deploy that
    looks at the replica (``o.replica`` set; none for a rollback: it must not wait on the
    replica when the app is broken). ``ssh_console(name)``: the argv a script runs by."""
    from ops import fly  # noqa: PLC0415 (flyctl's argv, only for the plan's lines)
    from ops.runbook import Step  # noqa: PLC0415

    replica = o.replica
    if replica is None or o.rollback_to is not None:
        return [], []
    verb = "stops the deploy" if replica.deploy_gate == "fail" else "warns"
    before = Step("replica", f"the machine's Litestream replica within replica.max_lag "
                  f"({replica.max_lag:g}s; over it {verb}: replica.deploy_gate)", act("replica"),
                  commands=(ssh_console("replica lag"),), reads_only=True,
                  abort=ExitCode.DEPLOY_ABORTED_PREFLIGHT, running="replica lag", rerun=True)
    after = Step("replica_current", "the new machine's Litestream replica holds its newest "
                 "commit (litestream sync -wait, polled within deploy.health_timeout)",
                 act("replica_current"),
                 commands=tuple(map(tuple, (fly.volumes_list(o.app),
                                            fly.machines_list(o.app))))
                 + (ssh_console("replica sync"),),
                 abort=ExitCode.HEALTH_FAILED, running="replica gate")
    return [before], [after]


def preflight(session, replica, db: str, ui) -> tuple[str, str]:
    """The preflight's read and decision; a machine that cannot be asked is a problem like
    any other (warned about, or with ``fail`` a stop)."""
    try:
        read = read_lag(session, replica, db)
    except OpsError as exc:
        read = Reading(f"cannot ask the machine: {exc}")
    level, text = gate(replica.deploy_gate, read, replica.max_lag)
    if level == "fail":
        raise OpsError(f"{text} (replica.deploy_gate = fail)", ExitCode.DEPLOY_ABORTED_PREFLIGHT)
    if level == "warn":
        ui.warn(f"{text}: the deploy goes on (replica.deploy_gate = warn; fail would "
                "stop it)")
    return level, text


# ---------------------------------------------------------------- restore.volume

def volume_read(config, settings, reads) -> dict | None:
    """restore.volume's read of the replica (a step of its reads, so a dry run shows it
    too): the newest point in the bucket, asked on the machine; when it is newer than the
    snapshot, a WARNING line with the command that restores it instead. A machine that
    cannot be asked (the usual case when its volume is gone) is said, never a stop."""
    from ops.runbook import Done, Step  # noqa: PLC0415

    replica = configured(config, settings)
    if replica is None:
        return None
    found: dict = {}

    def action():
        try:
            read = read_lag(reads.session, replica, settings.db_remote_path)
        except OpsError as exc:
            read = Reading(f"cannot ask the machine: {exc}")
        if read.replica is None:
            return Done("replica not read", read.problem or "no replica in the bucket yet",
                        warning=True)
        found.update(replica=read.replica.as_dict(), offer=volume_offer(
            reads.resolved.snapshot.created_at, read.replica))
        return Done("replica read", f"newest TXID {read.replica.txid:016x} at "
                    f"{found['replica']['time']}")

    from ops import fly  # noqa: PLC0415
    reads.read([Step("replica", "the Litestream replica's newest point (asked on the "
                     "machine)", reads_only=True,
                     commands=(tuple(fly.ssh_console(settings.app, reads.machine.id,
                                                     "<replica lag script>")),))], action)
    return found or None
