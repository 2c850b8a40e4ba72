"""A stand-in for the backend's ``/internal/task/update``: verifies signatures and records what it got.

Used by ``scf-relay demo``, ``scf-relay receiver`` and the tests. ``down_for_s`` makes it answer 503 for a while
(a backend outage); ``reject_all`` makes it answer 401 (a wrong secret on our side).

The receiver is a WSGI application served by the emulator package's loopback server helper.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from consumer.callback import PATH, verify_signature
from vendors.emulator.serving import BodyTooLarge, LoopbackWsgiServer, read_body, request_headers, status_line

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Received:
    body: dict[str, Any]
    raw: bytes
    delivery: str
    verified: bool
    at: float


class ReportReceiver(LoopbackWsgiServer):
    """Run with :meth:`start` (a thread on 127.0.0.1, port 0 by default) and :meth:`stop`; or as a context manager.

    ``start()`` raises :class:`~vendors.emulator.serving.PortInUse` when the port is taken.
    """

    def __init__(
        self,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        down_for_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(host=host, port=port, name="report-receiver")
        self.secret = secret
        self.clock = clock  # the outage window and arrival times follow it (virtual time in tests)
        self.down_until = clock() + down_for_s if down_for_s else 0.0
        self.reject_all = False
        self.reports: list[Received] = []  # every accepted POST, repeats included
        self.refused = 0
        self._lock = threading.Lock()

    def by_task(self) -> dict[str, list[Received]]:
        with self._lock:
            grouped: dict[str, list[Received]] = {}
            for report in self.reports:
                grouped.setdefault(str(report.body.get("taskId")), []).append(report)
            return grouped

    def _record(self, raw: bytes, headers: dict[str, str]) -> int:
        if self.down_until and self.clock() < self.down_until:
            with self._lock:
                self.refused += 1
            return 503
        verified = verify_signature(self.secret, headers, raw)
        if self.reject_all or not verified:
            with self._lock:
                self.refused += 1
            return 401
        try:
            body = json.loads(raw)
        except ValueError:
            return 400
        with self._lock:
            self.reports.append(Received(body, raw, headers.get("x-relay-delivery", ""), verified, self.clock()))
        return 200

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI application: ``POST /internal/task/update`` only; a body over 64 KiB gets 413."""
        status = self._answer(environ)  # the body is read first, whatever the answer: no reset for the client
        body = b"" if status == 404 else b'{"ok":true}' if status == 200 else b'{"ok":false}'
        content_type = [("content-type", "application/json")] if body else []
        start_response(status_line(status), [*content_type, ("content-length", str(len(body)))])
        return [body]

    def _answer(self, environ: dict[str, Any]) -> int:
        try:
            raw = read_body(environ, MAX_BODY_BYTES)  # drained when too large
        except BodyTooLarge:
            return 413
        except ValueError:
            return 400
        if environ["REQUEST_METHOD"] != "POST" or environ.get("PATH_INFO") != PATH:
            return 404
        return self._record(raw, {name.lower(): value for name, value in request_headers(environ).items()})
