"""Which network addresses a user-given URL may reach.

Pure classification, no connection and no lookup: :mod:`zoomreel.net.urls` resolves a host
once and refuses the URL if any of its addresses is forbidden here.
"""

from __future__ import annotations

import ipaddress

__all__ = ["IPAddress", "is_forbidden_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_N4 = ipaddress.IPv4Network
_N6 = ipaddress.IPv6Network

# Checked in order, so a more specific range comes before the range that holds it.
_FORBIDDEN_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_N4("0.0.0.0/32"), "unspecified"),
    (_N4("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (_N4("10.0.0.0/8"), "private"),
    (_N4("100.64.0.0/10"), "shared/CGNAT (100.64.0.0/10)"),
    (_N4("127.0.0.0/8"), "loopback"),
    (_N4("169.254.169.254/32"), "link-local (cloud metadata)"),
    (_N4("169.254.0.0/16"), "link-local"),
    (_N4("172.16.0.0/12"), "private"),
    (_N4("192.0.0.0/24"), "reserved (IETF protocol assignments)"),
    (_N4("192.0.2.0/24"), "documentation"),
    (_N4("192.88.99.0/24"), "reserved (6to4 relay anycast)"),
    (_N4("192.168.0.0/16"), "private"),
    (_N4("198.18.0.0/15"), "benchmarking"),
    (_N4("198.51.100.0/24"), "documentation"),
    (_N4("203.0.113.0/24"), "documentation"),
    (_N4("224.0.0.0/4"), "multicast"),
    (_N4("255.255.255.255/32"), "broadcast"),
    (_N4("240.0.0.0/4"), "reserved"),
)

_FORBIDDEN_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_N6("::/128"), "unspecified"),
    (_N6("::1/128"), "loopback"),
    (_N6("64:ff9b:1::/48"), "local-use NAT64"),
    (_N6("100::/64"), "discard-only"),
    (_N6("2001::/32"), "Teredo"),
    (_N6("2001:2::/48"), "benchmarking"),
    (_N6("2001:db8::/32"), "documentation"),
    (_N6("2001::/23"), "reserved (IETF protocol assignments)"),
    (_N6("3fff::/20"), "documentation"),
    (_N6("fc00::/7"), "private (unique local)"),
    (_N6("fe80::/10"), "link-local"),
    (_N6("fec0::/10"), "site-local"),
    (_N6("ff00::/8"), "multicast"),
)

_NAT64 = _N6("64:ff9b::/96")
_6TO4 = _N6("2002::/16")
# Every unicast address in use on the internet is in 2000::/3 (NAT64 aside).
_GLOBAL_UNICAST_V6 = _N6("2000::/3")


def is_forbidden_address(ip: IPAddress) -> str | None:
    """Say why an address may not be connected to, or None when it may.

    Forbidden: loopback, private, link-local (cloud metadata included), shared/CGNAT,
    multicast, broadcast, unspecified, reserved, documentation and benchmarking
    ranges, and IPv6 forms that carry or reach an IPv4 address on another path:
    IPv4-mapped (``::ffff:0:0/96``), 6to4 (``2002::/16``) and Teredo are refused
    whatever they embed, because no public server needs them and a connection to them
    may land on the embedded address; NAT64 (``64:ff9b::/96``) is judged by the IPv4
    address it embeds, so DNS64 networks keep working. The reason names the embedded
    address's class where there is one. Pure: makes no connection and no lookup.

    Args:
        ip: the address, as :func:`ipaddress.ip_address` returns it.

    Returns:
        A short reason such as ``"loopback"``, or None for a public address.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        for net, reason in _FORBIDDEN_V4:
            if ip in net:
                return reason
        # Belt and braces: anything the standard library also thinks is not global.
        return None if ip.is_global else "not globally routable"

    mapped = ip.ipv4_mapped
    if mapped is not None:
        return _embedded("IPv4-mapped", mapped)
    if ip in _6TO4:
        sixtofour = ip.sixtofour
        assert sixtofour is not None
        return _embedded("6to4", sixtofour)
    if ip in _NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        return None if is_forbidden_address(embedded) is None else _embedded("NAT64", embedded)
    for net6, reason in _FORBIDDEN_V6:
        if ip in net6:
            return reason
    if ip not in _GLOBAL_UNICAST_V6:
        return "reserved"
    return None if ip.is_global else "not globally routable"


def _embedded(kind: str, inner: ipaddress.IPv4Address) -> str:
    reason = is_forbidden_address(inner)
    return f"{kind} ({reason} {inner})" if reason else f"{kind} (of {inner})"
