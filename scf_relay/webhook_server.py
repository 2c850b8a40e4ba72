"""The webhook route of a self-hosted worker: ``POST /runninghub/{task_id}/{mac}`` on a loopback WSGI server.

``scf-relay worker --webhook-port P`` serves it beside the consumer threads (put a TLS-terminating proxy in front
and set ``RELAY_WEBHOOK_BASE_URL`` to its public URL); LocalStack serves one for tests and the demo. The work is
:class:`webhook_entry.gate.WebhookGate`'s, the same as the SCF entry's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from vendors.emulator.serving import BodyTooLarge, LoopbackWsgiServer, read_body, status_line
from webhook_entry.gate import MAX_BODY_BYTES, Answer, WebhookGate


class WebhookServer(LoopbackWsgiServer):
    """Serves ``gate`` on ``host:port`` (port 0: any free one); ``start()``/``stop()`` or a context manager."""

    def __init__(self, gate: WebhookGate, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port, name="webhook")
        self.gate = gate

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            body = read_body(environ, MAX_BODY_BYTES)  # drained when too large: no reset for the client
            answer = self.gate.handle(environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/", body)
        except BodyTooLarge:
            answer = Answer(413, {"ok": False, "action": "too_large"})
        except ValueError:  # a malformed chunked body
            answer = Answer(400, {"ok": False, "action": "bad_body"})
        payload = answer.encoded()
        start_response(
            status_line(answer.status),
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]
