"""Property-based tests (hypothesis) of the pieces that read hostile input: URLs, addresses, HTTP, headers, geometry."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark_img2ds.imaging.formats import image_dimensions, sniff_format
from spark_img2ds.imaging.options import RESIZE_MODES
from spark_img2ds.imaging.resize import plan_resize
from spark_img2ds.net import http1
from spark_img2ds.net.fetch import FetchError, _Target
from spark_img2ds.net.policy import AddressPolicy, address_class

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STRICT = AddressPolicy()

url_text = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda scheme, host, path: f"{scheme}://{host}{path}",
        st.sampled_from(["http", "https", "HTTP", "ftp", "file", "data", "javascript", ""]),
        st.one_of(
            st.from_regex(r"[a-z0-9.\-]{0,30}(:[0-9]{0,6})?", fullmatch=True),
            st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
            st.text(max_size=30),
        ),
        st.text(max_size=60).map(lambda t: "/" + t),
    ),
)


@FAST
@given(url_text)
def test_the_url_normaliser_gives_a_sendable_target_or_a_fetch_error(url):
    try:
        target = _Target.of(url, STRICT)
    except FetchError as err:
        assert str(err) == "invalid url" or "not allowed" in str(err)
        return
    assert target.scheme in ("http", "https")
    assert target.host and 0 < target.port < 65536
    request = target.request((("User-Agent", "x"),))
    assert request.isascii() and request.count(b"\r\n\r\n") == 1  # no header injection, no raw spaces
    assert b" " not in target.path.encode("latin-1")
    assert STRICT.name_refusal(target.host) is None


@FAST
@given(st.ip_addresses())
def test_the_policy_names_a_class_or_allows_and_never_raises(ip):
    verdict = STRICT.refusal(str(ip))
    kind = address_class(ip)
    assert verdict == (None if kind is None else f"address not allowed: {kind}")
    if kind is None:
        assert ip.is_global or ip.version == 6  # anything we allow, Python also calls global (IPv4)
    if ip.version == 4:  # the IPv4-mapped spelling never changes the verdict
        assert STRICT.refusal(f"::ffff:{ip}") == verdict


@FAST
@given(st.ip_addresses(v=4))
def test_private_admission_never_admits_metadata_or_link_local(ip):
    kind = address_class(ip)
    admitted = AddressPolicy(allow_private_networks=True).refusal(str(ip)) is None
    if kind in ("metadata", "link-local", "multicast", "reserved", "unspecified", "shared"):
        assert not admitted
    assert AddressPolicy.build(False, [f"{ip}/32"]).refusal(str(ip)) == (
        "address not allowed: metadata" if kind == "metadata" else None
    )


def _parse(data: bytes, limit: int | None, discard: bool = False):
    """read_head + read (or discard) over a real socket pair; the writer closes after data."""
    left, right = socket.socketpair()
    left.settimeout(5)

    def feed():
        try:
            right.sendall(data)
        finally:
            right.close()

    writer = threading.Thread(target=feed)
    writer.start()
    conn = http1.Connection(left)
    try:
        resp = http1.read_head(conn)
        if discard:
            return resp.status, resp.discard(limit or 0)
        return resp.status, resp.read(limit)
    finally:
        conn.close()
        writer.join()


http_like = st.one_of(
    st.binary(max_size=400),
    st.builds(
        lambda status, headers, body: b"HTTP/1.1 " + status + b"\r\n" + headers + b"\r\n\r\n" + body,
        st.sampled_from([b"200 OK", b"302 Found", b"204 No Content", b"100 Continue", b"9999", b"200"]),
        st.lists(
            st.sampled_from(
                [
                    b"Content-Length: 5",
                    b"Content-Length: -1",
                    b"Content-Length: 5, 6",
                    b"Transfer-Encoding: chunked",
                    b"Content-Encoding: gzip",
                    b"Content-Encoding: deflate",
                    b"Connection: close",
                    b" folded",
                    b"X: " + b"y" * 100,
                ]  # fmt: skip
            ),
            max_size=5,
        ).map(b"\r\n".join),
        st.binary(max_size=200),
    ),
)


@FAST
@given(http_like, st.integers(0, 300))
def test_discarding_a_body_never_raises_and_keeps_only_a_cleanly_ended_connection(data, limit):
    try:
        status, kept = _parse(data, limit, discard=True)
    except http1.HTTPFailure:
        return  # from read_head: the head itself was bad
    assert isinstance(kept, bool)
    if kept:  # a connection kept after its body was dropped must be exactly at the next response
        framed = b"Content-Length" in data or b"chunked" in data or status in http1.NO_BODY_STATUS
        assert framed


@FAST
@given(http_like, st.one_of(st.none(), st.integers(0, 300)))
def test_the_response_parser_returns_or_raises_its_own_errors(data, limit):
    try:
        status, body = _parse(data, limit)
    except http1.HTTPFailure:
        return
    assert 200 <= status <= 999
    assert limit is None or len(body) <= limit


@FAST
@given(st.binary(max_size=300))
def test_header_size_readers_never_raise(data):
    for fmt in (None, "jpg", "png", "gif", "bmp", "webp", "tiff", sniff_format(data)):
        size = image_dimensions(data, fmt)
        assert size is None or (isinstance(size[0], int) and isinstance(size[1], int) and min(size) >= 0)


@FAST
@given(
    st.integers(1, 100_000),
    st.integers(1, 100_000),
    st.integers(1, 4096),
    st.sampled_from([m for m in RESIZE_MODES if m != "no"]),
    st.booleans(),
)
def test_resize_geometry_never_loses_a_side_and_meets_its_mode(width, height, size, mode, only_if_bigger):
    plan = plan_resize(width, height, size, mode, only_if_bigger)
    w, h = plan.size or (width, height)
    assert w >= 1 and h >= 1
    if plan.crop:
        w, h = plan.crop[2], plan.crop[3]
    if plan.pad:
        w, h = w + plan.pad[2] + plan.pad[3], h + plan.pad[0] + plan.pad[1]
    if not plan.changes_pixels:
        return
    if mode in ("border", "center_crop"):
        assert (w, h) == (size, size) or (mode == "center_crop" and min(w, h) < size)
    elif mode == "keep_ratio":
        assert min(w, h) == size or min(width, height) == size
    else:
        assert max(w, h) == size or max(width, height) == size


@pytest.mark.parametrize("ip", ["169.254.169.254", "fd00:ec2::254", "100.100.100.200"])
def test_metadata_addresses_are_named_as_such(ip):
    assert address_class(ipaddress.ip_address(ip)) == "metadata"
