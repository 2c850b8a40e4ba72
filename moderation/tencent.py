"""Moderation through Tencent Cloud: IMS for images (synchronous), VM for videos (asynchronous).

Wire facts (docs/platform.md §4): IMS ``ImageModeration`` takes exactly one of ``FileContent`` (base64, the
*encoded* text at most 10 MB, so at most 7.5 MiB of image) or ``FileUrl`` (at most 30 MB); VM
``CreateVideoModerationTask`` reads the staged object straight from COS (``Input.Type=COS`` + ``BucketInfo``),
so no URL of a private object is ever handed out for videos; ``DescribeTaskDetail`` reports its status.

Fail closed: a ``Suggestion`` we do not know, a missing one, a network fault or a 5xx raises
:class:`AuditError` and never returns ``PASS``. ``Review`` is a block unless ``review_passes``. Errors that
mean our configuration is wrong (AuthFailure, UnauthorizedOperation, service not enabled, package used up,
missing credentials) raise :class:`AuditConfigError`: the task is dead-lettered, not reported as failed.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
from typing import Any

from moderation.base import AuditPending, AuditResult, UrlImageAuditor, Verdict
from moderation.errors import AuditConfigError, AuditError, AuditJobFailed, AuditRejected, AuditUnavailable
from objectstore.base import ObjectStore
from relay_core import logs
from tencent_plumbing.api3 import (
    ApiTarget,
    Fault,
    call,
    classify,
    describe,
    fault_of,
    make_client,
    sdk_errors,
)
from tencent_plumbing.credentials import CredentialsProvider, env_credentials

log = logs.get("moderation.tencent")

IMS_CLIENT = "tencentcloud.ims.v20201229.ims_client.ImsClient"
VM_CLIENT = "tencentcloud.vm.v20210922.vm_client.VmClient"
#: FileContent is base64: its encoded length must stay within 10 MB, which leaves 3/4 of that for the image
FILE_CONTENT_MAX_BYTES = 10 * 1024 * 1024 // 4 * 3
FILE_URL_MAX_BYTES = 30 * 1024 * 1024
DEFAULT_VIDEO_RETRY_S = 10.0
_DATA_ID_ALLOWED = re.compile(r"[^A-Za-z0-9_\-@#]")
_DATA_ID_MAX = 64


class Suggestion(str, enum.Enum):
    PASS = "Pass"
    REVIEW = "Review"
    BLOCK = "Block"


_VERDICTS = {
    Suggestion.PASS: Verdict.PASS,
    Suggestion.REVIEW: Verdict.REVIEW,
    Suggestion.BLOCK: Verdict.BLOCK,
}


class VideoStatus(str, enum.Enum):
    FINISH = "FINISH"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


def data_id_for(raw: str) -> str:
    """A ``DataId`` the services accept: letters, digits and ``_-@#``, at most 64 characters.

    Other characters become ``_``; a longer id keeps its head and a hash of the whole, so it stays unique.
    """
    cleaned = _DATA_ID_ALLOWED.sub("_", raw) or "_"
    if len(cleaned) <= _DATA_ID_MAX:
        return cleaned
    digest = hashlib.sha1(raw.encode()).hexdigest()[:12]
    return f"{cleaned[: _DATA_ID_MAX - 13]}-{digest}"


class TencentAuditor(UrlImageAuditor):
    name = "tencent"
    max_image_bytes = FILE_CONTENT_MAX_BYTES

    def __init__(
        self,
        region: str,
        *,
        credentials: CredentialsProvider = env_credentials,
        endpoint: str | None = None,
        biz_type: str | None = None,
        store: ObjectStore | None = None,
        review_passes: bool = False,
        bucket_region: str | None = None,
        timeout_s: int = 15,
    ) -> None:
        """``bucket_region``: COS region of staged videos (default: the store's ``region``, else ours)."""
        self._target = ApiTarget(region, credentials, endpoint, timeout_s)
        self.biz_type = biz_type
        self.review_passes = review_passes
        self.bucket_region = bucket_region or getattr(store, "region", None) or region
        self._clients: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"TencentAuditor(region={self._target.region!r}, endpoint={self._target.endpoint!r})"

    # -- images -------------------------------------------------------------------------------
    def audit_image(self, data: bytes, data_id: str) -> AuditResult:
        if len(data) > self.max_image_bytes:
            raise ValueError(f"{len(data)} bytes is over FileContent's limit ({self.max_image_bytes}): audit_image_url")
        params = {"FileContent": base64.b64encode(data).decode("ascii")}
        return self._image(params, data_id)

    def audit_image_url(self, url: str, data_id: str) -> AuditResult:
        """Judge an image the service fetches itself (a presigned URL; the image at most 30 MB)."""
        return self._image({"FileUrl": url}, data_id)

    def _image(self, source: dict[str, str], data_id: str) -> AuditResult:
        params = {**self._biz(), "DataId": data_id_for(data_id), **source}
        response = self._call(IMS_CLIENT, "ImageModeration", params)
        return self._result(response.Suggestion, response.Label, response.Score, response.SubLabel)

    # -- videos -------------------------------------------------------------------------------
    def start_video(self, bucket: str, key: str, data_id: str) -> str:
        task = {
            "DataId": data_id_for(data_id),
            "Name": data_id_for(data_id),
            "Input": {
                "Type": "COS",
                "BucketInfo": {"Bucket": bucket, "Region": self.bucket_region, "Object": key},
            },
        }
        params = {**self._biz(), "Type": "VIDEO", "Tasks": [task]}
        response = self._call(VM_CLIENT, "CreateVideoModerationTask", params)
        results = response.Results or []
        if not results:
            raise AuditUnavailable("CreateVideoModerationTask returned no task")
        result = results[0]
        if result.Code != "OK" or not result.TaskId:
            raise _translate_code(str(result.Code or ""), f"CreateVideoModerationTask: {result.Code}: {result.Message}")
        log.info("video moderation task created", extra={"audit_job_id": result.TaskId})
        return str(result.TaskId)

    def video_result(self, job_id: str) -> AuditResult | AuditPending:
        if job_id.startswith("local:"):
            raise AuditConfigError("a local auditor's job id reached the Tencent auditor (RELAY_AUDITOR changed?)")
        response = self._call(VM_CLIENT, "DescribeTaskDetail", {"TaskId": job_id})
        status = response.Status
        if status in (VideoStatus.PENDING.value, VideoStatus.RUNNING.value):
            retry_s = float(response.TryInSeconds) if response.TryInSeconds else DEFAULT_VIDEO_RETRY_S
            return AuditPending(retry_after_s=retry_s)
        if status == VideoStatus.FINISH.value:
            return self._result(response.Suggestion, response.Label, None, "")
        raise AuditJobFailed(f"video moderation task ended {status}: {response.ErrorType}: {response.ErrorDescription}")

    # -- plumbing -----------------------------------------------------------------------------
    def _biz(self) -> dict[str, str]:
        return {"BizType": self.biz_type} if self.biz_type else {}

    def _result(self, suggestion: str | None, label: str | None, score: Any, sub_label: str | None) -> AuditResult:
        """Map a Suggestion to a verdict; anything unknown raises (fail closed)."""
        try:
            verdict = _VERDICTS[Suggestion(suggestion)]
        except ValueError:
            raise AuditUnavailable(f"moderation answered an unknown Suggestion {suggestion!r}") from None
        if verdict is Verdict.REVIEW:
            verdict = Verdict.PASS if self.review_passes else Verdict.BLOCK
        detail = f"suggestion={suggestion} label={label or ''} sublabel={sub_label or ''}"
        return AuditResult(verdict, label=label or "", score=_int_or_none(score), detail=detail)

    def close(self) -> None:
        self._clients.clear()

    def _client(self, path: str) -> Any:
        if path not in self._clients:
            self._clients[path] = make_client(path, self._target)
        return self._clients[path]

    def _call(self, client_path: str, action: str, params: dict[str, Any]) -> Any:
        try:
            return call(self._client(client_path), action, params)
        except sdk_errors() as exc:
            raise _translate(exc, action) from None


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _translate(exc: BaseException, action: str) -> AuditError:
    text = f"{action} failed: {describe(exc)}"
    fault = fault_of(exc)
    log.warning("moderation call failed", extra={"action": action, "fault": fault.value, "detail": text})
    return _error_for(fault, text)


def _translate_code(code: str, text: str) -> AuditError:
    return _error_for(classify(code), logs.redact(text))


def _error_for(fault: Fault, text: str) -> AuditError:
    if fault is Fault.OURS:
        return AuditConfigError(text)
    if fault in (Fault.REJECTED, Fault.NOT_FOUND):
        return AuditRejected(text)
    return AuditUnavailable(text)
