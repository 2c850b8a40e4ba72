"""LoopbackServer: OS-chosen port, start/stop/restart, idempotent stop, context manager, keep-alive cut on stop."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from scf_relay.loopback import LoopbackServer


class Echo(BaseHTTPRequestHandler):
    """Answers ``GET /anything`` with the owner's ``greeting`` (reached as ``self.server.app``)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        body = f"{self.server.app.greeting} {self.path}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Greeter(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(Echo, name="greeter")
        self.greeting = "hello"


def test_port_zero_gets_an_os_chosen_port_and_handlers_reach_the_owner():
    with Greeter() as server:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
        assert server.base_url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{server.base_url}/x", timeout=5).text == "hello /x"
        assert any(t.name == "greeter" and t.daemon for t in threading.enumerate())


def test_stop_is_idempotent_and_nothing_answers_afterwards():
    server = Greeter().start()
    url = server.base_url
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)
    with pytest.raises(RuntimeError, match="greeter is not started"):
        server.base_url  # noqa: B018 - the property raises


def test_start_while_running_is_a_no_op_and_restart_serves_again_with_the_same_owner():
    server = Greeter()
    assert server.start() is server
    first = server.address
    assert server.start().address == first
    server.stop()
    server.greeting = "again"
    with server:
        assert httpx.get(f"{server.base_url}/y", timeout=5).text == "again /y"
    assert not server.running


def test_stop_cuts_an_idle_keep_alive_connection():
    with Greeter() as server:
        connection = http.client.HTTPConnection(*server.address, timeout=2)
        connection.request("GET", "/1")
        assert connection.getresponse().read() == b"hello /1"
    # the same socket, still open on our side: the server end was shut down by stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        connection.request("GET", "/2")
        connection.getresponse().read()
    connection.close()


def test_context_manager_stops_on_error():
    server = Greeter()
    with pytest.raises(ValueError), server:
        raise ValueError("boom")
    assert not server.running
