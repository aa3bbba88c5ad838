"""What the flyctl double's speed-ups keep: the time it writes without importing datetime
is the text the datetime form gives, and a machine's python3 sees only its image's
packages (its ``pyvenv.cfg``), not the host's, so it starts without the host's ``.pth``s."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

from tests.flyctl_double.cli.clock import format_time, now_rfc3339, now_seconds, parse_time
from tests.flyctl_double.state import DEFAULT_APP, real_python3
from tests.helpers import fly_run


def test_now_is_go_rfc3339_and_what_format_time_writes():
    before = dt.datetime.now(dt.UTC)
    text, seconds = now_rfc3339(), now_seconds()
    after = dt.datetime.now(dt.UTC)
    parsed = parse_time(text)
    assert format_time(parsed) == text and text.endswith("Z") and "+" not in text
    assert before - dt.timedelta(microseconds=1) <= parsed <= after
    assert "." not in seconds and abs(parse_time(seconds) - parsed) < dt.timedelta(seconds=2)


def test_a_machines_python3_has_no_host_site_packages(fly_world, tmp_path):
    probe = ("import json, sys, site; print(json.dumps([sys.prefix, "
             "[p for p in sys.path if p.endswith('-packages')]]))")
    done = fly_run(fly_world, "ssh", "console", "-a", DEFAULT_APP, "-C",
                   f"python3 -c \"{probe}\"", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    prefix, packages = json.loads(done.stdout.splitlines()[-1])
    assert all(path.startswith(prefix) for path in packages), (prefix, packages)
    host = subprocess.run([real_python3(), "-c", "import sys; print(sys.prefix)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert prefix != host, prefix  # a venv's (the machine's, or machine_python's folder)
