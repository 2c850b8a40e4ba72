"""A byte-level HTTP server for attack tests: the standard library's ``ThreadingHTTPServer`` on loopback.

WSGI (the project's servers) cannot send a broken status line, stall mid-header or drip one byte a second on
purpose; these tests must. Handlers are ``BaseHTTPRequestHandler`` classes and reach the owner as
``self.server.app``; :meth:`RawHttpServer._prepare` may wrap the socket (TLS). ``stop()`` also cuts the
connections still open, so a dripping handler cannot outlive its test.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any, TypeVar

from vendors.emulator.serving import ConnectionCutting

_Self = TypeVar("_Self", bound="RawHttpServer")


class _CuttingServer(ConnectionCutting, HTTPServer):
    app: Any = None


class RawHttpServer:
    def __init__(
        self, handler_class: type[BaseHTTPRequestHandler], *, host: str = "127.0.0.1", port: int = 0, name: str = ""
    ) -> None:
        self._handler_class = handler_class
        self._bind = (host, port)
        self._name = name or "raw-http"
        self._httpd: _CuttingServer | None = None
        self._thread: threading.Thread | None = None

    def start(self: _Self) -> _Self:
        httpd = _CuttingServer(self._bind, self._handler_class)
        self._prepare(httpd)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _prepare(self, httpd: ThreadingHTTPServer) -> None:
        httpd.app = self  # type: ignore[attr-defined]

    def __enter__(self: _Self) -> _Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        assert self._httpd is not None, f"{self._name} is not started"
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"
