"""A stdlib HTTP server on loopback, served from a daemon thread: the lifecycle every local server shares.

::

    with LoopbackServer(MyHandler, name="blobs") as server:
        httpx.get(f"{server.base_url}/x")

Contract of :class:`LoopbackServer`:

- ``start()`` binds ``(host, port)`` (port 0: the OS picks a free one), serves from a daemon thread and
  returns the server; while running it does nothing. A stopped server can be started again: a new
  :attr:`httpd` (on a new port when the port is 0); what the owner keeps outside ``httpd`` survives.
- ``stop()`` stops accepting, closes the listening socket, cuts the connections still open (idle keep-alive
  ones included, so nothing answers after it returns) and joins the serving thread. Idempotent.
- As a context manager: ``start()`` on enter, ``stop()`` on exit.
- :attr:`address` (``(host, port)``), :attr:`base_url` (``http://host:port``) and :attr:`httpd` exist only
  while running; otherwise they raise :class:`RuntimeError`.
- Handlers reach the owner as ``self.server.app`` (set before the first request can arrive). Subclasses that
  need more on the server override :meth:`_prepare` (called after binding, before serving).

Stdlib only, and imported only by local servers (demo receiver, emulator, tests, benches), never by an SCF
entry point.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

_JOIN_TIMEOUT_S = 5.0
_Self = TypeVar("_Self", bound="LoopbackServer")
ServerFactory = Callable[[tuple[str, int], type[BaseHTTPRequestHandler]], ThreadingHTTPServer]


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with daemon request threads whose ``server_close()`` also cuts open connections."""

    daemon_threads = True
    app: Any = None

    def __init__(self, address: tuple[str, int], handler_class: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler_class)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

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


class LoopbackServer:
    """``handler_class`` served on ``host:port`` from a thread named ``name``; see the module docstring."""

    def __init__(
        self,
        handler_class: type[BaseHTTPRequestHandler],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "loopback",
        server_class: ServerFactory = LoopbackHTTPServer,
        poll_interval_s: float = 0.05,
    ) -> None:
        self._handler_class = handler_class
        self._bind_address = (host, port)
        self._thread_name = name
        self._server_class = server_class
        self._poll_interval_s = poll_interval_s
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifetime ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self: _Self) -> _Self:
        if self._httpd is not None:
            return self
        httpd = self._server_class(self._bind_address, self._handler_class)
        try:
            self._httpd = httpd
            self._prepare(httpd)
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

    def _prepare(self, httpd: ThreadingHTTPServer) -> None:
        """Attach what handlers need before serving starts; by default the owner, as ``httpd.app``."""
        httpd.app = self  # type: ignore[attr-defined]

    # -- where it listens --------------------------------------------------------------------
    @property
    def httpd(self) -> ThreadingHTTPServer:
        if self._httpd is None:
            raise RuntimeError(f"{self._thread_name} is not started")
        return self._httpd

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"
