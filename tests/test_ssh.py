"""The SSH building blocks against a real OpenSSH server on 127.0.0.1 (``tests/sshd.py``).

The host's filesystem is this machine's, so the remote database and backup folder are
tmp paths, and what the host did is checked on disk. HOME is each test's own (conftest):
``ssh_host`` puts the server's key in ~/.ssh/known_hosts and the client key at
~/.ssh/id_ed25519, as on a developer's laptop.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from ops import config, engine, remote
from ops.cli import one_line
from ops.errors import ExitCode, OpsError
from ops.ssh.address import Address, parse_address
from ops.ssh.connection import Options
from ops.ssh.session import connect, from_settings
from tests import helpers, sshd
from tests.helpers import FAST, session_to

ENGINE = Path(engine.__file__).read_text()


def refused(excinfo, code) -> str:
    """The error as the CLI prints it: its code, and one line."""
    assert excinfo.value.code == code, excinfo.value
    line = one_line(excinfo.value)
    assert str(excinfo.value) == line and "\n" not in line
    return line


def fingerprint(public_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1]


@pytest.fixture
def host_db(tmp_path):
    """db.remote_path and backup.remote_dir on the host (this machine)."""
    db = helpers.make_wal_db(tmp_path / "host" / "data" / "steps.db")
    return db, tmp_path / "host" / "backups"


# ---------------------------------------------------------------- the remote scripts


def test_backup_list_verify_run_on_the_host_with_the_engine(ssh_host, host_db):
    db, folder = host_db
    with session_to(ssh_host) as ssh:
        made = ssh.run(remote.backup_script(str(db), str(folder), check="quick"), ENGINE,
                       timeout=None)
        assert made.status == 0 and made.strategy == "python3", made.stdout
        backup = made.data("backup")
        listed = ssh.run(remote.list_script(str(folder)))
        checked = ssh.run(remote.verify_script(str(folder), [backup["name"]], "integrity"),
                          ENGINE)
    path = folder / backup["name"]
    assert helpers.BACKUP_RE.match(path.name) and path.is_file()
    assert helpers.sha256(path) == backup["sha256"]
    assert Path(f"{path}.sha256").read_text() == f"{backup['sha256']}  {path.name}\n"
    assert json.loads(Path(f"{path}.json").read_text())["sha256"] == backup["sha256"]
    assert helpers.rows(path, "SELECT count(*) FROM steps") == [(3000,)]
    assert listed.entries == [[path.name, str(path.stat().st_size), backup["sha256"], "1",
                               "backup", backup["source"], "-", "-"]]  # what it is, which database
    verdict = checked.data("verify")
    assert [(v["name"], v["ok"]) for v in verdict] == [(path.name, True)]


def test_a_host_without_python3_backs_up_with_the_sqlite3_cli(ssh_host, host_db):
    """The server gives this port's commands a PATH without python3 (after the login shell)."""
    db, folder = host_db
    with session_to(ssh_host, ssh_host.no_python_port) as ssh:
        assert ssh.run("command -v python3 || echo none").stdout.startswith("none")
        made = ssh.run(remote.backup_script(str(db), str(folder), check="integrity"), ENGINE,
                       timeout=None)
        assert made.strategy == "sqlite3" and made.status == 0, made.stdout
        backup = made.data("backup")
        checked = ssh.run(remote.verify_script(str(folder), [backup["name"]], "quick"), ENGINE)
    assert checked.strategy == "sqlite3"
    path = folder / backup["name"]
    assert checked.entries == [[path.name, str(path.stat().st_size), backup["sha256"],
                                backup["sha256"], backup["sha256"], "ok"]]
    assert helpers.sha256(path) == backup["sha256"]
    assert json.loads(Path(f"{path}.json").read_text())["strategy"] == "sqlite3"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".backup.lock", path.name, f"{path.name}.sha256", f"{path.name}.json"])


