"""The COS object store on ``cos-python-sdk-v5``: ``cos://<bucket-appid>?region=ap-guangzhou``.

URL parameters:

* ``region`` (required);
* ``endpoint``: ``http[s]://HOST:PORT`` of a COS-compatible server reached by address (the local test server);
  the SDK still signs and sends ``Host: <bucket>.cos.<region>.myqcloud.com``;
* ``part_size_mb``: multipart part size, 1-5120, default 8; ``parallel_parts``: parts in flight, default 2.

Writes: a stream that ends within one part is one ``PutObject``; anything longer is a multipart upload of
``part_size`` parts with at most ``parallel_parts`` in flight, completed only at the end, so readers never see
a partial object. **Memory bound per write: part_size x (parallel_parts + 1)** (defaults: 8 MiB x 3 = 24 MiB),
independent of the object size. On any failure, including the caller's chunk iterator raising, the upload
is aborted before the error propagates; still configure a bucket lifecycle rule that removes incomplete
multipart uploads, for the case where the process dies mid-upload.

Credentials come from a provider (:func:`tencent_plumbing.credentials.env_credentials` by default) asked on every
operation; the SDK client is rebuilt when the answer changes (SCF role credentials expire and rotate).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from objectstore.base import ObjectInfo, ObjectStore
from objectstore.cos_parts import PartSplitter, upload_parts
from objectstore.cos_sdk import (
    CosConfig,
    CosReadStream,
    CosS3Client,
    CosServiceError,
    header,
    plain_etag,
    sdk_errors,
)
from objectstore.errors import (
    AccessDenied,
    ObjectChanged,
    ObjectExists,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
)
from objectstore.keys import check_key
from relay_core import logs
from tencent_plumbing.credentials import CredentialsMissing, CredentialsProvider, TencentCredentials, env_credentials

MIB = 1024 * 1024
MIN_PART_SIZE_BYTES = 1 * MIB  # COS refuses smaller parts (except the last)
MAX_PART_SIZE_BYTES = 5 * 1024 * MIB
DEFAULT_PART_SIZE_BYTES = 8 * MIB
DEFAULT_PARALLEL_PARTS = 2
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]*-[0-9]+$")
_REGION = re.compile(r"^[a-z0-9-]+$")
_URL_PARAMS = {"region", "endpoint", "part_size_mb", "parallel_parts"}
# The SDK has no named parameter for this header; entries of "Metadata" are sent as headers verbatim.
_FORBID_OVERWRITE = {"Metadata": {"x-cos-forbid-overwrite": "true"}}

log = logs.get("objectstore.cos")


class CosStore(ObjectStore):
    list_page_size = 1000  # keys per ListObjects request (the COS maximum)

    def __init__(
        self,
        bucket: str,
        *,
        region: str,
        endpoint: str | None = None,
        credentials: CredentialsProvider = env_credentials,
        part_size_bytes: int = DEFAULT_PART_SIZE_BYTES,
        parallel_parts: int = DEFAULT_PARALLEL_PARTS,
        sdk_retries: int = 3,
    ) -> None:
        """``sdk_retries``: how often the SDK retries 5xx answers and network errors (sleeping 1 s, 2 s..)."""
        if not MIN_PART_SIZE_BYTES <= part_size_bytes <= MAX_PART_SIZE_BYTES:
            raise ValueError(f"part_size_bytes must be between 1 MiB and 5 GiB, not {part_size_bytes}")
        if parallel_parts < 1:
            raise ValueError("parallel_parts must be at least 1")
        super().__init__(bucket)
        self.region = region
        self.endpoint = endpoint
        self.part_size_bytes = part_size_bytes
        self.parallel_parts = parallel_parts
        self._address = _split_endpoint(endpoint) if endpoint else None
        self._credentials = credentials
        self._sdk_retries = sdk_retries
        self._lock = threading.Lock()
        self._cached: tuple[TencentCredentials, CosS3Client] | None = None

    @classmethod
    def from_url(cls, url: str, credentials: CredentialsProvider = env_credentials) -> CosStore:
        """``cos://<bucket-appid>?region=...[&endpoint=...][&part_size_mb=8][&parallel_parts=2]``."""
        from relay_core.errors import ConfigError

        usage = "cos://<bucket>-<appid>?region=ap-guangzhou[&endpoint=URL][&part_size_mb=8][&parallel_parts=2]"
        parts = urlsplit(url)
        params = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        problem = ""
        if parts.scheme != "cos" or parts.path not in ("", "/") or not _BUCKET.match(parts.netloc):
            problem = "expected a bucket named <name>-<appid>"
        elif set(params) - _URL_PARAMS:
            problem = f"unknown parameter(s) {sorted(set(params) - _URL_PARAMS)}"
        elif not _REGION.match(params.get("region", "")):
            problem = "region is missing or malformed"
        if problem:
            raise ConfigError(f"RELAY_STORE: {url!r}: {problem}; use {usage}")
        try:
            endpoint = params.get("endpoint") or None
            if endpoint:
                _split_endpoint(endpoint)
            return cls(
                parts.netloc,
                region=params["region"],
                endpoint=endpoint,
                credentials=credentials,
                part_size_bytes=int(params.get("part_size_mb", DEFAULT_PART_SIZE_BYTES // MIB)) * MIB,
                parallel_parts=int(params.get("parallel_parts", DEFAULT_PARALLEL_PARTS)),
            )
        except ValueError as exc:
            raise ConfigError(f"RELAY_STORE: {url!r}: {exc}; use {usage}") from exc

    def __repr__(self) -> str:
        return f"CosStore(bucket={self.default_bucket!r}, region={self.region!r}, endpoint={self.endpoint!r})"

    # -- the SDK client ----------------------------------------------------------------------
    def _client(self) -> CosS3Client:
        return self._connect()[1]

    def _connect(self) -> tuple[TencentCredentials, CosS3Client]:
        """The provider's current credentials and a client built for them (rebuilt when they change)."""
        try:
            creds = self._credentials()
        except CredentialsMissing as exc:
            raise AccessDenied(str(exc)) from exc
        with self._lock:
            if self._cached is None or self._cached[0] != creds:
                self._cached = (creds, CosS3Client(self._config(creds), retry=self._sdk_retries))
            return self._cached

    def _config(self, creds: TencentCredentials) -> CosConfig:
        options: dict[str, Any] = {}
        if self._address:
            scheme, host, port = self._address
            options = {"Scheme": scheme, "IP": host, "Port": port}
        with sdk_errors("configure client"):
            return CosConfig(
                Region=self.region,
                SecretId=creds.secret_id,
                SecretKey=creds.secret_key,
                Token=creds.token,
                **options,
            )

    # -- reads -------------------------------------------------------------------------------
    def open_read(self, bucket: str, key: str) -> BinaryIO:
        check_key(key)
        client = self._client()
        with sdk_errors(f"get {bucket}/{key}"):
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
        return CosReadStream(body.get_raw_stream(), f"get {bucket}/{key}")  # type: ignore[return-value]

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        check_key(key)
        try:
            with sdk_errors(f"head {bucket}/{key}"):
                response = self._client().head_object(Bucket=bucket, Key=key)
        except ObjectNotFound:
            return None
        return ObjectInfo(
            bucket,
            key,
            int(header(response, "Content-Length", "0")),
            plain_etag(header(response, "ETag")),
            header(response, "Content-Type"),
        )

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (any string), in key order, paged with ``Marker``."""
        if prefix:
            check_key(prefix + "x")  # no absolute, '..', '.' or empty segments, backslashes or NUL
        return self._list_pages(self._client(), bucket, prefix)

    def _list_pages(self, client: CosS3Client, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        marker = ""
        while True:
            with sdk_errors(f"list {bucket}/{prefix}*"):
                page = client.list_objects(Bucket=bucket, Prefix=prefix, Marker=marker, MaxKeys=self.list_page_size)
            contents = page.get("Contents") or []
            for item in contents:
                yield ObjectInfo(bucket, item["Key"], int(item["Size"]), plain_etag(item.get("ETag", "")))
            if page.get("IsTruncated") != "true" or not contents:
                return
            marker = page.get("NextMarker") or contents[-1]["Key"]

    def vendor_url(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        """A presigned GET URL valid for ``expires_s`` (temporary credentials add ``x-cos-security-token``).

        With ``endpoint`` set the URL points at that address path-style (``/<bucket>/<key>``), signed for
        that path, because an address cannot name the bucket the way the virtual host does.
        """
        check_key(key)
        creds, client = self._connect()
        # The SDK leaves the session token out of presigned URLs; COS wants it as a (signed) query parameter.
        params = {"x-cos-security-token": creds.token} if creds.token else {}
        signed_key = f"{bucket}/{key}" if self._address else key
        with sdk_errors(f"presign {bucket}/{key}"):
            return str(
                client.get_presigned_url(Bucket=bucket, Key=signed_key, Method="GET", Expired=expires_s, Params=params)
            )

    # -- writes ------------------------------------------------------------------------------
    def write(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        size: int | None = None,
        content_type: str = "application/octet-stream",
        overwrite: bool = True,
    ) -> ObjectInfo:
        """One PUT when the stream ends within one part (``size`` is only a hint), else a multipart upload.

        ``overwrite=False`` sends ``x-cos-forbid-overwrite: true`` with the PUT (or with the multipart upload's
        initiation and completion), so COS itself refuses to replace an object, atomically."""
        check_key(key)
        client = self._client()
        extra = {} if overwrite else _FORBID_OVERWRITE
        parts = PartSplitter(chunks, self.part_size_bytes)
        whole = parts.whole_if_small()
        if whole is not None:
            with self._no_overwrite(client, bucket, key, overwrite), sdk_errors(f"put {bucket}/{key}"):
                response = client.put_object(Bucket=bucket, Key=key, Body=whole, ContentType=content_type, **extra)
            return ObjectInfo(bucket, key, len(whole), plain_etag(header(response, "ETag")), content_type)
        etag = self._write_multipart(client, bucket, key, parts, content_type, overwrite)
        return ObjectInfo(bucket, key, parts.total_bytes, etag, content_type)

    @contextlib.contextmanager
    def _no_overwrite(self, client: CosS3Client, bucket: str, key: str, overwrite: bool) -> Iterator[None]:
        """Turn COS's refusal to overwrite (409, or 412 from S3-style servers) into :class:`ObjectExists`.

        The refusal is confirmed by a HEAD: another 409 (a conflicting concurrent operation) stays retryable."""
        try:
            yield
        except StoreUnavailable as exc:
            cause = exc.__cause__
            refused = isinstance(cause, CosServiceError) and cause.get_status_code() in (409, 412)
            if overwrite or not refused or self.head(bucket, key) is None:
                raise
            raise ObjectExists(f"COS {bucket}/{key} exists and is not overwritten") from exc

    def _write_multipart(
        self, client: CosS3Client, bucket: str, key: str, parts: PartSplitter, content_type: str, overwrite: bool
    ) -> str:
        what = f"multipart upload {bucket}/{key}"
        extra = {} if overwrite else _FORBID_OVERWRITE
        with self._no_overwrite(client, bucket, key, overwrite), sdk_errors(what):
            created = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type, **extra)
        upload_id = created["UploadId"]

        def upload(number: int, body: bytes) -> str:
            with sdk_errors(f"{what} part {number}"):
                response = client.upload_part(Bucket=bucket, Key=key, Body=body, PartNumber=number, UploadId=upload_id)
            return header(response, "ETag")

        try:
            etags = upload_parts(parts, upload, self.parallel_parts)
            listing = {"Part": [{"PartNumber": number, "ETag": etag} for number, etag in etags]}
            with self._no_overwrite(client, bucket, key, overwrite), sdk_errors(f"complete {what}"):
                response = client.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=listing, **extra
                )
        except BaseException:
            self._abort(client, bucket, key, upload_id)
            raise
        return plain_etag(str(response.get("ETag", "")))

    def _abort(self, client: CosS3Client, bucket: str, key: str, upload_id: str) -> None:
        """Best effort: a failed abort is logged; the error being raised is the one that matters."""
        try:
            with sdk_errors(f"abort multipart upload {bucket}/{key}"):
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except StoreError as exc:
            log.warning(
                "could not abort a failed multipart upload; a lifecycle rule must remove it",
                extra={"bucket": bucket, "key": key, "error": str(exc)},
            )

    def delete(self, bucket: str, key: str) -> None:
        """Idempotent: COS answers 204 whether or not the key existed."""
        check_key(key)
        with sdk_errors(f"delete {bucket}/{key}"):
            self._client().delete_object(Bucket=bucket, Key=key)

    def copy(self, bucket: str, src_key: str, dst_key: str, *, if_etag: str | None = None) -> ObjectInfo:
        """Server-side copy within ``bucket`` (one request, objects up to 5 GB).

        ``if_etag`` becomes ``x-cos-copy-source-If-Match``: COS copies only that version of the source and
        answers 412 otherwise, checked on the server in the same request."""
        check_key(src_key)
        check_key(dst_key)
        source = {"Bucket": bucket, "Key": src_key, "Region": self.region}
        condition = {} if if_etag is None else {"CopySourceIfMatch": f'"{if_etag}"'}
        what = f"copy {bucket}/{src_key} to {dst_key}"
        try:
            with sdk_errors(what):
                self._client().copy_object(Bucket=bucket, Key=dst_key, CopySource=source, **condition)
        except StoreUnavailable as exc:
            cause = exc.__cause__
            if if_etag is not None and isinstance(cause, CosServiceError) and cause.get_status_code() == 412:
                raise ObjectChanged(f"COS {what}: the source is not the version {if_etag}") from exc
            raise
        info = self.head(bucket, dst_key)
        if info is None:
            raise StoreUnavailable(f"COS copy {bucket}/{src_key} to {dst_key}: the copy is not visible")
        return info

    def close(self) -> None:
        with self._lock:
            self._cached = None


def _split_endpoint(endpoint: str) -> tuple[str, str, int | None]:
    """``http://127.0.0.1:9000`` -> ``("http", "127.0.0.1", 9000)``; refuses paths and other schemes."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"endpoint {endpoint!r} is not http[s]://HOST[:PORT]")
    return parts.scheme, parts.hostname, parts.port
