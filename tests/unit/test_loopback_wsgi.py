"""LoopbackWsgiServer and its request helpers: OS-chosen port, start/stop/restart, a busy port, quiet logs,
cut connections on stop; bodies sized or chunked, multipart form data; the CLI's one line for a busy port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from consumer.callback import PATH, sign
from scf_relay.demo.receiver import MAX_BODY_BYTES, ReportReceiver
from vendors.emulator.serving import (
    BodyTooLarge,
    LoopbackWsgiServer,
    PortInUse,
    read_body,
    request_headers,
    status_line,
)
from vendors.emulator.wire import parse_multipart

CLI = [sys.executable, "-m", "scf_relay.cli.app"]


class Greeter(LoopbackWsgiServer):
    """A server that is its own WSGI app: answers ``GET /anything`` with its ``greeting``."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(port=port, name="greeter")
        self.greeting = "hello"

    def __call__(self, environ, start_response):
        body = f"{self.greeting} {environ['PATH_INFO']}".encode()
        start_response("200 OK", [("content-length", str(len(body)))])
        return [body]


def echo(environ, start_response):
    """Answers what it read: the body (under a 1000-byte limit) and the headers it was given."""
    try:
        body = read_body(environ, limit_bytes=1000)
        status = 200
    except BodyTooLarge:
        body, status = b"too large", 413
    except ValueError:
        body, status = b"malformed", 400
    headers = request_headers(environ)
    start_response(
        status_line(status), [("x-saw-token", headers.get("X-Token") or ""), ("content-length", str(len(body)))]
    )
    return [body]