def test_run_reports_the_real_status_and_survives_bytes_that_are_not_utf8(ssh_host):
    with session_to(ssh_host) as ssh:
        output = ssh.run("printf 'caf\\351 \\377\\n'; echo oops >&2; exit 3")
    assert output.status == 3
    assert output.stdout.startswith("caf\ufffd \ufffd\n")


def test_one_connection_serves_every_step_and_is_closed_on_exit(ssh_host):
    logins = ssh_host.log.read_text().count("Accepted publickey")
    with session_to(ssh_host) as ssh:
        for _ in range(3):
            assert ssh.run("true").status == 0
        ssh.sftp().listdir("/")
        cxn = ssh.connection
        assert cxn.is_connected
    assert not cxn.is_connected
    assert ssh_host.log.read_text().count("Accepted publickey") == logins + 1


def test_a_command_past_its_deadline_is_a_timeout(ssh_host):
    with session_to(ssh_host) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run("sleep 30", timeout=0.3)
    assert "did not finish within 0.3s; it may still" in refused(excinfo, ExitCode.TIMEOUT)


def test_settings_choose_the_host_and_its_options(ssh_host, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(ssh_host.known_hosts_line())
    (Path(os.environ["HOME"]) / ".ssh" / "known_hosts").unlink()  # only ssh.known_hosts now
    settings = config.load({"ssh": {"host": f"127.0.0.1:{ssh_host.port}",
                                    "known_hosts": str(known), "timeout": "7"}})
    with from_settings(settings) as ssh:
        assert ssh.options.timeout == 7.0 and ssh.options.known_hosts == str(known)
        assert ssh.run("true").status == 0
    with pytest.raises(OpsError) as excinfo:
        from_settings(config.load({}))
    assert "pass --host" in refused(excinfo, ExitCode.USAGE)
    with pytest.raises(OpsError) as excinfo:  # the flag wins over ssh.host, and says so
        from_settings(settings, host="we@ir@d")
    assert refused(excinfo, ExitCode.USAGE).startswith("--host must be [user@]host[:port]")


# ---------------------------------------------------------------- trust


def test_known_hosts_lines_ssh_would_skip_are_skipped(ssh_host, tmp_path):
    known = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    good = known.read_text()
    known.write_text("garbage\n[127.0.0.1]:1 ssh-ed25519 !!notbase64!!\n"
                     "@cert-authority *.example.com ssh-ed25519 AAAA\n"
                     "@revoked * ssh-rsa AAAA\n\x00\xff\n" + good)
    with session_to(ssh_host) as ssh:
        assert ssh.run("true").status == 0


def test_a_missing_ssh_known_hosts_file_is_a_usage_error(ssh_host, tmp_path):
    options = Options(known_hosts=str(tmp_path / "nope"))
    with session_to(ssh_host, options=options) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run("true")
    assert f"config ssh.known_hosts: no such file {tmp_path / 'nope'}" in refused(
        excinfo, ExitCode.USAGE)


def test_an_unknown_host_key_is_refused_before_anything_runs(sshd_server, host_db, tmp_path):
    db, folder = host_db
    home = Path(os.environ["HOME"]) / ".ssh"
    home.mkdir()
    shutil.copy(sshd_server.client_key, home / "id_ed25519")
    (home / "known_hosts").write_text(sshd_server.known_hosts_line(sshd_server.no_python_port))
    with session_to(sshd_server) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run(remote.backup_script(str(db), str(folder), check="quick"), ENGINE)
    line = refused(excinfo, ExitCode.FLY)
    port = sshd_server.port
    assert f"host key of [127.0.0.1]:{port} is not known" in line
    assert f"ssh-ed25519 {fingerprint(Path(f'{sshd_server.host_key}.pub'))}" in line
    assert f"`ssh-keyscan -p {port} 127.0.0.1 >> ~/.ssh/known_hosts`" in line
    assert not folder.exists()
    assert (home / "known_hosts").read_text() == sshd_server.known_hosts_line(
        sshd_server.no_python_port)  # nothing was added on the way


@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "hashed"])
def test_a_changed_host_key_is_refused_and_the_old_entry_named(sshd_server, host_db, tmp_path,
                                                              hashed):
    db, folder = host_db
    home = Path(os.environ["HOME"]) / ".ssh"
    home.mkdir()
    shutil.copy(sshd_server.client_key, home / "id_ed25519")
    impostor = sshd.keygen(tmp_path / "old_host_key")
    known = home / "known_hosts"
    known.write_text("# my hosts\n" + f"[127.0.0.1]:{sshd_server.port} "
                     f"{sshd.public_line(impostor)}\n")
    if hashed:  # Debian's ssh_config hashes known_hosts (HashKnownHosts yes)
        subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
        assert "127.0.0.1" not in known.read_text()
    with session_to(sshd_server) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run(remote.backup_script(str(db), str(folder), check="quick"), ENGINE)
    line = refused(excinfo, ExitCode.FLY)
    assert f"host key of [127.0.0.1]:{sshd_server.port} has CHANGED" in line
    assert fingerprint(Path(f"{sshd_server.host_key}.pub")) in line
    assert f"{known}:2 holds ssh-ed25519 {fingerprint(Path(f'{impostor}.pub'))}" in line
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd_server.port}' -f {known}" in line
    assert not folder.exists()


