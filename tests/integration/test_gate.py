"""The gate waits in place for a token about to free and sends a longer wait back to the queue,
asked back a little early with its ticket; either way the call is made at most once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from mapping.tenant import TenantSettings
from tests.runtimes import isolated_runtime
from workers.errors import Throttled
from workers.flows import gate
from workers.runtime import Runtime
from workers.store.limiter import Grant, held_ticket

pytestmark = pytest.mark.integration

TENANT = TenantSettings(
    name="gate-org",
    virtuous_base_url="http://virtuous.invalid",
    virtuous_token_env="TOKEN",
    timezone="America/Chicago",
)


class ScriptedLimiter:
    """Refuses with the given waits (places in the line unless ``in_line`` is False), in
    order, then grants; records every ask."""

    def __init__(self, waits: list[float], *, in_line: bool = True) -> None:
        self.waits = list(waits)
        self.in_line = in_line
        self.asked: list[dict[str, Any]] = []

    def acquire(self, tenant: TenantSettings, **kwargs: Any) -> Grant:
        self.asked.append(kwargs)
        if self.waits:
            wait = self.waits.pop(0)
            return Grant(False, wait, 0.0, at=100.0, in_line=self.in_line)
        return Grant(granted=True, wait_seconds=0.0, tokens_left=1.0, at=100.0)


@pytest.fixture
def rt(redis_url: str) -> Iterator[Runtime]:
    with isolated_runtime(redis_url, TENANT, env={"TOKEN": "t"}) as runtime:
        yield runtime


@pytest.fixture
def holding() -> Iterator[None]:
    """The message being processed came back with a limiter ticket."""
    token = held_ticket.set(99.9)
    yield
    held_ticket.reset(token)


@pytest.mark.usefixtures("holding")
def test_a_waiter_back_with_its_ticket_waits_in_place_for_its_turn(rt: Runtime) -> None:
    limiter = ScriptedLimiter([0.05, 0.1])
    rt.__dict__["limiter"] = limiter
    calls: list[object] = []

    def send(client: object) -> str:
        calls.append(client)
        return "done"

    started = time.monotonic()
    assert gate.call(rt, TENANT, send) == "done"
    assert len(calls) == 1 and len(limiter.asked) == 3
    assert time.monotonic() - started >= 0.15
    # It asks with its ticket, then with each one it is given; once granted, it holds none.
    assert [a["held"] for a in limiter.asked] == [99.9, 100.05, 100.1]
    assert all(a["ticket"] for a in limiter.asked)
    assert held_ticket.get() is None


def test_a_newcomer_refused_goes_back_to_the_queue_with_its_ticket(rt: Runtime) -> None:
    limiter = ScriptedLimiter([0.05])
    rt.__dict__["limiter"] = limiter
    with pytest.raises(Throttled) as raised:
        gate.call(rt, TENANT, lambda client: None)
    assert [a["held"] for a in limiter.asked] == [None]
    assert raised.value.ticket_at == pytest.approx(100.05)
    assert raised.value.delay_seconds == pytest.approx(0.001)


def test_a_wait_that_is_no_place_in_line_goes_back_holding_no_ticket(rt: Runtime) -> None:
    # A probe's answer awaited: every waiter is told the same short wait; none holds a place.
    limiter = ScriptedLimiter([0.05], in_line=False)
    rt.__dict__["limiter"] = limiter
    with pytest.raises(Throttled) as raised:
        gate.call(rt, TENANT, lambda client: None)
    assert raised.value.ticket_at is None


def test_a_longer_wait_goes_back_to_the_queue_asked_back_early(rt: Runtime) -> None:
    limiter = ScriptedLimiter([5.0])
    rt.__dict__["limiter"] = limiter
    calls: list[int] = []
    token = held_ticket.set(97.0)  # the message came back holding a ticket
    try:
        with pytest.raises(Throttled) as raised:
            gate.call(rt, TENANT, lambda client: calls.append(1))
    finally:
        held_ticket.reset(token)
    assert calls == [] and limiter.asked[0]["held"] == 97.0
    assert raised.value.reason == "limiter"
    assert raised.value.delay_seconds == pytest.approx(5.0 - gate.EARLY_WAKE_SECONDS)
    assert raised.value.ticket_at == pytest.approx(105.0)


@pytest.mark.usefixtures("holding")
def test_waiting_in_place_is_bounded(rt: Runtime) -> None:
    # Each wait is short, but together they pass the budget: back to the queue.
    rt.__dict__["limiter"] = ScriptedLimiter([0.25, 0.25, 0.25, 0.25])
    started = time.monotonic()
    with pytest.raises(Throttled):
        gate.call(rt, TENANT, lambda client: None)
    assert time.monotonic() - started <= gate.INLINE_WAIT_SECONDS + 0.2
