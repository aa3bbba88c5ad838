"""A real OpenSSH server for the SSH tests: ``/usr/sbin/sshd -D -e -f CONFIG`` on 127.0.0.1.

It has its own host key and an ``authorized_keys`` for a client key made here, and
listens on two free ports. On the second (``no_python_port``) every command runs with a
PATH that has no python3, set by the server (``ForceCommand env PATH=...`` in a ``Match
LocalPort`` block, after the login shell's rc files, which may add their own python3):
the toolkit never sets the remote PATH, so the sqlite3-CLI fallback is tested exactly as
a host without python3 would run it. The host's filesystem is this machine's.

The login shell's HOME is the server's own empty folder (``SetEnv HOME``), not the account's:
bash sources ``~/.bashrc`` for every command sshd runs, and a developer's rc (here root's runs
``pyenv init``, ~170 processes a connection) is as personal as their ``~/.ssh``. The key
exchange is not sntrup761x25519 (OpenSSH's default, ~60 ms of the client's CPU a connection;
without it ssh takes curve25519 and paramiko what it always took): neither is what the SSH
tests test, and the suite opens hundreds of connections.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = os.environ.get("OPS_TEST_SSHD", "/usr/sbin/sshd")  # another path: to test the skip
# sshd options some versions lack: written only where ``sshd -t`` accepts them
OPTIONAL = ("PerSourcePenalties no",  # OpenSSH >= 9.8 would shut out 127.0.0.1 after our kills
            "KexAlgorithms -sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com")  # see above


class SshdUnavailable(Exception):
    """Why no sshd can run here (the tests skip with this reason, or fail under CI)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    """A new key pair without passphrase at ``path`` and ``path.pub``."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "ops-tests", "-f", str(path)],
                   check=True, capture_output=True)
    return path


def public_line(key: Path) -> str:
    """``type base64`` of a key's public half (no comment)."""
    return " ".join(Path(f"{key}.pub").read_text().split()[:2])


def path_without_python(directory: Path, without: tuple[str, ...] = ("python",)) -> Path:
    """A PATH folder that has every tool of /usr/bin and /bin except python (and any
    other tool whose name starts with one of ``without``)."""
    directory.mkdir()
    for source in ("/usr/local/bin", "/usr/bin", "/bin"):
        if not os.path.isdir(source):
            continue
        for name in os.listdir(source):
            if name.startswith(without) or (directory / name).exists():
                continue
            with contextlib.suppress(OSError):
                (directory / name).symlink_to(os.path.join(source, name))
    return directory


@dataclass
class Sshd:
    root: Path
    port: int
    no_python_port: int
    user: str
    host_key: Path  # private; ``host_key.pub`` is what a known_hosts line holds
    client_key: Path  # in authorized_keys
    user_ca: Path  # signs user certificates the server accepts (what `fly ssh issue` gives)
    process: subprocess.Popen
    log: Path
    node_port: int = 0  # node, but neither python3 nor sqlite3: the app's own image

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def known_hosts_line(self, port: int | None = None) -> str:
        """What ``ssh-keyscan -p PORT 127.0.0.1`` would add for this server."""
        return f"[{self.host}]:{port or self.port} {public_line(self.host_key)}\n"

    def certify(self, key: Path) -> Path:
        """A user certificate for ``key`` (``key-cert.pub``, which ssh-add loads with it)."""
        subprocess.run(["ssh-keygen", "-q", "-s", str(self.user_ca), "-I", "ops-tests",
                        "-n", self.user, "-V", "-5m:+1h", f"{key}.pub"],
                       check=True, capture_output=True)
        return Path(f"{key}-cert.pub")

    def connection_pids(self) -> list[int]:
        """Every process sshd started for a connection (its descendants)."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.process.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found

    def cut_connections(self, sig: int = signal.SIGKILL) -> int:
        """Kill (or stop, with SIGSTOP) every connection's sshd processes; the server itself
        keeps listening."""
        pids = self.connection_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return len(pids)

    def stop(self) -> None:
        self.cut_connections()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _config(root: Path, ports: tuple[int, ...], host_key: Path, authorized: Path,
            no_python_path: Path, extra: tuple[str, ...], node_path: Path | None = None) -> str:
    user_ca = root / "user_ca.pub"
    listen = "\n".join(f"ListenAddress 127.0.0.1:{port}" for port in ports)
    return f"""{listen}
HostKey {host_key}
AuthorizedKeysFile {authorized}
TrustedUserCAKeys {user_ca}
PidFile none
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
LogLevel VERBOSE
Subsystem sftp internal-sftp
{chr(10).join(extra)}
Match LocalPort {ports[1]}
    ForceCommand /usr/bin/env PATH={no_python_path} /bin/sh -c "$SSH_ORIGINAL_COMMAND"
""" + (f"""Match LocalPort {ports[2]}
    ForceCommand /usr/bin/env PATH={node_path} /bin/sh -c "$SSH_ORIGINAL_COMMAND"
""" if node_path else "")


def start(root: Path) -> Sshd:
    """Start sshd in ``root``; raise SshdUnavailable with the reason when it cannot run."""
    if not os.path.exists(SSHD):
        raise SshdUnavailable(f"{SSHD} is not installed (apt-get install openssh-server)")
    if not shutil.which("ssh-keygen"):
        raise SshdUnavailable("ssh-keygen is not installed (apt-get install openssh-client)")
    if os.geteuid() == 0:  # sshd refuses to start as root without its privilege separation dir
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / "home").mkdir(exist_ok=True)  # the login shell's HOME (no personal rc files)
    host_key = keygen(root / "ssh_host_ed25519_key")
    client_key = keygen(root / "client_ed25519")
    user_ca = keygen(root / "user_ca")
    authorized = root / "authorized_keys"
    authorized.write_text(public_line(client_key) + "\n")
    no_python = path_without_python(root / "bin-without-python")
    node_only = path_without_python(root / "bin-node-only", ("python", "sqlite3"))
    config = root / "sshd_config"
    extra: tuple[str, ...] = ()
    # keep only what this sshd understands (SetEnv: OpenSSH >= 7.8)
    for option in (*OPTIONAL, f"SetEnv HOME={root / 'home'}"):
        config.write_text(_config(root, (1, 2), host_key, authorized, no_python, (option,)))
        test = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
        if test.returncode == 0:
            extra += (option,)
    log = root / "sshd.log"
    last = ""
    for _attempt in range(3):  # a free port can be taken between asking and binding
        ports = (free_port(), free_port(), free_port())
        config.write_text(_config(root, ports, host_key, authorized, no_python, extra,
                                  node_only))
        with open(log, "w") as err:
            process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                       stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + 30  # a busy machine (xdist workers) starts it slowly
        while time.monotonic() < deadline:
            text = log.read_text()
            if text.count("Server listening on") >= 3:
                return Sshd(root, ports[0], ports[1], getpass.getuser(), host_key, client_key,
                            user_ca, process, log, ports[2])
            if process.poll() is not None:
                break
            time.sleep(0.02)
        else:
            process.kill()
            process.wait()
            raise SshdUnavailable(f"sshd did not start listening within 30s: {log.read_text()}")
        last = " ".join(log.read_text().split())[-300:] or f"exit {process.returncode}"
        if "Address already in use" not in last:
            break
    raise SshdUnavailable(f"sshd would not start: {last}")
