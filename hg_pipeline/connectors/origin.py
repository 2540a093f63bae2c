"""Where a PSA may be: the tenant's base URL, its origin, and the addresses it may resolve to.

One policy, applied three times: by `tenant add` (the URL as typed), when a connector is
built (a row written before the policy existed), and on every connection the HTTP core opens
(the address the host name resolved to, so a DNS name cannot lead to a metadata service).

- always refused: link-local (169.254.0.0/16, fe80::/10), cloud metadata names and addresses,
  the unspecified address (0.0.0.0/8, ::) and multicast;
- refused unless the operator sets HG_ALLOW_PRIVATE_PSA=1: private ranges (10/8, 172.16/12,
  192.168/16, 100.64/10, fc00::/7), for a self-hosted PSA on the MSP's own network;
- always allowed: loopback (127/8, ::1), where simulators, tests and the demo run. It reaches
  only this machine, and redirects or paging links to it from a PSA elsewhere are refused by
  the same-origin rule anyway.

Host names are not resolved when a tenant is added (DNS answers change, and the check that
matters is the one made on each connection).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import urlsplit

ALLOW_PRIVATE_VAR = "HG_ALLOW_PRIVATE_PSA"

METADATA_NAMES = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal",
})
METADATA_ADDRESSES = frozenset(ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200",
))
_UNSPECIFIED = (ip_network("0.0.0.0/8"), ip_network("::/128"))
_LINK_LOCAL = (ip_network("169.254.0.0/16"), ip_network("fe80::/10"))
_PRIVATE = tuple(ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                         "fc00::/7"))
_NAT64 = ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class BaseUrlError(ValueError):
    """A base URL the pipeline will not send credentials to; the message names the field and why."""


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port (default ports filled in): where credentials may go."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def origin_of(url: str) -> Origin:
    """The origin of an absolute http(s) URL; ValueError when it has none."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an absolute http(s) URL")
    port = parts.port  # ValueError when out of range or not a number
    return Origin(scheme, parts.hostname.rstrip("."), port or _DEFAULT_PORTS[scheme])


def shown_origin(url: str) -> str:
    """A foreign URL's origin for a message: printable, short, never its path or query."""
    try:
        text = str(origin_of(url))
    except ValueError:
        text = urlsplit(url).netloc.rpartition("@")[2] or "an invalid URL"
    return _shown(text)


def _shown(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.:/\[\]%_-]", "?", text)[:100]


def private_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """HG_ALLOW_PRIVATE_PSA=1 (or true/yes): private addresses may be a PSA."""
    environ = os.environ if environ is None else environ
    return environ.get(ALLOW_PRIVATE_VAR, "").strip().lower() in ("1", "true", "yes")


def address_problem(address: str | IPv4Address | IPv6Address, *, allow_private: bool) -> str | None:
    """Why a PSA must not be at this IP address, or None when it may."""
    ip = ip_address(str(address).split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) does not matter
    if isinstance(ip, IPv6Address):  # an IPv4 address carried in IPv6 is judged as itself
        embedded = ip.ipv4_mapped or (IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            ip = embedded
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return None
    if any(ip in net for net in _UNSPECIFIED):
        return "the unspecified address"
    if any(ip in net for net in _LINK_LOCAL):
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if not allow_private and any(ip in net for net in _PRIVATE):
        return f"a private address (set {ALLOW_PRIVATE_VAR}=1 for a PSA on your own network)"
    return None


def host_problem(host: str, *, allow_private: bool) -> str | None:
    """Why a PSA must not be at this host as written (a name or an IP literal), without DNS."""
    name = host.rstrip(".").lower()
    if name in METADATA_NAMES:
        return "a cloud metadata name"
    literal = _ip_literal(name)
    return None if literal is None else address_problem(literal, allow_private=allow_private)


def check_base_url(url: str | None, *, allow_private: bool | None = None, field: str = "base-url") -> Origin:
    """The origin of a tenant's base URL, or BaseUrlError naming `field` and the reason.

    http or https, a host, a port from 1 to 65535, no control character or whitespace, no
    user:password, and a host the policy of this module allows. Never echoes CR or LF.
    """
    if allow_private is None:
        allow_private = private_allowed()
    if not isinstance(url, str) or not url:
        raise BaseUrlError(f"{field} is missing")
    if any(ch.isspace() or ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in url):
        raise BaseUrlError(f"{field} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise BaseUrlError(f"{field} is not a valid URL") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise BaseUrlError(f"{field} must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise BaseUrlError(f"{field} must not carry credentials; use --credential KEY=env:VAR")
    if not parts.hostname:
        raise BaseUrlError(f"{field} has no host")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise BaseUrlError(f"{field} port must be a number from 1 to 65535")
    problem = host_problem(parts.hostname, allow_private=allow_private)
    if problem is not None:
        raise BaseUrlError(f"{field} host {_shown(parts.hostname)} is {problem}")
    return origin_of(url)


def _ip_literal(host: str) -> IPv4Address | IPv6Address | None:
    """The address a host literally is: IPv4 and IPv6 as written, and the other IPv4 forms the
    system resolver takes as addresses too (2852039166, 0xa9.0xfe.0xa9.0xfe, 169.254.43518)."""
    try:
        return ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", host) and re.match(r"[0-9]", host):
        try:
            return IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None
