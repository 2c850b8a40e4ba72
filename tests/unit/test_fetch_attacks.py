"""Result downloads attacked the way a hostile vendor or DNS server would: real sockets on loopback, real httpx.

Each test is one breach a red team found: a slow host outliving the hop's lease, a compression bomb, the
metadata address written as IPv4-in-IPv6, DNS rebinding between the check and the connection, and malformed
URLs that were retried instead of failing the task.
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
    ],
)
def test_malformed_urls_are_rejected_not_retried(url, why, store):
    fetcher = ResultFetcher(["h.vendor.test", ".vendor.test"])  # refused before any name is resolved
    with pytest.raises(FetchRejected, match=why):
        fetch(url, store, fetcher)
