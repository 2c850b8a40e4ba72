"""Result downloads: https only, allowed hosts, no private addresses, size and type checked while streaming."""

from __future__ import annotations

import hashlib
import os

import httpcore
import pytest

from consumer.fetch import FetchFailed, FetchRejected, ResultFetcher
from consumer.fetch_net import READ_BYTES
from objectstore.local import LocalStore
from vendors.emulator.media import make_jpeg, make_png
from vendors.emulator.serving import LoopbackWsgiServer, status_line

ROUTES: dict[str, tuple[int, dict, bytes]] = {}


def routes_app(environ, start_response):
    status, headers, body = ROUTES.get(environ["PATH_INFO"], (404, {}, b""))
    start_response(status_line(status), [*headers.items(), ("content-length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def server():
    with LoopbackWsgiServer(routes_app, name="fetch-routes") as routes:
        yield routes.base_url


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path, "b")


def fetch(url, store, *, allow_private=True, max_bytes=1 << 20, types=("jpeg",), hosts=()):
    return ResultFetcher(list(hosts), allow_private=allow_private).copy_to_store(
        url, store, "b", "k/out.jpg", max_bytes=max_bytes, types=types
    )


def test_streams_a_good_result_into_the_store(server, store):
    ROUTES["/ok.jpg"] = (200, {}, make_jpeg(3))
    info, kind = fetch(f"{server}/ok.jpg", store)
    assert kind == "jpeg" and info.size == len(make_jpeg(3))
    assert store.get_bytes("b", "k/out.jpg") == make_jpeg(3)


def test_a_large_result_is_read_a_mib_at_a_time_and_stored_whole(server, store, monkeypatch):
    """Past the md5's in-line bytes (its helper thread takes over) and in reads of up to 1 MiB."""
    body = make_jpeg(3) + os.urandom(20 * 1024 * 1024)
    ROUTES["/big.jpg"] = (200, {}, body)
    asked: list[int] = []
    connect_tcp = httpcore.SyncBackend.connect_tcp

    class Recording(httpcore.NetworkStream):
        def __init__(self, stream: httpcore.NetworkStream) -> None:
            self._stream = stream

        def read(self, max_bytes, timeout=None):
            asked.append(max_bytes)
            return self._stream.read(max_bytes, timeout)

        def write(self, buffer, timeout=None):
            self._stream.write(buffer, timeout)

        def close(self):
            self._stream.close()

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", lambda *a, **k: Recording(connect_tcp(*a, **k)))
    info, _ = fetch(f"{server}/big.jpg", store, max_bytes=len(body))
    assert asked and set(asked) == {READ_BYTES}
    assert (info.size, info.etag) == (len(body), hashlib.md5(body).hexdigest())
    assert store.head("b", "k/out.jpg").etag == info.etag
    assert store.get_bytes("b", "k/out.jpg") == body


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://cdn.runninghub.cn/x.jpg", "not https"),
        ("https://evil.example.com/x.jpg", "not in RELAY_RESULT_HOSTS"),
        ("ftp://runninghub.cn/x.jpg", "not https"),
        ("https://127.0.0.1/x.jpg", "not in RELAY_RESULT_HOSTS"),
    ],
)
def test_refuses_urls_without_the_opt_in(url, why, store):
    fetcher = ResultFetcher(["runninghub.cn", ".runninghub.cn"], allow_private=False)
    with pytest.raises(FetchRejected, match=why):
        fetcher.check_url(url)


def test_link_local_is_refused_even_with_the_opt_in():
    # checked before any connection: nothing is sent to the metadata address
    with pytest.raises(FetchRejected, match="not in RELAY_RESULT_HOSTS"):
        ResultFetcher([], allow_private=True).check_url("http://169.254.169.254/latest/meta-data")
    with pytest.raises(FetchRejected, match="never fetched"):
        ResultFetcher(["169.254.169.254"], allow_private=True).check_url("http://169.254.169.254/x")