def test_a_key_the_host_does_not_accept_is_refused(sshd_server, tmp_path):
    home = Path(os.environ["HOME"]) / ".ssh"
    home.mkdir()
    sshd.keygen(home / "id_ed25519")  # not in authorized_keys
    (home / "known_hosts").write_text(sshd_server.known_hosts_line())
    with session_to(sshd_server) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run("touch " + str(tmp_path / "made"))
    line = refused(excinfo, ExitCode.FLY)
    assert "the host refused our keys (tried ~/.ssh/id_ed25519)" in line
    assert not (tmp_path / "made").exists()


def test_ssh_config_gives_host_port_user_and_key(sshd_server, tmp_path):
    home = Path(os.environ["HOME"]) / ".ssh"
    home.mkdir()
    key = tmp_path / "deploy_key"
    shutil.copy(sshd_server.client_key, key)
    os.chmod(key, 0o600)
    (home / "known_hosts").write_text(sshd_server.known_hosts_line())
    (home / "config").write_text(f"Host box\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n"
                                 f"  User {sshd_server.user}\n  IdentityFile {key}\n")
    with connect("box", FAST) as ssh:
        assert ssh.run("true").status == 0
        assert ssh.where == f"{sshd_server.user}@127.0.0.1:{sshd_server.port}"


def test_proxyjump_hops_are_held_to_known_hosts_too(ssh_host):
    """box is reached through jump (the server's other port), whose key must be known too."""
    home = Path(os.environ["HOME"]) / ".ssh"
    (home / "config").write_text(
        f"Host jump\n  HostName 127.0.0.1\n  Port {ssh_host.no_python_port}\n"
        f"Host box\n  HostName 127.0.0.1\n  Port {ssh_host.port}\n  ProxyJump jump\n")
    hop = f"on 127.0.0.1 port {ssh_host.no_python_port} "
    logins = ssh_host.log.read_text().count(hop)
    with connect("box", FAST) as ssh:
        assert ssh.run("true").status == 0
    assert ssh_host.log.read_text().count(hop) == logins + 1
    (home / "known_hosts").write_text(ssh_host.known_hosts_line())  # the jump host's is gone
    with connect("box", FAST) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run("true")
    assert f"host key of [127.0.0.1]:{ssh_host.no_python_port} is not known" in refused(
        excinfo, ExitCode.FLY)


