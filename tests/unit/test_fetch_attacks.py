"""Result downloads attacked the way a hostile vendor or DNS server would: real sockets on loopback, real httpcore.

Each test in sections 1-5 is one breach a red team found: a slow host outliving the hop's lease, a compression
bomb, the metadata address written as IPv4-in-IPv6, DNS rebinding between the check and the connection, and
malformed URLs that were retried instead of failing the task. Sections 6 and 7 pin what the wire may carry
(truncated and chunked bodies, header casing, cookies, redirects) and the connections kept between downloads.
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import httpcore
import pytest

from consumer.fetch import FetchFailed, FetchRejected, ResultFetcher
from objectstore.local import LocalStore
from tests.raw_http import RawHttpServer
from vendors.emulator.media import make_jpeg

Route = Callable[[BaseHTTPRequestHandler], None]
MIB = 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    """Answers from the owner's ``routes`` (path -> function writing the response) and records each request."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        app = self.server.app  # type: ignore[attr-defined]
        app.seen.append((self.path, dict(self.headers.items())))
        app.peers.append(self.client_address[1])
        route = app.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the fetcher hung up on us, as it should

    def log_message(self, *args: object) -> None:
        pass


class RouteServer(RawHttpServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Handler, host=host, port=port, name="fetch-attacks")
        self.routes: dict[str, Route] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.peers: list[int] = []  # the client's port of each request: one per connection
        self.stop_dripping = threading.Event()

    def stop(self) -> None:
        self.stop_dripping.set()
        super().stop()


def body(data: bytes, **headers: str) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return route


@pytest.fixture
def server():
    with RouteServer() as routes:
        yield routes


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store", "b")


def fetch(url: str, store: LocalStore, fetcher: ResultFetcher | None = None, **kwargs):
    fetcher = fetcher or ResultFetcher([], allow_private=True)
    return fetcher.copy_to_store(url, store, "b", "k/out.jpg", max_bytes=20 * MIB, types=("jpeg",), **kwargs)


# -- 1. a slow host cannot outlive the download's deadline --------------------------------------
def test_a_slow_host_cannot_outlive_the_download_deadline(server, store):
    """One byte every 0.1 s: each read is quick, so only an overall deadline ends it."""
    good = make_jpeg(1)

    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(good) + 10_000))
        handler.end_headers()
        handler.wfile.write(good)
        handler.wfile.flush()
        while not server.stop_dripping.wait(0.1):
            handler.wfile.write(b"\0")
            handler.wfile.flush()

    server.routes["/drip.jpg"] = drip
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="longer than 2 s"):
        fetch(f"{server.base_url}/drip.jpg", store, ResultFetcher([], allow_private=True, timeout_s=60), deadline_s=1.5)
    assert time.monotonic() - started < 3.0
    assert list(store.list("b", "")) == []


@pytest.mark.parametrize("stall_at", ["headers", "body"])
def test_a_stalled_host_is_cut_at_the_deadline_not_the_read_timeout(server, store, stall_at):
    def stall(handler: BaseHTTPRequestHandler) -> None:
        if stall_at == "body":
            handler.send_response(200)
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            handler.wfile.write(make_jpeg(1)[:100])
        else:
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Le")
        handler.wfile.flush()
        server.stop_dripping.wait(30)

    server.routes["/stall.jpg"] = stall
    fetcher = ResultFetcher([], allow_private=True, timeout_s=60, deadline_s=1.0)  # the fetcher's default
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="longer than 1 s"):
        fetch(f"{server.base_url}/stall.jpg", store, fetcher)
    assert time.monotonic() - started < 2.5


