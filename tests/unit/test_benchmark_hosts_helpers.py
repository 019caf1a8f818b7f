"""The several-hosts benchmark's pure helpers (reading ss, counting per window, repeats) and
what it reports where it cannot make its hosts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from benchmarks import hosts
from benchmarks.hosts import _per_window, _repeats
from benchmarks.netns import HostsUnavailable, awaiting_answer

# Two connections as `ss -tniH` prints them: an address line, then the info line.
IDLE = (
    "0      0      10.77.0.11:40312 10.77.0.1:36001\n"
    "\t cubic wscale:7,7 rto:204 rtt:1.2/0.6 bytes_sent:2056 bytes_received:9000 "
    "lastsnd:1056 lastrcv:1050 lastack:1050 pacing_rate 1bps\n"
)
WAITING = (
    "0      0      10.77.0.11:40314 10.77.0.1:36001\n"
    "\t cubic wscale:7,7 rto:204 rtt:1.2/0.6 bytes_sent:4112 bytes_received:9000 "
    "lastsnd:12 lastrcv:1050 lastack:12 pacing_rate 1bps\n"
)


def test_a_connection_that_sent_after_its_last_answer_is_waiting() -> None:
    assert awaiting_answer(IDLE) == 0
    assert awaiting_answer(WAITING) == 1
    assert awaiting_answer(IDLE + WAITING + WAITING) == 2


def test_a_timer_ss_leaves_out_is_zero_ms_ago() -> None:
    # Sent this very millisecond (no lastsnd), last answer a second ago: waiting.
    assert awaiting_answer("\t rtt:1/1 lastrcv:1000 lastack:2\n") == 1
    # Answered this very millisecond (no lastrcv): not waiting.
    assert awaiting_answer("\t rtt:1/1 lastsnd:3 lastack:0\n") == 0


def test_calls_per_window_start_at_the_first_call() -> None:
    samples = [(0.0, 7), (1.0, 7), (1.5, 10), (2.0, 12), (5.0, 12), (6.0, 16), (14.0, 17)]
    # Windows of 4 s from t=1.5: [1.5, 5.5) 5 calls, [5.5, 9.5) 4, [9.5, 13.5) 0, then 1.
    assert _per_window(samples, 4.0) == [5, 4, 0, 1]
    assert _per_window([(0.0, 3), (1.0, 3)], 4.0) == []
    # Windows after the last call are left out.
    assert _per_window([*samples, (20.0, 17), (30.0, 17)], 4.0) == [5, 4, 0, 1]


def test_repeats_count_extra_entries_and_missing_ids() -> None:
    present, duplicates, lost = _repeats(["1", "2", "2", "2", "4"], {"1", "2", "3", "4"})
    assert (present, duplicates, lost) == (3, 2, 1)


def test_without_hosts_every_figure_reads_skipped_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @contextmanager
    def no_network(count: int) -> Iterator[None]:
        raise HostsUnavailable("network namespaces need root (ip netns add)")
        yield

    monkeypatch.setattr(hosts, "network", no_network)
    result = hosts.run(quick=True)
    assert [f.label for f in result.figures] == list(hosts.FIGURES)
    assert {f.text() for f in result.figures} == {f"{label}: skipped" for label in hosts.FIGURES}
    assert result.notes == [
        "skipped: the hosts could not be made: network namespaces need root (ip netns add)"
    ]
