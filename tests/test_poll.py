"""ops.poll.until, the one poll-until-deadline loop, on a fake clock: its rules as data."""

from __future__ import annotations

import pytest

from ops import poll


class Clock:
    """Time that passes only when the loop sleeps (and ``cost`` per attempt)."""

    def __init__(self, cost: float = 0.0):
        self.now, self.cost, self.sleeps = 0.0, cost, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Expired(Exception):
    pass


def attempts(answers, clock):
    answers = iter(answers)

    def attempt():
        clock.now += clock.cost
        return next(answers)

    return attempt


def run(answers, timeout, interval, cost=0.0):
    clock = Clock(cost)
    try:
        found = poll.until(attempts(answers, clock), timeout=timeout, interval=interval,
                           expired=lambda n, waited: Expired(n, waited), sleep=clock.sleep,
                           clock=clock)
    except Expired as exc:
        return ("expired", *exc.args), clock.sleeps
    return ("found", found), clock.sleeps


@pytest.mark.parametrize("answers, timeout, interval, outcome, sleeps", [
    ([1], 10, 1, ("found", 1), []),  # at once: no sleep at all
    ([None, None, "x"], 10, 1, ("found", "x"), [1, 1]),
    ([0], 10, 1, ("found", 0), []),  # a falsy answer is an answer; only None polls again
    ([None] * 5, 3, 1, ("expired", 4, 3.0), [1, 1, 1]),  # the last poll at the deadline
    ([None], 3, 5, ("expired", 1, 0.0), []),  # never sleeps past the deadline
    ([None] * 5, 0, 1, ("expired", 1, 0.0), []),  # no time: one look
])
def test_until_polls_to_the_deadline_and_never_past_it(answers, timeout, interval, outcome,
                                                        sleeps):
    assert run(answers, timeout, interval) == (outcome, sleeps)


def test_the_time_an_attempt_takes_counts_against_the_deadline():
    # each poll costs 1s: polls at 0-1, 2-3, then 3 + 1 > 3.5 stops the wait
    assert run([None] * 5, 3.5, 1, cost=1.0) == (("expired", 2, 3.0), [1])


def test_an_attempt_that_raises_ends_the_wait_at_once():
    clock = Clock()

    def attempt():
        raise ValueError("failed state")

    with pytest.raises(ValueError, match="failed state"):
        poll.until(attempt, timeout=10, interval=1, expired=lambda n, w: Expired(),
                   sleep=clock.sleep, clock=clock)
    assert clock.sleeps == []
