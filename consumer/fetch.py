"""Download vendor results into our store: streamed, size- and type-checked, SSRF-guarded.

A result URL is fetched only if it is ``https`` on an allowed host (``RELAY_RESULT_HOSTS``) and every address the
host resolves to is public. ``RELAY_ALLOW_PRIVATE_HOSTS=1`` is the explicit opt-in that also allows ``http`` and
loopback/private addresses (the local emulator). Link-local addresses (the cloud metadata service at
169.254.169.254) are refused even then. Redirects are followed by hand, each hop checked the same way.
Between the check and the connection a hostile DNS server could change its answer (rebinding); vendor hosts are
an allow-list of the vendor's own domains, which bounds that risk.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx

from objectstore.base import ObjectInfo, ObjectStore
from relay_core.domain import ErrorReason
from relay_core.errors import TaskFailed, Transient
from relay_core.filetypes import CONTENT_TYPES, HEAD_BYTES, sniff

MAX_REDIRECTS = 3


class FetchRejected(TaskFailed):
    """The URL or the file is not acceptable; retrying will not change that: the task fails 生成失败."""


class FetchFailed(Transient):
    """A network fault or a 5xx while downloading: retry later; when the attempts run out the task fails."""

    gives_up_as = ErrorReason.FAILED


class ResultFetcher:
    def __init__(
        self,
        allowed_hosts: list[str],
        *,
        allow_private: bool = False,
        client: httpx.Client | None = None,
        timeout_s: float = 60,
    ) -> None:
        self.allowed_hosts = [h.lower() for h in allowed_hosts]
        self.allow_private = allow_private
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10), follow_redirects=False)

    def check_url(self, url: str) -> None:
        """Raise :class:`FetchRejected` unless ``url`` may be fetched."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" and not (self.allow_private and parts.scheme == "http"):
            raise FetchRejected(f"result URL scheme {parts.scheme!r} is not https")
        if not host:
            raise FetchRejected("result URL has no host")
        if not self._host_allowed(host):
            raise FetchRejected(f"result host {host!r} is not in RELAY_RESULT_HOSTS")
        for address in _resolve(host, parts.port or 443):
            if address.is_link_local or address.is_multicast or address.is_unspecified:
                raise FetchRejected(f"result host {host!r} resolves to {address}, which is never fetched")
            if not self.allow_private and not address.is_global:
                raise FetchRejected(f"result host {host!r} resolves to non-public address {address}")

    def _host_allowed(self, host: str) -> bool:
        if any(host == h or (h.startswith(".") and host.endswith(h)) for h in self.allowed_hosts):
            return True
        return self.allow_private and _is_loopback_or_private_literal(host)

    def copy_to_store(
        self, url: str, store: ObjectStore, bucket: str, key: str, *, max_bytes: int, types: tuple[str, ...]
    ) -> tuple[ObjectInfo, str]:
        """Stream ``url`` into ``bucket/key``; returns the stored info and the sniffed type.

        The write is atomic in the store, so a rejected or failed download leaves nothing behind.
        """
        response = self._open(url)
        try:
            declared = response.headers.get("content-length", "")
            size = int(declared) if declared.isdigit() else None
            if size is not None and size > max_bytes:
                raise FetchRejected(f"result is {size} bytes, over the limit of {max_bytes}")
            try:
                chunks = response.iter_bytes(1024 * 1024)
                head = _read_head(chunks)
                kind = sniff(head)
                if kind not in types:
                    raise FetchRejected(f"result is {kind or 'of an unknown type'}, expected one of {list(types)}")
                body = _limited(itertools.chain([head], chunks), max_bytes)
                info = store.write(bucket, key, body, size=size, content_type=content_type_of(kind))
            except httpx.HTTPError as exc:
                raise FetchFailed(f"download interrupted: {type(exc).__name__}") from None
            return info, kind
        finally:
            response.close()

    def _open(self, url: str) -> httpx.Response:
        """The streamed 200 response for ``url`` (the caller closes it), following checked redirects."""
        for _ in range(MAX_REDIRECTS + 1):
            self.check_url(url)
            request = self._client.build_request("GET", url)
            try:
                response = self._client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise FetchFailed(f"cannot download result: {type(exc).__name__}") from None
            if response.is_redirect and "location" in response.headers:
                response.close()
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code >= 500 or response.status_code == 429:
                response.close()
                raise FetchFailed(f"result download answered HTTP {response.status_code}")
            if response.status_code != 200:
                response.close()
                raise FetchRejected(f"result download answered HTTP {response.status_code}")
            return response
        raise FetchRejected(f"more than {MAX_REDIRECTS} redirects")

    def close(self) -> None:
        self._client.close()


def _read_head(chunks: Iterator[bytes]) -> bytes:
    """At least HEAD_BYTES from the stream (less only if the whole file is shorter)."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= HEAD_BYTES:
            break
    return head


def _limited(chunks: Iterator[bytes], max_bytes: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise FetchRejected(f"result is over the limit of {max_bytes} bytes")
        yield chunk


def content_type_of(kind: str) -> str:
    return CONTENT_TYPES.get(kind, "application/octet-stream")


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise FetchFailed(f"cannot resolve result host {host!r}: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _is_loopback_or_private_literal(host: str) -> bool:
    """``localhost`` or a loopback/private IP literal: what the opt-in admits besides the allow-list."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or (address.is_private and not address.is_link_local)