@pytest.fixture
def agent(tmp_path, monkeypatch):
    """A real ssh-agent for this test; ``agent(key)`` adds a key (and its certificate)."""
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    helpers.wait_for(lambda: subprocess.run(["ssh-add", "-l"], capture_output=True).returncode
                     != 2, what="ssh-agent")  # 2: cannot talk to the agent (yet)

    def add(key: Path) -> None:
        subprocess.run(["ssh-add", str(key)], check=True, capture_output=True)

    yield add
    process.terminate()
    process.wait()


def test_keys_in_the_agent_are_used(sshd_server, agent):
    home = Path(os.environ["HOME"]) / ".ssh"
    home.mkdir()
    (home / "known_hosts").write_text(sshd_server.known_hosts_line())
    agent(sshd_server.client_key)
    with session_to(sshd_server) as ssh:
        assert ssh.run("true").status == 0


def test_a_certificate_in_the_agent_logs_in_like_fly_ssh_issue(sshd_server, agent, tmp_path):
    """`fly ssh issue --agent` puts a key and its user certificate into the agent."""
    home = Path(os.environ["HOME"]) / ".ssh"
    home.mkdir()
    (home / "known_hosts").write_text(sshd_server.known_hosts_line())
    key = sshd.keygen(tmp_path / "issued")  # not in authorized_keys: only the certificate counts
    agent(key)
    with session_to(sshd_server) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run("true")
    assert "the host refused our keys (tried the ssh-agent's keys)" in refused(excinfo,
                                                                              ExitCode.FLY)
    sshd_server.certify(key)
    agent(key)  # ssh-add loads issued-cert.pub with it
    with session_to(sshd_server) as ssh:
        assert ssh.run("true").status == 0


def test_a_key_with_a_passphrase_asks_for_the_agent(sshd_server, tmp_path):
    home = Path(os.environ["HOME"]) / ".ssh"
    home.mkdir()
    (home / "known_hosts").write_text(sshd_server.known_hosts_line())
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f",
                    str(home / "id_ed25519")], check=True, capture_output=True)
    with session_to(sshd_server) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run("true")
    assert "needs its passphrase; load it into the agent first" in refused(excinfo, ExitCode.FLY)


# ---------------------------------------------------------------- timeouts


def test_a_port_that_never_speaks_is_a_connect_timeout(ssh_host):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel accepts; nobody ever answers
        port = silent.getsockname()[1]
        with connect(f"127.0.0.1:{port}", Options(connect_timeout=0.3)) as ssh, \
                pytest.raises(OpsError) as excinfo:
            ssh.run("true")
    line = refused(excinfo, ExitCode.TIMEOUT)
    assert f"127.0.0.1:{port}: no answer within 0.3s (ssh.connect_timeout)" in line


def test_a_closed_port_is_refused_in_one_line(ssh_host):
    port = sshd.free_port()
    with connect(f"127.0.0.1:{port}", FAST) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run("true")
    assert "connection refused" in refused(excinfo, ExitCode.FLY)


# ---------------------------------------------------------------- transfers


def test_download_round_trip_checks_sha256_and_is_private(ssh_host, tmp_path):
    source = tmp_path / "host" / "steps-2026-11-24T09-30-00.db"
    source.parent.mkdir()
    source.write_bytes(os.urandom(300_000))
    seen = []
    target = tmp_path / "local" / "new" / source.name
    with session_to(ssh_host) as ssh:
        got = ssh.get(str(source), target, on_bytes=lambda done, total: seen.append((done, total)))
    assert got.sha256 == helpers.sha256(source) == helpers.sha256(target)
    assert got.size == 300_000 and got.path == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert seen[-1] == (300_000, 300_000) and all(total == 300_000 for _, total in seen)
    assert os.listdir(target.parent) == [source.name]


def test_a_download_that_does_not_match_the_expected_sha256_is_dropped(ssh_host, tmp_path):
    source = tmp_path / "remote.db"
    source.write_bytes(b"x" * 1000)
    local = tmp_path / "local"
    with session_to(ssh_host) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.get(str(source), local / "copy.db", expected_sha256="0" * 64)
    assert "is corrupt" in refused(excinfo, ExitCode.VERIFY_FAILED)
    assert os.listdir(local) == []


