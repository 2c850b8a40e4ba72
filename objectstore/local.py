"""The local-filesystem object store: bucket ``B``, key ``K`` lives at ``ROOT/B/K``.

Used by the demo and the tests (``file:///abs/root?bucket=relay-local``); a real implementation of the
:class:`~objectstore.base.ObjectStore` contract, not a mock.

Layout and choices:

* ``write`` streams into a temp file under ``ROOT/.incoming/`` (outside every bucket, so no listing or prefix
  ever shows a partial file) and ``os.replace``-s it over the object at the end, so a reader sees the old object
  or the new one, never a part. The temp file is removed when the chunks (or the disk) fail; one left by a
  killed process is swept when a store opens the root and finds it older than :data:`INCOMING_MAX_AGE_S`.
  ``overwrite=False`` commits with ``os.link`` instead,
  which fails if the name exists (atomic; it needs a filesystem with hard links). Data is not fsync-ed: a
  power cut may lose the newest object, never expose half of one.
* Each object has a sidecar ``.<name>.meta`` (JSON: etag, content type, and the size/mtime/inode of the data
  file it describes). The etag (md5 hex) is computed while writing, so ``head`` is one small read. When the
  sidecar is missing or describes another file (an object dropped in by hand, or an overwrite between its
  rename and its sidecar's), ``head`` recomputes the md5 by streaming the file (on every call: only hand-made
  files pay this) and reports ``application/octet-stream``, so the etag is always the md5 of the bytes.
* Names matching ``.<anything>.meta`` / ``.<anything>.tmp`` are this store's own: ``list`` skips them and a
  key with such a segment is refused (:class:`InvalidKey`). ``delete`` removes the sidecar before the object,
  so a crash in between leaves an object without a sidecar (``head`` recomputes), never an orphan sidecar.
* Every path is resolved (symlinks included) and refused unless it stays under ``ROOT/<bucket>``. The check
  runs before each operation; it does not defend against a concurrent attacker swapping in symlinks.
* A key cannot be both an object and a "directory" of other keys (``a/b`` and ``a/b/c``), unlike COS;
  such a write raises :class:`StoreError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from objectstore.base import ObjectInfo, ObjectStore, check_key, iter_file
from objectstore.errors import (
    InvalidKey,
    ObjectChanged,
    ObjectExists,
    ObjectNotFound,
    StoreUnavailable,
    StoreUnsupported,
)

DEFAULT_BUCKET = "relay-local"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_INTERNAL_NAME = re.compile(r"^\..+\.(meta|tmp)$")
INCOMING = ".incoming"  # temp files of writes in progress, under the root, outside every bucket
INCOMING_MAX_AGE_S = 3600.0
_DEFAULT_TYPE = "application/octet-stream"


def check_bucket(bucket: str) -> str:
    """Return ``bucket`` if it is 1-63 of ``[a-z0-9-]`` starting with a letter or digit."""
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        raise InvalidKey(f"bucket name {bucket!r} is not 1-63 of a-z 0-9 - (starting with a letter or digit)")
    return bucket


@contextlib.contextmanager
def _io(what: str) -> Iterator[None]:
    """Translate filesystem errors of our own I/O (never the caller's chunks) into :class:`StoreError`."""
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable(f"{what}: {exc.strerror or exc}") from exc


class LocalStore(ObjectStore):
    def __init__(self, root: Path | str, default_bucket: str = DEFAULT_BUCKET) -> None:
        super().__init__(check_bucket(default_bucket))
        with _io(f"cannot create store root {root}"):
            Path(root).mkdir(parents=True, exist_ok=True)
            (Path(root) / INCOMING).mkdir(exist_ok=True)
        self.root = Path(root).resolve()
        self._incoming = self.root / INCOMING
        self.swept = sweep_incoming(self._incoming, INCOMING_MAX_AGE_S)

    @classmethod
    def from_url(cls, url: str) -> LocalStore:
        """``file:///abs/root?bucket=name`` (bucket defaults to ``relay-local``)."""
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
            from relay_core.errors import ConfigError

            raise ConfigError(f"RELAY_STORE: {url!r} is not file:///absolute/path[?bucket=name]")
        bucket = parse_qs(parts.query).get("bucket", [DEFAULT_BUCKET])[0]
        try:
            return cls(unquote(parts.path), check_bucket(bucket))
        except InvalidKey as exc:
            from relay_core.errors import ConfigError

            raise ConfigError(f"RELAY_STORE: {exc}") from None

    def __repr__(self) -> str:
        return f"LocalStore(root={str(self.root)!r}, default_bucket={self.default_bucket!r})"

    # -- paths -------------------------------------------------------------------------------
    def _bucket_dir(self, bucket: str) -> Path:
        return self.root / check_bucket(bucket)

    def _path(self, bucket: str, key: str) -> Path:
        """The data file of an object, refused unless it resolves inside the bucket directory."""
        check_key(key)
        if any(_INTERNAL_NAME.match(part) for part in key.split("/")):
            raise InvalidKey(f"object key {key!r} uses a name the local store reserves (.*.meta / .*.tmp)")
        return self._inside(bucket, self._bucket_dir(bucket) / key)

    def _inside(self, bucket: str, path: Path) -> Path:
        """``path`` if, symlinks resolved, it is still under ``ROOT/<bucket>`` (ROOT is resolved already)."""
        bucket_dir = self._bucket_dir(bucket)
        resolved = path.resolve()
        if resolved != bucket_dir and bucket_dir not in resolved.parents:
            raise InvalidKey(f"path of {path.relative_to(self.root)} leaves the store root (symlink?)")
        return path

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(f".{path.name}.meta")

    # -- reads -------------------------------------------------------------------------------
    def open_read(self, bucket: str, key: str) -> BinaryIO:
        path = self._path(bucket, key)
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller owns the stream
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {bucket}/{key}") from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot open {bucket}/{key}: {exc.strerror}") from exc

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        return self._info(bucket, key, self._path(bucket, key))

    def _info(self, bucket: str, key: str, path: Path) -> ObjectInfo | None:
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        meta = self._read_sidecar(path)
        if meta.get("stamp") != _stamp(stat):  # no sidecar, or it describes an older file
            try:
                with open(path, "rb") as stream:
                    meta = {"etag": _md5_of(iter_file(stream))}  # the content type is unknown
            except FileNotFoundError:  # deleted since the stat
                return None
            except OSError as exc:
                raise StoreUnavailable(f"cannot read {bucket}/{key}: {exc.strerror}") from exc
        return ObjectInfo(bucket, key, stat.st_size, meta["etag"], meta.get("content_type") or _DEFAULT_TYPE)

    def _read_sidecar(self, path: Path) -> dict:
        try:
            meta = json.loads(self._sidecar(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (any string, not only whole segments), in key order.

        The prefix is checked at the call (not at the first ``next``), like every other argument.
        """
        directory, _, _ = prefix.rpartition("/")
        if directory:
            check_key(directory)
            start = self._inside(bucket, self._bucket_dir(bucket) / directory)
        else:
            start = self._bucket_dir(bucket)
        return self._listing(bucket, prefix, start, f"{directory}/" if directory else "")

    def _listing(self, bucket: str, prefix: str, start: Path, key_prefix: str) -> Iterator[ObjectInfo]:
        for key, path in _walk_sorted(start, key_prefix):
            if key.startswith(prefix):
                info = self._info(bucket, key, path)
                if info is not None:  # deleted while we walked
                    yield info

    # -- writes ------------------------------------------------------------------------------
    def write(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        size: int | None = None,
        content_type: str = _DEFAULT_TYPE,
        overwrite: bool = True,
    ) -> ObjectInfo:
        path = self._path(bucket, key)
        fd, tmp_name = self._create_temp(path)
        out = os.fdopen(fd, "wb")
        digest = hashlib.md5(usedforsecurity=False)
        what = f"cannot write {bucket}/{key}"
        try:
            for chunk in chunks:  # the caller's exceptions pass through untranslated
                digest.update(chunk)
                with _io(what):
                    out.write(chunk)
            with _io(what):
                out.close()
                stat = os.stat(tmp_name)
                _commit(tmp_name, path, overwrite, f"{bucket}/{key}")
        except BaseException:
            with contextlib.suppress(OSError):
                out.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        etag = digest.hexdigest()
        self._write_sidecar(path, {"etag": etag, "content_type": content_type, "stamp": _stamp(stat)})
        return ObjectInfo(bucket, key, stat.st_size, etag, content_type)

    def _create_temp(self, path: Path) -> tuple[int, str]:
        """A temp file in ``ROOT/.incoming`` (same filesystem as the object, so the commit is a rename)."""
        try:
            return tempfile.mkstemp(dir=self._incoming, prefix=f"{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise StoreUnavailable(f"cannot create a temp file for {path.name}: {exc.strerror}") from exc

    def _write_sidecar(self, path: Path, meta: dict) -> None:
        """Best effort: a missing or stale sidecar only makes ``head`` recompute the md5."""
        sidecar = self._sidecar(path)
        with contextlib.suppress(OSError, StoreUnavailable):
            fd, tmp_name = tempfile.mkstemp(dir=self._incoming, prefix=f"{sidecar.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(meta, out)
                os.replace(tmp_name, sidecar)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
                raise

    def copy(self, bucket: str, src_key: str, dst_key: str, *, if_etag: str | None = None) -> ObjectInfo:
        """Streamed through this process; with ``if_etag`` the md5 of the bytes actually copied is compared at
        the end, before the copy is committed, so a source replaced at any moment is never published."""
        src_info = self.head(bucket, src_key)
        if src_info is None:
            raise ObjectNotFound(f"no object {bucket}/{src_key}")
        self._path(bucket, dst_key)  # refuse a bad destination before reading anything
        if if_etag is not None and src_info.etag != if_etag:
            raise ObjectChanged(f"{bucket}/{src_key} is not the version {if_etag}")
        with self.open_read(bucket, src_key) as stream:
            chunks = iter_file(stream)
            if if_etag is not None:
                chunks = _md5_checked(chunks, if_etag, f"{bucket}/{src_key}")
            return self.write(bucket, dst_key, chunks, size=src_info.size, content_type=src_info.content_type)

    def delete(self, bucket: str, key: str) -> None:
        """Remove the sidecar, then the object (absent is fine), then prune the emptied directories."""
        path = self._path(bucket, key)
        for victim in (self._sidecar(path), path):
            try:
                victim.unlink()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                pass  # already absent (or the key is only a "directory" of other keys)
            except OSError as exc:
                raise StoreUnavailable(f"cannot delete {bucket}/{key}: {exc.strerror}") from exc
        bucket_dir = self._bucket_dir(bucket)
        for parent in path.parents:
            if parent == bucket_dir or bucket_dir not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:  # not empty (or already gone): stop pruning
                break

    def vendor_url(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        self._path(bucket, key)  # a bad key is InvalidKey here as in every other backend
        raise StoreUnsupported(
            "the local store has no URL a vendor can fetch; inputs are uploaded instead "
            "(use a cos:// RELAY_STORE for inputs over the vendor's upload limit)"
        )


def _stamp(stat: os.stat_result) -> list[int]:
    """What identifies one version of a data file (JSON-friendly, compared to the sidecar's copy)."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _commit(tmp_name: str, path: Path, overwrite: bool, what: str) -> None:
    """Move the finished temp file to ``path`` (replacing, or only if nothing is there); the directory is made
    again if a concurrent delete pruned it in between."""
    for attempt in range(3):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreUnavailable(f"cannot write {what}: a parent of the key is an object") from None
        try:
            if overwrite:
                os.replace(tmp_name, path)
            else:
                _link_new(tmp_name, path, what)
            return
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def sweep_incoming(incoming: Path, older_than_s: float) -> int:
    """Delete temp files of writes that died (a SIGKILLed process) more than ``older_than_s`` ago; returns how many.

    Only old ones: a younger temp file may be a write in progress in another process."""
    removed = 0
    cutoff = time.time() - older_than_s
    with contextlib.suppress(OSError), os.scandir(incoming) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.name.endswith(".tmp") and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
    return removed


def _link_new(tmp_name: str, path: Path, what: str) -> None:
    """Commit the temp file as ``path`` only if nothing is there (a hard link never replaces its target)."""
    try:
        os.link(tmp_name, path)
    except FileExistsError:
        if path.is_dir():
            raise StoreUnavailable(f"cannot write {what}: the key is a prefix of other keys") from None
        raise ObjectExists(f"{what} exists and is not overwritten") from None
    with contextlib.suppress(OSError):  # the object is committed; a leftover temp name is only clutter
        os.unlink(tmp_name)


def _md5_checked(chunks: Iterable[bytes], etag: str, what: str) -> Iterator[bytes]:
    """``chunks`` passed on; raises :class:`ObjectChanged` after the last one unless their md5 is ``etag``."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
    if digest.hexdigest() != etag:
        raise ObjectChanged(f"{what} changed while it was copied (expected version {etag})")


def _md5_of(chunks: Iterable[bytes]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _walk_sorted(directory: Path, key_prefix: str) -> Iterator[tuple[str, Path]]:
    """``(key, path)`` of every data file under ``directory`` in key order, skipping the store's own files.

    Entries are sorted by name, with ``/`` appended to directory names: that is exactly the order of the
    full keys, since a name never holds ``/`` (``a-c`` sorts before the keys ``a/...``).
    """
    try:
        with os.scandir(directory) as it:
            entries = [e for e in it if not _INTERNAL_NAME.match(e.name)]
    except (FileNotFoundError, NotADirectoryError):
        return
    dirs = {e.name for e in entries if e.is_dir(follow_symlinks=False)}
    for entry in sorted(entries, key=lambda e: e.name + "/" if e.name in dirs else e.name):
        if entry.name in dirs:
            yield from _walk_sorted(Path(entry.path), f"{key_prefix}{entry.name}/")
        elif entry.is_file(follow_symlinks=False):
            yield f"{key_prefix}{entry.name}", Path(entry.path)
