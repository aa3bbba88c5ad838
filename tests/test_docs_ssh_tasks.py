"""docs/ssh.md names every task that takes --host, and only those (review-op 15: it left
out backup.adopt and machine.check)."""

from __future__ import annotations

import re

from ops.commands import namespace
from tests.helpers import REPO_ROOT, flags_of


def test_ssh_md_names_every_task_with_host():
    ns = namespace()
    with_host = set()
    for primary, aliases in ns.task_names.items():
        if "--host" in flags_of(primary):
            with_host.add(aliases[0] if aliases else primary)  # `backup`, not backup.create
    text = (REPO_ROOT / "docs" / "ssh.md").read_text()
    sentence = text[text.index("every backup task takes it"):]
    sentence = sentence[: sentence.index("\n`--production`")]
    named = set(re.findall(r"`([a-z.]+)`", sentence))
    assert named == with_host, (named ^ with_host)
