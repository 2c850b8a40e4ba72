"""A local Tencent Cloud API 3.0 server: real HTTP on 127.0.0.1, TC3-HMAC-SHA256 verified as documented.

``LocalApi3Server(secret_id, secret_key, token=None)`` serves JSON ``POST /`` in a thread (port chosen by
the OS); point an SDK at it with ``HttpProfile(endpoint=server.endpoint, protocol="http")``. Each request
must carry ``X-TC-Action``, ``X-TC-Version``, ``X-TC-Timestamp`` and a valid ``Authorization`` (see
:mod:`tests.servers.tc3`; ``X-TC-Token`` when the server has a token). The service is the one named in the
credential scope. Errors answer HTTP 200 with ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``
like the real API.

Test tools: ``handle(service, action, fn)`` replaces a handler (``fn(params) -> Response fields``, raising
:class:`ApiError` for an error answer); ``fail_next(service, action, code=... | status=...)`` injects errors;
``calls`` (accepted requests: action, service, version, region, params), ``raw`` (the last raw requests, to
replay or tamper with), ``clock`` (what "now" is for the 300 s window). Default handlers live in
:mod:`tests.servers.api3_handlers`, reachable as ``server.ims``, ``.vm``, ``.cmq`` and ``.scf``.

The server is a WSGI application (``server(environ, start_response)``) served by
:class:`vendors.emulator.serving.LoopbackWsgiServer`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.headers import Headers

from tests.servers import tc3
from tests.servers.api3_handlers import ApiError, CmqQueues, ImsImages, ScfFunctions, VmVideos
from vendors.emulator.serving import LoopbackWsgiServer, read_body, request_headers, status_line

Handler = Callable[[dict[str, Any]], dict[str, Any]]
VERSIONS = {"ims": "2020-12-29", "vm": "2021-09-22", "tdmq": "2020-02-17", "scf": "2018-04-16"}
__all__ = ["ApiError", "Api3Call", "LocalApi3Server", "RawRequest"]


@dataclass(frozen=True)
class Api3Call:
    action: str
    service: str
    version: str
    region: str
    params: dict[str, Any]


@dataclass(frozen=True)
class RawRequest:
    path: str
    headers: Headers  # as received; names looked up case-insensitively
    body: bytes


@dataclass
class _Fault:
    service: str
    action: str
    code: str | None
    status: int | None
    times: int


class LocalApi3Server(LoopbackWsgiServer):
    """The server; use as a context manager or ``start()`` / ``stop()``."""

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        token: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name="local-api3")
        self.secret_id = secret_id
        self._secret_key = secret_key
        self._token = token
        self.clock = clock
        self.calls: list[Api3Call] = []
        self.raw: list[RawRequest] = []
        self.ims, self.vm, self.cmq, self.scf = ImsImages(), VmVideos(), CmqQueues(), ScfFunctions()
        self._handlers: dict[tuple[str, str], Handler] = {
            ("ims", "ImageModeration"): self.ims.image_moderation,
            ("vm", "CreateVideoModerationTask"): self.vm.create,
            ("vm", "DescribeTaskDetail"): self.vm.describe,
            ("tdmq", "CreateCmqQueue"): self.cmq.create,
            ("tdmq", "DescribeCmqQueueDetail"): self.cmq.describe,
            ("tdmq", "ModifyCmqQueueAttribute"): self.cmq.modify,
            ("tdmq", "RewindCmqQueue"): self.cmq.rewind,
            ("scf", "Invoke"): self.scf.invoke,
            ("scf", "GetFunction"): self.scf.get_function,
            ("scf", "ListTriggers"): self.scf.list_triggers,
        }
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalApi3Server({self.endpoint if self.running else 'stopped'})"

    # -- lifetime (start, stop, context manager: LoopbackWsgiServer) ----------------------------
    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT`` (what ``HttpProfile(endpoint=..., protocol="http")`` takes)."""
        host, port = self.address
        return f"{host}:{port}"

    # -- test tools --------------------------------------------------------------------------
    def handle(self, service: str, action: str, fn: Handler) -> None:
        self._handlers[(service, action)] = fn

    def fail_next(
        self, service: str, action: str, *, code: str | None = None, status: int | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` matching requests with API error ``code`` or a bare HTTP ``status``."""
        if (code is None) == (status is None):
            raise ValueError("give exactly one of code= and status=")
        with self._lock:
            self._faults.append(_Fault(service, action, code, status, times))

    def calls_of(self, action: str) -> list[Api3Call]:
        return [c for c in self.calls if c.action == action]

    # -- one request -------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI application: :meth:`answer`, and an ``InternalError`` answer if a handler breaks."""
        path = environ.get("PATH_INFO") or "/"
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        body = read_body(environ)
        try:
            status, payload = self.answer(environ["REQUEST_METHOD"], path, request_headers(environ), body)
        except Exception as exc:  # noqa: BLE001 - a handler bug must answer, not hang the client
            error = {"Error": {"Code": "InternalError", "Message": repr(exc)}, "RequestId": str(uuid.uuid4())}
            status, payload = 200, {"Response": error}
        data = (json.dumps(payload) if not isinstance(payload, str) else payload).encode()
        # exactly "application/json": the SDK only looks for an Error in that content type (or text/plain)
        content_type = "application/json" if not isinstance(payload, str) else "text/html"
        start_response(status_line(status), [("Content-Type", content_type), ("Content-Length", str(len(data)))])
        return [data]

    def answer(self, method: str, path: str, headers: Headers, body: bytes) -> tuple[int, Any]:
        """(HTTP status, JSON object or text) for one request."""
        with self._lock:
            self.raw = [*self.raw[-19:], RawRequest(path, headers, body)]
        lower = {k.lower(): v for k, v in headers.items()}
        request_id = str(uuid.uuid4())
        try:
            service, action, params = self._authenticate(method, path, lower, body)
            injected = self._take_fault(service, action)
            if injected is not None and injected.status is not None:
                return injected.status, "injected failure"
            if injected is not None:
                raise ApiError(str(injected.code), "injected failure")
            response = self._dispatch(service, action, lower, params)
        except (tc3.AuthError, ApiError) as exc:
            return 200, {"Response": {"Error": {"Code": exc.code, "Message": exc.message}, "RequestId": request_id}}
        return 200, {"Response": {**response, "RequestId": request_id}}

    def _authenticate(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[str, str, dict[str, Any]]:
        if method != "POST" or path.split("?")[0] != "/":
            raise ApiError("UnsupportedProtocol", "this server takes POST / only")
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise ApiError("UnsupportedProtocol", "Content-Type must be application/json")
        for name in ("x-tc-action", "x-tc-version", "x-tc-timestamp"):
            if not headers.get(name):
                raise ApiError("MissingParameter", f"the {name} header is missing")
        auth = tc3.verify(
            secret_id=self.secret_id,
            secret_key=self._secret_key,
            token=self._token,
            now_s=self.clock(),
            method=method,
            path="/",
            query="",
            headers=headers,
            body=body,
        )
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise ApiError("InvalidParameter", "the body is not JSON") from None
        if not isinstance(params, dict):
            raise ApiError("InvalidParameter", "the body is not a JSON object")
        return auth.service, headers["x-tc-action"], params

    def _take_fault(self, service: str, action: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (fault.service, fault.action) == (service, action):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _dispatch(self, service: str, action: str, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        version = headers["x-tc-version"]
        if service in VERSIONS and version != VERSIONS[service]:
            raise ApiError("NoSuchVersion", f"{service} has no version {version}")
        handler = self._handlers.get((service, action))
        if handler is None:
            raise ApiError("InvalidAction", f"{service} has no action {action}")
        region = headers.get("x-tc-region", "")
        with self._lock:
            self.calls.append(Api3Call(action, service, version, region, params))
        return handler(params)
