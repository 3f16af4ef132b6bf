"""The address policy: every refused class, both ways to admit some, and the names it refuses."""

from __future__ import annotations

import ipaddress

import pytest

from spark_img2ds.net.policy import AddressPolicy, address_class, embedded_ipv4

STRICT = AddressPolicy()
PRIVATE_OK = AddressPolicy(allow_private_networks=True)

REFUSED = {
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "::1": "loopback",
    "169.254.169.254": "metadata",
    "169.254.170.2": "metadata",
    "fd00:ec2::254": "metadata",
    "100.100.100.200": "metadata",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "100.64.0.1": "shared",
    "100.127.255.254": "shared",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "192.0.2.1": "reserved",
    "2001:db8::1": "reserved",
    # Embedded IPv4 forms carry the class of the address inside them.
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "metadata",
    "::ffff:10.0.0.1": "private",
    "::127.0.0.1": "loopback",
    "64:ff9b::a9fe:a9fe": "metadata",
    "2002:a9fe:a9fe::1": "metadata",
    "2002:7f00:1::": "loopback",
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("address", "kind"), list(REFUSED.items()))
def test_each_refused_class_is_named(address, kind):
    assert address_class(ipaddress.ip_address(address)) == kind
    assert STRICT.refusal(address) == f"address not allowed: {kind}"


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_addresses_are_allowed(address):
    assert address_class(ipaddress.ip_address(address)) is None
    assert STRICT.refusal(address) is None


@pytest.mark.parametrize("address", [a for a, k in REFUSED.items() if k in ("loopback", "private")])
def test_allow_private_networks_admits_loopback_and_private(address):
    assert PRIVATE_OK.refusal(address) is None


@pytest.mark.parametrize("address", [a for a, k in REFUSED.items() if k not in ("loopback", "private")])
def test_allow_private_networks_keeps_every_other_class_refused(address):
    assert PRIVATE_OK.refusal(address) is not None


def test_allowed_networks_admit_exactly_the_listed_range():
    policy = AddressPolicy.build(False, ["10.20.0.0/16", "fd00:1::/64", "192.168.7.7"])
    assert policy.refusal("10.20.9.9") is None
    assert policy.refusal("10.21.0.1") == "address not allowed: private"
    assert policy.refusal("fd00:1::5") is None
    assert policy.refusal("192.168.7.7") is None
    assert policy.refusal("192.168.7.8") == "address not allowed: private"
    assert policy.refusal("127.0.0.1") == "address not allowed: loopback"


def test_no_option_admits_a_metadata_address():
    policy = AddressPolicy.build(True, ["0.0.0.0/0", "::/0", "169.254.169.254/32"])
    assert policy.refusal("169.254.169.254") == "address not allowed: metadata"
    assert policy.refusal("fd00:ec2::254") == "address not allowed: metadata"
    assert policy.refusal("169.254.1.1") is None  # the listed networks admit the rest of link-local


def test_a_bad_allowed_network_is_named():
    with pytest.raises(ValueError, match="'10.0.0.0/33' is not an address or CIDR network"):
        AddressPolicy.build(False, ["10.0.0.0/33"])


@pytest.mark.parametrize(
    "host", ["metadata.google.internal", "METADATA.google.internal.", "metadata", "metadata.goog", "instance-data"]
)
def test_metadata_names_are_refused_before_any_lookup(host):
    assert PRIVATE_OK.name_refusal(host) == "host not allowed: cloud metadata service"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("[::1]", "address not allowed: loopback"),
        ("169.254.169.254", "address not allowed: metadata"),
        ("[fe80::1%25eth0]", "address not allowed: link-local"),
        ("example.com", None),
        ("images.example", None),
    ],
)
def test_literal_addresses_in_host_names_are_judged_at_once(host, expected):
    assert STRICT.name_refusal(host) == expected


def test_embedded_ipv4_of_plain_ipv6_is_none():
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1111")) is None
    assert embedded_ipv4(ipaddress.IPv6Address("::1")) is None  # loopback, not ::0.0.0.1


def test_zone_ids_do_not_hide_the_address():
    assert STRICT.refusal("fe80::1%eth0") == "address not allowed: link-local"


def test_text_that_is_no_address_is_refused():
    assert STRICT.refusal("not-an-ip") == "address not allowed: not an IP address"
