"""Download vendor results into our store: streamed, size- and type-checked, SSRF-guarded, time-boxed.

A result URL is fetched only if it is well formed (:func:`consumer.fetch_guard.parse_result_url`), ``https`` on
an allowed host (``RELAY_RESULT_HOSTS``) and every address the host resolves to is public.
``RELAY_ALLOW_PRIVATE_HOSTS=1`` is the explicit opt-in that also allows ``http`` and loopback/private addresses
(the local emulator). Link-local and cloud metadata addresses are refused even then, in whatever IPv6 form they
are written (:func:`consumer.fetch_guard.refusal`). Redirects are followed by hand, each hop checked the same
way. A new connection goes to exactly the addresses that were checked (:mod:`consumer.fetch_net`), so a DNS
answer that changes between the check and the connection (rebinding) reaches nothing new. Idle connections are
kept for later downloads, also of later sessions, each to an address that was checked for its host; a session
checks every host it downloads from before it sends anything, kept connection or not.

The requests go straight to an ``httpcore`` connection pool (HTTP/1.1, no proxies, no retries): the request is
built from the parts the checks judged, and nothing is kept from one download to the next but idle connections:
no cookies (results of different tasks must not share any), no authentication, no redirect history.

A download has one deadline for everything (connect, headers, the whole body, the store write): httpcore's
timeouts are per operation only. Bodies are read raw and must be sent without a ``Content-Encoding``
(``Accept-Encoding: identity`` is asked for): a compressed body could expand without bound before any size check
saw it. A body that ends before its ``Content-Length`` (or its last chunk) fails the download.
"""

from __future__ import annotations

import itertools
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import cast
from urllib.parse import urljoin

import httpcore
import httpx

from consumer.fetch_guard import (
    FetchFailed,
    FetchRejected,
    IPAddress,
    Resolver,
    ResultTarget,
    loopback_or_private,
    parse_result_url,
    refusal,
    system_resolve,
)
from consumer.fetch_net import PinnedBackend, Scope
from objectstore.base import ObjectInfo, ObjectStore
from relay_core.filetypes import CONTENT_TYPES, HEAD_BYTES, sniff

__all__ = ["FetchFailed", "FetchRejected", "FetchSession", "ResultFetcher", "content_type_of"]

MAX_REDIRECTS = 3
DEFAULT_DEADLINE_S = 300.0
#: an idle connection is closed after this long: less than common server idle timeouts (Apache's 5 s), so a kept
#: connection is not reused just as its server closes it
KEEPALIVE_S = 4.0
KEPT_CONNECTIONS = 8  #: idle connections kept at most, all hosts together
USER_AGENT = b"scf-relay"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: what httpcore raises for a network or protocol fault (it has no common base class)
_NETWORK_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError)


