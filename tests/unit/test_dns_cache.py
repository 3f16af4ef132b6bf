"""The per-process DNS cache: ages, failures kept or not, one lookup for threads asking at once, its bound."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from spark_img2ds.net import dns
from spark_img2ds.net.dns import Resolver

ADDRS = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 443))]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lookups:
    """A resolver's answers by name, counting the lookups made."""

    def __init__(self, answers: dict, delay: float = 0.0) -> None:
        self.answers = answers
        self.delay = delay
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, host: str, port: int):
        with self.lock:
            self.calls.append(host)
        time.sleep(self.delay)
        answer = self.answers[host]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def test_an_answer_is_kept_for_its_age_then_looked_up_again():
    clock, lookups = Clock(), Lookups({"img.example": ADDRS})
    r = Resolver(lookups, positive=30, negative=10, clock=clock)
    assert r.resolve("img.example", 443) == ADDRS
    clock.now += 29.9
    assert r.resolve("IMG.example", 443) == ADDRS  # names are case-insensitive
    assert lookups.calls == ["img.example"]
    clock.now += 0.2
    assert r.resolve("img.example", 443) == ADDRS
    assert lookups.calls == ["img.example", "img.example"] and r.lookups == 2


def test_a_name_that_does_not_exist_is_kept_for_the_negative_age():
    clock = Clock()
    lookups = Lookups({"gone.example": socket.gaierror(socket.EAI_NONAME, "Name or service not known")})
    r = Resolver(lookups, positive=30, negative=10, clock=clock)
    for _ in range(3):
        with pytest.raises(socket.gaierror) as err:
            r.resolve("gone.example", 443)
        assert err.value.errno == socket.EAI_NONAME
    assert len(lookups.calls) == 1
    clock.now += 10.1
    with pytest.raises(socket.gaierror):
        r.resolve("gone.example", 443)
    assert len(lookups.calls) == 2


def test_a_temporary_failure_is_not_kept():
    lookups = Lookups({"flaky.example": socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")})
    r = Resolver(lookups, clock=Clock())
    for _ in range(2):
        with pytest.raises(socket.gaierror):
            r.resolve("flaky.example", 443)
    assert len(lookups.calls) == 2 and len(r) == 0


def test_threads_asking_for_one_name_at_once_share_one_lookup():
    lookups = Lookups({"busy.example": ADDRS}, delay=0.3)
    r = Resolver(lookups)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(r.resolve("busy.example", 443))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [ADDRS] * 8
    assert lookups.calls == ["busy.example"]


def test_waiters_on_a_lookup_that_crashed_get_a_temporary_failure():
    started, release = threading.Event(), threading.Event()

    def lookup(host: str, port: int):
        started.set()
        release.wait(5)
        raise RuntimeError("resolver library bug")

    r = Resolver(lookup)
    errors: list = []

    def lead() -> None:
        with pytest.raises(RuntimeError):
            r.resolve("bug.example", 443)

    def wait() -> None:
        try:
            r.resolve("bug.example", 443)
        except socket.gaierror as err:
            errors.append(err)

    leader = threading.Thread(target=lead)
    leader.start()
    started.wait(5)
    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)
    release.set()
    leader.join()
    waiter.join()
    assert len(errors) == 1 and "lookup failed: RuntimeError" in str(errors[0])
    assert len(r) == 0


def test_the_cache_keeps_at_most_max_names_dropping_the_least_recently_used():
    lookups = Lookups({f"h{i}.example": ADDRS for i in range(4)})
    r = Resolver(lookups, max_names=2, clock=Clock())
    r.resolve("h0.example", 443)
    r.resolve("h1.example", 443)
    r.resolve("h0.example", 443)  # h0 is now the most recently used
    r.resolve("h2.example", 443)  # h1 goes
    assert len(r) == 2
    r.resolve("h0.example", 443)
    r.resolve("h1.example", 443)
    assert lookups.calls == ["h0.example", "h1.example", "h2.example", "h1.example"]


def test_ports_are_kept_apart_and_a_copy_is_returned():
    lookups = Lookups({"img.example": ADDRS})
    r = Resolver(lookups, clock=Clock())
    first = r.resolve("img.example", 443)
    first.clear()  # the caller's list, not the cache's
    assert r.resolve("img.example", 443) == ADDRS
    r.resolve("img.example", 80)
    assert lookups.calls == ["img.example", "img.example"]


def test_the_system_resolver_answers_through_the_cache():
    r = Resolver()
    first = r.resolve("localhost", 8080)
    assert first and all(a[4][1] == 8080 for a in first)
    assert {a[4][0] for a in first} <= {"127.0.0.1", "::1"}
    assert r.resolve("localhost", 8080) == first and r.lookups == 1


def test_the_process_resolver_keeps_answers_for_the_jvm_default_ages():
    assert (dns.RESOLVER.positive, dns.RESOLVER.negative) == (30.0, 10.0)
    assert dns.RESOLVER.lookup is dns.system_lookup