# -- 2. compression bombs ------------------------------------------------------------------
def _gzip_bomb(size: int) -> bytes:
    """gzip inside gzip: a JPEG header, then ``size`` zero bytes (so the type check alone does not stop it)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    zeros = bytes(MIB)
    inner = b"".join([packer.compress(make_jpeg(1)), *(packer.compress(zeros) for _ in range(size // MIB))])
    return gzip.compress(inner + packer.flush(), 9)


def test_a_compression_bomb_is_refused_in_flat_memory(server, store):
    """A few KB that inflate to 64 MiB: refused without inflating anything, whatever the size limit."""
    bomb = _gzip_bomb(64 * MIB)
    assert len(bomb) < 20_000
    server.routes["/bomb.jpg"] = body(bomb, Content_Type="image/jpeg", Content_Encoding="gzip, gzip")
    tracemalloc.start()
    try:
        with pytest.raises(FetchRejected) as refused:
            fetch(f"{server.base_url}/bomb.jpg", store)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB while refusing a {len(bomb)}-byte bomb"
    assert "Content-Encoding" in str(refused.value)
    assert server.seen[-1][1].get("Accept-Encoding") == "identity"
    assert list(store.list("b", "")) == []


def test_any_content_encoding_is_refused(server, store):
    server.routes["/gz.jpg"] = body(gzip.compress(make_jpeg(1)), Content_Encoding="gzip")
    with pytest.raises(FetchRejected, match="only identity"):
        fetch(f"{server.base_url}/gz.jpg", store)
    server.routes["/plain.jpg"] = body(make_jpeg(1), Content_Encoding="identity")
    assert fetch(f"{server.base_url}/plain.jpg", store)[1] == "jpeg"


# -- 3. link-local and metadata addresses in IPv6 clothing -----------------------------------
METADATA_IN_DISGUISE = [
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:a9fe:a9fe",  # the same, in hex
    "::169.254.169.254",  # IPv4-compatible
    "::ffff:0:169.254.169.254",  # SIIT
    "64:ff9b::169.254.169.254",  # NAT64
    "2002:a9fe:a9fe::1",  # 6to4
    "::ffff:100.100.100.200",  # Alibaba's metadata service
    "fd00:ec2::254",  # AWS's, over IPv6
    "fe80::1",  # IPv6 link-local
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]


@pytest.mark.parametrize("address", METADATA_IN_DISGUISE)
def test_metadata_addresses_in_ipv6_forms_are_refused_even_with_the_opt_in(address):
    with pytest.raises(FetchRejected):  # as a literal, not on the allow-list
        ResultFetcher([], allow_private=True).check_url(f"http://[{address}]/latest/meta-data")
    with pytest.raises(FetchRejected, match="never fetched"):  # as a literal someone put on the allow-list
        ResultFetcher([address], allow_private=True).check_url(f"http://[{address}]/latest/meta-data")


@pytest.mark.parametrize("address", METADATA_IN_DISGUISE)
def test_a_dns_answer_in_ipv6_form_is_unwrapped_before_the_check(address):
    fetcher = ResultFetcher(
        ["cdn.vendor.test"], allow_private=True, resolve=lambda host, port: [ipaddress.ip_address(address)]
    )
    with pytest.raises(FetchRejected, match="never fetched"):
        fetcher.check_url("http://cdn.vendor.test/x.jpg")


def redirect(location: str) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def test_a_redirect_to_ipv4_mapped_metadata_is_refused(server, store):
    server.routes["/hop"] = redirect("http://[::ffff:169.254.169.254]/latest/meta-data")
    fetcher = ResultFetcher(["127.0.0.1", "::ffff:169.254.169.254"], allow_private=True)
    with pytest.raises(FetchRejected, match="never fetched"):
        fetch(f"{server.base_url}/hop", store, fetcher)


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "10.1.2.3", "::ffff:10.1.2.3", "::1", "fd12::1"])
def test_loopback_and_private_addresses_stay_allowed_with_the_opt_in_only(address):
    host = f"[{address}]" if ":" in address else address
    ResultFetcher([], allow_private=True).check_url(f"http://{host}/x.jpg")
    public_only = ResultFetcher(["cdn.vendor.test"], resolve=lambda host, port: [ipaddress.ip_address(address)])
    with pytest.raises(FetchRejected, match="non-public"):
        public_only.check_url("https://cdn.vendor.test/x.jpg")


# -- 4. DNS rebinding ----------------------------------------------------------------------
class ScriptedDns:
    """A resolver whose answers change from one lookup to the next, as a hostile DNS server's would."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        self.lookups.append(host)
        answer = self.answers[min(len(self.lookups), len(self.answers)) - 1]
        return [ipaddress.ip_address(answer)]


