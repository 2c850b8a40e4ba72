"""The ObjectStore protocol: streaming object I/O addressed by ``(bucket, key)``.

Contract every backend keeps (``tests/contract/test_store_contract.py``):

* ``open_read`` returns a binary stream (``read(n)``, context manager); memory does not grow with object size.
  A missing object raises :class:`~objectstore.errors.ObjectNotFound`.
* ``write`` consumes an iterable of byte chunks and stores them under the key; a reader never sees a partial
  object (temp file + rename, or multipart completed only at the end and aborted on any failure).
  ``size`` is a hint (``None`` = unknown length). Returns the stored :class:`ObjectInfo`. With
  ``overwrite=False`` an existing object is never replaced: the write raises
  :class:`~objectstore.errors.ObjectExists` (decided atomically when the object is committed, so of two racing
  writers exactly one wins).
* ``head`` returns :class:`ObjectInfo` or ``None``; ``delete`` is idempotent; ``list`` yields objects under a
  prefix in key order; ``copy`` copies within a bucket (server-side where the backend can); with ``if_etag`` it
  copies only that version of the source, else raises :class:`~objectstore.errors.ObjectChanged` and creates
  nothing.
* The etag of an object written in one piece is the md5 hex of its bytes; a COS multipart upload's is
  ``<hex>-<parts>`` (:func:`is_content_md5` tells them apart).
* ``vendor_url`` is a time-limited GET URL a vendor can fetch without credentials, or raises
  :class:`~objectstore.errors.StoreUnsupported` where the backend has none (local files).
* Keys are validated: empty keys, absolute keys, ``..`` segments and backslashes raise
  :class:`~objectstore.errors.InvalidKey` before any I/O (:func:`objectstore.keys.check_key`, the one check every
  store applies).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 1024 * 1024
#: :meth:`ObjectStore.get_bytes` reads a bounded object in pieces of at most this much
READ_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str = ""
    content_type: str = ""


def is_content_md5(etag: str) -> bool:
    """Whether ``etag`` is the md5 hex of the object's bytes (not a multipart upload's ``<hex>-<parts>``)."""
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag)


def iter_file(stream: BinaryIO, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Chunks of a binary stream until EOF."""
    while chunk := stream.read(chunk_size):
        yield chunk


class ObjectStore(abc.ABC):
    """Base of every store backend: seven primitives, and conveniences written once on top of them."""

    def __init__(self, default_bucket: str) -> None:
        self.default_bucket = default_bucket

    @abc.abstractmethod
    def open_read(self, bucket: str, key: str) -> BinaryIO:
        """A binary stream of the object (use it as a context manager); memory does not grow with its size.

        Raises ``ObjectNotFound`` if there is no such object, ``InvalidKey`` for an unsafe key, ``AccessDenied``
        when our credentials may not read it, ``StoreUnavailable`` for a transient fault."""

    @abc.abstractmethod
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
        """Store the concatenated ``chunks`` under ``key``, replacing any object there; returns what was stored.

        Atomic for readers: nobody ever sees a partial object, and a failed write leaves nothing behind (temp
        file + rename, or a multipart upload completed only at the end and aborted on any failure). ``size`` is
        a hint (``None``: unknown). With ``overwrite=False`` an object already under ``key`` is kept and the
        write raises ``ObjectExists`` (checked when the object is committed, atomically: of two concurrent
        writers one wins, the other gets ``ObjectExists``). Raises ``InvalidKey``, ``AccessDenied`` or
        ``StoreUnavailable``."""

    @abc.abstractmethod
    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's size, etag and content type, or ``None`` if it does not exist."""

    @abc.abstractmethod
    def delete(self, bucket: str, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""

    @abc.abstractmethod
    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order (lazily: large prefixes are paged)."""

    @abc.abstractmethod
    def copy(self, bucket: str, src_key: str, dst_key: str, *, if_etag: str | None = None) -> ObjectInfo:
        """Copy within ``bucket`` (server-side where the backend can); returns the new object's info.

        With ``if_etag``, only the version of ``src_key`` whose etag is ``if_etag`` is copied: if the source is
        another version (replaced since the caller looked), raises ``ObjectChanged`` and ``dst_key`` is left as
        it was. Raises ``ObjectNotFound`` if ``src_key`` does not exist."""

    @abc.abstractmethod
    def vendor_url(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        """A GET URL a vendor can fetch without credentials for ``expires_s`` seconds.

        Raises ``StoreUnsupported`` where the backend has none (local files)."""

    # -- conveniences built on the primitives ------------------------------------------------
    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        return self.write(bucket, key, [data], size=len(data), content_type=content_type)

    def get_bytes(self, bucket: str, key: str, limit: int | None = None) -> bytes:
        """The whole object, or its first ``limit`` bytes."""
        with self.open_read(bucket, key) as stream:
            if limit is None:
                return stream.read()
            # read(limit) would allocate ``limit`` bytes up front, however small the object (limits are megabytes)
            chunks: list[bytes] = []
            while limit > 0 and (chunk := stream.read(min(limit, READ_CHUNK_BYTES))):
                chunks.append(chunk)
                limit -= len(chunk)
            return b"".join(chunks)

    def exists(self, bucket: str, key: str) -> bool:
        return self.head(bucket, key) is not None

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many there were."""
        keys = [info.key for info in self.list(bucket, prefix)]
        for key in keys:
            self.delete(bucket, key)
        return len(keys)

    def close(self) -> None:
        """Release connections; the default has none."""
