"""Download vendor results into our store: streamed, size- and type-checked, SSRF-guarded, time-boxed.

A result URL is fetched only if it is well formed (:func:`consumer.fetch_guard.parse_result_url`), ``https`` on
an allowed host (``RELAY_RESULT_HOSTS``) and every address the host resolves to is public.
``RELAY_ALLOW_PRIVATE_HOSTS=1`` is the explicit opt-in that also allows ``http`` and loopback/private addresses
(the local emulator). Link-local and cloud metadata addresses are refused even then, in whatever IPv6 form they
are written (:func:`consumer.fetch_guard.refusal`). Redirects are followed by hand, each hop checked the same
way. The connection goes to exactly the addresses that were checked (:mod:`consumer.fetch_net`), so a DNS
answer that changes between the check and the connection (rebinding) reaches nothing new.

A download has one deadline for everything (connect, headers, the whole body, the store write): httpx's
timeouts are per operation only. Bodies are read raw and must be sent without a ``Content-Encoding``
(``Accept-Encoding: identity`` is asked for): a compressed body could expand without bound before any size check
saw it.
"""

from __future__ import annotations

import itertools
import ssl
import time
from collections.abc import Iterator
from urllib.parse import urljoin

import httpx

from consumer.fetch_guard import (
    FetchFailed,
    FetchRejected,
    IPAddress,
    Resolver,
    ResultTarget,
    ip_literal,
    loopback_or_private,
    parse_result_url,
    refusal,
    system_resolve,
)
from consumer.fetch_net import PinnedBackend, PinnedTransport
from objectstore.base import ObjectInfo, ObjectStore
from relay_core.filetypes import CONTENT_TYPES, HEAD_BYTES, sniff

__all__ = ["FetchFailed", "FetchRejected", "FetchSession", "ResultFetcher", "content_type_of"]

MAX_REDIRECTS = 3
DEFAULT_DEADLINE_S = 300.0


