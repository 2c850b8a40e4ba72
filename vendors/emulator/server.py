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

from scf_relay import logs
from vendors.emulator.api import UPLOAD_PATH, EmulatorApi
from vendors.emulator.config import EmulatorConfig
from vendors.emulator.tasks import EmulatedTask, TaskBook, TaskState
from vendors.emulator.wire import BodyTooLarge, Reply, envelope, read_body

log = logs.get("vendor.emulator")

_JSON_BODY_LIMIT = 1024 * 1024
_MULTIPART_SLACK = 1024 * 1024


class _Server(ThreadingHTTPServer):
    """Tracks open connections so that :meth:`close_connections` can cut idle keep-alive ones on stop."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], api_factory) -> None:
        super().__init__(address, _Handler)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, HTTP status) in arrival order
        self.requests_lock = threading.Lock()
        self.api: EmulatorApi = api_factory(self)

    def process_request(self, request, client_address) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms per answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        started = time.monotonic()
        path = urlsplit(self.path).path
        is_upload = path == UPLOAD_PATH
        limit = self.server.api.config.max_upload_bytes + _MULTIPART_SLACK if is_upload else _JSON_BODY_LIMIT
        try:
            body = read_body(self.rfile, self.headers, limit)
        except BodyTooLarge:
            too_large = envelope(809, "APIKEY_FILE_SIZE_EXCEEDED")
            reply = too_large if is_upload else envelope(301, "PARAMS_INVALID")
        except ValueError:  # malformed chunk sizes
            reply = envelope(301, "PARAMS_INVALID")
        else:
            reply = self.server.api.post(path, self.headers, body)
        self._send(reply, started)

    def do_GET(self) -> None:  # noqa: N802
        started = time.monotonic()
        self._send(self.server.api.get(urlsplit(self.path).path), started)

    def _send(self, reply: Reply, started: float) -> None:
        with self.server.requests_lock:
            self.server.requests.append((self.command, urlsplit(self.path).path, reply.status))
        delay_s = self.server.api.config.delay_s
        if delay_s > 0:
            self.server.stopping.wait(delay_s)
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


class RunningHubEmulator:
    """The emulator: ``start()`` binds and serves in a thread; ``stop()`` closes everything."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.book = TaskBook(seed=self.config.seed)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped_requests: list[tuple[str, str, int]] = []

    def start(self) -> RunningHubEmulator:
        if self._server is not None:
            return self
        self._server = _Server(
            (self.config.host, self.config.port),
            lambda server: EmulatorApi(self.config, self.book, _base_url(server)),
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="runninghub-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.api.base_url

    @property
    def tasks(self) -> list[EmulatedTask]:
        """Every created task, oldest first (snapshots: ``state_at(clock())`` gives the state)."""
        return self.book.all()

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """``(method, path, HTTP status)`` of every request answered so far (or being delayed)."""
        if self._server is None:
            return list(self._stopped_requests)
        with self._server.requests_lock:
            return list(self._server.requests)

    def task(self, task_id: str) -> EmulatedTask | None:
        return self.book.get(task_id)

    def state_of(self, task_id: str) -> TaskState | None:
        """The state of a task now, on the configured clock; ``None`` for an unknown id."""
        task = self.book.get(task_id)
        return None if task is None else task.state_at(self.config.clock())

    def wait(self) -> None:
        """Block until :meth:`stop` (or Ctrl-C in the calling thread)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        self._stopped_requests = server.requests
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RunningHubEmulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _base_url(server: _Server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


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
