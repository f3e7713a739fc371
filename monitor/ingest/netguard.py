"""Refusing feeds that point into private networks (SSRF guard, SPEC §5).

A feed URL comes from a config file or an OPML import, and every redirect target comes from
a remote server: neither may make the daemon talk to loopback, the LAN, link-local services
or a cloud metadata endpoint unless the operator allowed it (``poll.allow_private_networks``).

Addresses are checked after DNS resolution, on the addresses the socket then connects to:
:class:`GuardedResolver` is the HTTP client's only resolver (its DNS cache off); it resolves
the host itself (``loop.getaddrinfo``), refuses the connection if any address is not
allowed, and hands the client the checked addresses, which it connects to, never to the
name again. That closes DNS rebinding for direct connections (a name that resolves to a
public address for the check and to a private one for the connect). TLS still verifies the
certificate against the host name. What remains open: an operator-configured HTTP proxy
would do its own resolution (the fetcher therefore ignores proxy environment variables), and
the guard trusts the resolver of the host it runs on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AllowPrivate = bool | Sequence[IPNetwork | str]
Resolver = Callable[[str, int], Awaitable[list[str]]]

SCHEMES = ("http", "https")
HINT = "set poll.allow_private_networks to allow"

_V4 = ipaddress.ip_network
_V6 = ipaddress.ip_network

# Cloud metadata and host-agent endpoints: named as such in errors, refused like the rest.
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, DigitalOcean … instance metadata
    "169.254.170.2",     # AWS ECS task metadata
    "100.100.100.200",   # Alibaba Cloud metadata
    "168.63.129.16",     # Azure WireServer / host agent
    "fd00:ec2::254",     # AWS instance metadata over IPv6
))

# (network, kind) in the order they are tried; the first match names the address.
_BLOCKED: tuple[tuple[IPNetwork, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("192.0.0.0/24"), "reserved"),          # IETF protocol assignments
    (_V4("192.0.2.0/24"), "reserved"),          # documentation
    (_V4("198.51.100.0/24"), "reserved"),       # documentation
    (_V4("203.0.113.0/24"), "reserved"),        # documentation
    (_V4("198.18.0.0/15"), "reserved"),         # benchmarking
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),           # includes 255.255.255.255 broadcast
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/96"), "reserved"),                 # deprecated IPv4-compatible addresses
    (_V6("100::/64"), "reserved"),              # discard-only
    (_V6("2001:db8::/32"), "reserved"),         # documentation
    (_V6("fc00::/7"), "private"),               # unique local (RFC 4193)
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "reserved"),             # deprecated site-local
    (_V6("ff00::/8"), "multicast"),
)

_NAT64 = _V6("64:ff9b::/96")
_6TO4 = _V6("2002::/16")


class Refused(Exception):
    """A URL the guard will not fetch; the message says why and how to allow it."""


def parse_allowance(allow_private: AllowPrivate) -> bool | tuple[IPNetwork, ...]:
    """``True`` (everything), ``False`` (nothing private) or the networks that are allowed."""
    if isinstance(allow_private, bool):
        return allow_private
    if isinstance(allow_private, str | bytes):
        raise TypeError("allow_private takes a bool or a list of networks, not a string")
    return tuple(n if isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network)
                 else ipaddress.ip_network(n, strict=False) for n in allow_private)


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def classify(address: IPAddress) -> str | None:
    """What kind of non-public address this is (``loopback``, ``private`` …), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        inner = _embedded_v4(address)
        if inner is not None and (kind := classify(inner)) is not None:
            return kind
    if address in METADATA:
        return "cloud metadata"
    for network, kind in _BLOCKED:
        if address.version == network.version and address in network:
            return kind
    return None


def _allowed(address: IPAddress, allowance: bool | tuple[IPNetwork, ...]) -> bool:
    if allowance is True:
        return True
    if allowance is False:
        return False
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_v4(address)):
        candidates.append(inner)
    return any(a.version == n.version and a in n for a in candidates for n in allowance)


def check_address(address: IPAddress | str, allowance: bool | tuple[IPNetwork, ...],
                  host: str | None = None) -> None:
    """Raise :class:`Refused` if ``address`` is not public and not allowed."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    kind = classify(ip)
    if kind is None or _allowed(ip, allowance):
        return
    article = "an" if kind[0] in "aeiou" else "a"
    if host is None or _literal(host) is not None:
        raise Refused(f"refused: {ip} is {article} {kind} address ({HINT})")
    raise Refused(f"refused: {host} resolves to {article} {kind} address {ip} ({HINT})")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address of a legacy numeric IPv4 spelling (``2130706433``, ``0x7f000001``,
    ``127.1``), which resolvers map onto an address without asking DNS."""
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    out: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in out:
            out.append(str(sockaddr[0]))
    return out


@dataclass(frozen=True)
class Guard:
    """The allowance and the resolver; checks URLs and host names."""

    allowance: bool | tuple[IPNetwork, ...] = False
    resolver: Resolver = system_resolver

    @classmethod
    def build(cls, allow_private: AllowPrivate = False,
              resolver: Resolver | None = None) -> Guard:
        return cls(parse_allowance(allow_private), resolver or system_resolver)

    def check_url(self, url: str) -> None:
        """What can be checked without DNS: the scheme, a host, a literal address."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise Refused(f"refused: invalid URL {url!r}: {exc}") from None
        if parts.scheme.lower() not in SCHEMES:
            raise Refused(f"refused: {parts.scheme or 'no'} scheme in {url!r}; "
                          f"only http and https are fetched")
        if not parts.hostname:
            raise Refused(f"refused: no host in {url!r}")
        ip = _literal(parts.hostname)
        if ip is None:
            ip = _legacy_ipv4(parts.hostname)
        if ip is not None:
            check_address(ip, self.allowance, parts.hostname)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host``, all of them checked; raises :class:`Refused`."""
        host = host.strip("[]")
        if (ip := _literal(host)) is not None:
            check_address(ip, self.allowance, host)
            return [str(ip)]
        addresses = await self.resolver(host, port)
        if not addresses:
            raise OSError(f"cannot resolve {host}: no addresses")
        # One bad address refuses the name: a resolver that mixes public and private
        # answers is exactly what a rebinding attack looks like.
        for address in addresses:
            check_address(address, self.allowance, host)
        return addresses


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for the fetcher: every address it gives was checked by the guard.

    A refused name raises :class:`Refused`, which the client lets through; a name that does
    not resolve raises ``OSError``, which it reports as a connection error."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)
                for address in await self._guard.resolve(host, port)]

    async def close(self) -> None:
        """Nothing to release: resolving goes through the guard's resolver."""
