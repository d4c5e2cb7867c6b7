"""Which callback URLs and addresses the service may call (API.md 1.1): never its own network.

The standard `ipaddress` module classifies addresses. An address is refused unless it is global
(not loopback, private, link-local, shared, reserved, unspecified, documentation...) and not
multicast; an IPv4-mapped IPv6 address is judged as the IPv4 address it maps. Networks listed in
EXECUTOR_WEBHOOK_ALLOW_NETWORKS are allowed whatever they are. Not covered: IPv6 forms that embed
an IPv4 address other than the mapped one (NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo), which
`ipaddress` counts as global, reach whatever the network routes them to.
"""

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_CHARS = 2048


class RefusedAddress(ValueError):
    """The URL, or an address its name resolves to, is one the service must not call."""


def allowed_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """EXECUTOR_WEBHOOK_ALLOW_NETWORKS as networks; a mistake raises ValueError naming it."""
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip())


def check_url(url: str, allowed: Sequence[IPNetwork]) -> tuple[str, int]:
    """The host and port of a callback URL that may be called, as far as the URL alone tells
    (an IP literal is checked now; a name, when it is resolved at delivery)."""
    if len(url) > MAX_URL_CHARS:
        raise RefusedAddress(f"must be at most {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedAddress("must be an http or https URL")
    if not parts.hostname or parts.username or parts.password:
        raise RefusedAddress("must name a host, without credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise RefusedAddress(f"has an invalid port: {error}") from error
    literal = _literal(parts.hostname)
    if literal is not None:
        check_address(literal, allowed)
    return parts.hostname, port


def check_address(address: IPAddress, allowed: Sequence[IPNetwork]) -> None:
    """Refuse an address the service must not call, unless an allowed network holds it."""
    if any(address in network for network in allowed if network.version == address.version):
        return
    judged = (
        address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped else address
    )
    if judged.is_multicast or not judged.is_global:
        raise RefusedAddress(f"{address} is in a range the service does not call")


def resolve(host: str, port: int, allowed: Sequence[IPNetwork]) -> IPAddress:
    """The address to connect to for `host`: every address the name resolves to must be allowed
    (one refused address fails the whole name), and the first is the one connected to."""
    literal = _literal(host)
    if literal is not None:
        check_address(literal, allowed)
        return literal
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise OSError(f"{host} does not resolve: {error}") from error
    addresses = [ipaddress.ip_address(info[4][0]) for info in found]
    for address in addresses:
        check_address(address, allowed)
    return addresses[0]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