def test_a_download_cut_in_the_middle_leaves_nothing(ssh_host, tmp_path):
    source = tmp_path / "host" / "steps-2026-11-24T09-30-00.db"
    source.parent.mkdir()
    source.write_bytes(os.urandom(8 << 20))
    local = tmp_path / "local"
    local.mkdir()
    cut = []

    def kill_the_connection(done, total):
        if not cut:
            cut.append(ssh_host.cut_connections())

    with session_to(ssh_host) as ssh:
        with pytest.raises(OpsError) as excinfo:
            ssh.get(str(source), local / source.name, on_bytes=kill_the_connection)
        line = refused(excinfo, ExitCode.FLY)
        assert cut and cut[0] > 0
        assert f"download of {source} on " in line and "connection lost" in line
        assert os.listdir(local) == []
        with pytest.raises(OpsError) as excinfo:  # one connection per run: no silent reconnect
            ssh.run("true")
        assert "lost" in refused(excinfo, ExitCode.FLY)
    assert helpers.backup_files(tmp_path / "local") == []


def test_a_download_that_stalls_is_a_timeout_and_leaves_nothing(ssh_host, tmp_path):
    source = tmp_path / "host" / "steps-2026-11-24T09-30-00.db"
    source.parent.mkdir()
    source.write_bytes(os.urandom(8 << 20))
    local = tmp_path / "local"
    stopped = []

    def stop_the_server_side(done, total):
        if not stopped:
            stopped.append(ssh_host.cut_connections(signal.SIGSTOP))

    try:
        with session_to(ssh_host, options=Options(connect_timeout=5, timeout=0.5)) as ssh, \
                pytest.raises(OpsError) as excinfo:
            ssh.get(str(source), local / source.name, helpers.sha256(source),
                    on_bytes=stop_the_server_side)
    finally:
        ssh_host.cut_connections(signal.SIGKILL)
    line = refused(excinfo, ExitCode.TIMEOUT)
    assert f"download of {source} on " in line and "no data for 0.5s (ssh.timeout)" in line
    assert os.listdir(local) == []


def test_an_upload_cut_in_the_middle_leaves_nothing_that_looks_like_a_backup(ssh_host, tmp_path):
    local = tmp_path / "steps-2026-11-24T09-30-00.db"
    local.write_bytes(os.urandom(8 << 20))
    folder = tmp_path / "host" / "backups"
    cut = []

    def kill_the_connection(done, total):
        if not cut:
            cut.append(ssh_host.cut_connections())

    with session_to(ssh_host) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.put(local, str(folder / local.name), on_bytes=kill_the_connection)
    assert "connection lost" in refused(excinfo, ExitCode.FLY)
    assert helpers.backup_files(folder) == []
    assert [name.startswith(".tmp-") for name in os.listdir(folder)] == [True]  # the staging


def test_an_existing_file_is_never_overwritten(ssh_host, tmp_path):
    source = tmp_path / "remote.db"
    source.write_bytes(b"new")
    local = tmp_path / "local"
    local.mkdir()
    (local / "kept.db").write_bytes(b"old")
    elsewhere = tmp_path / "elsewhere.db"
    (local / "dangling.db").symlink_to(elsewhere)
    with session_to(ssh_host) as ssh:
        for name in ("kept.db", "dangling.db"):
            with pytest.raises(OpsError) as excinfo:
                ssh.get(str(source), local / name)
            assert "already exists; not overwritten" in refused(excinfo, ExitCode.USAGE)
        upload = tmp_path / "upload.db"
        upload.write_bytes(b"upload")
        for name in ("remote.db", "remote-link.db"):
            if name == "remote-link.db":
                (tmp_path / name).symlink_to(tmp_path / "nowhere")
            with pytest.raises(OpsError) as excinfo:
                ssh.put(upload, str(tmp_path / name))
            assert "already exists on" in refused(excinfo, ExitCode.USAGE)
    assert (local / "kept.db").read_bytes() == b"old"
    assert not elsewhere.exists() and not (tmp_path / "nowhere").exists()
    assert source.read_bytes() == b"new"
    assert sorted(os.listdir(local)) == ["dangling.db", "kept.db"]


