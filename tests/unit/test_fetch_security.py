"""Hostile URLs and servers against the real local HTTP server: refusals, size caps, bombs, drips, proxies.

Everything here stays on 127.0.0.1/::1. Refusals of metadata and private addresses are
tested inside a network namespace (test_netns_policy.py), never on the host's network.
"""

from __future__ import annotations

import time
import urllib.parse

import pytest

from spark_img2ds.net.fetch import Fetcher, FetchError
from spark_img2ds.net.policy import AddressPolicy
from tests.helpers.proxy import ForwardProxy
from tests.unit.test_fetch_tls import tls_server  # noqa: F401  (a fixture)

LOCAL = AddressPolicy(allow_private_networks=True)
ONLY_127_0_0_1 = AddressPolicy.build(False, ["127.0.0.1/32"])


def error_of(fetcher: Fetcher, url: str) -> str:
    with pytest.raises(FetchError) as info:
        fetcher.fetch(url)
    return str(info.value)


def test_the_default_policy_refuses_loopback_and_never_connects(server):
    before = server.hits
    assert error_of(Fetcher(timeout=5), f"{server.url}/img/china.jpg") == "address not allowed: loopback"
    assert error_of(Fetcher(timeout=5), f"http://localhost:{server.server_port}/img/china.jpg").startswith(
        "address not allowed: loopback"
    )
    assert server.hits == before


def test_private_networks_and_listed_networks_admit_the_local_server(server, image_dir):
    image = (image_dir / "china.jpg").read_bytes()
    assert Fetcher(timeout=5, policy=LOCAL).fetch(f"{server.url}/img/china.jpg") == image
    assert Fetcher(timeout=5, policy=ONLY_127_0_0_1).fetch(f"{server.url}/img/china.jpg") == image
    only_other = AddressPolicy.build(False, ["127.0.0.2/32"])
    assert error_of(Fetcher(timeout=5, policy=only_other), f"{server.url}/img/china.jpg") == (
        "address not allowed: loopback"
    )


@pytest.mark.parametrize("host", ["127.0.0.2", "[::1]", "127.2", "0x7f.0.0.2", "2130706434"])
def test_a_redirect_to_a_refused_address_is_refused_at_the_hop(server, host):
    """The first hop is allowed (127.0.0.1 is listed); the redirect's target, however spelled, is not."""
    target = urllib.parse.quote(f"http://{host}:{server.server_port}/img/china.jpg", safe="")
    before = dict(server.path_hits)
    message = error_of(Fetcher(timeout=5, policy=ONLY_127_0_0_1), f"{server.url}/goto?url={target}")
    assert message == "address not allowed: loopback"
    new = {p: n - before.get(p, 0) for p, n in server.path_hits.items() if n != before.get(p, 0)}
    assert list(new) == [f"/goto?url={target}"]  # only the first hop reached a server


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme not allowed: file"),
        ("data:image/png;base64,iVBORw0KGgo=", "scheme not allowed: data"),
        ("ftp://example.com/a.jpg", "scheme not allowed: ftp"),
        ("javascript:alert(1)", "scheme not allowed: javascript"),
        ("gopher://127.0.0.1:70/_x", "scheme not allowed: gopher"),
        ("http://metadata.google.internal/computeMetadata/v1/", "host not allowed: cloud metadata service"),
        ("http://[fe80::1%25lo]/x", "address not allowed: link-local"),
        ("http:///nohost", "invalid url"),
        ("http://a b.com/x", "invalid url"),
    ],
)
def test_urls_that_are_not_web_downloads_fail_with_a_reason_and_no_connection(url, message):
    assert error_of(Fetcher(timeout=2), url) == message


def test_a_redirect_to_another_scheme_is_refused(server):
    target = urllib.parse.quote("file:///etc/passwd", safe="")
    assert error_of(Fetcher(timeout=5, policy=LOCAL), f"{server.url}/goto?url={target}") == "scheme not allowed: file"


def test_urls_with_spaces_commas_and_non_ascii_are_percent_encoded(server, image_dir):
    """A browser sends /img/a b,é.jpg as /img/a%20b,%C3%A9.jpg; the server decodes it back."""
    name = "a b,é.jpg"
    (image_dir / name).write_bytes((image_dir / "china.jpg").read_bytes())
    data = Fetcher(timeout=5, policy=LOCAL).fetch(f"{server.url}/img/{name}")
    assert data == (image_dir / "china.jpg").read_bytes()
    assert "/img/a%20b,%C3%A9.jpg" in server.path_hits


