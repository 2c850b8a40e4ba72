"""The network under :mod:`consumer.fetch`: connect only to vetted addresses, never past one deadline.

:class:`PinnedBackend` is an ``httpcore`` network backend. httpx hands it the URL's host name; instead of
resolving that name again (a DNS server could answer differently the second time: rebinding), it connects to
the addresses the fetcher resolved and vetted for that host (:meth:`PinnedBackend.pin`), and refuses hosts that
were never vetted. TLS still uses the host name (SNI and certificate check), and the ``Host`` header is the
URL's, because httpx builds both from the URL, not from the socket.

Every socket operation (connect, TLS handshake, each read and write) gets at most the time left until the
backend's deadline: httpx's own timeouts are per operation, so a host sending one byte a second would
otherwise keep a download alive for ever.

Plain TCP reads take up to :data:`READ_BYTES` (1 MiB) at a time where httpcore asks for 64 KiB: a large body
then passes through h11, the size check, the md5 and the file write in up to 16 times fewer pieces (about 12%
less CPU per GiB, ``python -m bench.relay_speed``); h11 keeps whatever it did not need yet in its own buffer, as
it does for any read. TLS reads are left as asked: one returns one TLS record (16 KiB at most) anyway.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx

from consumer.fetch_guard import IPAddress

READ_BYTES = 1024 * 1024


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every operation is bounded by the time left until ``deadline`` (``time.monotonic``)."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float, read_bytes: int = 0) -> None:
        """``read_bytes``: read up to that much whenever less is asked for (0: as asked)."""
        self._stream = stream
        self._deadline = deadline
        self._read_bytes = read_bytes

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        bounded = _bounded(timeout, self._deadline, httpcore.ReadTimeout)
        return self._stream.read(max(max_bytes, self._read_bytes), bounded)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, self._deadline, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, self._deadline, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Connects a host name only to the addresses pinned for it, within one deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._pins: dict[tuple[str, int], tuple[IPAddress, ...]] = {}
        self._lock = threading.Lock()
        self._sockets = httpcore.SyncBackend()

    def pin(self, host: str, port: int, addresses: Sequence[IPAddress]) -> None:
        """From now on, connections to ``host:port`` go to ``addresses`` (tried in order) and nowhere else."""
        with self._lock:
            self._pins[(host.lower().strip("[]"), port)] = tuple(addresses)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        with self._lock:
            addresses = self._pins.get((host.lower().strip("[]"), port), ())
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not vetted; not connecting")
        failure: Exception = httpcore.ConnectError(f"no address of {host} answered")
        for address in addresses:
            bounded = _bounded(timeout, self.deadline, httpcore.ConnectTimeout)
            try:
                stream = self._sockets.connect_tcp(
                    str(address), port, bounded, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self.deadline, READ_BYTES)
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("result downloads never use Unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport on a :class:`PinnedBackend` (HTTP/1.1, no proxies, no retries)."""

    def __init__(self, backend: PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx has no parameter for the network backend; its pool is replaced by one on ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=backend, max_connections=4, http1=True, http2=False
        )


def _bounded(timeout: float | None, deadline: float, error: type[Exception]) -> float:
    """``timeout`` cut to the time left until ``deadline``; ``error`` if none is left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the download deadline has passed")
    return left if timeout is None else min(timeout, left)