def test_a_remote_symlink_is_not_downloaded(ssh_host, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("not a backup")
    (tmp_path / "steps.db").symlink_to(secret)
    with session_to(ssh_host) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.get(str(tmp_path / "steps.db"), tmp_path / "local" / "steps.db")
    assert "symlink or not a regular file" in refused(excinfo, ExitCode.USAGE)
    assert not (tmp_path / "local" / "steps.db").exists()


def test_upload_round_trip_through_a_private_staging_folder(ssh_host, tmp_path):
    local = tmp_path / "steps-2026-11-24T09-30-00.db"
    local.write_bytes(os.urandom(200_000))
    final = tmp_path / "host" / "backups" / local.name
    seen = []
    with session_to(ssh_host) as ssh:
        put = ssh.put(local, str(final), helpers.sha256(local),
                      on_bytes=lambda done, total: seen.append(done))
        with pytest.raises(OpsError) as excinfo:
            ssh.put(local, str(final.with_name("other.db")), expected_sha256="f" * 64)
        assert "not uploaded" in refused(excinfo, ExitCode.VERIFY_FAILED)
    assert put.sha256 == helpers.sha256(final) == helpers.sha256(local)
    assert stat.S_IMODE(final.stat().st_mode) == 0o600
    assert seen[-1] == 200_000
    assert os.listdir(final.parent) == [local.name]  # the staging folder is gone


def test_remote_sha256_falls_back_to_sha256sum(ssh_host, tmp_path):
    source = tmp_path / "file"
    source.write_bytes(b"abc")
    with session_to(ssh_host, ssh_host.no_python_port) as ssh:
        assert ssh.remote_sha256(str(source)) == (helpers.sha256(source), 3)
        with pytest.raises(OpsError) as excinfo:
            ssh.remote_sha256(str(tmp_path / "missing"))
    assert "not found" in refused(excinfo, ExitCode.NOT_FOUND)


# ---------------------------------------------------------------- addresses and settings


@pytest.mark.parametrize("text, expected", [
    ("box", Address("box")),
    ("deploy@box", Address("box", "deploy")),
    ("deploy@box.example.com:2222", Address("box.example.com", "deploy", 2222)),
    ("10.0.0.5:22", Address("10.0.0.5", None, 22)),
    ("[::1]:2222", Address("::1", None, 2222)),
    ("root@[fe80::1%eth0]", Address("fe80::1%eth0", "root")),
    ("root@::1", Address("::1", "root")),
    (" box ", Address("box")),
])  # fmt: skip
def test_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", [
    "", "@box", "user@", "box:", "box:0", "box:65536", "box:22x", "-oProxyCommand=x",
    "user@-box", "a b", "box\nx", "[::1", "[::1]x", "[box]:22", "1:2:3", "us er@box",
    "box:22:33", "we@ir@d", "box/../x", "x" * 300, "box;rm -rf /", "[::1]:",
])  # fmt: skip
def test_junk_addresses_are_refused_in_one_line(text):
    with pytest.raises(OpsError) as excinfo:
        parse_address(text)
    line = refused(excinfo, ExitCode.USAGE)
    assert line.startswith("--host must be [user@]host[:port]") and len(line) < 200


def test_addresses_print_back_as_given():
    for text in ("box", "deploy@box:2222", "[::1]:2222", "::1"):
        assert str(parse_address(text)) == text