def test_the_connection_goes_to_the_checked_address_not_to_a_second_answer(server, store):
    """The name first resolves to the good server, then to another one: the download must not reach it."""
    good, evil = make_jpeg(1), make_jpeg(2, marker=b"evil")
    server.routes["/r.jpg"] = body(good)
    port = server.address[1]
    with RouteServer(host="127.0.0.2", port=port) as rebound:
        rebound.routes["/r.jpg"] = body(evil)
        dns = ScriptedDns("127.0.0.1", "127.0.0.2")
        fetcher = ResultFetcher(["results.vendor.test"], allow_private=True, resolve=dns)
        fetch(f"http://results.vendor.test:{port}/r.jpg", store, fetcher)
        assert rebound.seen == []
    assert store.get_bytes("b", "k/out.jpg") == good
    assert dns.lookups == ["results.vendor.test"]  # one lookup, ours: the HTTP client resolved nothing itself
    assert server.seen[0][1]["Host"] == f"results.vendor.test:{port}"


def test_a_rebinding_answer_between_check_and_connection_is_never_used(server, store):
    """httpx never resolves names itself: a resolver that turns hostile after its first answer changes nothing."""
    server.routes["/r.jpg"] = body(make_jpeg(1))
    dns = ScriptedDns("127.0.0.1", "169.254.169.254")
    fetcher = ResultFetcher(["results.vendor.test"], allow_private=True, resolve=dns)
    info, kind = fetch(f"http://results.vendor.test:{server.address[1]}/r.jpg", store, fetcher)
    assert (kind, info.size) == ("jpeg", len(make_jpeg(1)))
    assert dns.lookups == ["results.vendor.test"]
    with pytest.raises(FetchRejected, match="never fetched"):  # the next download sees the new answer, checked
        fetch(f"http://results.vendor.test:{server.address[1]}/r.jpg", store, fetcher)


def _self_signed(host: str) -> tuple[bytes, bytes]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class TlsRouteServer(RouteServer):
    def __init__(self, cert_file: str, key_file: str) -> None:
        super().__init__()
        self.server_names: list[str | None] = []
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(cert_file, key_file)
        self._tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)  # type: ignore[assignment]

    def _prepare(self, httpd) -> None:
        super()._prepare(httpd)
        httpd.socket = self._tls.wrap_socket(httpd.socket, server_side=True)


def test_https_keeps_the_host_name_for_sni_and_the_certificate(tmp_path, store):
    host = "results.vendor.test"
    cert, key = _self_signed(host)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    trust = ssl.create_default_context(cadata=cert.decode())
    with TlsRouteServer(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")) as tls:
        tls.routes["/r.jpg"] = body(make_jpeg(1))
        port = tls.address[1]
        fetcher = ResultFetcher([host], allow_private=True, resolve=ScriptedDns("127.0.0.1"), ssl_context=trust)
        info, _ = fetch(f"https://{host}:{port}/r.jpg", store, fetcher)
        assert info.size == len(make_jpeg(1))
        assert tls.server_names == [host]
        assert tls.seen[0][1]["Host"] == f"{host}:{port}"
        wrong_name = ResultFetcher(
            ["other.vendor.test"], allow_private=True, resolve=ScriptedDns("127.0.0.1"), ssl_context=trust
        )
        with pytest.raises(FetchFailed):  # the certificate is checked against the name, not the address
            fetch(f"https://other.vendor.test:{port}/r.jpg", store, wrong_name)


# -- 5. malformed URLs fail the task at once --------------------------------------------------
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://h.vendor.test:99999/x.jpg", "malformed"),
        ("https://h.vendor.test:0/x.jpg", "port 0"),
        ("https://h.vendor.test:https/x.jpg", "malformed"),
        ("https://[::1/x.jpg", "malformed"),
        ("https://h.vendor.test/x\n.jpg", "control characters"),
        ("https://h.vendor.test/x\t.jpg", "control characters"),
        ("https://h.vendor.test/x .jpg", "control characters"),
        ("https://h.vendor.test\r\n/x.jpg", "control characters"),
        ("https://user:pw@h.vendor.test/x.jpg", "credentials"),
        ("https://evil.test\\.h.vendor.test/x.jpg", "not a host name"),
        ("https://[::1]h.vendor.test/x.jpg", "not a host name"),  # what follows the brackets is not a port
        ("https://[::1%25lo]/x.jpg", "not a host name"),  # an IPv6 zone
        ("https://127.1/x.jpg", "not a valid IP address"),  # a resolver reads it as 127.0.0.1
        ("https://\u212a.vendor.test/x.jpg", "not a host name"),  # KELVIN SIGN, lower-cased to k by Python
        ("https://h.vendor.test/x\ud800.jpg", "cannot be encoded"),
    ],
)
def test_malformed_urls_are_rejected_not_retried(url, why, store):
    fetcher = ResultFetcher(["h.vendor.test", ".vendor.test"])  # refused before any name is resolved
    with pytest.raises(FetchRejected, match=why):
        fetch(url, store, fetcher)