def test_refuses_an_allowed_name_that_resolves_to_a_private_address():
    fetcher = ResultFetcher(["localhost"], allow_private=False)
    with pytest.raises(FetchRejected, match="non-public address"):
        fetcher.check_url("https://localhost/x.jpg")


def test_a_redirect_to_a_refused_host_is_refused(server, store):
    ROUTES["/hop"] = (302, {"location": "http://metadata.invalid/latest/meta-data"}, b"")
    with pytest.raises(FetchRejected, match="not in RELAY_RESULT_HOSTS"):
        ResultFetcher(["127.0.0.1"], allow_private=True).copy_to_store(
            f"{server}/hop", store, "b", "k/out.jpg", max_bytes=100, types=("jpeg",)
        )


def test_too_large_and_wrong_type_are_rejected_and_leave_nothing(server, store):
    ROUTES["/big.jpg"] = (200, {}, make_jpeg(1) + b"\0" * 5000)
    with pytest.raises(FetchRejected, match="over the limit"):
        fetch(f"{server}/big.jpg", store, max_bytes=1000)
    ROUTES["/png-named-jpg.jpg"] = (200, {}, make_png(4, 4, seed=1))
    with pytest.raises(FetchRejected, match="png"):
        fetch(f"{server}/png-named-jpg.jpg", store)
    ROUTES["/html"] = (200, {}, b"<html>login page</html>")
    with pytest.raises(FetchRejected, match="unknown type"):
        fetch(f"{server}/html", store)
    assert list(store.list("b", "")) == []


def test_server_errors_are_retryable_and_client_errors_are_not(server, store):
    ROUTES["/503"] = (503, {}, b"")
    with pytest.raises(FetchFailed):
        fetch(f"{server}/503", store)
    with pytest.raises(FetchRejected, match="404"):
        fetch(f"{server}/missing", store)
    with pytest.raises(FetchFailed):
        fetch("http://127.0.0.1:9/refused.jpg", store)


def test_a_session_vets_each_host_once_for_many_downloads(server, store):
    import ipaddress

    ROUTES["/a.jpg"] = (200, {}, make_jpeg(4))
    ROUTES["/b.jpg"] = (200, {}, make_jpeg(5))
    asked: list[str] = []

    def resolve(host, port):
        asked.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    port = server.rsplit(":", 1)[1]
    fetcher = ResultFetcher([], allow_private=True, resolve=resolve)
    with fetcher.session(30) as session:
        for name in ("a", "b"):
            info, _ = session.copy_to_store(
                f"http://localhost:{port}/{name}.jpg", store, "b", f"k/{name}.jpg", max_bytes=1 << 20, types=("jpeg",)
            )
            assert store.get_bytes("b", f"k/{name}.jpg") == make_jpeg(4 if name == "a" else 5)
    assert asked == ["localhost"]  # resolved and checked once; both downloads went to that address


def test_urls_of_one_authority_are_parsed_alike_and_a_refused_one_is_refused_every_time():
    """The authority of a URL (host, port, address, Host header) is judged once per authority and remembered; a
    refusal is not remembered, so every URL naming that authority is refused again."""
    from consumer.fetch_guard import parse_result_url

    first = parse_result_url("https://cdn.example.com:8443/a/1.png", allow_http=False)
    second = parse_result_url("https://cdn.example.com:8443/b/2.png?x=1", allow_http=False)
    assert (first.host, first.port, first.host_header) == ("cdn.example.com", 8443, b"cdn.example.com:8443")
    assert (second.host, second.port, second.target) == ("cdn.example.com", 8443, b"/b/2.png?x=1")
    for _ in range(3):
        with pytest.raises(FetchRejected, match="credentials"):
            parse_result_url("https://user:pw@cdn.example.com/a.png", allow_http=False)
    assert parse_result_url("http://[::1]:80/x", allow_http=True).host_header == b"[::1]"