@pytest.mark.parametrize("key, value", [
    ("connect_timeout", "nan"), ("connect_timeout", "0"), ("connect_timeout", "abc"),
    ("timeout", "inf"), ("timeout", "-1"), ("host", "we@ir@d"),
])  # fmt: skip
def test_bad_ssh_settings_name_their_key(key, value):
    with pytest.raises(OpsError) as excinfo:
        config.load({"ssh": {key: value}})
    assert f"ssh.{key}" in refused(excinfo, ExitCode.USAGE)


def test_ssh_settings_defaults_and_env_overrides(run_invoke, tmp_path):
    settings = config.load({})
    assert (settings.ssh_host, settings.ssh_known_hosts) == ("", "")
    assert (settings.ssh_connect_timeout, settings.ssh_timeout) == (15.0, 600.0)
    result = run_invoke("backup.list", env={"INVOKE_SSH_TIMEOUT": "nan"})
    helpers.assert_one_line_error(result, ExitCode.USAGE, contains="ssh.timeout")


@pytest.mark.parametrize("ci, outcome", [("true", "1 error"), (None, "1 skipped")])
def test_without_sshd_the_tests_skip_with_the_reason_but_ci_fails(ci, outcome):
    env = helpers.clean_env({"OPS_TEST_SSHD": "/nonexistent/sshd", "CI": ci,
                             "PYTHONPATH": str(helpers.REPO_ROOT)})
    run = subprocess.run(
        [helpers.PYTHON, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/test_ssh.py::test_run_reports_the_real_status_and_survives_bytes_that_are_not_utf8"],
        cwd=helpers.REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert outcome in run.stdout, run.stdout
    assert "/nonexistent/sshd is not installed (apt-get install openssh-server)" in run.stdout


# ---------------------------------------------------------------- @revoked, @cert-authority


def logins(server) -> int:
    return server.log.read_text().count("Accepted publickey")


@pytest.mark.parametrize("pattern", ["*", "other.example.com"])
def test_a_revoked_host_key_is_refused_even_where_it_is_also_known(ssh_host, pattern):
    known = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    key = sshd.public_line(ssh_host.host_key)
    known.write_text(known.read_text() + f"@revoked {pattern} {key}\n")
    revoked_line = len(known.read_text().splitlines())  # the line just added
    before = logins(ssh_host)
    with session_to(ssh_host) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run("true")
    line = refused(excinfo, ExitCode.FLY)
    assert f"host key of [127.0.0.1]:{ssh_host.port} is REVOKED" in line
    assert f"marked @revoked in {known}:{revoked_line}" in line
    assert logins(ssh_host) == before  # refused before we logged in


def test_a_host_known_only_through_a_cert_authority_is_refused_saying_so(ssh_host, tmp_path):
    known = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    ca = sshd.keygen(tmp_path / "host_ca")
    known.write_text(f"@cert-authority [127.0.0.1]:* {sshd.public_line(ca)}\n")
    with session_to(ssh_host) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run("true")
    line = refused(excinfo, ExitCode.FLY)
    assert f"is trusted only through @cert-authority ({known}:1), which this tool cannot" in line
    assert f"`ssh-keyscan -p {ssh_host.port} 127.0.0.1 >> ~/.ssh/known_hosts`" in line


def test_known_hosts_patterns_match_as_openssh_matches_them():
    from ops.ssh.hostkeys import KnownKey, pattern_matches

    def entry(*names):
        return KnownKey("f", 1, names, None, "@cert-authority")

    assert pattern_matches(entry("*.example.com"), "db.example.com")
    assert not pattern_matches(entry("*.example.com", "!db.example.com"), "db.example.com")
    assert pattern_matches(entry("[127.0.0.1]:*"), "[127.0.0.1]:2222")
    assert not pattern_matches(entry("[127.0.0.1]:*"), "1")  # not a character class
    assert pattern_matches(entry("db?.EXAMPLE.com"), "db1.example.com")


@pytest.mark.parametrize("folder", ["trust", "my trust"])
def test_the_shell_command_a_refusal_names_trusts_what_the_toolkit_trusts(
        ssh_host, host_db, tmp_path, folder):
    """A refusal on a host says how to open a shell there; with ``ssh.known_hosts`` that
    command reads the file too, so ssh connects without asking to accept a key the toolkit
    checked (s25 review-break2 #7). Run as pasted by the real ssh, asking nothing."""
    db, backups = host_db
    known = tmp_path / folder / "known_hosts"
    known.parent.mkdir()
    known.write_text(ssh_host.known_hosts_line())
    (Path(os.environ["HOME"]) / ".ssh" / "known_hosts").unlink()  # only ssh.known_hosts now
    os.link(db, db.with_name("copy.db"))  # refused on the host, with the way there
    options = Options(known_hosts=str(known))
    with session_to(ssh_host, options=options) as ssh, pytest.raises(OpsError) as excinfo:
        ssh.run(remote.backup_script(str(db), str(backups), check="quick"), ENGINE).data(
            "backup")
    line = refused(excinfo, ExitCode.USAGE)
    command = line.rsplit("open a shell there with `", 1)[1].split("`", 1)[0]
    assert command.startswith("ssh -o ") and f"-p {ssh_host.port} " in command, line
    # ssh finds ~ by the passwd entry, not HOME: the test's key is given, asked nothing
    asking_nothing = f"ssh -o BatchMode=yes -o IdentitiesOnly=yes -i {ssh_host.client_key} "
    done = subprocess.run(["sh", "-c", command.replace("ssh ", asking_nothing, 1) + " true"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, (command, done.stderr)
    # without the toolkit's file the same ssh refuses: the option is what made it trust
    bare = subprocess.run(["sh", "-c", f"{asking_nothing}-p {ssh_host.port} "
                           f"{ssh_host.user}@127.0.0.1 true"], capture_output=True, text=True,
                          timeout=30)
    assert bare.returncode != 0 and "Host key verification failed" in bare.stderr, bare.stderr


@pytest.mark.parametrize(("known_hosts", "read"), [
    ("my trust/known_hosts", "{cwd}/my trust/known_hosts"),  # relative: from any folder
    ("/etc/a%h/known_hosts", "/etc/a%h/known_hosts"),  # not ssh's %h token
    ("/etc/it's/known_hosts", None),  # a quote ssh cannot take: the option is left out
    ("/etc/${HOME}/known_hosts", None),  # nor ${VAR}, which ssh would expand
])
def test_the_shell_command_names_the_file_the_toolkit_read_or_none(
        tmp_path, monkeypatch, known_hosts, read):
    """s26 review-break2 #3, checked with the real ssh's own reading (`ssh -G`)."""
    from ops.ssh.address import ssh_command

    monkeypatch.chdir(tmp_path)
    command = ssh_command(Address("127.0.0.1", "root", 2222), known_hosts)
    if read is None:
        assert command == "ssh -p 2222 root@127.0.0.1"
        return
    words = shlex.split(command)
    shown = subprocess.run(["ssh", "-G", *words[1:]], capture_output=True, text=True,
                           timeout=30, check=True).stdout
    files = next(line for line in shown.splitlines() if line.startswith("userknownhostsfile"))
    assert files.endswith(" " + read.format(cwd=tmp_path)), (command, files)


def test_the_shell_command_survives_a_working_folder_removed_under_the_run(tmp_path,
                                                                          monkeypatch):
    """A relative ssh.known_hosts is made absolute from the working folder; with that
    folder gone (os.getcwd fails) the path is given as typed, never a traceback."""
    from ops.ssh.address import ssh_command

    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert ssh_command(Address("h", "u", 22), "kh") == \
        "ssh -o 'UserKnownHostsFile=~/.ssh/known_hosts kh' -p 22 u@h"
