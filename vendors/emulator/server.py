"""A RunningHub-compatible HTTP server on loopback: for the demo, the tests and local runs.

::

    with RunningHubEmulator(EmulatorConfig(job_s=0.2)) as emu:
        client = RunningHubClient(emu.base_url, emu.config.api_key)
        ...
        emu.tasks   # what was submitted, with its inputs and state

``serve_forever(config)`` runs one in the foreground (``python -m vendors.emulator --port 8188``), logging
one JSON line per request (never the api key).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from relay_core import logs
from scf_relay.loopback import LoopbackHTTPServer, LoopbackServer
from vendors.emulator.api import UPLOAD_PATH, EmulatorApi
from vendors.emulator.config import EmulatorConfig
from vendors.emulator.tasks import EmulatedTask, TaskBook, TaskState
from vendors.emulator.wire import BodyTooLarge, Reply, envelope, read_body

log = logs.get("vendor.emulator")

_JSON_BODY_LIMIT = 1024 * 1024
_MULTIPART_SLACK = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackHTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms per answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        started = time.monotonic()
        path = urlsplit(self.path).path
        is_upload = path == UPLOAD_PATH
        limit = self.server.app.api.config.max_upload_bytes + _MULTIPART_SLACK if is_upload else _JSON_BODY_LIMIT
        try:
            body = read_body(self.rfile, self.headers, limit)
        except BodyTooLarge:
            too_large = envelope(809, "APIKEY_FILE_SIZE_EXCEEDED")
            reply = too_large if is_upload else envelope(301, "PARAMS_INVALID")
        except ValueError:  # malformed chunk sizes
            reply = envelope(301, "PARAMS_INVALID")
        else:
            reply = self.server.app.api.post(path, self.headers, body)
        self._send(reply, started)

    def do_GET(self) -> None:  # noqa: N802
        started = time.monotonic()
        self._send(self.server.app.api.get(urlsplit(self.path).path), started)

    def _send(self, reply: Reply, started: float) -> None:
        emulator: RunningHubEmulator = self.server.app
        emulator.record_request(self.command, urlsplit(self.path).path, reply.status)
        delay_s = emulator.config.delay_s
        if delay_s > 0:
            emulator.stopping.wait(delay_s)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            log.info("client went away before the answer", extra={"path": urlsplit(self.path).path})
            return
        log.info(
            "request",
            extra={
                "method": self.command,
                "path": urlsplit(self.path).path,
                "status": reply.status,
                "code": reply.code,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence http.server's stderr lines
        pass


class RunningHubEmulator(LoopbackServer):
    """The emulator: ``start()`` binds and serves in a thread; ``stop()`` closes everything."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        super().__init__(_Handler, host=self.config.host, port=self.config.port, name="runninghub-emulator")
        self.book = TaskBook(seed=self.config.seed)
        self.api: EmulatorApi | None = None
        self.stopping = threading.Event()  # set on stop: delayed answers go out at once
        self._requests: list[tuple[str, str, int]] = []  # (method, path, HTTP status) in arrival order
        self._requests_lock = threading.Lock()

    def _prepare(self, httpd: ThreadingHTTPServer) -> None:
        super()._prepare(httpd)
        self.stopping.clear()
        self.api = EmulatorApi(self.config, self.book, self.base_url)
        with self._requests_lock:
            self._requests = []

    def stop(self) -> None:
        self.stopping.set()
        super().stop()

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
    """Run an emulator in the foreground until Ctrl-C, with JSON request logs on stderr."""
    logs.setup()
    logs.register_secret(config.api_key)
    emulator = RunningHubEmulator(config).start()
    log.info(
        "runninghub emulator listening", extra={"base_url": emulator.base_url, "targets": sorted(config.targets or {})}
    )
    try:
        emulator.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


_KNOBS = (
    ("host", str, "address to bind"),
    ("port", int, "port to bind (0: any free port)"),
    ("api_key", str, "the only accepted key"),
    ("job_s", float, "seconds a task runs"),
    ("queue_s", float, "seconds a task is queued first"),
    ("concurrency", int, "unfinished tasks allowed at once (more: 421)"),
    ("fail_rate", float, "share of tasks that fail (805)"),
    ("http_5xx_rate", float, "share of requests answered 502"),
    ("never_finish_rate", float, "share of tasks that never finish"),
    ("block_rate", float, "share of tasks whose output carries the moderation marker"),
    ("garbage_rate", float, "share of answers that are not JSON"),
    ("balance", int, "coins (0: 812 on submit)"),
    ("seed", int, "seed of ids, outcomes and files"),
    ("delay_s", float, "seconds every answer waits"),
    ("max_upload_bytes", int, "largest upload accepted (more: 809)"),
)


def parse_args(argv: list[str] | None) -> EmulatorConfig:
    parser = argparse.ArgumentParser(prog="python -m vendors.emulator", description="RunningHub emulator")
    defaults = EmulatorConfig(targets={})
    for name, kind, help_text in _KNOBS:
        default = getattr(defaults, name)
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=default, help=f"{help_text} (default: {default})"
        )
    args = parser.parse_args(argv)
    return EmulatorConfig(**{name: getattr(args, name) for name, _, _ in _KNOBS})


def main(argv: list[str] | None = None) -> int:
    serve_forever(parse_args(argv))
    return 0