@pytest.mark.parametrize("framing", ["length", "close", "chunked"])
def test_a_body_over_the_cap_is_refused_however_it_is_framed(server, framing):
    fetcher = Fetcher(timeout=10, policy=LOCAL, max_bytes=100_000)
    started = time.monotonic()
    assert error_of(fetcher, f"{server.url}/big/50000000/{framing}") == "response body larger than max_download_bytes"
    assert time.monotonic() - started < 5  # cut off, not read to the end
    assert fetcher.fetch(f"{server.url}/big/100000/{framing}") == bytes(100_000)


def test_a_gzip_bomb_is_refused_once_decoded_past_the_cap(server):
    fetcher = Fetcher(timeout=10, policy=LOCAL, max_bytes=1_000_000)
    assert error_of(fetcher, f"{server.url}/bomb/200000000") == "response body larger than max_download_bytes"
    assert fetcher.fetch(f"{server.url}/bomb/1000000") == bytes(1_000_000)


def test_a_dripping_server_is_cut_at_the_total_deadline(server):
    started = time.monotonic()
    message = error_of(Fetcher(timeout=1, policy=LOCAL), f"{server.url}/drip/30")
    assert message == "download took longer than the 1s timeout"
    assert time.monotonic() - started < 3


def test_max_redirects_is_the_option_not_a_constant(server, image_dir):
    assert error_of(Fetcher(timeout=5, policy=LOCAL, max_redirects=2), f"{server.url}/redirect/3/china.jpg") == (
        "too many redirects"
    )
    data = Fetcher(timeout=5, policy=LOCAL, max_redirects=3).fetch(f"{server.url}/redirect/3/china.jpg")
    assert data == (image_dir / "china.jpg").read_bytes()


# -- proxies ---------------------------------------------------------------------


def test_the_proxy_option_sends_http_through_the_proxy(server, image_dir):
    with ForwardProxy() as proxy:
        data = Fetcher(timeout=5, policy=LOCAL, proxy=proxy.url).fetch(f"{server.url}/img/china.jpg")
    assert data == (image_dir / "china.jpg").read_bytes()
    assert proxy.requests == [("GET", f"{server.url}/img/china.jpg")]


def test_https_goes_through_a_connect_tunnel(tls_server):  # noqa: F811
    with ForwardProxy() as proxy:
        url = f"https://localhost:{tls_server.server_port}/a.jpg"
        data = Fetcher(timeout=5, policy=LOCAL, verify_ssl=False, proxy=proxy.url).fetch(url)
    assert data == tls_server.body
    assert proxy.requests == [("CONNECT", f"localhost:{tls_server.server_port}")]


def test_environment_proxies_and_no_proxy_are_honoured(server, image_dir, monkeypatch):
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.setenv("no_proxy", "example.invalid")
        Fetcher(timeout=5, policy=LOCAL).fetch(f"{server.url}/img/china.jpg")
        assert len(proxy.requests) == 1
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        Fetcher(timeout=5, policy=LOCAL).fetch(f"{server.url}/img/china.jpg")
        assert len(proxy.requests) == 1  # the second went direct


def test_proxy_credentials_are_sent_and_never_shown(server):
    with ForwardProxy(credentials="img2ds:pr0xy-s3cret") as proxy:
        good = proxy.url.replace("http://", "http://img2ds:pr0xy-s3cret@")
        Fetcher(timeout=5, policy=LOCAL, proxy=good).fetch(f"{server.url}/img/china.jpg")
        bad = proxy.url.replace("http://", "http://img2ds:wrong-s3cret@")
        message = error_of(Fetcher(timeout=5, policy=LOCAL, proxy=bad), f"{server.url}/img/china.jpg")
    assert message.startswith("HTTP 407")
    assert "s3cret" not in message


def test_with_a_proxy_the_policy_judges_the_names_asked_for(server):
    """The proxy resolves names: a literal refused address is caught, a name is the proxy's to resolve."""
    with ForwardProxy() as proxy:
        strict = Fetcher(timeout=5, proxy=proxy.url)
        assert error_of(strict, f"{server.url}/img/china.jpg") == "address not allowed: loopback"
        assert error_of(strict, "http://metadata.google.internal/") == "host not allowed: cloud metadata service"
        assert proxy.requests == []
        strict.fetch(f"http://localhost:{server.server_port}/img/china.jpg")
        assert proxy.requests == [("GET", f"http://localhost:{server.server_port}/img/china.jpg")]


def test_an_unreachable_proxy_is_a_short_transient_error(server):
    with pytest.raises(FetchError) as info:
        Fetcher(timeout=2, policy=LOCAL, proxy="http://127.0.0.1:9").fetch(f"{server.url}/img/china.jpg")
    assert info.value.transient
    assert str(info.value).startswith("proxy error")
