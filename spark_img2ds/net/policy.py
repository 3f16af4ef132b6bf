"""What a download may do: which schemes and addresses, how many redirects, how many bytes (pure).

URL lists come from the web and executors can reach cloud metadata services and private
networks, so by default only public unicast addresses are allowed. The check runs on the
address actually connected to (after DNS, for the first request and every redirect hop),
and on addresses embedded in IPv6 forms (IPv4-mapped, IPv4-compatible, NAT64, 6to4,
Teredo), so that neither DNS rebinding, redirects nor address spellings get around it.

allow_private_networks admits loopback and private ranges (internal image stores, tests,
the demo); link-local and metadata stay refused. allowed_networks admits the networks
listed whatever class they are in, except the cloud metadata addresses, which no option
admits: a metadata response is a credential, never an image.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

SCHEMES = ("http", "https")
MAX_REDIRECTS = 10
MAX_DOWNLOAD_BYTES = 50_000_000
CONNECT_TIMEOUT = 5.0  # TCP connect + TLS handshake: a lost SYN is sent again at 1 s and 3 s (Linux)
MAX_CONNECTIONS_PER_HOST = 8  # requests in flight to one host from one task's threads (net/politeness.py)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Names that cloud providers resolve to their instance metadata service.
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::253",
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
    )
)


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# (reason, networks), checked in this order; the reason names the class in error messages.
REFUSED_CLASSES: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("unspecified", _nets("0.0.0.0/8", "::/128")),
    ("loopback", _nets("127.0.0.0/8", "::1/128")),
    ("link-local", _nets("169.254.0.0/16", "fe80::/10")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
    ("shared", _nets("100.64.0.0/10")),
    ("multicast", _nets("224.0.0.0/4", "ff00::/8")),
    (
        "reserved",
        _nets(
            "192.0.0.0/24",  # IETF protocol assignments
            "192.0.2.0/24",  # documentation
            "198.18.0.0/15",  # benchmarking
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",  # future use, and the broadcast address
            "100::/64",  # discard-only
            "2001:db8::/32",  # documentation
            "2001:2::/48",  # benchmarking
            "3fff::/20",  # documentation
            "5f00::/16",  # segment routing
        ),
    ),
)
# Classes allow_private_networks admits.
PRIVATE_CLASSES = frozenset({"loopback", "private"})

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    value = int(address)
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _COMPATIBLE and value > 1:  # ::a.b.c.d (deprecated, still routed by some stacks)
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    if address in _TEREDO:
        return address.teredo[1] if address.teredo else None
    return None


def address_class(address: IPAddress) -> str | None:
    """The refused class of an address ("metadata", "loopback", ...), or None for a public unicast one."""
    if address in METADATA_ADDRESSES:
        return "metadata"
    for reason, networks in REFUSED_CLASSES:
        if any(address in net for net in networks):
            return reason
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return address_class(inner)
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """The rules of one run: refuse the classes above, with the two ways to admit some."""

    allow_private_networks: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(cls, allow_private_networks: bool, allowed_networks: Iterable[str] | None) -> AddressPolicy:
        """From option values; ValueError names an entry of allowed_networks that is not a network."""
        nets = []
        for entry in allowed_networks or ():
            try:
                nets.append(ipaddress.ip_network(str(entry).strip(), strict=False))
            except ValueError:
                raise ValueError(f"allowed_networks: {entry!r} is not an address or CIDR network") from None
        return cls(bool(allow_private_networks), tuple(nets))

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why a connection to address is refused (e.g. "address not allowed: link-local"), or None."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
        except ValueError:
            return "address not allowed: not an IP address"
        kind = address_class(ip)
        if kind != "metadata" and any(ip.version == net.version and ip in net for net in self.allowed_networks):
            return None
        if kind is None or (self.allow_private_networks and kind in PRIVATE_CLASSES):
            return None
        return f"address not allowed: {kind}"

    def name_refusal(self, host: str) -> str | None:
        """Why a host name is refused before any lookup (a metadata service's name), or None."""
        name = host.strip().rstrip(".").lower()
        if name in METADATA_NAMES:
            return "host not allowed: cloud metadata service"
        try:
            ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
        except ValueError:
            return None
        return self.refusal(name.strip("[]"))
