"""Hosts that accept a connection and never answer the TLS handshake: connect_timeout, then skipped."""

from __future__ import annotations

import time

import pytest

from spark_img2ds.net.fetch import Fetcher, FetchError
from spark_img2ds.net.policy import AddressPolicy
from spark_img2ds.net.politeness import HOST_DOWN_MESSAGE, UNANSWERED_LIMIT
from tests.helpers.silent import SilentListener

LOCAL = AddressPolicy(allow_private_networks=True)


@pytest.fixture
def silent():
    listener = SilentListener()
    yield listener
    listener.close()


def error_of(fetcher: Fetcher, url: str) -> tuple[FetchError, float]:
    start = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetcher.fetch(url)
    return info.value, time.monotonic() - start


def test_a_handshake_that_never_comes_fails_at_connect_timeout_not_at_timeout(silent):
    err, took = error_of(Fetcher(timeout=30, connect_timeout=0.5, policy=LOCAL), f"{silent.url}/a.jpg")
    assert str(err) == "timed out while connecting" and err.transient
    assert took < 15  # half of timeout: the connect deadline applied, not the attempt's


def test_connect_timeout_never_exceeds_timeout(silent):
    fetcher = Fetcher(timeout=0.5, connect_timeout=30, policy=LOCAL)
    assert fetcher.connect_timeout == 0.5
    err, took = error_of(fetcher, f"{silent.url}/a.jpg")
    assert "timed out" in str(err) and took < 15


def test_after_repeated_connection_timeouts_the_host_is_skipped_without_a_connection(silent):
    fetcher = Fetcher(timeout=10, connect_timeout=0.3, policy=LOCAL)
    for i in range(UNANSWERED_LIMIT):
        err, _ = error_of(fetcher, f"{silent.url}/{i}.jpg")
        assert str(err) == "timed out while connecting"
    assert len(silent.accepted) == UNANSWERED_LIMIT
    err, _ = error_of(fetcher, f"{silent.url}/next.jpg")
    assert str(err) == HOST_DOWN_MESSAGE and err.transient
    assert len(silent.accepted) == UNANSWERED_LIMIT  # no connection was opened for it
    assert fetcher.gate.skipped == 1


def test_another_task_still_tries_the_host(silent):
    first = Fetcher(timeout=10, connect_timeout=0.3, policy=LOCAL)
    for i in range(UNANSWERED_LIMIT):
        error_of(first, f"{silent.url}/{i}.jpg")
    err, _ = error_of(Fetcher(timeout=10, connect_timeout=0.3, policy=LOCAL), f"{silent.url}/x.jpg")
    assert str(err) == "timed out while connecting"  # the skip list is a task's own, like its other host state