# -- 6. what the wire may carry ----------------------------------------------------------------
def raw(response: bytes) -> Route:
    """Writes ``response`` (status line, head and body) exactly as given, then hangs up."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(response)
        handler.wfile.flush()
        handler.close_connection = True

    return route


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(chunk), chunk) for chunk in chunks)


def test_a_body_shorter_than_its_content_length_fails_and_leaves_nothing(server, store):
    good = make_jpeg(1)
    server.routes["/short.jpg"] = raw(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(good) + 1, good))
    with pytest.raises(FetchFailed, match="interrupted"):
        fetch(f"{server.base_url}/short.jpg", store)
    assert list(store.list("b", "")) == []


def test_a_chunked_body_is_stored_whole_and_a_cut_one_fails(server, store):
    good = make_jpeg(2)
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    server.routes["/whole.jpg"] = raw(head + chunked(good[:100], good[100:1000], good[1000:]) + b"0\r\n\r\n")
    server.routes["/cut.jpg"] = raw(head + chunked(good[:100], good[100:1000]))  # no last chunk
    info, kind = fetch(f"{server.base_url}/whole.jpg", store)
    assert (kind, info.size, store.get_bytes("b", "k/out.jpg")) == ("jpeg", len(good), good)
    with pytest.raises(FetchFailed, match="interrupted"):
        fetch(f"{server.base_url}/cut.jpg", store, overwrite=False)
    assert store.get_bytes("b", "k/out.jpg") == good  # the cut download replaced nothing


def test_a_chunked_body_without_a_declared_size_is_cut_at_the_limit_while_streaming(server, store):
    big = make_jpeg(1) + bytes(200_000)
    server.routes["/big.jpg"] = raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(big[:50_000], big[50_000:]) + b"0\r\n\r\n"
    )
    with pytest.raises(FetchRejected, match="over the limit of 100000 bytes"):
        ResultFetcher([], allow_private=True).copy_to_store(
            f"{server.base_url}/big.jpg", store, "b", "k/out.jpg", max_bytes=100_000, types=("jpeg",)
        )
    assert list(store.list("b", "")) == []


def test_response_headers_are_read_in_any_case(server, store):
    jpeg = make_jpeg(1)
    server.routes["/gz.jpg"] = body(gzip.compress(jpeg), CONTENT_ENCODING="gzip")
    with pytest.raises(FetchRejected, match="only identity"):
        fetch(f"{server.base_url}/gz.jpg", store)
    server.routes["/two-encodings.jpg"] = raw(
        b"HTTP/1.1 200 OK\r\ncontent-encoding: identity\r\nContent-ENCODING: gzip\r\nContent-Length: %d\r\n\r\n%b"
        % (len(jpeg), jpeg)
    )
    with pytest.raises(FetchRejected, match="'identity, gzip'"):  # every line counts, not the first one
        fetch(f"{server.base_url}/two-encodings.jpg", store)
    server.routes["/declared.jpg"] = raw(b"HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh: %d\r\n\r\n%b" % (len(jpeg), jpeg))
    with pytest.raises(FetchRejected, match=f"result is {len(jpeg)} bytes, over the limit of 100"):
        ResultFetcher([], allow_private=True).copy_to_store(  # refused on the declared size, before the body
            f"{server.base_url}/declared.jpg", store, "b", "k/out.jpg", max_bytes=100, types=("jpeg",)
        )
    server.routes["/moved"] = raw(b"HTTP/1.1 301 Moved\r\nLOCATION: /declared.jpg\r\nContent-Length: 0\r\n\r\n")
    assert fetch(f"{server.base_url}/moved", store)[0].size == len(jpeg)


def test_what_the_request_says(server, store):
    """The request line is the URL's path and query as httpx wrote it (dot segments resolved, UTF-8 escaped)."""
    server.routes["/r/%E7%BB%93%E6%9E%9C.jpg?sig=a%2Fb&n=%C3%A9"] = body(make_jpeg(1))
    fetch(f"{server.base_url}/r/x/../结果.jpg?sig=a%2Fb&n=é#part", store)
    path, headers = server.seen[-1]
    assert path == "/r/%E7%BB%93%E6%9E%9C.jpg?sig=a%2Fb&n=%C3%A9"
    assert headers["Host"] == f"127.0.0.1:{server.address[1]}"
    assert headers["Accept-Encoding"] == "identity"
    assert headers["User-Agent"] == "scf-relay"
    assert "Cookie" not in headers and "Authorization" not in headers