def raw_request(address: tuple[str, int], request: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.fixture
def busy_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


# -- lifetime ---------------------------------------------------------------------------------------------


def test_port_zero_gets_an_os_chosen_port_and_the_subclass_is_the_app():
    with Greeter() as server:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
        assert server.base_url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{server.base_url}/x", timeout=5).text == "hello /x"
        assert any(t.name == "greeter" and t.daemon for t in threading.enumerate())


def test_a_plain_callable_is_served_too_and_a_server_needs_an_app():
    with LoopbackWsgiServer(echo) as server:
        answer = httpx.post(f"{server.base_url}/", content=b"abc", headers={"x-token": "t1"}, timeout=5)
    assert (answer.status_code, answer.content, answer.headers["x-saw-token"]) == (200, b"abc", "t1")
    with pytest.raises(TypeError):
        LoopbackWsgiServer()


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


def test_stop_cuts_a_connection_still_being_answered():
    release = threading.Event()

    def slow(environ, start_response):
        release.wait(10)
        start_response("200 OK", [("content-length", "4")])
        return [b"late"]

    server = LoopbackWsgiServer(slow).start()
    outcome: list[object] = []
    client = threading.Thread(target=lambda: outcome.append(_get_or_error(f"{server.base_url}/")))
    client.start()
    time.sleep(0.2)  # the request is in the app
    began = time.monotonic()
    server.stop()
    client.join(5)
    release.set()
    assert isinstance(outcome[0], httpx.TransportError) and time.monotonic() - began < 5


def _get_or_error(url: str) -> object:
    try:
        return httpx.get(url, timeout=10)
    except httpx.TransportError as exc:
        return exc


def test_context_manager_stops_on_error():
    server = Greeter()
    with pytest.raises(ValueError), server:
        raise ValueError("boom")
    assert not server.running


def test_a_busy_port_is_one_clear_error_and_the_server_can_start_later(busy_port):
    server = Greeter(port=busy_port)
    with pytest.raises(PortInUse) as caught:
        server.start()
    assert str(caught.value) == f"127.0.0.1:{busy_port}: address already in use"
    assert isinstance(caught.value, OSError) and not server.running


def test_requests_leave_no_lines_on_stderr(capfd):
    with Greeter() as server:
        for n in range(3):
            httpx.get(f"{server.base_url}/{n}", timeout=5)
        httpx.post(f"{server.base_url}/", timeout=5)
    assert capfd.readouterr().err == ""


# -- request helpers --------------------------------------------------------------------------------------


def test_a_chunked_body_is_decoded_with_extensions_and_trailers():
    with LoopbackWsgiServer(echo) as server:
        answer = raw_request(
            server.address,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Token: t2\r\n\r\n"
            b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: y\r\n\r\n",
        )
        malformed = raw_request(
            server.address, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
        )
    assert answer.startswith(b"HTTP/1.0 200 OK") and answer.endswith(b"\r\n\r\nhello world")
    assert b"x-saw-token: t2" in answer
    assert malformed.startswith(b"HTTP/1.0 400") and malformed.endswith(b"malformed")


def test_an_oversized_body_is_drained_and_refused_sized_or_chunked():
    with LoopbackWsgiServer(echo) as server, httpx.Client(timeout=5) as client:
        sized = client.post(f"{server.base_url}/", content=b"x" * 5000)
        chunked = client.post(f"{server.base_url}/", content=iter([b"x" * 600, b"y" * 600]))
        fits = client.post(f"{server.base_url}/", content=iter([b"x" * 500, b"y" * 500]))
    assert (sized.status_code, sized.content) == (413, b"too large")
    assert (chunked.status_code, chunked.content) == (413, b"too large")
    assert (fits.status_code, fits.content) == (200, b"x" * 500 + b"y" * 500)


def test_multipart_parts_come_back_byte_exact_with_their_file_names():
    content = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n\r\n"
    request = httpx.Request(
        "POST",
        "http://x/",
        data={"apiKey": "k", "fileType": "image"},
        files={"file": ("鞋子 1.jpg", content, "image/jpeg")},
    )
    parts = parse_multipart(request.headers["content-type"], request.read())
    assert parts["apiKey"].content == b"k" and parts["apiKey"].filename is None
    assert parts["fileType"].content == b"image"
    assert (parts["file"].filename, parts["file"].content) == ("鞋子 1.jpg", content)
    with pytest.raises(ValueError):
        parse_multipart("application/json", b"{}")
    with pytest.raises(ValueError):
        parse_multipart("multipart/form-data", b"no boundary")


# -- the report receiver, a WSGI app on the helper ---------------------------------------------------------


def test_the_report_receiver_keeps_signed_reports_and_refuses_the_rest():
    body = b'{"taskId":"t-1","status":"done","resultUrls":[]}'
    stamp = int(time.time())
    signed = {
        "X-Relay-Timestamp": str(stamp),
        "X-Relay-Delivery": "d-1",
        "X-Relay-Signature": sign("s3cret", stamp, "d-1", body),
    }
    with ReportReceiver("s3cret") as rx, httpx.Client(timeout=5) as client:
        url = f"{rx.base_url}{PATH}"
        ok = client.post(url, content=body, headers=signed)
        chunked = client.post(url, content=iter([body[:10], body[10:]]), headers=signed)
        forged = client.post(url, content=body, headers={**signed, "X-Relay-Signature": "sha256=00"})
        too_big = client.post(url, content=b"x" * (MAX_BODY_BYTES + 1), headers=signed)
        too_big_chunked = client.post(url, content=iter([b"x" * MAX_BODY_BYTES, b"x"]), headers=signed)
        elsewhere = client.post(f"{rx.base_url}/other", content=body, headers=signed)
    assert (ok.status_code, ok.json(), chunked.status_code, forged.status_code) == (200, {"ok": True}, 200, 401)
    assert (too_big.status_code, too_big_chunked.status_code, elsewhere.status_code) == (413, 413, 404)
    [first, second] = rx.by_task()["t-1"]
    assert (first.delivery, first.raw, first.verified, second.raw) == ("d-1", body, True, body)
    assert rx.refused == 1


# -- the commands that serve on a fixed port --------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["emulator", "runninghub"], ["receiver", "--secret", "s3cret"], ["receiver", "--secret", "s", "--json"]]
)
def test_a_busy_port_is_one_line_and_a_non_zero_exit(busy_port, command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    done = subprocess.run(
        [*CLI, *command, "--port", str(busy_port)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 1
    said = (done.stdout + done.stderr).strip()
    assert f"{busy_port}: address already in use" in said and "Traceback" not in said
    assert len(done.stderr.strip().splitlines()) <= 1
