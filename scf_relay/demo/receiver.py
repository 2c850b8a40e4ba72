"""A stand-in for the backend's ``/internal/task/update``: verifies signatures and records what it got.

Used by ``scf-relay demo``, ``scf-relay receiver`` and the tests. ``down_for_s`` makes it answer 503 for a while
(a backend outage); ``reject_all`` makes it answer 401 (a wrong secret on our side).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from consumer.callback import PATH, verify_signature
from scf_relay.loopback import LoopbackServer

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Received:
    body: dict[str, Any]
    raw: bytes
    delivery: str
    verified: bool
    at: float


class ReportReceiver(LoopbackServer):
    """Run with :meth:`start` (a thread on 127.0.0.1, port 0 by default) and :meth:`stop`; or as a context manager."""

    def __init__(self, secret: str, *, host: str = "127.0.0.1", port: int = 0, down_for_s: float = 0.0) -> None:
        super().__init__(self._handler_class(), host=host, port=port, name="report-receiver")
        self.secret = secret
        self.down_until = time.time() + down_for_s if down_for_s else 0.0
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
        if self.down_until and time.time() < self.down_until:
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
            self.reports.append(Received(body, raw, headers.get("x-relay-delivery", ""), verified, time.time()))
        return 200

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("content-length") or 0)
                if self.path != PATH or length > MAX_BODY_BYTES:
                    self.send_response(404 if self.path != PATH else 413)
                    self.end_headers()
                    return
                raw = self.rfile.read(length)
                status = receiver._record(raw, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok":true}' if status == 200 else b'{"ok":false}')

            def log_message(self, *args: object) -> None:
                pass

        return Handler
