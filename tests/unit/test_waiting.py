"""giftsync.waiting.wait_for: returns the first accepted value, fails at the deadline naming
what it waited for and the last value it saw."""

from __future__ import annotations

import itertools

import pytest

from giftsync.waiting import WaitTimeout, wait_for


def test_returns_the_first_truthy_value() -> None:
    values = iter([0, None, "", {"sent": 3}])
    assert wait_for(lambda: next(values), what="a count", interval=0) == {"sent": 3}


def test_until_decides_and_the_probed_value_is_returned() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter), until=lambda n: n >= 4, what="four", interval=0) == 4


def test_a_zero_is_accepted_when_until_says_so() -> None:
    assert wait_for(lambda: 0, until=lambda n: n == 0, what="zero") == 0


def test_the_timeout_names_what_and_the_last_value() -> None:
    counter = itertools.count()
    with pytest.raises(WaitTimeout) as caught:
        wait_for(
            lambda: next(counter),
            until=lambda n: n < 0,
            timeout=0.05,
            interval=0.001,
            what="a negative number",
        )
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert error.what == "a negative number" and error.timeout == 0.05
    assert isinstance(error.last, int) and error.last > 0
    assert str(error) == (
        f"timed out after 0.05s waiting for a negative number; last value: {error.last}"
    )


def test_the_probe_runs_at_least_once_even_with_no_time() -> None:
    calls: list[int] = []
    with pytest.raises(WaitTimeout):
        wait_for(lambda: calls.append(1), timeout=0, what="nothing")
    assert calls == [1]


def test_a_long_last_value_is_shortened() -> None:
    with pytest.raises(WaitTimeout) as caught:
        wait_for(lambda: ["x" * 50] * 100, until=lambda _: False, timeout=0, what="never")
    message = str(caught.value)
    assert message.endswith("...") and len(message) < 1100


def test_an_error_in_the_probe_propagates_at_once() -> None:
    def probe() -> bool:
        raise RuntimeError("the worker exited")

    with pytest.raises(RuntimeError, match="the worker exited"):
        wait_for(probe, timeout=30, what="never reached")
