"""A COS-compatible server for tests: moto's S3 backend behind a thin COS dialect layer.

Run by :class:`servers.cos_server.LocalCosServer` as ``python -m servers.cos_app`` in a child process (moto
keeps whole objects in memory, which must not count against the memory of the code under test; a process
also gives every server its own moto state). Configuration comes from the environment:
``COS_SERVER_SECRET_ID``, ``COS_SERVER_SECRET_KEY``, ``COS_SERVER_TOKEN`` (optional). It binds 127.0.0.1 on an
OS-chosen port, prints ``LISTENING <port>`` and serves until its stdin closes (so it dies with its parent).

What the layer does for each request:

* routes ``Host: <bucket>.cos.<region>.myqcloud.com`` (virtual host) to moto's path style ``/<bucket>/<key>``;
  any other host is taken as path style already (presigned URLs for a local endpoint);
* verifies the COS signature (``Authorization`` header, or the same fields in the query string of a presigned
  URL) against the configured SecretId/SecretKey and time window, and requires ``x-cos-security-token``
  (header or query) when a token is configured: failures answer 403 ``SignatureDoesNotMatch``,
  ``InvalidAccessKeyId`` or ``AccessDenied``;
* renames ``x-cos-*`` request headers to ``x-amz-*`` (``x-cos-copy-source: <bucket>.cos...com/<key>`` becomes
  ``/<bucket>/<key>``) and ``x-amz-*`` response headers back, in COS's header case;
* honours ``x-cos-forbid-overwrite: true`` (as S3's ``If-None-Match: *``: moto answers 412) and
  ``x-cos-copy-source-If-Match`` (412 unless the source has that etag);
* rewrites error bodies into the XML the SDK digests (Code, Message, Resource, RequestId, TraceId);
* serves only buckets created through this server; moto enforces COS's 1 MiB minimum part size
  (``S3_UPLOAD_PART_MIN_SIZE``, set before moto is imported);
* test controls on ``/_local/`` (bucket names cannot start with "_"): ``POST /_local/buckets/<name>``,
  ``POST /_local/faults`` (JSON ``{"operation", "nth", "times", "status"}``: answer ``status`` to the nth ..
  nth+times-1 requests of that operation counted from now) and ``GET /_local/operations`` (JSON
  ``[[operation, bucket, key, status], ...]``).
"""

from __future__ import annotations

import hmac
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from servers.cos_signature import AUTH_FIELDS, canonical, in_window, parse_authorization, signature

