"""The boundary to ``cos-python-sdk-v5``: importing it, translating its errors, wrapping its read stream.

Error translation (docs/platform.md §3; the SDK raises ``CosServiceError`` for every HTTP status >= 400 and
``CosClientError`` for network failures and its own argument checks)::

    404, NoSuchKey, NoSuchBucket, NoSuchResource              -> ObjectNotFound
    401/403, AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId, ...  -> AccessDenied
    any other status (5xx, 400 ...)                           -> StoreError (retryable)
    CosClientError (connection, timeout), broken read stream  -> StoreError (retryable)

Messages name the operation, bucket, key, HTTP status, COS error code and request id; never credentials.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from typing import Any

from objectstore.errors import AccessDenied, ObjectNotFound, StoreError, StoreUnavailable
from relay_core import logs

try:
    from qcloud_cos import CosConfig, CosS3Client
    from qcloud_cos.cos_exception import CosClientError, CosServiceError
except ImportError as exc:  # pragma: no cover - the cloud extra is installed wherever cos:// is used
    raise ImportError("cos:// stores need cos-python-sdk-v5: pip install 'scf-relay[cloud]'") from exc

__all__ = ["CosConfig", "CosS3Client", "CosClientError", "CosServiceError", "sdk_errors", "CosReadStream"]

# The SDK logs every 4xx (expected 404s included) at ERROR and request headers (the session token among them)
# at DEBUG. This adapter reports failures itself, so the SDK stays quiet unless someone sets its level.
_sdk_logger = logging.getLogger("qcloud_cos")
if _sdk_logger.level == logging.NOTSET:
    _sdk_logger.setLevel(logging.CRITICAL)

NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchResource"})
DENIED_CODES = frozenset(
    {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidSecurityToken", "ExpiredToken"}
)


def error_code(exc: CosServiceError) -> str:
    try:
        return str(exc.get_error_code())
    except (KeyError, TypeError):  # an error body the SDK could not digest
        return "Unknown"


def translate(exc: Exception, what: str) -> StoreError:
    """The store error for an SDK exception raised while doing ``what`` (e.g. ``"get bucket/key"``)."""
    if isinstance(exc, CosServiceError):
        status, code = exc.get_status_code(), error_code(exc)
        detail = f"COS {what}: HTTP {status} {code}"
        with contextlib.suppress(KeyError, TypeError):
            detail += f" (request id {exc.get_request_id()})"
        if status == 404 or code in NOT_FOUND_CODES:
            return ObjectNotFound(detail)
        if status in (401, 403) or code in DENIED_CODES:
            return AccessDenied(detail)
        return StoreUnavailable(detail)
    return StoreUnavailable(f"COS {what}: {logs.redact(str(exc))}")


@contextlib.contextmanager
def sdk_errors(what: str) -> Iterator[None]:
    """Translate SDK exceptions raised inside the block into the store error tree."""
    try:
        yield
    except (CosServiceError, CosClientError) as exc:
        raise translate(exc, what) from exc


def header(response: dict[str, Any], name: str, default: str = "") -> str:
    """A response header by case-insensitive name (the SDK returns a plain dict of what the server sent)."""
    lowered = name.lower()
    for key, value in response.items():
        if key.lower() == lowered:
            return str(value)
    return default


def plain_etag(etag: str) -> str:
    """The ETag unquoted: the MD5 hex for a single PUT, ``<md5 of the part md5s>-<parts>`` after multipart."""
    return etag.strip().strip('"')


class CosReadStream(io.RawIOBase):
    """The body of a GET, read straight from the connection: ``read(n)`` never buffers the whole object.

    Closing before the end drops the connection instead of draining what is left of a large object.
    """

    def __init__(self, raw: Any, what: str) -> None:
        super().__init__()
        self._raw = raw  # urllib3 HTTPResponse with preload_content=False
        self._what = what
        self._finished = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            data = self._raw.read(None if size is None or size < 0 else size)
        except Exception as exc:  # urllib3 ProtocolError/ReadTimeoutError, OSError: a broken download
            raise StoreUnavailable(f"COS {self._what}: download broke: {logs.redact(str(exc))}") from exc
        if size is None or size < 0 or (not data and size != 0):
            self._finished = True
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            if not self._finished:
                self._raw.close()
            self._raw.release_conn()
        super().close()