class ResultFetcher:
    def __init__(
        self,
        allowed_hosts: list[str],
        *,
        allow_private: bool = False,
        timeout_s: float = 60,
        deadline_s: float = DEFAULT_DEADLINE_S,
        resolve: Resolver = system_resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``timeout_s``: longest wait for one network read; ``deadline_s``: longest whole download (a call's
        ``deadline_s`` overrides it); ``resolve``: name resolution (scriptable in tests); ``ssl_context``: the
        certificates trusted (default: httpx's, from certifi)."""
        self.allowed_hosts = [h.lower() for h in allowed_hosts]
        self.allow_private = allow_private
        self.deadline_s = deadline_s
        self._timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self._resolve = resolve
        self._ssl_context = ssl_context or httpx.create_ssl_context()

    def check_url(self, url: str) -> None:
        """Raise :class:`FetchRejected` unless ``url`` may be fetched (resolving its host to check where it
        leads; :class:`FetchFailed` if it cannot be resolved now)."""
        self._vet(url)

    def _vet(self, url: str) -> tuple[ResultTarget, list[IPAddress]]:
        """The parsed URL and the addresses a connection to it may use; raises unless it may be fetched."""
        target = parse_result_url(url, allow_http=self.allow_private)
        if not self._host_allowed(target.host):
            raise FetchRejected(f"result host {target.host!r} is not in RELAY_RESULT_HOSTS")
        literal = ip_literal(target.host)
        addresses = [literal] if literal is not None else list(self._resolve(target.host, target.port))
        if not addresses:
            raise FetchFailed(f"result host {target.host!r} resolves to no address")
        for address in addresses:
            if why := refusal(address, allow_private=self.allow_private):
                raise FetchRejected(f"result host {target.host!r} resolves to {address}, {why}")
        return target, addresses

    def _host_allowed(self, host: str) -> bool:
        if any(host == h or (h.startswith(".") and host.endswith(h)) for h in self.allowed_hosts):
            return True
        if not self.allow_private:
            return False
        literal = ip_literal(host)
        return host == "localhost" if literal is None else loopback_or_private(literal)

    def session(self, deadline_s: float | None = None) -> FetchSession:
        """Several downloads under one deadline (default: the fetcher's), sharing what they can: each host is
        resolved and vetted once, and connections are kept alive between downloads. Use as a context manager."""
        return FetchSession(self, self.deadline_s if deadline_s is None else deadline_s)

    def copy_to_store(
        self,
        url: str,
        store: ObjectStore,
        bucket: str,
        key: str,
        *,
        max_bytes: int,
        types: tuple[str, ...],
        deadline_s: float | None = None,
        overwrite: bool = True,
    ) -> tuple[ObjectInfo, str]:
        """One download in its own :meth:`session`: see :meth:`FetchSession.copy_to_store`."""
        with self.session(deadline_s) as session:
            return session.copy_to_store(url, store, bucket, key, max_bytes=max_bytes, types=types, overwrite=overwrite)

    def close(self) -> None:
        """Nothing to release: every session has its own connections, closed when it ends."""


class FetchSession:
    """Downloads under one deadline (:meth:`ResultFetcher.session`): each host is vetted (resolved, every address
    checked) once and its connections go only to those addresses and are kept alive for the next download, so
    the results of one vendor job, which usually come from one host, cost one resolution and one connection."""

    def __init__(self, fetcher: ResultFetcher, deadline_s: float) -> None:
        self._fetcher = fetcher
        self.budget_s = deadline_s
        self._backend = PinnedBackend(time.monotonic() + deadline_s)
        self._client = httpx.Client(
            transport=PinnedTransport(self._backend, fetcher._ssl_context),
            timeout=fetcher._timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"Accept-Encoding": "identity"},
        )
        self._vetted: dict[tuple[str, int], list[IPAddress]] = {}

    def __enter__(self) -> FetchSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def copy_to_store(
        self,
        url: str,
        store: ObjectStore,
        bucket: str,
        key: str,
        *,
        max_bytes: int,
        types: tuple[str, ...],
        overwrite: bool = True,
    ) -> tuple[ObjectInfo, str]:
        """Stream ``url`` into ``bucket/key``; returns the stored info and the sniffed type.

        The write is atomic in the store, so a rejected or failed download leaves nothing behind. The download,
        store write included, ends by the session's deadline or raises :class:`FetchFailed`.
        ``overwrite=False`` never replaces an object (the store raises ``ObjectExists``).
        """
        try:
            response = self._open(url)
            try:
                return _store(response, store, bucket, key, max_bytes, types, overwrite)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            if time.monotonic() >= self._backend.deadline:
                raise FetchFailed(f"result download took longer than {self.budget_s:.0f} s") from None
            raise FetchFailed(f"download interrupted: {type(exc).__name__}") from None

    def _vet(self, url: str) -> ResultTarget:
        """Check ``url`` (its host resolved and vetted once per session) and pin the host to its addresses."""
        target = parse_result_url(url, allow_http=self._fetcher.allow_private)
        where = (target.host, target.port)
        if where not in self._vetted:
            _, self._vetted[where] = self._fetcher._vet(url)
            self._backend.pin(target.host, target.port, self._vetted[where])
        return target

    def _open(self, url: str) -> httpx.Response:
        """The streamed 200 response for ``url`` (the caller closes it), following checked redirects."""
        for _ in range(MAX_REDIRECTS + 1):
            target = self._vet(url)
            request = self._client.build_request("GET", target.client_url)
            response = self._client.send(request, stream=True)
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


def _store(
    response: httpx.Response,
    store: ObjectStore,
    bucket: str,
    key: str,
    max_bytes: int,
    types: tuple[str, ...],
    overwrite: bool,
) -> tuple[ObjectInfo, str]:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchRejected(f"result is sent with Content-Encoding {encoding[:40]!r}; only identity is accepted")
    declared = response.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else None
    if size is not None and size > max_bytes:
        raise FetchRejected(f"result is {size} bytes, over the limit of {max_bytes}")
    chunks = response.iter_raw()
    head = _read_head(chunks)
    kind = sniff(head)
    if kind not in types:
        raise FetchRejected(f"result is {kind or 'of an unknown type'}, expected one of {list(types)}")
    body = _limited(itertools.chain([head], chunks), max_bytes)
    info = store.write(bucket, key, body, size=size, content_type=content_type_of(kind), overwrite=overwrite)
    return info, kind


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