COS_MIN_PART_BYTES = 1024 * 1024
VIRTUAL_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9-]*)\.cos\.(?P<region>[a-z0-9-]+)\.myqcloud\.com$")
CONTROL_PREFIX = "/_local/"
ERROR_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error"}
MOTO_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20000101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0"
)
Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class CosReply(Exception):
    """An answer the layer gives itself instead of asking moto."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class CosDialect:
    """The WSGI app: COS in front, moto's S3 Flask app behind."""

    def __init__(self, moto_app: Any, secret_id: str, secret_key: str, token: str | None) -> None:
        self.moto_app = moto_app
        self.secret_id, self.secret_key, self.token = secret_id, secret_key, token
        self.buckets: set[str] = set()
        self.operations: list[list[Any]] = []
        self._counts: dict[str, int] = {}
        self._faults: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        # moto checks If-None-Match and then writes, not atomically: conditional writes take turns here, as
        # COS answers exactly one of two racing forbid-overwrite writes with success
        self._conditional_writes = threading.Lock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0]  # the port never matters here (IPv4 only)
        raw_path, _, query = environ.get("RAW_URI", environ.get("PATH_INFO", "/")).partition("?")
        vhost = VIRTUAL_HOST.match(host)
        if not vhost and raw_path.startswith(CONTROL_PREFIX):
            return self._control(environ, raw_path[len(CONTROL_PREFIX) :], start_response)
        bucket, key = (vhost["bucket"], raw_path[1:]) if vhost else _split_path_style(raw_path)
        params = parse_qsl(environ.get("QUERY_STRING", query), keep_blank_values=True)
        operation = classify(environ["REQUEST_METHOD"], key, params, "HTTP_X_COS_COPY_SOURCE" in environ)
        resource = f"{host}{raw_path}"
        try:
            self._authenticate(environ, host, unquote(raw_path), params)
            self._check_bucket(bucket, operation, environ)
            self._inject_fault(operation)
            _check_copy_source_etag(environ)
        except CosReply as reply:
            _drain(environ)
            self._record(operation, bucket, key, reply.status)
            return _error(start_response, environ, reply.status, reply.code, reply.message, resource)
        _to_moto(environ, bucket, raw_path if not vhost else f"/{bucket}{raw_path}", params)
        if environ.get("HTTP_IF_NONE_MATCH") == "*":
            with self._conditional_writes:
                status_line, headers, body = self._ask_moto(environ)
                body = [b"".join(body)]
        else:
            status_line, headers, body = self._ask_moto(environ)
        status = int(status_line.split()[0])
        if operation == "PutBucket" and status < 300:
            with self._lock:
                self.buckets.add(bucket)
        self._record(operation, bucket, key, status)
        if status >= 400:
            code, message = _moto_error(b"".join(body))
            return _error(start_response, environ, status, code, message, resource)
        start_response(status_line, _cos_headers(headers))
        return body

    def _ask_moto(self, environ: Environ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        captured: dict[str, Any] = {}
        body = self.moto_app(environ, lambda status, headers, *_: captured.update(status=status, headers=headers))
        return captured["status"], captured["headers"], body

    # -- the checks --------------------------------------------------------------------------
    def _authenticate(self, environ: Environ, host: str, path: str, params: list[tuple[str, str]]) -> None:
        presigned = any(name == "q-signature" for name, _ in params)
        auth = dict(params) if presigned else parse_authorization(environ.get("HTTP_AUTHORIZATION", ""))
        auth = {name: value for name, value in auth.items() if name in AUTH_FIELDS}
        if not {"q-ak", "q-sign-time", "q-key-time", "q-signature"} <= set(auth):
            raise CosReply(403, "AccessDenied", "the request is not signed")
        if auth["q-ak"] != self.secret_id:
            raise CosReply(403, "InvalidAccessKeyId", "the SecretId does not exist")
        if not in_window(auth["q-sign-time"], time.time()) or not in_window(auth["q-key-time"], time.time()):
            raise CosReply(403, "AccessDenied", "Request has expired")
        signed_params = canonical({name: value for name, value in params if name not in AUTH_FIELDS})
        try:
            expected = signature(
                self.secret_key,
                auth,
                environ["REQUEST_METHOD"],
                path,
                signed_params,
                _request_headers(environ, host),
            )
        except KeyError as missing:
            raise CosReply(403, "SignatureDoesNotMatch", f"signed {missing} is not in the request") from None
        if not _equal(expected, auth["q-signature"]):
            raise CosReply(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        if self.token is not None:
            sent = environ.get("HTTP_X_COS_SECURITY_TOKEN") or dict(params).get("x-cos-security-token", "")
            if not _equal(sent, self.token):
                raise CosReply(403, "InvalidAccessKeyId", "the x-cos-security-token is missing or wrong")

    def _check_bucket(self, bucket: str, operation: str, environ: Environ) -> None:
        buckets = {bucket}
        source = environ.get("HTTP_X_COS_COPY_SOURCE", "")
        if source:
            buckets.add(source.partition("/")[0].split(".cos.")[0])
        if operation != "PutBucket" and not buckets <= self.buckets:
            raise CosReply(404, "NoSuchBucket", "The specified bucket does not exist.")

    def _inject_fault(self, operation: str) -> None:
        with self._lock:
            count = self._counts[operation] = self._counts.get(operation, 0) + 1
            for fault in self._faults:
                if fault["operation"] == operation and fault["nth"] <= count < fault["nth"] + fault["times"]:
                    raise CosReply(int(fault["status"]), "InternalError", f"injected fault on {operation} #{count}")

    def _record(self, operation: str, bucket: str, key: str, status: int) -> None:
        with self._lock:
            self.operations.append([operation, bucket, unquote(key), status])

    # -- test controls -----------------------------------------------------------------------
    def _control(self, environ: Environ, command: str, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method == "POST" and command.startswith("buckets/"):
            result = self.create_bucket(command.split("/", 1)[1])
        elif method == "POST" and command == "faults":
            fault = {
                "operation": "UploadPart",
                "nth": 1,
                "times": 1,
                "status": 500,
                **json.loads(_drain(environ)),
            }
            with self._lock:  # nth counts from now on
                self._faults.append({**fault, "nth": self._counts.get(fault["operation"], 0) + fault["nth"]})
            result = "ok"
        elif method == "GET" and command == "operations":
            with self._lock:
                result = list(self.operations)
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"unknown control"]
        payload = json.dumps(result).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def create_bucket(self, name: str) -> str:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        s3_backends[DEFAULT_ACCOUNT_ID]["aws"].create_bucket(name, "us-east-1")
        with self._lock:
            self.buckets.add(name)
        return name


def classify(method: str, key: str, params: list[tuple[str, str]], copy_source: bool) -> str:
    """The COS API operation a request is (for fault injection and the operations log)."""
    names = {name.lower() for name, _ in params}
    if not key:
        if method == "GET":
            return "ListMultipartUploads" if "uploads" in names else "ListObjects"
        return {"PUT": "PutBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, f"{method}Bucket")
    if method == "PUT":
        return "UploadPart" if "partnumber" in names else "CopyObject" if copy_source else "PutObject"
    if method == "POST":
        return "InitiateMultipartUpload" if "uploads" in names else "CompleteMultipartUpload"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadid" in names else "DeleteObject"
    if method == "GET":
        return "ListParts" if "uploadid" in names else "GetObject"
    return "HeadObject" if method == "HEAD" else f"{method}Object"


def _check_copy_source_etag(environ: Environ) -> None:
    """``x-cos-copy-source-If-Match``, which moto ignores: 412 unless the source has that etag."""
    wanted = environ.get("HTTP_X_COS_COPY_SOURCE_IF_MATCH")
    if wanted is None:
        return
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    source_host, _, source_key = environ.get("HTTP_X_COS_COPY_SOURCE", "").partition("/")
    try:
        source = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(source_host.split(".cos.")[0], unquote(source_key))
    except Exception:  # noqa: BLE001 - a missing bucket or key: let moto answer the copy itself
        return
    if source is not None and source.etag.strip('"') != wanted.strip('"'):
        raise CosReply(412, "PreconditionFailed", "x-cos-copy-source-If-Match does not match the source")


def _split_path_style(raw_path: str) -> tuple[str, str]:
    bucket, _, key = raw_path.lstrip("/").partition("/")
    return bucket, key


def _request_headers(environ: Environ, host: str) -> dict[str, str]:
    """The request's headers as signed: names lower-cased, values as the raw bytes that were sent.

    The Host header loses its port: the SDK signs the host name of a presigned URL without it, and on COS's
    default ports the header has none.
    """
    headers: dict[str, bytes | str] = {"host": host}
    for name, value in environ.items():
        if name.startswith("HTTP_") and name != "HTTP_HOST":
            headers[name[5:].replace("_", "-").lower()] = value.encode("latin-1")
        elif name in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[name.replace("_", "-").lower()] = value.encode("latin-1")
    return canonical(headers)


def _to_moto(environ: Environ, bucket: str, raw_path: str, params: list[tuple[str, str]]) -> None:
    """Turn the COS request into the path-style S3 request moto expects (in place)."""
    for name in [name for name in environ if name.startswith("HTTP_X_COS_")]:
        value = environ.pop(name)
        if name == "HTTP_X_COS_SECURITY_TOKEN":
            continue
        if name == "HTTP_X_COS_FORBID_OVERWRITE":  # moto knows S3's equivalent (PutObject, CompleteMultipart)
            if value.lower() == "true":
                environ["HTTP_IF_NONE_MATCH"] = "*"
            continue
        if name == "HTTP_X_COS_COPY_SOURCE":  # "<bucket>.cos.<region>.myqcloud.com/<key>" -> "/<bucket>/<key>"
            source_host, _, source_key = value.partition("/")
            value = f"/{source_host.split('.cos.')[0]}/{source_key}"
        environ["HTTP_X_AMZ_" + name[len("HTTP_X_COS_") :]] = value
    # The COS signature is verified already; moto just needs to see a signed request to serve private objects.
    environ["HTTP_AUTHORIZATION"] = MOTO_AUTHORIZATION
    kept = [(name, value) for name, value in params if name not in AUTH_FIELDS and name != "x-cos-security-token"]
    query = urlencode(kept)
    environ["HTTP_HOST"] = "localhost"
    environ["PATH_INFO"] = unquote(raw_path).encode().decode("latin-1")
    environ["QUERY_STRING"] = query
    environ["RAW_URI"] = environ["REQUEST_URI"] = raw_path + (f"?{query}" if query else "")


def _cos_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """moto's response headers in COS's spelling: ``x-cos-*`` lower case, ``ETag``, ``Content-Length`` ..."""
    result = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "x-amzn-requestid":
            lowered = "x-cos-request-id"
        elif lowered.startswith("x-amz-"):
            lowered = "x-cos-" + lowered[len("x-amz-") :]
        if lowered.startswith("x-"):
            result.append((lowered, value))
        else:
            result.append(
                ("ETag" if lowered == "etag" else "-".join(p.capitalize() for p in lowered.split("-")), value)
            )
    if not any(name == "x-cos-request-id" for name, _ in result):
        result.append(("x-cos-request-id", uuid.uuid4().hex))
    return result


def _moto_error(body: bytes) -> tuple[str, str]:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return "InternalError", body.decode("utf-8", "replace")[:200] or "no error body"
    found = {element.tag.rsplit("}", 1)[-1]: (element.text or "") for element in root.iter()}
    return found.get("Code", "InternalError"), found.get("Message", "")


def _error(
    start_response: StartResponse, environ: Environ, status: int, code: str, message: str, resource: str
) -> list[bytes]:
    """An error in the shape the COS SDK digests (``qcloud_cos.cos_exception.digest_xml``)."""
    request_id = uuid.uuid4().hex
    body = (
        "<?xml version='1.0' encoding='utf-8' ?>\n<Error>"
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message><Resource>{escape(resource)}</Resource>"
        f"<RequestId>{request_id}</RequestId><TraceId>{request_id}</TraceId></Error>"
    ).encode()
    if environ["REQUEST_METHOD"] == "HEAD":
        body = b""
    start_response(
        f"{status} {ERROR_REASONS.get(status, 'Error')}",
        [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("x-cos-request-id", request_id),
        ],
    )
    return [body]


def _drain(environ: Environ) -> bytes:
    """Read the request body so the connection stays usable after an early answer."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream, data = environ["wsgi.input"], []
    while length > 0:
        chunk = stream.read(min(length, 1024 * 1024))
        if not chunk:
            break
        data.append(chunk)
        length -= len(chunk)
    return b"".join(data)


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def main() -> None:
    os.environ["S3_UPLOAD_PART_MIN_SIZE"] = str(COS_MIN_PART_BYTES)  # read by moto at import time
    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    app = CosDialect(
        create_backend_app("s3"),
        os.environ["COS_SERVER_SECRET_ID"],
        os.environ["COS_SERVER_SECRET_KEY"],
        os.environ.get("COS_SERVER_TOKEN") or None,
    )
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    print(f"LISTENING {server.port}", flush=True)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    server.serve_forever()


def _exit_with_parent() -> None:
    sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
    os._exit(0)


if __name__ == "__main__":
    main()