def test_no_cookie_is_sent_back_on_a_later_download(server, store):
    """Results of different tasks must not share cookies: none is kept, in a session or across sessions."""

    def sets_a_cookie(handler: BaseHTTPRequestHandler) -> None:
        data = make_jpeg(1)
        handler.send_response(200)
        handler.send_header("Set-Cookie", "tracker=task-1; Path=/")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    server.routes["/first.jpg"] = sets_a_cookie
    server.routes["/second.jpg"] = body(make_jpeg(2))
    fetcher = ResultFetcher([], allow_private=True)
    with fetcher.session(30) as session:
        for name in ("first", "second"):
            session.copy_to_store(
                f"{server.base_url}/{name}.jpg", store, "b", f"k/{name}.jpg", max_bytes=MIB, types=("jpeg",)
            )
    fetch(f"{server.base_url}/second.jpg", store, fetcher)
    fetcher.close()
    assert [path for path, _ in server.seen] == ["/first.jpg", "/second.jpg", "/second.jpg"]
    assert all("Cookie" not in headers for _, headers in server.seen)


def test_a_redirect_is_vetted_like_the_first_url(server, store):
    """The next hop's host is resolved and checked before anything is sent to it; a good one is pinned too."""
    port = server.address[1]
    dns = {"first.vendor.test": "127.0.0.1", "second.vendor.test": "127.0.0.2", "evil.vendor.test": "169.254.169.254"}
    lookups: list[str] = []

    def resolve(host: str, _port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        lookups.append(host)
        return [ipaddress.ip_address(dns[host])]

    fetcher = ResultFetcher(list(dns), allow_private=True, resolve=resolve)
    server.routes["/to-evil"] = redirect(f"http://evil.vendor.test:{port}/latest/meta-data")
    server.routes["/to-second"] = redirect(f"http://second.vendor.test:{port}/r.jpg")
    with RouteServer(host="127.0.0.2", port=port) as second:
        second.routes["/r.jpg"] = body(make_jpeg(3))
        with pytest.raises(FetchRejected, match="never fetched"):
            fetch(f"http://first.vendor.test:{port}/to-evil", store, fetcher)
        info, _ = fetch(f"http://first.vendor.test:{port}/to-second", store, fetcher)
        assert info.size == len(make_jpeg(3))
        assert [(path, headers["Host"]) for path, headers in second.seen] == [("/r.jpg", f"second.vendor.test:{port}")]
    fetcher.close()
    assert [path for path, _ in server.seen] == ["/to-evil", "/to-second"]
    assert lookups == ["first.vendor.test", "evil.vendor.test", "first.vendor.test", "second.vendor.test"]


# -- 7. connections kept between downloads ----------------------------------------------------
def test_a_connection_is_kept_across_downloads_and_sessions(server, store):
    server.routes["/r.jpg"] = body(make_jpeg(1))
    fetcher = ResultFetcher([], allow_private=True)
    for _ in range(2):
        with fetcher.session(30) as session:
            for n in range(3):
                session.copy_to_store(
                    f"{server.base_url}/r.jpg", store, "b", f"k/{n}.jpg", max_bytes=MIB, types=("jpeg",)
                )
    fetcher.close()
    assert len(server.peers) == 6 and len(set(server.peers)) == 1


def test_a_kept_connection_obeys_the_deadline_of_the_session_using_it(server, store):
    """Opened under a long deadline, reused by a session with 1 s left: cut after 1 s, not the read timeout."""
    server.routes["/r.jpg"] = body(make_jpeg(1))

    def stall(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        handler.wfile.write(make_jpeg(1)[:100])
        handler.wfile.flush()
        server.stop_dripping.wait(30)

    server.routes["/stall.jpg"] = stall
    fetcher = ResultFetcher([], allow_private=True, timeout_s=60, deadline_s=300)
    fetch(f"{server.base_url}/r.jpg", store, fetcher)
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="longer than 1 s"):
        fetch(f"{server.base_url}/stall.jpg", store, fetcher, deadline_s=1.0)
    assert time.monotonic() - started < 2.5
    assert server.peers[0] == server.peers[1]  # the same connection served both
    fetcher.close()


def test_threads_sharing_a_fetcher_each_keep_their_own_deadline(server, store):
    """One thread's stalled download ends at its deadline while another's, on the same pool, completes."""
    good = make_jpeg(1)

    def slow(handler: BaseHTTPRequestHandler) -> None:  # done in about 2 s
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(good) + 20))
        handler.end_headers()
        handler.wfile.write(good)
        for _ in range(20):
            handler.wfile.flush()
            if server.stop_dripping.wait(0.1):
                return
            handler.wfile.write(b"\0")

    server.routes["/slow.jpg"] = slow
    fetcher = ResultFetcher([], allow_private=True, timeout_s=60)
    outcome: dict[str, object] = {}

    def download(name: str, deadline_s: float) -> None:
        try:
            with fetcher.session(deadline_s) as session:
                outcome[name] = session.copy_to_store(
                    f"{server.base_url}/slow.jpg", store, "b", f"k/{name}.jpg", max_bytes=MIB, types=("jpeg",)
                )[0].size
        except FetchFailed as exc:
            outcome[name] = str(exc)

    threads = [threading.Thread(target=download, args=args) for args in (("short", 1.0), ("long", 30.0))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    fetcher.close()
    assert outcome == {"short": "result download took longer than 1 s", "long": len(good) + 20}


def test_a_download_cut_short_leaves_nothing_on_its_connection_for_the_next(server, store):
    """A refused body is not read to its end: its connection is closed, never handed to the next download."""
    server.routes["/page.jpg"] = body(b"<html>" + bytes(500_000))
    server.routes["/r.jpg"] = body(make_jpeg(1))
    fetcher = ResultFetcher([], allow_private=True)
    with pytest.raises(FetchRejected, match="unknown type"):
        fetch(f"{server.base_url}/page.jpg", store, fetcher)
    assert fetch(f"{server.base_url}/r.jpg", store, fetcher)[0].size == len(make_jpeg(1))
    fetcher.close()
    assert server.peers[0] != server.peers[1]


def test_nothing_connects_or_reads_outside_a_session(server):
    from consumer.fetch_net import PinnedBackend, Scope

    backend = PinnedBackend()
    host, port = server.address
    with pytest.raises(httpcore.ConnectError, match="not vetted"):
        backend.connect_tcp(host, port, timeout=1)
    scope = Scope(time.monotonic() + 30)
    scope.pin(host, port, [ipaddress.ip_address(host)])
    with backend.scope(scope):
        stream = backend.connect_tcp(host, port, timeout=1)
    try:
        with pytest.raises(httpcore.ReadTimeout, match="deadline has passed"):
            stream.read(1)
    finally:
        stream.close()
