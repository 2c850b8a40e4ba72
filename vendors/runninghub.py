"""RunningHub client on httpx: upload, submit, status, cancel (the :class:`~vendors.base.Vendor` protocol).

The injected ``httpx.Client`` is the network seam: tests point it at the emulator. Every failure leaves as a
:mod:`vendors.errors` exception (codes mapped in :mod:`vendors.runninghub_wire`):

- ``submit`` is never retried here. A fault before the request was sent (connect error, connect or pool
  timeout) is :class:`VendorUnavailable`; anything after it may have been sent (read or write timeout, broken
  connection, HTTP 5xx, an unreadable body, code 0 without a task id) is :class:`AmbiguousSubmit`.
- The read-only ``status`` retries transient faults a couple of times with short, bounded, full-jitter backoff.
- The api key is sent, never shown: not in exception messages, logs or ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

import backoff
import httpx

from relay_core import logs
from relay_core.filetypes import CONTENT_TYPES, HEAD_BYTES, sniff
from vendors import runninghub_wire as wire
from vendors.base import SubmitRequest, Vendor, VendorStatus
from vendors.errors import (
    AmbiguousSubmit,
    AuthError,
    InputRejected,
    VendorBusy,
    VendorConfigError,
    VendorError,
    VendorUnavailable,
)

log = logs.get("vendor.runninghub")
T = TypeVar("T")

# Raised before a single byte of the request left: always safe to try again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
_VIDEO_EXTENSIONS = {".mp4", ".mov", ".webm", ".avi", ".mkv"}


class RunningHubClient(Vendor):
    name = "runninghub"
    #: tries of a read-only call on transient faults, and the backoff between them (full jitter)
    read_attempts = 3
    retry_base_s = 0.2
    retry_max_s = 2.0

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        client: httpx.Client | None = None,
        timeout_s: float = 30,
        upload_timeout_s: float = 300,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        logs.register_secret(api_key)
        self._http = client if client is not None else httpx.Client()
        self._owns_http = client is None
        self.timeout_s = timeout_s
        self.upload_timeout_s = upload_timeout_s

    def __repr__(self) -> str:
        return f"RunningHubClient(base_url={self.base_url!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # -- the Vendor protocol ----------------------------------------------------------------------

    def upload(self, stream: BinaryIO, filename: str, size: int) -> str:
        """Multipart upload (streamed from ``stream``); returns ``data.fileName`` for a ``fieldValue``."""
        if size > self.max_upload_bytes:
            limit = self.max_upload_bytes
            raise InputRejected(
                f"runninghub upload: {size} bytes is over the {limit} byte limit", code=wire.CODE_TOO_LARGE
            )
        name = os.path.basename(filename) or "input"
        file_type, kind = _upload_kind(stream, name)
        files = {"file": (name, stream, CONTENT_TYPES.get(kind or "", "application/octet-stream"))}
        form = {"apiKey": self._api_key, "fileType": file_type}
        envelope = self._legacy(
            "upload", "/task/openapi/upload", data=form, files=files, timeout_s=self.upload_timeout_s
        )
        if envelope.code != wire.CODE_OK:
            raise self._error("upload", envelope)
        file_name = envelope.data.get("fileName") if isinstance(envelope.data, dict) else None
        if not isinstance(file_name, str) or not file_name:
            raise wire.garbage("upload", "no data.fileName")
        log.info("uploaded input", extra={"vendor_file": file_name, "size_bytes": size})
        return file_name

    def submit(self, request: SubmitRequest) -> str:
        """Start a workflow or AI app; returns the vendor task id as a string. Never retried here."""
        path, body = self._submit_body(request)
        envelope = self._legacy("submit", path, json=body, submitting=True)
        if envelope.code != wire.CODE_OK:
            raise self._error("submit", envelope)
        task_id = wire.task_id_of(envelope.data)
        if task_id is None:
            raise AmbiguousSubmit("runninghub submit: code 0 without a usable data.taskId")
        node_errors = wire.node_errors_of(envelope.data)
        if node_errors:
            self.cancel(task_id)  # the workflow will not run these inputs: do not leave it billing
            nodes = ", ".join(sorted(str(node) for node in node_errors))[:200]
            raise VendorConfigError(
                f"runninghub submit: {request.target_id} rejected the inputs of nodes {nodes}", code="node_errors"
            )
        log.debug("submitted", extra={"vendor_task_id": task_id, "target_id": request.target_id})
        return task_id

    def status(self, vendor_task_id: str) -> VendorStatus:
        """``/task/openapi/outputs``: 813 queued, 804 running, 805 failed, 0 with outputs succeeded."""
        return self._read(
            lambda: wire.status_from_outputs(
                self._legacy("status", "/task/openapi/outputs", json=self._task_body(vendor_task_id))
            )
        )

    def account_status(self) -> dict[str, str]:
        """``/uc/openapi/accountStatus`` (docs/platform.md §5): the key's ``remainCoins``, ``currentTaskCounts``...
        as strings. Raises VendorConfigError when the key is refused (802), VendorUnavailable when unreachable."""
        envelope = self._read(
            lambda: self._legacy("account", "/uc/openapi/accountStatus", json={"apikey": self._api_key})
        )
        if envelope.code != wire.CODE_OK:
            raise self._error("account", envelope)
        data = envelope.data if isinstance(envelope.data, dict) else {}
        return {str(k): str(v) for k, v in data.items() if v is not None}

    def workflow_nodes(self, workflow_id: str) -> dict[str, wire.WorkflowNode]:
        """``/api/openapi/getJsonApiFormat`` (docs/platform.md §5): the workflow's nodes by id, each with its
        ``class_type`` and input field names. Raises VendorConfigError for an unknown workflow (380/301),
        AuthError for a refused key, VendorUnavailable when unreachable or the answer is garbage."""
        body = {"apiKey": self._api_key, "workflowId": str(workflow_id)}
        envelope = self._read(lambda: self._legacy("workflow", "/api/openapi/getJsonApiFormat", json=body))
        if envelope.code != wire.CODE_OK:
            raise self._error("workflow", envelope)
        return wire.workflow_nodes_of(envelope.data)

    def cancel(self, vendor_task_id: str) -> None:
        """Best effort: failures are logged and swallowed, except our own configuration errors."""
        try:
            envelope = self._legacy("cancel", "/task/openapi/cancel", json=self._task_body(vendor_task_id))
            if envelope.code != wire.CODE_OK:
                raise self._error("cancel", envelope)
        except VendorConfigError:
            raise
        except VendorError as exc:
            log.warning("cancel failed", extra={"vendor_task_id": vendor_task_id, "error": str(exc)})

    # -- requests ---------------------------------------------------------------------------------

    def _submit_body(self, request: SubmitRequest) -> tuple[str, dict[str, Any]]:
        nodes = [{"nodeId": n.node_id, "fieldName": n.field_name, "fieldValue": n.field_value} for n in request.nodes]
        body: dict[str, Any]
        if request.kind == "workflow":
            path, body = "/task/openapi/create", {"workflowId": request.target_id}
        elif request.kind == "ai-app":
            path, body = "/task/openapi/ai-app/run", {"webappId": request.target_id}
        else:
            raise VendorConfigError(f"runninghub submit: unknown kind {request.kind!r} (workflow | ai-app)")
        body = {"apiKey": self._api_key, **body, "nodeInfoList": nodes}
        if request.instance_type:
            body["instanceType"] = request.instance_type
        if request.webhook_url:
            body["webhookUrl"] = request.webhook_url
        return path, body

    def _task_body(self, vendor_task_id: str) -> dict[str, str]:
        return {"apiKey": self._api_key, "taskId": str(vendor_task_id)}

    def _legacy(self, op: str, path: str, *, submitting: bool = False, **kwargs: Any) -> wire.Envelope:
        payload = self._post_json(op, path, submitting=submitting, **kwargs)
        try:
            return wire.parse_envelope(op, payload)
        except VendorUnavailable as exc:
            if submitting:
                raise AmbiguousSubmit(str(exc)) from None
            raise

    def _post_json(
        self, op: str, path: str, *, submitting: bool = False, timeout_s: float | None = None, **kwargs: Any
    ) -> Any:
        """POST and decode the JSON answer; transport and HTTP faults become vendor errors."""
        timeout = timeout_s or self.timeout_s
        try:
            response = self._http.post(f"{self.base_url}{path}", timeout=timeout, **kwargs)
        except _NOT_SENT as exc:
            raise VendorUnavailable(f"runninghub {op}: {self._describe(exc)}") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise VendorConfigError(f"runninghub {op}: bad base url: {self._describe(exc)}") from None
        except httpx.TransportError as exc:
            cls = AmbiguousSubmit if submitting else VendorUnavailable
            raise cls(f"runninghub {op}: {self._describe(exc)}") from None
        self._check_http_status(op, response.status_code, submitting)
        try:
            return response.json()
        except ValueError:
            cls = AmbiguousSubmit if submitting else VendorUnavailable
            what = f"a non-JSON body (HTTP {response.status_code})"
            raise cls(f"runninghub {op}: vendor garbage: {what}") from None

    @staticmethod
    def _check_http_status(op: str, status: int, submitting: bool) -> None:
        if status < 400:
            return
        what = f"runninghub {op}: HTTP {status}"
        if status in (401, 403):
            raise AuthError(what, code=status)
        if status == 429:
            raise (VendorBusy if submitting else VendorUnavailable)(what, code=status)
        if status >= 500:
            raise (AmbiguousSubmit if submitting else VendorUnavailable)(what, code=status)
        if status == 408:
            raise VendorUnavailable(what, code=status)
        raise VendorConfigError(f"{what} (wrong base url or endpoint?)", code=status)

    def _error(self, op: str, envelope: wire.Envelope) -> VendorError:
        return wire.error_for(op, envelope.code, self._scrub(envelope.msg))

    def _read(self, call: Callable[[], T]) -> T:
        retrying = backoff.on_exception(
            backoff.expo,
            VendorUnavailable,
            max_tries=self.read_attempts,
            jitter=backoff.full_jitter,
            factor=self.retry_base_s,
            max_value=self.retry_max_s,
            on_backoff=_log_retry,
            logger=None,
        )
        return retrying(call)()

    def _describe(self, exc: Exception) -> str:
        return self._scrub(f"{type(exc).__name__}: {exc}")[:200]

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _log_retry(details: Any) -> None:  # backoff's Details mapping
    log.info(
        "retrying a read",
        extra={
            "attempt": details["tries"],
            "wait_s": round(details["wait"], 3),
            "error": str(details.get("exception", "")),
        },
    )


def _upload_kind(stream: BinaryIO, filename: str) -> tuple[str, str | None]:
    """RunningHub's ``fileType`` (image | video | input) and our sniffed type: the bytes first, then the name.

    The head is read from offset 0, as httpx sends a seekable file from its start.
    """
    kind = None
    if getattr(stream, "seekable", lambda: False)():
        position = stream.tell()
        stream.seek(0)
        kind = sniff(stream.read(HEAD_BYTES))
        stream.seek(position)
    if kind == "mp4":
        return "video", kind
    if kind is not None:
        return "image", kind
    extension = os.path.splitext(filename)[1].lower()
    if extension in _IMAGE_EXTENSIONS:
        return "image", None
    if extension in _VIDEO_EXTENSIONS:
        return "video", None
    return "input", None
