"""Every flow keeps the flyctl token out of what it writes (review-break #6): emergency and
restore.volume runners get the same secrets as deploy (the tokens in the environment),
and flyctl's own output is redacted at the same length as the runner's (4+ characters).
Through the real CLI and the flyctl double; the token is short on purpose."""

from __future__ import annotations

import pytest

TOKEN = "abcde"  # 5 characters: below the old threshold of flyctl's wrapper (6)


@pytest.mark.parametrize("task", [("emergency.stop", "--yes", "--json"),
                                  ("restore.volume", "--snapshot", "latest", "--yes", "--json")])
@pytest.mark.parametrize("where", [["machine", "list"], ["machine", "update"]])
def test_a_short_token_flyctl_echoes_is_in_no_line_written(site, task, where):
    site.token = TOKEN
    site.world.add_token(TOKEN)
    site.world.fail(where, stderr=f"Error: bad token {TOKEN} (you sent {TOKEN}...)\n")
    result = site.run(*task)

    assert result.returncode != 0, result  # it did fail where the token was echoed
    assert "bad token ***" in result.stderr, result.stderr
    assert TOKEN not in result.stderr and TOKEN not in result.stdout
    if site.audit_log.exists():
        assert TOKEN not in site.audit_log.read_text()