class ResultFetcher:
    """Downloads results; safe to share between threads (each runs its own :meth:`session`). Holds one connection
    pool: call :meth:`close` when done."""

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
        certificates trusted (default: httpx's, from certifi or ``SSL_CERT_FILE``/``SSL_CERT_DIR``)."""
        self.allowed_hosts = [h.lower() for h in allowed_hosts]
        self.allow_private = allow_private
        self.deadline_s = deadline_s
        self._timeouts = {"connect": min(10.0, timeout_s), "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        self._resolve = resolve
        self._backend = PinnedBackend()
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            network_backend=self._backend,
            max_connections=None,  # one per download in progress; a download holds one at a time
            max_keepalive_connections=KEPT_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_S,
            http1=True,
            http2=False,
        )

    def check_url(self, url: str) -> None:
        """Raise :class:`FetchRejected` unless ``url`` may be fetched (resolving its host to check where it
        leads; :class:`FetchFailed` if it cannot be resolved now)."""
        self._vet(parse_result_url(url, allow_http=self.allow_private))

    def _vet(self, target: ResultTarget) -> list[IPAddress]:
        """The addresses a connection to ``target`` may use; raises unless it may be fetched."""
        if not self._host_allowed(target):
            raise FetchRejected(f"result host {target.host!r} is not in RELAY_RESULT_HOSTS")
        literal = target.address
        addresses = [literal] if literal is not None else list(self._resolve(target.host, target.port))
        if not addresses:
            raise FetchFailed(f"result host {target.host!r} resolves to no address")
        for address in addresses:
            if why := refusal(address, allow_private=self.allow_private):
                raise FetchRejected(f"result host {target.host!r} resolves to {address}, {why}")
        return addresses

    def _host_allowed(self, target: ResultTarget) -> bool:
        host = target.host
        if any(host == h or (h.startswith(".") and host.endswith(h)) for h in self.allowed_hosts):
            return True
        if not self.allow_private:
            return False
        return host == "localhost" if target.address is None else loopback_or_private(target.address)

    def session(self, deadline_s: float | None = None) -> FetchSession:
        """Several downloads under one deadline (default: the fetcher's), each host resolved and vetted once.
        Use as a context manager."""
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
        """Close the idle connections kept for the next download."""
        self._pool.close()


class FetchSession:
    """Downloads under one deadline (:meth:`ResultFetcher.session`): each host is vetted (resolved, every address
    checked) once per session, and a new connection to it goes only to those addresses. Connections are the
    fetcher's, kept alive across downloads and sessions (each to an address that was vetted for its host), so the
    results of one vendor job, which usually come from one host, cost one resolution and at most one connection.
    Every socket operation of a download, on a new or a kept connection, ends by this session's deadline."""

    def __init__(self, fetcher: ResultFetcher, deadline_s: float) -> None:
        self._fetcher = fetcher
        self.budget_s = deadline_s
        self._scope = Scope(time.monotonic() + deadline_s)

    def __enter__(self) -> FetchSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: a download returns its connection to the fetcher's pool (or closes it) as it ends."""

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
        with self._fetcher._backend.scope(self._scope):
            try:
                response = self._open(url)
                try:
                    return _store(response, store, bucket, key, max_bytes, types, overwrite)
                finally:
                    response.close()
            except _NETWORK_ERRORS as exc:
                if time.monotonic() >= self._scope.deadline:
                    raise FetchFailed(f"result download took longer than {self.budget_s:.0f} s") from None
                raise FetchFailed(f"download interrupted: {type(exc).__name__}") from None

    def _vet(self, url: str) -> ResultTarget:
        """Check ``url`` (its host resolved and vetted once per session) and pin the host to its addresses."""
        target = parse_result_url(url, allow_http=self._fetcher.allow_private)
        if not self._scope.pinned(target.host, target.port):
            self._scope.pin(target.host, target.port, self._fetcher._vet(target))
        return target

    def _open(self, url: str) -> httpcore.Response:
        """The streamed 200 response for ``url`` (the caller closes it), following checked redirects."""
        for _ in range(MAX_REDIRECTS + 1):
            target = self._vet(url)
            response = self._fetcher._pool.handle_request(self._request(target))
            status = response.status
            location = _header(response, b"location") if status in _REDIRECTS else None
            if location is not None:
                response.close()
                url = urljoin(url, location)
                continue
            if status >= 500 or status == 429:
                response.close()
                raise FetchFailed(f"result download answered HTTP {status}")
            if status != 200:
                response.close()
                raise FetchRejected(f"result download answered HTTP {status}")
            return response
        raise FetchRejected(f"more than {MAX_REDIRECTS} redirects")

    def _request(self, target: ResultTarget) -> httpcore.Request:
        return httpcore.Request(
            b"GET",
            httpcore.URL(scheme=target.scheme, host=target.host, port=target.port, target=target.target),
            headers=[
                (b"Host", target.host_header),
                (b"Accept", b"*/*"),
                (b"Accept-Encoding", b"identity"),
                (b"User-Agent", USER_AGENT),
            ],
            extensions={"timeout": self._fetcher._timeouts},
        )


def _header(response: httpcore.Response, name: bytes) -> str | None:
    """The response header ``name`` (given in lower case; matched in any case), its lines joined with ``", "``;
    ``None`` if it is absent."""
    values = [value for key, value in response.headers if key.lower() == name]
    if not values:
        return None
    joined = b", ".join(values)
    try:
        return joined.decode("utf-8")
    except UnicodeDecodeError:
        return joined.decode("latin-1")


def _store(
    response: httpcore.Response,
    store: ObjectStore,
    bucket: str,
    key: str,
    max_bytes: int,
    types: tuple[str, ...],
    overwrite: bool,
) -> tuple[ObjectInfo, str]:
    encoding = (_header(response, b"content-encoding") or "").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchRejected(f"result is sent with Content-Encoding {encoding[:40]!r}; only identity is accepted")
    declared = _header(response, b"content-length") or ""
    size = int(declared) if declared.isdigit() else None
    if size is not None and size > max_bytes:
        raise FetchRejected(f"result is {size} bytes, over the limit of {max_bytes}")
    chunks = iter(cast(Iterable[bytes], response.stream))  # a sync pool's stream
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
