"""The network under :mod:`consumer.fetch`: connect only to vetted addresses, never past a session's deadline.

:class:`PinnedBackend` is the ``httpcore`` network backend of a fetcher's connection pool. httpcore hands it the
URL's host name; instead of resolving that name again (a DNS server could answer differently the second time:
rebinding), it connects to the addresses the current session resolved and vetted for that host
(:meth:`Scope.pin`), and refuses hosts the session never vetted. TLS still uses the host name (SNI and
certificate check), and the ``Host`` header is the URL's, because both are built from the URL, not from the
socket.

The pool outlives a session, so its connections are kept alive from one session to the next. Which session is
the current one is per thread (:meth:`PinnedBackend.scope`): a download runs in the thread that asked for it,
so every socket operation (connect, TLS handshake, each read and write) gets at most the time left until the
deadline of the session it serves, whichever session opened the connection. httpcore's own timeouts are per
operation, so a host sending one byte a second would otherwise keep a download alive for ever. An operation
outside any session's scope is refused.

Plain TCP reads take up to :data:`READ_BYTES` (1 MiB) at a time where httpcore asks for 64 KiB: a large body
then passes through h11, the size check, the md5 and the file write in up to 16 times fewer pieces (about 12%
less CPU per GiB, ``python -m bench.relay_speed``); h11 keeps whatever it did not need yet in its own buffer, as
it does for any read. TLS reads are left as asked: one returns one TLS record (16 KiB at most) anyway.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpcore

from consumer.fetch_guard import IPAddress

READ_BYTES = 1024 * 1024


class Scope:
    """What one session's socket operations may do: reach the addresses pinned for a host, until ``deadline``
    (``time.monotonic``)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._pins: dict[tuple[str, int], tuple[IPAddress, ...]] = {}

    def pin(self, host: str, port: int, addresses: Sequence[IPAddress]) -> None:
        """From now on, this session's new connections to ``host:port`` go to ``addresses`` (tried in order) and
        nowhere else."""
        self._pins[(host.lower(), port)] = tuple(addresses)

    def pinned(self, host: str, port: int) -> bool:
        return (host.lower(), port) in self._pins

    def addresses(self, host: str, port: int) -> tuple[IPAddress, ...]:
        return self._pins.get((host.lower(), port), ())


_NO_SCOPE = Scope(deadline=float("-inf"))  # outside every session: nothing may be reached, no time is left


class PinnedBackend(httpcore.NetworkBackend):
    """Connects a host name only to the addresses the calling thread's session pinned for it, within that
    session's deadline."""

    def __init__(self) -> None:
        self._current = threading.local()
        self._sockets = httpcore.SyncBackend()

    @contextmanager
    def scope(self, scope: Scope) -> Iterator[None]:
        """Within the block, this thread's socket operations are bounded by ``scope``."""
        outer = self.current()
        self._current.scope = scope
        try:
            yield
        finally:
            self._current.scope = outer

    def current(self) -> Scope:
        scope: Scope = getattr(self._current, "scope", _NO_SCOPE)
        return scope

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.current().addresses(host, port)
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not vetted; not connecting")
        failure: Exception = httpcore.ConnectError(f"no address of {host} answered")
        for address in addresses:
            bounded = _bounded(timeout, self.current().deadline, httpcore.ConnectTimeout)
            try:
                stream = self._sockets.connect_tcp(
                    str(address), port, bounded, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self, READ_BYTES)
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("result downloads never use Unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every operation is bounded by the time left until the deadline of the session the calling
    thread serves (``backend.current()``)."""

    def __init__(self, stream: httpcore.NetworkStream, backend: PinnedBackend, read_bytes: int = 0) -> None:
        """``read_bytes``: read up to that much whenever less is asked for (0: as asked)."""
        self._stream = stream
        self._backend = backend
        self._read_bytes = read_bytes

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        bounded = _bounded(timeout, self._backend.current().deadline, httpcore.ReadTimeout)
        return self._stream.read(max(max_bytes, self._read_bytes), bounded)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, self._backend.current().deadline, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, self._backend.current().deadline, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded), self._backend)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _bounded(timeout: float | None, deadline: float, error: type[Exception]) -> float:
    """``timeout`` cut to the time left until ``deadline``; ``error`` if none is left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the download deadline has passed")
    return left if timeout is None else min(timeout, left)
