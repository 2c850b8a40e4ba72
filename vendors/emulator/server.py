"""A RunningHub-compatible HTTP server on loopback: for the demo, the tests and local runs.

::

    with RunningHubEmulator(EmulatorConfig(job_s=0.2)) as emu:
        client = RunningHubClient(emu.base_url, emu.config.api_key)
        ...
        emu.tasks   # what was submitted, with its inputs and state

The emulator is a WSGI application (``emu(environ, start_response)``) served by
:class:`~vendors.emulator.serving.LoopbackWsgiServer`. ``serve_forever(config)`` runs one in the foreground
(what ``scf-relay emulator runninghub`` does), logging one JSON line per request (never the api key).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from relay_core import logs
from vendors.emulator.api import UPLOAD_PATH, EmulatorApi
from vendors.emulator.config import EmulatorConfig
from vendors.emulator.serving import LoopbackWsgiServer, status_line
from vendors.emulator.tasks import EmulatedTask, TaskBook, TaskState
from vendors.emulator.webhooks import WebhookCall, WebhookCaller
from vendors.emulator.wire import Reply, envelope
from vendors.emulator.wsgi_request import BodyTooLarge, read_body, request_headers

log = logs.get("vendor.emulator")

_JSON_BODY_LIMIT = 1024 * 1024
_MULTIPART_SLACK = 1024 * 1024
WEBHOOK_TICK_S = 0.005  # how often (real time) the webhook thread looks for due webhooks
_NOT_ALLOWED = Reply(501, b'{"code": 501, "msg": "METHOD_NOT_SUPPORTED"}')


class RunningHubEmulator(LoopbackWsgiServer):
    """The emulator: ``start()`` binds and serves in a thread; ``stop()`` closes everything."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        super().__init__(host=self.config.host, port=self.config.port, name="runninghub-emulator")
        self.book = TaskBook(seed=self.config.seed)
        # file URLs name the configured address until start() knows the bound one
        self.api = EmulatorApi(self.config, self.book, f"http://{self.config.host}:{self.config.port}")
        self.stopping = threading.Event()  # set on stop: delayed answers go out at once
        self._requests: list[tuple[str, str, int]] = []  # (method, path, HTTP status) in arrival order
        self._requests_lock = threading.Lock()
        self.webhooks = WebhookCaller(self.api)
        self._webhook_thread: threading.Thread | None = None

    def _bound(self) -> None:
        self.stopping.clear()
        self.api.base_url = self.base_url
        with self._requests_lock:
            self._requests = []
        self._webhook_thread = threading.Thread(target=self._call_webhooks, name="emulator-webhooks", daemon=True)
        self._webhook_thread.start()

    def stop(self) -> None:
        self.stopping.set()
        super().stop()
        if self._webhook_thread is not None:
            self._webhook_thread.join(timeout=5)
            self._webhook_thread = None

    def _call_webhooks(self) -> None:
        while not self.stopping.wait(WEBHOOK_TICK_S):
            try:
                self.webhooks.fire_due()
            except Exception:  # noqa: BLE001 - the emulator keeps serving whatever one webhook does
                log.exception("webhook thread")

    @property
    def webhook_calls(self) -> list[WebhookCall]:
        """Every webhook request made so far, in order."""
        return list(self.webhooks.calls)

    # -- the WSGI application ------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
        if method == "POST":
            reply = self._post(path, environ)
        elif method == "GET":
            reply = self.api.get(path)
        else:
            reply = _NOT_ALLOWED
        self.record_request(method, path, reply.status)
        self._delay()
        start_response(
            status_line(reply.status),
            [("Content-Type", reply.content_type), ("Content-Length", str(len(reply.body)))],
        )
        log.info(
            "request",
            extra={
                "method": method,
                "path": path,
                "status": reply.status,
                "code": reply.code,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return [reply.body]

    def _post(self, path: str, environ: dict[str, Any]) -> Reply:
        is_upload = path == UPLOAD_PATH
        limit = self.config.max_upload_bytes + _MULTIPART_SLACK if is_upload else _JSON_BODY_LIMIT
        try:
            body = read_body(environ, limit)
        except BodyTooLarge:
            return envelope(809, "APIKEY_FILE_SIZE_EXCEEDED") if is_upload else envelope(301, "PARAMS_INVALID")
        except ValueError:  # a malformed chunked body
            return envelope(301, "PARAMS_INVALID")
        return self.api.post(path, request_headers(environ), body)

    def _delay(self) -> None:
        """Hold the answer ``config.delay_s`` (after the work): on ``config.sleep`` when given, else in real
        time, cut short by :meth:`stop`."""
        delay_s = self.config.delay_s
        if delay_s <= 0:
            return
        if self.config.sleep is not None:
            self.config.sleep(delay_s)
        else:
            self.stopping.wait(delay_s)

    # -- what tests look at ----------------------------------------------------------------------
    @property
    def tasks(self) -> list[EmulatedTask]:
        """Every created task, oldest first (snapshots: ``state_at(clock())`` gives the state)."""
        return self.book.all()

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """``(method, path, HTTP status)`` of every request answered since the last start (or being delayed)."""
        with self._requests_lock:
            return list(self._requests)

    def record_request(self, method: str, path: str, status: int) -> None:
        with self._requests_lock:
            self._requests.append((method, path, status))

    def task(self, task_id: str) -> EmulatedTask | None:
        return self.book.get(task_id)

    def state_of(self, task_id: str) -> TaskState | None:
        """The state of a task now, on the configured clock; ``None`` for an unknown id."""
        task = self.book.get(task_id)
        return None if task is None else task.state_at(self.config.clock())


def serve_forever(config: EmulatorConfig) -> None:
    """Run an emulator in the foreground until Ctrl-C, with JSON request logs on stderr.

    Raises :class:`~vendors.emulator.serving.PortInUse` when the port is taken (before logging anything).
    """
    logs.setup()
    logs.register_secret(config.api_key)
    emulator = RunningHubEmulator(config).start()
    log.info(
        "runninghub emulator listening",
        extra={"base_url": emulator.base_url, "targets": sorted(config.targets or {}), "knobs": _knobs(config)},
    )
    try:
        emulator.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


def _knobs(config: EmulatorConfig) -> dict[str, Any]:
    """The behaviour knobs worth a line in the log (not the key, the address, the targets or callables)."""
    skipped = {"api_key", "host", "port", "targets", "clock", "sleep"}
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name not in skipped}
