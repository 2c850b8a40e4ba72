"""Serve a WSGI application on loopback from a background thread: the lifecycle every local server shares.

::

    with LoopbackWsgiServer(app, name="blobs") as server:
        httpx.get(f"{server.base_url}/x")

The parts are the standard library's: :mod:`wsgiref.simple_server` (``WSGIServer`` with
``socketserver.ThreadingMixIn``, daemon request threads), which answers one request per connection
(HTTP/1.0 style: no keep-alive), and writes each answer's head and first body bytes in one send.

Contract of :class:`LoopbackWsgiServer`:

- ``start()`` binds ``(host, port)`` (port 0: the OS picks a free one), serves from a daemon thread and
  returns the server; while running it does nothing. A port already in use raises :class:`PortInUse` (one
  line naming the address). A stopped server can be started again (on a new port when the port is 0).
- ``stop()`` stops accepting, closes the listening socket, cuts the connections still being answered (so
  nothing answers after it returns) and joins the serving thread. Idempotent.
- As a context manager: ``start()`` on enter, ``stop()`` on exit.
- :attr:`address` (``(host, port)``) and :attr:`base_url` (``http://host:port``) exist only while running;
  otherwise they raise :class:`RuntimeError`.
- The application is the ``app`` given, or the server object itself when a subclass defines ``__call__``
  (one object holding the state, the WSGI entry point and the lifecycle). A subclass that needs the bound
  address before serving overrides :meth:`_bound`.

Also used by the demo's report receiver and the test servers (they import it from here, downward); request
helpers: :func:`request_headers`, :func:`read_body`, :func:`status_line`. Never imported by an SCF entry point.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from vendors.emulator.wsgi_request import BodyTooLarge, read_body, request_headers

__all__ = [
    "BodyTooLarge",
    "LoopbackWsgiServer",
    "PortInUse",
    "WsgiApp",
    "read_body",
    "request_headers",
    "status_line",
]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_JOIN_TIMEOUT_S = 5.0
_Self = TypeVar("_Self", bound="LoopbackWsgiServer")


def status_line(status: int) -> str:
    """What ``start_response`` takes: ``"404 Not Found"`` (an unnamed status gets a generic phrase)."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Status {status}"


class PortInUse(OSError):
    """``host:port`` is taken by another listener; ``str()`` is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.EADDRINUSE


class _QuietHandler(WSGIRequestHandler):
    disable_nagle_algorithm = True  # a large answer goes out in several sends: no delayed-ACK stalls
    wbufsize = -1  # buffered: the status line and headers leave with the body, not as a dozen small writes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Quiet: no access-log line per request on stderr."""


class ConnectionCutting(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Daemon request threads; ``server_close()`` also cuts the connections still being answered, so nothing
    answers after a server stops. Put it first in the bases of any ``socketserver.TCPServer``."""

    daemon_threads = True
    _connections: set[socket.socket]
    _connections_lock: threading.Lock

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # set before binding: TCPServer calls server_close() when the bind fails
        self._connections = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._connections.clear()


class _ThreadingWsgiServer(ConnectionCutting, WSGIServer):
    def __init__(self, address: tuple[str, int], app: WsgiApp) -> None:
        super().__init__(address, _QuietHandler)
        self.set_app(app)


class LoopbackWsgiServer:
    """A WSGI app served on ``host:port`` from a thread named ``name``; see the module docstring."""

    def __init__(
        self,
        app: WsgiApp | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "loopback",
        poll_interval_s: float = 0.05,
    ) -> None:
        if app is None and not callable(self):
            raise TypeError("give a WSGI app, or define __call__ in the subclass")
        self._app: WsgiApp = app if app is not None else self  # type: ignore[assignment]
        self._bind_address = (host, port)
        self._thread_name = name
        self._poll_interval_s = poll_interval_s
        self._httpd: _ThreadingWsgiServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifetime ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self: _Self) -> _Self:
        """Bind and serve from a daemon thread; raises :class:`PortInUse` when the port is taken."""
        if self._httpd is not None:
            return self
        try:
            httpd = _ThreadingWsgiServer(self._bind_address, self._app)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                host, port = self._bind_address
                raise PortInUse(f"{host}:{port}: address already in use") from None
            raise
        try:
            self._httpd = httpd
            self._bound()
        except BaseException:
            self._httpd = None
            httpd.server_close()
            raise
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": self._poll_interval_s},
            name=self._thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut what is still open; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=_JOIN_TIMEOUT_S)
            self._thread = None

    def wait(self) -> None:
        """Block until :meth:`stop` is called from another thread (Ctrl-C still reaches the calling thread)."""
        while (thread := self._thread) is not None and thread.is_alive():
            thread.join(timeout=0.5)

    def __enter__(self: _Self) -> _Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bound(self) -> None:
        """Called after binding, before the first request can arrive (:attr:`base_url` is known); no-op."""

    # -- where it listens --------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        if self._httpd is None:
            raise RuntimeError(f"{self._thread_name} is not started")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"
