"""Retry-After, which statuses are retried, and the noml / TDMRep opt-outs, against the real local server."""

from __future__ import annotations

import time
import uuid

import pytest

from spark_img2ds.config import Config
from spark_img2ds.net.fetch import Fetcher, FetchError
from spark_img2ds.net.policy import AddressPolicy
from spark_img2ds.net.robots import TDM_MESSAGE, retry_after

LOCAL = AddressPolicy(allow_private_networks=True)
DIRECTIVES = Config(url_list="x").directives


def test_retry_after_is_honoured_on_429(server, image_dir):
    fetcher = Fetcher(timeout=5, retries=1, backoff=0.01, policy=LOCAL)
    started = time.monotonic()
    data = fetcher.fetch(f"{server.url}/busy/1/{uuid.uuid4().hex}/china.jpg")
    waited = time.monotonic() - started
    assert data == (image_dir / "china.jpg").read_bytes()
    assert 1.0 <= waited < 3.0  # the server's second, not the 0.01 s backoff


def test_retry_after_is_bounded_by_the_attempt_deadline(server):
    fetcher = Fetcher(timeout=1, retries=1, backoff=0.01, policy=LOCAL)
    started = time.monotonic()
    fetcher.fetch(f"{server.url}/busy/3600/{uuid.uuid4().hex}/china.jpg")
    assert time.monotonic() - started < 3.0  # an hour asked, one timeout waited


@pytest.mark.parametrize(("code", "attempts"), [(404, 1), (403, 1), (410, 1), (408, 3), (429, 3), (500, 3), (503, 3)])
def test_only_408_429_and_5xx_are_retried(server, code, attempts):
    before = server.path_hits[f"/status/{code}"]
    with pytest.raises(FetchError):
        Fetcher(timeout=3, retries=2, backoff=0.01, policy=LOCAL).fetch(f"{server.url}/status/{code}")
    assert server.path_hits[f"/status/{code}"] - before == attempts


def test_noml_and_tdm_reservation_opt_out_by_default(server):
    fetcher = Fetcher(timeout=2, directives=DIRECTIVES, policy=LOCAL)
    with pytest.raises(FetchError, match="X-Robots-Tag"):
        fetcher.fetch(f"{server.url}/robots/noml/china.jpg")
    with pytest.raises(FetchError) as info:
        fetcher.fetch(f"{server.url}/tdm/china.jpg")
    assert str(info.value) == TDM_MESSAGE
    without = Fetcher(timeout=2, directives=frozenset({"noai"}), policy=LOCAL)
    assert without.fetch(f"{server.url}/tdm/china.jpg")  # a user's own list without it


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 0 ", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None), (None, None), ("-5", None)],
)
def test_retry_after_values(value, expected):
    assert retry_after(value, now=1_445_412_480.0 + 60) == expected


def test_retry_after_dates_in_the_future_count_down():
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1_445_412_480.0 - 30) == 30.0


def test_a_fetcher_keeps_at_most_max_connections_per_host_requests_in_flight(server):
    from concurrent.futures import ThreadPoolExecutor

    fetcher = Fetcher(timeout=10, policy=LOCAL, max_connections_per_host=3)
    with server.lock:
        server.max_delaying = 0
    urls = [f"{server.url}/delay/0.2/china.jpg?host-limit={i}" for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        assert all(pool.map(fetcher.fetch, urls))
    assert 2 <= server.max_delaying <= 3  # concurrent, and never more than the limit
    assert fetcher.gate.delayed >= 6


def test_a_429_cools_its_host_down_for_the_other_requests_too(server):
    fetcher = Fetcher(timeout=5, retries=1, backoff=0.01, policy=LOCAL)
    key = uuid.uuid4().hex
    assert fetcher.fetch(f"{server.url}/busy/1/{key}/china.jpg")  # 429, a 1 s cool-down, then the image
    assert fetcher.politeness() == (True, "127.0.0.1", None)  # its retry waited out the cool-down it caused
    assert fetcher.politeness() == (False, None, None)  # read once
    fetcher.gate.throttle("127.0.0.1", retry_after=0.5)  # as if another thread had just met a 429
    started = time.monotonic()
    assert fetcher.fetch(f"{server.url}/img/china.jpg")
    assert time.monotonic() - started >= 0.4
    assert fetcher.politeness() == (True, None, None)
