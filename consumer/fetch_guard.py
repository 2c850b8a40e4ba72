"""Which result URLs and addresses may be fetched: the SSRF policy of :mod:`consumer.fetch`, without any I/O
except name resolution.

* A URL must parse cleanly: no control characters or spaces, a port in 1-65535, balanced IPv6 brackets, no
  credentials, a host that is a plain DNS name or an IP address written plainly (``a.b.c.d``, ``[IPv6]`` without
  a zone). The request is built from the parts judged here (:class:`ResultTarget`), never from the URL again.
  A malformed URL is the vendor's fault, so it is :class:`FetchRejected` (the task fails at once), never a
  retry.
* Addresses are judged after unwrapping every IPv6 form that carries an IPv4 address (IPv4-mapped
  ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, SIIT ``::ffff:0:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4
  ``2002::/16``): the embedded IPv4 address is the one the packets reach. Teredo and local-use NAT64, whose
  embedding is obfuscated or variable, are refused outright.
* Never fetched, in any mode: link-local (169.254.0.0/16, fe80::/10, home of the cloud metadata services),
  the known metadata addresses, multicast, unspecified, ``0.0.0.0/8``, reserved and broadcast addresses.
  Without the opt-in (``RELAY_ALLOW_PRIVATE_HOSTS``) only globally routable addresses are fetched.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from relay_core.domain import ErrorReason
from relay_core.errors import TaskFailed, Transient

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolve(host, port)``: every address ``host`` resolves to (raises :class:`FetchFailed` when it cannot)
Resolver = Callable[[str, int], Sequence[IPAddress]]

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, ...
        "169.254.0.23",  # Tencent Cloud (metadata.tencentyun.com)
        "169.254.170.2",  # container credential endpoints
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_OPAQUE_TUNNELS = (ipaddress.IPv6Network("2001::/32"), ipaddress.IPv6Network("64:ff9b:1::/48"))  # Teredo, NAT64
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
MAX_URL_CHARS = 65536  # httpx's limit, kept
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
_AUTHORITY = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|[A-Za-z0-9_.-]+)(?::[0-9]*)?")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")
# what httpx leaves as it is in a path and in a query (besides letters, digits and "_.-~"); the rest is %-encoded
_PATH_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"#<>?`{}')
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"#<>')


class FetchRejected(TaskFailed):
    """The URL or the file is not acceptable; retrying will not change that: the task fails 生成失败."""


class FetchFailed(Transient):
    """A network fault or a 5xx while downloading: retry later; when the attempts run out the task fails."""

    gives_up_as = ErrorReason.FAILED


@dataclass(frozen=True)
class ResultTarget:
    """A parsed result URL and the request it becomes: ``host`` lower-case without brackets, ``port`` explicit,
    ``address`` the host as an IP address when it is one. ``target`` (the request line's path and query) and
    ``host_header`` are built from the same parts the checks judged, so no second URL parser reads the URL."""

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress | None
    target: bytes
    host_header: bytes


def parse_result_url(url: str, *, allow_http: bool) -> ResultTarget:
    """The URL's parts, or :class:`FetchRejected` saying what is wrong with it."""
    if len(url) > MAX_URL_CHARS:
        raise FetchRejected(f"result URL is malformed: longer than {MAX_URL_CHARS} characters")
    if _URL_FORBIDDEN.search(url):
        bad = sorted({repr(ch) for ch in _URL_FORBIDDEN.findall(url)})
        raise FetchRejected(f"result URL contains control characters or spaces ({', '.join(bad)})")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise FetchRejected(f"result URL is malformed: {exc}") from None
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise FetchRejected(f"result URL scheme {parts.scheme!r} is not https")
    host, port, address, host_header = _authority(parts.scheme, parts.netloc)
    try:
        target = _request_target(parts.path, parts.query)
    except UnicodeEncodeError:
        raise FetchRejected("result URL is malformed: it cannot be encoded as UTF-8") from None
    return ResultTarget(url, parts.scheme, host, port, address, target, host_header)


@functools.lru_cache(maxsize=256)
def _authority(scheme: str, netloc: str) -> tuple[str, int, IPAddress | None, bytes]:
    """The checked host, port, address and ``Host`` header of a URL's authority (the results of one vendor
    answer share it, so it is judged once; a refusal is raised every time, never cached)."""
    parts = SplitResult(scheme, netloc, "", "", "")
    try:
        port = parts.port
    except ValueError as exc:
        raise FetchRejected(f"result URL is malformed: {exc}") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise FetchRejected("result URL has no host")
    if parts.username is not None or parts.password is not None:
        raise FetchRejected("result URL carries credentials")
    if port == 0:
        raise FetchRejected("result URL port 0 is out of range")
    address = _host_address(netloc, host)
    default_port = 443 if scheme == "https" else 80
    port = port or default_port
    written = f"[{host}]" if isinstance(address, ipaddress.IPv6Address) else host
    host_header = written if port == default_port else f"{written}:{port}"
    return host, port, address, host_header.encode("ascii")


def _host_address(netloc: str, host: str) -> IPAddress | None:
    """``host`` as an IP address if it is written as one, ``None`` if it is a plain DNS name; :class:`FetchRejected`
    for anything else: the authority must be exactly ``name``, ``a.b.c.d`` or ``[IPv6]`` (no zone), then an
    optional ``:port``, in ASCII, so the host the checks judge is the one the request names."""
    authority = _AUTHORITY.fullmatch(netloc)
    if authority is None:
        raise FetchRejected(f"result URL host {host!r} is not a host name")
    try:
        if authority["ipv6"] is not None:
            return ipaddress.IPv6Address(host)
        if _DOTTED_NUMBERS.fullmatch(host):  # a.b.c.d, or numbers a resolver would read as an address
            return ipaddress.IPv4Address(host)
    except ValueError:
        raise FetchRejected(f"result URL host {host!r} is not a valid IP address") from None
    if not _HOST_NAME.fullmatch(host):
        raise FetchRejected(f"result URL host {host!r} is not a host name")
    return None


def _request_target(path: str, query: str) -> bytes:
    """The request line's target, written as httpx wrote it: ``.`` and ``..`` segments resolved, then what may not
    stand in a path or query percent-encoded (as UTF-8; existing ``%xx`` escapes are kept)."""
    if "." in path:
        path = _without_dot_segments(path)
    target = quote(path, safe=_PATH_SAFE) or "/"
    if query:
        target += "?" + quote(query, safe=_QUERY_SAFE)
    return target.encode("ascii")


def _without_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 (as httpx does it)."""
    segments = path.split("/")
    if "." not in segments and ".." not in segments:
        return path
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept and kept != [""]:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    return "/".join(kept)


def unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address embeds (mapped, compatible, SIIT, NAT64, 6to4), else ``address``."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _SIIT:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: (unspecified) or ::1 (loopback)
        return ipaddress.IPv4Address(int(address))
    return address


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why ``address`` is never fetched (or not without the opt-in), or ``None`` if it may be."""
    if isinstance(address, ipaddress.IPv6Address) and any(address in net for net in _OPAQUE_TUNNELS):
        return "a tunnelled address, which is never fetched"
    plain = unwrap(address)
    never = (
        plain in METADATA_ADDRESSES
        or plain.is_link_local
        or plain.is_multicast
        or plain.is_unspecified
        or (isinstance(plain, ipaddress.IPv4Address) and (plain in _THIS_NETWORK or plain.is_reserved))
    )
    if never:
        return "an address that is never fetched"
    if not allow_private and not plain.is_global:
        return "a non-public address"
    return None


def loopback_or_private(address: IPAddress) -> bool:
    """What the opt-in admits besides the allow-list: a loopback or private address (after unwrapping)."""
    plain = unwrap(address)
    return plain.is_loopback or (plain.is_private and not plain.is_link_local)


def system_resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``getaddrinfo`` gives for ``host`` (TCP); :class:`FetchFailed` if it cannot resolve."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"cannot resolve result host {host!r}: {exc}") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        literal = sockaddr[0]
        if family in (socket.AF_INET, socket.AF_INET6) and isinstance(literal, str):
            addresses.append(ipaddress.ip_address(literal.split("%")[0]))
    return addresses
