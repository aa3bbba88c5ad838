"""A run not confirmed says so the same way in every task that asks (review-break s20 #4):
with --json, a 'no', Ctrl-D or Ctrl-C at the prompt gives a document with `outcome: "not
confirmed"` and the task's `kind`, as the refusal without a terminal does; and that
refusal names the stream that is not a terminal (review-op s20 #4: stderr piped to tee)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time

import pytest

from ops import cli
from tests import helpers

pytestmark = pytest.mark.cli_in_process

TASKS = [(("emergency.stop",), "emergency.stop"),
         (("restore.volume", "--snapshot", "latest"), "restore.volume")]


def on_pty(args, site, action=None, pty_streams=("stdin", "stderr")):
    """Run the CLI with the named streams on a pty and the others piped; at the prompt
    type ``action`` (or send SIGINT). Returns (code, stdout, what the pty showed)."""
    leader, follower = os.openpty()
    streams = {name: (follower if name in pty_streams else subprocess.PIPE)
               for name in ("stdin", "stderr")}
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [helpers.PYTHON, "-m", "invoke", "--search-root", str(helpers.REPO_ROOT), *args],
        cwd=site.cwd, env=helpers.clean_env(helpers.project_root(site.cwd, site.env())),
        stdout=subprocess.PIPE, close_fds=True, **streams)
    os.close(follower)
    if proc.stdin is not None:
        proc.stdin.close()
    shown, done, end = b"", action is None, time.monotonic() + 60
    while time.monotonic() < end:
        ready, _, _ = select.select([leader], [], [], 0.1)
        chunk = b""
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            shown += chunk
        if not done and b"Type yes" in shown:
            if action == "SIGINT":
                proc.send_signal(signal.SIGINT)
            else:
                os.write(leader, action.encode())
            done = True
        if (ready and not chunk) or (not ready and proc.poll() is not None):
            break
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode() if proc.stderr is not None else ""
    proc.wait(timeout=30)
    os.close(leader)
    return proc.returncode, out, shown.decode(errors="replace") + err


@pytest.mark.parametrize(("action", "code"), [("no\n", 1), ("\x04", 130), ("SIGINT", 130)])
@pytest.mark.parametrize(("task", "kind"), TASKS)
def test_a_run_not_confirmed_at_the_prompt_has_the_refusals_keys(site, task, kind, action,
                                                                  code):
    exit_code, out, shown = on_pty([*task, "--json"], site, action)
    assert exit_code == code, shown
    document = json.loads(out)
    assert document["outcome"] == "not confirmed" and document["kind"] == kind, document
    assert document["exit_code"] == code and "error" in document, document


@pytest.mark.parametrize(("on_terminal", "named"), [
    (("stdin",), "stderr is not a terminal"), (("stderr",), "stdin is not a terminal")])
def test_the_refusal_names_the_stream_that_is_not_a_terminal(site, on_terminal, named):
    code, out, shown = on_pty(["emergency.stop"], site, pty_streams=on_terminal)
    assert code == 2, shown
    assert f"Error: {named} (piped or redirected?), so nothing can be asked" in " ".join(
        shown.split()), shown


def test_the_wording_for_each_pair_of_streams():
    assert cli.not_a_terminal(stdin=True, stderr=False).startswith("stderr is not")
    assert cli.not_a_terminal(stdin=False, stderr=True).startswith("stdin is not")
    assert cli.not_a_terminal(stdin=False, stderr=False) == "not on a terminal"
