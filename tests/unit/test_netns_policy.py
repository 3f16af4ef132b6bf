"""Metadata and private addresses, refused for real: inside a network namespace of our own.

The test starts `unshare -n -m`, binds the metadata, private and shared addresses to the
namespace's own loopback, serves a listener on each that counts its connections, and maps
host names to them in a private /etc/hosts. A regression shows as a hit on one of those
listeners, never as a packet on the host's network, which the namespace cannot reach.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.helpers import netns
from tests.helpers.netns import TARGETS

SCRIPT = textwrap.dedent(
    """
    import json, time, urllib.parse
    from spark_img2ds.net.fetch import Fetcher, FetchError
    from spark_img2ds.net.policy import AddressPolicy
    from tests.helpers.netns import TARGETS, host_name, start_front, start_listeners

    hits = start_listeners(b"secret")
    front_url = start_front(b"front")

    def outcome(fetcher, url):
        started = time.monotonic()
        try:
            fetcher.fetch(url)
            return ["ok", round(time.monotonic() - started, 2)]
        except FetchError as err:
            return [str(err), round(time.monotonic() - started, 2)]

    strict = Fetcher(timeout=3)
    via_front = Fetcher(timeout=3, policy=AddressPolicy.build(False, ["127.0.0.1/32"]))
    private = Fetcher(timeout=3, policy=AddressPolicy(allow_private_networks=True))
    listed = Fetcher(timeout=3, policy=AddressPolicy.build(False, ["10.0.0.0/24"]))
    results = {"direct": {}, "name": {}, "redirect": {}, "private": {}}
    for address in TARGETS:
        host = f"[{address}]" if ":" in address else address
        url = f"http://{host}/latest/meta-data/iam/security-credentials/"
        results["direct"][address] = outcome(strict, url)
        results["redirect"][address] = outcome(via_front, front_url + "/goto/" + urllib.parse.quote(url, safe=""))
        results["private"][address] = outcome(private, url)
        results["name"][address] = outcome(strict, "http://" + host_name(address) + "/x")
    refused_hits = dict(hits)
    results["listed"] = outcome(listed, "http://10.0.0.5/x")
    results["private_ok"] = outcome(private, "http://internal.test/x")
    results["hits_before_admitted"] = refused_hits
    results["hits"] = hits
    print("RESULT " + json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(reason)
    return netns.run(tmp_path_factory.mktemp("netns"), SCRIPT, extra_hosts=("10.0.0.5 internal.test",), timeout=120)


@pytest.mark.parametrize("address", list(TARGETS))
def test_direct_urls_to_refused_addresses_fail_with_their_class(results, address):
    message, seconds = results["direct"][address]
    assert message == f"address not allowed: {TARGETS[address]}"
    assert seconds < 1


@pytest.mark.parametrize("address", list(TARGETS))
def test_names_that_resolve_to_refused_addresses_are_refused_after_the_lookup(results, address):
    assert results["name"][address][0] == f"address not allowed: {TARGETS[address]}"


@pytest.mark.parametrize("address", list(TARGETS))
def test_redirects_from_an_allowed_host_to_refused_addresses_are_refused(results, address):
    message, seconds = results["redirect"][address]
    assert message == f"address not allowed: {TARGETS[address]}"
    assert seconds < 2


@pytest.mark.parametrize("address", list(TARGETS))
def test_allow_private_networks_admits_private_only(results, address):
    expected = "ok" if TARGETS[address] == "private" else f"address not allowed: {TARGETS[address]}"
    assert results["private"][address][0] == expected


def test_no_refused_listener_was_ever_connected_to(results):
    assert results["hits_before_admitted"] == {a: (1 if TARGETS[a] == "private" else 0) for a in TARGETS}


def test_allowed_networks_and_private_names_reach_their_listener(results):
    assert results["listed"][0] == "ok"
    assert results["private_ok"][0] == "ok"
    assert results["hits"]["10.0.0.5"] == 3  # allow_private_networks once, allowed_networks, internal.test
