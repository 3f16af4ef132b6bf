"""Politeness per host: a limit on requests in flight, and cool-downs after 429/503."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from spark_img2ds.net.politeness import (
    COOLDOWN_MAX,
    MAX_TRACKED_HOSTS,
    SKIP_BASE,
    SKIP_MAX,
    UNANSWERED_LIMIT,
    HostBusy,
    HostDown,
    HostGate,
    cooldown,
    skip_seconds,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cooldown_doubles_and_honours_a_longer_retry_after():
    assert [cooldown(n, None) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert cooldown(30, None) == COOLDOWN_MAX
    assert cooldown(1, 5.0) == 5.0 and cooldown(3, 1.0) == 4.0
    assert cooldown(1, 3600.0) == COOLDOWN_MAX  # a server cannot park a task for an hour
    assert cooldown(5, 3600.0, cap=10.0) == 10.0  # nor longer than one attempt's timeout


def test_at_most_limit_requests_per_host_are_in_flight():
    gate = HostGate(limit=2)
    inside, most, lock = [0], [0], threading.Lock()
    other_host_waited = []

    def request(host: str) -> None:
        with gate.slot(host, wait_limit=10) as waited:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1
            if host == "b.example":
                other_host_waited.append(waited)

    threads = [threading.Thread(target=request, args=("a.example",)) for _ in range(8)]
    threads.append(threading.Thread(target=request, args=("b.example",)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 3  # two for a.example, and b.example's own slot beside them
    assert other_host_waited == [False]
    assert gate.delayed >= 5  # eight requests, two slots: most of them waited


def test_a_throttled_host_gets_no_request_until_its_cooldown_ends():
    clock = Clock()
    gate = HostGate(limit=8, max_cooldown=60.0, clock=clock)
    assert gate.throttle("a.example", retry_after=None) == 1.0
    with pytest.raises(HostBusy, match="still cooling down"):
        with gate.slot("a.example", wait_limit=0):
            pass
    with gate.slot("b.example", wait_limit=0) as waited:  # other hosts are not held back
        assert not waited
    clock.now += 1.0
    with gate.slot("a.example", wait_limit=0) as waited:
        assert not waited
    assert gate.throttle("a.example", retry_after=None) == 2.0  # a second 429 in a row: longer
    assert gate.throttle("a.example", retry_after=30.0) == 30.0  # the server's word when longer
    gate.relieve("a.example")  # a success halves the strikes (3 -> 1)
    assert gate.throttle("a.example", retry_after=None) == 2.0
    assert gate.throttled["a.example"] == 4


def test_a_busy_host_fails_with_a_message_that_says_why():
    gate = HostGate(limit=1)
    with gate.slot("a.example", wait_limit=1):
        with pytest.raises(HostBusy, match="no free connection of max_connections_per_host in 0.1s"):
            with gate.slot("a.example", wait_limit=0.1):
                pass


def test_zero_means_no_limit_but_cooldowns_still_apply():
    clock = Clock()
    gate = HostGate(limit=0, clock=clock)
    with gate.slot("a", 0), gate.slot("a", 0), gate.slot("a", 0):
        pass
    gate.throttle("a", None)
    with pytest.raises(HostBusy):
        with gate.slot("a", 0):
            pass


# --- hosts that do not answer ----------------------------------------------------------------------


def test_skip_seconds_start_at_the_limit_double_and_stop_at_the_cap():
    assert [skip_seconds(n) for n in range(UNANSWERED_LIMIT)] == [0.0] * UNANSWERED_LIMIT
    grown = [skip_seconds(UNANSWERED_LIMIT + k) for k in range(6)]
    assert grown[0] == SKIP_BASE and all(b == min(2 * a, SKIP_MAX) for a, b in itertools.pairwise(grown))
    assert grown[1] == 2 * SKIP_BASE
    assert skip_seconds(1000) == SKIP_MAX


def test_a_host_whose_connections_keep_timing_out_is_skipped_then_tried_again():
    clock = Clock()
    gate = HostGate(limit=8, clock=clock)
    for _ in range(UNANSWERED_LIMIT - 1):
        assert gate.unanswered("dead.example") == 0.0
    with gate.slot("dead.example", wait_limit=1):
        pass  # below the limit: still tried
    assert gate.unanswered("dead.example") == SKIP_BASE
    with pytest.raises(HostDown, match="host not answering: skipped after its connections timed out"):
        with gate.slot("dead.example", wait_limit=1):
            pass
    with gate.slot("live.example", wait_limit=1):
        pass  # other hosts are not affected
    assert gate.skipped == 1
    clock.now += SKIP_BASE
    with gate.slot("dead.example", wait_limit=1):
        pass  # the pause is over: tried again
    assert gate.unanswered("dead.example") == 2 * SKIP_BASE  # still no answer: a longer pause at once


def test_one_connection_made_clears_a_hosts_timeouts():
    clock = Clock()
    gate = HostGate(limit=8, clock=clock)
    for _ in range(UNANSWERED_LIMIT):
        gate.unanswered("flaky.example")
    gate.answered("flaky.example")
    with gate.slot("flaky.example", wait_limit=1):
        pass
    assert gate.unanswered("flaky.example") == (SKIP_BASE if UNANSWERED_LIMIT == 1 else 0.0)


def test_a_full_gate_forgets_hosts_whose_pause_is_over_and_keeps_the_others():
    clock = Clock()
    gate = HostGate(limit=8, clock=clock)
    gate.throttle("old.example", None)
    gate.throttle("old.example", None)  # 2 strikes: its next cool-down would be 4 s
    for i in range(MAX_TRACKED_HOSTS):
        gate.unanswered(f"h{i}.example")  # one timeout each: remembered, not paused
    gate.unanswered("dead.example")
    gate.unanswered("dead.example")  # paused for SKIP_BASE
    clock.now += 10  # old.example's cool-down is over, dead.example's pause is not
    for i in range(MAX_TRACKED_HOSTS):
        gate.throttle(f"t{i}.example", None)
    assert gate.throttle("old.example", None) == 1.0  # forgotten: a first strike again
    assert gate.unanswered("h0.example") == 0.0  # forgotten: a first timeout again, not a pause
    assert gate.unanswered("dead.example") == 2 * SKIP_BASE  # still paused, so remembered
