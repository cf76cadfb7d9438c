"""Where a request made on a user's behalf may go: never loopback or private addresses.

Pure (``ipaddress`` and an injectable resolver). The one guard for any host a user can name:

- ``ip_literal(host)`` reads a host as an IP address the way the C library would, so that
  spellings other than dotted quads are caught too: ``[::1]``, ``0x7f000001``, ``2130706433``,
  ``0177.0.0.1``, ``127.1``, ``::ffff:127.0.0.1``;
- ``refusal(ip)`` says why an address is off limits (loopback, link-local such as the cloud
  metadata service at 169.254.169.254, private: RFC 1918, fc00::/7, shared 100.64.0.0/10,
  unspecified, multicast, reserved, and the IPv4 address inside IPv4-mapped, IPv4-compatible,
  6to4 and NAT64 IPv6 forms), or None for a public one;
- ``check_host(host, field, allowed=...)`` refuses a host that is such an address (or a name
  such as ``localhost``), unless it is one of ``allowed`` (the configured object store's
  endpoint);
- ``resolve_checked(host, port, field, ...)`` resolves a name once, refuses it if any address
  is off limits, and returns the addresses: a fetcher connects to those and never resolves
  again, so a DNS answer that changes between the check and the connection (rebinding) cannot
  move it to a private address.

Today nothing in the control plane fetches a URL a user gave (channel and model URIs are
``s3://`` names in the object store, read through its configured driver); ``check_host``
guards the URI checks (``resources.uris``), and ``resolve_checked`` is what a fetcher added
later must go through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from orchestrator.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# getaddrinfo's shape: (host, port, family, type) -> [(family, type, proto, canonname, sockaddr)]
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HEX = frozenset("0123456789abcdefABCDEF")


def _inet_aton_part(part: str) -> int | None:
    """One part of an IPv4 address as inet_aton reads it: 0x hex, 0 octal, else decimal."""
    if not part:
        return None
    if part[:2].lower() == "0x":  # "0x" alone is 0 to the C library too
        digits = part[2:]
        if not digits:
            return 0
        return int(digits, 16) if all(c in _HEX for c in digits) else None
    if len(part) > 1 and part[0] == "0":
        return int(part[1:], 8) if all(c in "01234567" for c in part[1:]) else None
    return int(part, 10) if part.isascii() and part.isdigit() else None


def _ipv4_any_spelling(host: str) -> ipaddress.IPv4Address | None:
    """``a``, ``a.b``, ``a.b.c`` or ``a.b.c.d``, each part decimal, octal or hex (inet_aton)."""
    parts = host.split(".")
    if len(parts) > 4:
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    nums = [v for v in values if v is not None]
    last_bits = 32 - 8 * (len(nums) - 1)
    if any(v > 255 for v in nums[:-1]) or nums[-1] >= 1 << last_bits:
        return None
    value = 0
    for v in nums[:-1]:
        value = value << 8 | v
    value = value << last_bits | nums[-1]
    return ipaddress.IPv4Address(value)


def ip_literal(host: str) -> IPAddress | None:
    """``host`` as an IP address if it spells one in any form a resolver accepts, else None."""
    h = host.strip().rstrip(".")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    h = h.split("%", 1)[0]  # an IPv6 zone id (fe80::1%eth0)
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h)
        except ValueError:
            return None
    return _ipv4_any_spelling(h)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    packed = int(ip)
    if packed >> 32 == 0 and packed > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(packed)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be reached on a user's behalf, or None when it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            why = refusal(inner)
            return None if why is None else f"{why} (as IPv6 {ip})"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (the cloud metadata service lives there)"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared address space (100.64.0.0/10)"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a global address"
    return None


def _normal(host: str) -> str:
    ip = ip_literal(host)
    return str(ip) if ip is not None else host.strip().rstrip(".").lower()


def endpoint_hosts(urls: Iterable[str | None]) -> frozenset[str]:
    """The hosts of configured endpoints (``http://minio:9000`` -> ``minio``), normalised."""
    out: set[str] = set()
    for url in urls:
        if url:
            host = urlsplit(url).hostname
            if host:
                out.add(_normal(host))
    return frozenset(out)


def check_host(host: str, field: str, *, allowed: frozenset[str] = frozenset()) -> None:
    """Refuse ``host`` (named by ``field``) when it is, or spells, an address off limits."""
    if _normal(host) in allowed:
        return
    name = host.strip().rstrip(".").lower()
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        raise ValidationError(
            f"{field}: {host!r} names this machine (loopback); give a public host",
            field=field,
        )
    ip = ip_literal(host)
    if ip is None:
        return
    why = refusal(ip)
    if why is not None:
        raise ValidationError(
            f"{field}: {host!r} is {ip}, {why}; the control plane reaches no loopback, "
            "private or link-local address on a caller's behalf",
            field=field,
        )


def resolve_checked(
    host: str,
    port: int,
    field: str,
    *,
    allowed: frozenset[str] = frozenset(),
    resolver: Resolver = socket.getaddrinfo,
) -> list[IPAddress]:
    """``host`` resolved once, every address checked: connect to these, never re-resolve.
    Refused if any address is off limits (a name with one private address among public ones
    is refused: which one a connection would take is the resolver's choice)."""
    check_host(host, field, allowed=allowed)
    literal = ip_literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = resolver(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise ValidationError(f"{field}: cannot resolve {host!r}: {e}", field=field) from e
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise ValidationError(f"{field}: {host!r} resolves to no address", field=field)
    if _normal(host) in allowed:
        return addresses
    for ip in addresses:
        why = refusal(ip)
        if why is not None:
            raise ValidationError(
                f"{field}: {host!r} resolves to {ip}, {why}; the control plane reaches no "
                "loopback, private or link-local address on a caller's behalf",
                field=field,
            )
    return addresses
