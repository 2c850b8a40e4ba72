"""The local-filesystem object store: bucket ``B``, key ``K`` lives at ``ROOT/B/K``, one file per object.

Used by the demo and the tests (``file:///abs/root?bucket=relay-local``); a real implementation of the
:class:`~objectstore.base.ObjectStore` contract, not a mock.

Layout and choices:

* ``write`` streams into a temp file under ``ROOT/.incoming/`` (outside every bucket, so no listing or prefix
  ever shows a partial file) and ``os.replace``-s it over the object at the end, so a reader sees the old object
  or the new one, never a part. The temp file is removed when the chunks (or the disk) fail; one left by a
  killed process is swept when a store opens the root and finds it older than :data:`INCOMING_MAX_AGE_S`.
  ``overwrite=False`` commits with ``os.link`` instead, which fails if the name exists (atomic; it needs a
  filesystem with hard links). Data is not fsync-ed: a power cut may lose the newest object, never expose half
  of one.
* An object's metadata (etag = the md5 hex computed while writing, content type, and the size and mtime of the
  bytes it describes) is a user extended attribute of its data file, :data:`XATTR`, set on the temp file before
  the commit: the rename that publishes the bytes publishes their metadata with them, so an object is one file
  and ``head`` is a ``stat`` and a ``getxattr``. Where the filesystem takes no user xattrs (probed when the store
  opens: ramfs, some network filesystems; tmpfs, ext4, xfs, btrfs and overlayfs take them), each object gets a
  sidecar ``.<name>.meta`` instead (JSON with the same fields plus the inode, written after the commit, temp
  file + rename). Sidecars are read in either mode (a root written by an earlier version of this store).
* When the metadata is missing or describes other bytes (a file dropped in or edited by hand: its size or mtime
  differs), ``head`` recomputes the md5 by streaming the file (on every call: only hand-made files pay this) and
  reports ``application/octet-stream``, so the etag is always the md5 of the bytes. ``copy(if_etag=...)``
  compares the md5 of the bytes it actually copies, never only the recorded one; the copy is a hard link of the
  very file it hashed (through its open descriptor), so publishing a result writes no byte again and deleting
  its staged name frees nothing.
* Names matching ``.<anything>.meta`` / ``.<anything>.tmp`` are this store's own: ``list`` skips them and a
  key with such a segment is refused (:class:`InvalidKey`). ``delete`` removes a sidecar (if there is one)
  before the object, so a crash in between leaves an object without a sidecar (``head`` recomputes), never an
  orphan sidecar.
* Paths are built lexically: :func:`~objectstore.keys.check_key` refuses empty, ``.``, ``..`` and absolute
  segments, so ``ROOT/B/K`` is under ``ROOT/B`` by construction (``ROOT`` is resolved once, when the store
  opens). What remains is symlinks: the store makes none and follows none. Each operation ``lstat``-s the bucket
  directory and the key's directories, and reads open the object with ``O_NOFOLLOW``; a symlink on the way is
  refused (:class:`InvalidKey`). A directory found to be a real one is not looked at again for
  :data:`REAL_DIR_TTL_S` (a task's dozen results share their directories; the store forgets a directory it
  removes). This does not defend against a concurrent attacker swapping in symlinks (who could race the
  ``lstat`` as well).
* A key cannot be both an object and a "directory" of other keys (``a/b`` and ``a/b/c``), unlike COS;
  such a write raises :class:`StoreError`.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from objectstore.base import ObjectInfo, ObjectStore, iter_file
from objectstore.checksum import StreamMd5
from objectstore.errors import (
    InvalidKey,
    ObjectChanged,
    ObjectExists,
    ObjectNotFound,
    StoreUnavailable,
    StoreUnsupported,
)
from objectstore.keys import check_key

DEFAULT_BUCKET = "relay-local"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_INTERNAL_NAME = re.compile(r"^\..+\.(meta|tmp)$")
_INTERNAL_SEGMENT = re.compile(r"(^|/)\.[^/]+\.(meta|tmp)(/|$)")
INCOMING = ".incoming"  # temp files of writes in progress, under the root, outside every bucket
INCOMING_MAX_AGE_S = 3600.0
XATTR = "user.relay.meta"  # "1 <etag> <size> <mtime_ns> <content type>"
_DEFAULT_TYPE = "application/octet-stream"
_temp_numbers = itertools.count()  # with the pid, names temp files (no random name to draw per write)
#: seconds a directory ``lstat``-ed as a real directory (no symlink) is taken as one without looking again
REAL_DIR_TTL_S = 1.0
_REAL_DIRS_MAX = 4096


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
    def __init__(
        self, root: Path | str, default_bucket: str = DEFAULT_BUCKET, *, use_xattrs: bool | None = None
    ) -> None:
        """``use_xattrs``: keep metadata in an xattr (``True``) or a sidecar (``False``); ``None`` probes the
        filesystem of ``root``."""
        super().__init__(check_bucket(default_bucket))
        with _io(f"cannot create store root {root}"):
            Path(root).mkdir(parents=True, exist_ok=True)
            (Path(root) / INCOMING).mkdir(exist_ok=True)
        self.root = Path(root).resolve()
        self._root = str(self.root)
        self._incoming = f"{self._root}/{INCOMING}"
        self.swept = sweep_incoming(Path(self._incoming), INCOMING_MAX_AGE_S)
        self.use_xattrs = user_xattrs_work(self._incoming) if use_xattrs is None else use_xattrs
        self._real_dirs: dict[str, float] = {}  # directory path -> until when it counts as checked (monotonic)

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
        return f"LocalStore(root={self._root!r}, default_bucket={self.default_bucket!r})"

    # -- paths -------------------------------------------------------------------------------
    def _path(self, bucket: str, key: str) -> str:
        """The data file of an object, refused if the key is unsafe or a symlink leads on from the bucket."""
        check_key(key)
        if _INTERNAL_SEGMENT.search(key):
            raise InvalidKey(f"object key {key!r} uses a name the local store reserves (.*.meta / .*.tmp)")
        bucket_dir = f"{self._root}/{check_bucket(bucket)}"
        self._refuse_symlinks(bucket_dir, key.split("/")[:-1], f"{bucket}/{key}")
        return f"{bucket_dir}/{key}"

    def _refuse_symlinks(self, bucket_dir: str, directories: list[str], what: str) -> None:
        """Raise :class:`InvalidKey` if the bucket directory or one of ``directories`` below it (in order) is a
        symlink; the walk stops where the path ends (nothing exists below a missing name). Directories seen to be
        real ones within :data:`REAL_DIR_TTL_S` are not looked at again."""
        path = bucket_dir
        now = time.monotonic()
        real_dirs = self._real_dirs
        for name in itertools.chain((None,), directories):
            if name is not None:
                path = f"{path}/{name}"
            if real_dirs.get(path, 0.0) > now:
                continue
            try:
                mode = os.lstat(path).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return
            except OSError as exc:
                raise StoreUnavailable(f"cannot look up {what}: {exc.strerror}") from exc
            if stat.S_ISLNK(mode):
                raise InvalidKey(f"path of {what} leaves the store root (a symlink; the local store follows none)")
            if not stat.S_ISDIR(mode):  # an object where a directory would be: the operation itself finds out
                return
            if len(real_dirs) >= _REAL_DIRS_MAX:
                real_dirs.clear()
            real_dirs[path] = now + REAL_DIR_TTL_S

    # -- reads -------------------------------------------------------------------------------
    def open_read(self, bucket: str, key: str) -> BinaryIO:
        return self._open(self._path(bucket, key), f"{bucket}/{key}")

    @staticmethod
    def _open(path: str, what: str) -> BinaryIO:
        try:  # unbuffered: every reader asks for large chunks, and a buffer costs three more syscalls per open
            return open(path, "rb", buffering=0, opener=_open_no_follow)  # noqa: SIM115 - the caller owns the stream
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {what}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidKey(f"{what} is a symlink; the local store follows none") from None
            raise StoreUnavailable(f"cannot open {what}: {exc.strerror}") from exc

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        return self._info(bucket, key, self._path(bucket, key))

    def _info(self, bucket: str, key: str, path: str) -> ObjectInfo | None:
        try:
            status = os.stat(path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreUnavailable(f"cannot look up {bucket}/{key}: {exc.strerror}") from exc
        if not stat.S_ISREG(status.st_mode):
            if stat.S_ISLNK(status.st_mode):
                raise InvalidKey(f"{bucket}/{key} is a symlink; the local store follows none")
            return None  # a directory: a prefix of other keys
        recorded = (self._xattr_meta(path, status) if self.use_xattrs else None) or _sidecar_meta(path, status)
        if recorded is None:  # dropped in or edited by hand: the bytes are the only truth
            try:
                with self._open(path, f"{bucket}/{key}") as stream:
                    recorded = _md5_of(iter_file(stream)), _DEFAULT_TYPE  # the content type is unknown
            except ObjectNotFound:  # deleted since the stat
                return None
        etag, content_type = recorded
        return ObjectInfo(bucket, key, status.st_size, etag, content_type or _DEFAULT_TYPE)

    @staticmethod
    def _xattr_meta(path: str, status: os.stat_result) -> tuple[str, str] | None:
        """(etag, content type) from the file's xattr if it describes these bytes, else ``None``."""
        try:
            raw = os.getxattr(path, XATTR, follow_symlinks=False)
        except OSError:  # no such attribute (a hand-made file), or none at all on this file
            return None
        return _decode_xattr(raw, status)

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (any string, not only whole segments), in key order.

        The prefix is checked at the call (not at the first ``next``), like every other argument.
        """
        directory, _, _ = prefix.rpartition("/")
        bucket_dir = f"{self._root}/{check_bucket(bucket)}"
        if directory:
            check_key(directory)
            self._refuse_symlinks(bucket_dir, directory.split("/"), f"{bucket}/{directory}/")
            return self._listing(bucket, prefix, f"{bucket_dir}/{directory}", f"{directory}/")
        return self._listing(bucket, prefix, bucket_dir, "")

    def _listing(self, bucket: str, prefix: str, start: str, key_prefix: str) -> Iterator[ObjectInfo]:
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
        return self._write(self._path(bucket, key), bucket, key, chunks, content_type, overwrite)

    def _write(
        self,
        path: str,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        content_type: str,
        overwrite: bool,
        source_etag: tuple[str, str] | None = None,
    ) -> ObjectInfo:
        """``source_etag``: (etag, what) the bytes must have, else :class:`ObjectChanged` and nothing is
        committed (a copy's check, on the md5 the write computes anyway)."""
        what = f"cannot write {bucket}/{key}"
        fd, tmp_name = self._create_temp(key.rpartition("/")[2], what)
        digest = StreamMd5()
        try:
            for chunk in chunks:  # the caller's exceptions pass through untranslated
                digest.update(chunk)
                try:
                    _write_all(fd, chunk)
                except OSError as exc:
                    raise StoreUnavailable(f"{what}: {exc.strerror or exc}") from exc
            etag = digest.hexdigest()
            if source_etag is not None and etag != source_etag[0]:
                expected, source = source_etag
                raise ObjectChanged(f"{source} changed while it was copied (expected version {expected})")
            with _io(what):
                status = os.fstat(fd)
                tagged = self.use_xattrs and _set_xattr(fd, etag, content_type, status)
                os.close(fd)
                fd = -1
                _commit(tmp_name, path, overwrite, f"{bucket}/{key}")
        except BaseException:
            digest.close()
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        if not tagged:
            self._write_sidecar(path, etag, content_type, status)
        return ObjectInfo(bucket, key, status.st_size, etag, content_type)

    def _create_temp(self, name: str, what: str) -> tuple[int, str]:
        """A new temp file in ``ROOT/.incoming`` (same filesystem as the objects, so the commit is a rename)."""
        pid = os.getpid()
        for _ in range(100):  # a name is taken only by a leftover of a dead process that had our pid
            tmp_name = f"{self._incoming}/{name[:64]}.{pid}.{next(_temp_numbers)}.tmp"
            try:
                return os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp_name
            except FileExistsError:
                continue
            except OSError as exc:
                raise StoreUnavailable(f"{what}: cannot create a temp file: {exc.strerror}") from exc
        raise StoreUnavailable(f"{what}: no free temp file name in {self._incoming}")

    def _write_sidecar(self, path: str, etag: str, content_type: str, status: os.stat_result) -> None:
        """Best effort: a missing or stale sidecar only makes ``head`` recompute the md5."""
        meta = {"etag": etag, "content_type": content_type, "stamp": _stamp(status)}
        sidecar = _sidecar_of(path)
        with contextlib.suppress(OSError, StoreUnavailable):
            fd, tmp_name = self._create_temp(sidecar.rpartition("/")[2], "sidecar")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(meta, out)
                os.replace(tmp_name, sidecar)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
                raise

    def copy(self, bucket: str, src_key: str, dst_key: str, *, if_etag: str | None = None) -> ObjectInfo:
        """The md5 of the source's bytes is computed through the open source file and, with ``if_etag``, compared
        before the copy is committed, so a source replaced at any moment is never published. The copy is then a
        hard link of that very file (its open descriptor, through ``/proc/self/fd``), so no byte is written again
        and deleting the source frees nothing; where no such link can be made (no ``/proc``), or the recorded
        metadata does not match the bytes, the bytes are streamed into a new file instead. (A linked copy shares
        its file with the source until the source is deleted; this store never writes into a file, it replaces
        it, so neither name can change the other's bytes.)"""
        src = self._path(bucket, src_key)
        dst = self._path(bucket, dst_key)  # refuse a bad destination before reading anything
        what = f"{bucket}/{src_key}"
        with self._open(src, what) as stream:
            fd = stream.fileno()
            with _io(f"cannot read {what}"):
                status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                raise ObjectNotFound(f"no object {what}")
            etag = _md5_of(iter_file(stream))
            if if_etag is not None and etag != if_etag:
                raise ObjectChanged(f"{what} is not the version {if_etag}")
            recorded = self._recorded(fd, src, status)
            content_type = recorded[1] if recorded is not None else _DEFAULT_TYPE
            if recorded is not None and recorded[0] == etag and self._link_open_file(fd, dst, f"{bucket}/{dst_key}"):
                if not self.use_xattrs:
                    self._write_sidecar(dst, etag, content_type, status)
                return ObjectInfo(bucket, dst_key, status.st_size, etag, content_type)
            with _io(f"cannot read {what}"):
                stream.seek(0)
            return self._write(dst, bucket, dst_key, iter_file(stream), content_type, True, (etag, what))

    def _recorded(self, fd: int, path: str, status: os.stat_result) -> tuple[str, str] | None:
        """(etag, content type) recorded for the open data file ``fd`` at ``path``, if it describes its bytes."""
        if self.use_xattrs:
            try:
                recorded = _decode_xattr(os.getxattr(fd, XATTR), status)
            except OSError:
                recorded = None
            if recorded is not None:
                return recorded
        return _sidecar_meta(path, status)

    def _link_open_file(self, fd: int, path: str, what: str) -> bool:
        """Commit the open file ``fd`` as ``path`` by a hard link (through a temp name, so it replaces ``path``
        atomically); ``False``, having changed nothing, where the link cannot be made."""
        name = f"link.{os.getpid()}.{next(_temp_numbers)}.tmp"
        tmp_name = f"{self._incoming}/{name}"
        try:
            incoming = os.open(self._incoming, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return False
        try:  # a dir fd makes os.link call linkat(AT_SYMLINK_FOLLOW): the link is to the file, not to /proc's name
            os.link(f"/proc/self/fd/{fd}", name, src_dir_fd=incoming, dst_dir_fd=incoming, follow_symlinks=True)
        except (OSError, NotImplementedError):  # no /proc (not Linux), or a filesystem without hard links
            return False
        finally:
            os.close(incoming)
        try:
            with _io(f"cannot write {what}"):
                _commit(tmp_name, path, True, what)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        return True

    def delete(self, bucket: str, key: str) -> None:
        """Remove a sidecar, then the object (absent is fine), then prune the emptied directories."""
        path = self._path(bucket, key)
        for victim in (_sidecar_of(path), path):
            try:
                os.unlink(victim)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                pass  # already absent (or the key is only a "directory" of other keys)
            except OSError as exc:
                raise StoreUnavailable(f"cannot delete {bucket}/{key}: {exc.strerror}") from exc
        bucket_dir = f"{self._root}/{bucket}"
        parent = path.rpartition("/")[0]
        while len(parent) > len(bucket_dir):
            try:
                os.rmdir(parent)
            except OSError:  # not empty (or already gone): stop pruning
                break
            self._real_dirs.pop(parent, None)
            parent = parent.rpartition("/")[0]

    def vendor_url(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        self._path(bucket, key)  # a bad key is InvalidKey here as in every other backend
        raise StoreUnsupported(
            "the local store has no URL a vendor can fetch; inputs are uploaded instead "
            "(use a cos:// RELAY_STORE for inputs over the vendor's upload limit)"
        )


def user_xattrs_work(directory: str) -> bool:
    """Whether a file made in ``directory`` takes a user extended attribute (probed with a temp file)."""
    if not hasattr(os, "setxattr"):  # not Linux
        return False
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".probe.", suffix=".tmp")
    except OSError:
        return False
    try:
        os.setxattr(fd, XATTR, b"probe")
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _open_no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def _set_xattr(fd: int, etag: str, content_type: str, status: os.stat_result) -> bool:
    """Record the metadata on the temp file; ``False`` if the filesystem refuses (then a sidecar does it)."""
    value = f"1 {etag} {status.st_size} {status.st_mtime_ns} {content_type}".encode()
    try:
        os.setxattr(fd, XATTR, value)
    except OSError:  # no user xattrs here after all, or a value over the filesystem's limit
        return False
    return True


def _decode_xattr(raw: bytes, status: os.stat_result) -> tuple[str, str] | None:
    """(etag, content type) if ``raw`` is our record of exactly these bytes (same size and mtime)."""
    try:
        version, etag, size, mtime_ns, content_type = raw.decode().split(" ", 4)
    except (UnicodeDecodeError, ValueError):
        return None
    if version != "1" or size != str(status.st_size) or mtime_ns != str(status.st_mtime_ns):
        return None
    return etag, content_type


def _sidecar_of(path: str) -> str:
    directory, _, name = path.rpartition("/")
    return f"{directory}/.{name}.meta"


def _sidecar_meta(path: str, status: os.stat_result) -> tuple[str, str] | None:
    """(etag, content type) from a sidecar if it describes exactly this file, else ``None``."""
    try:
        with open(_sidecar_of(path), encoding="utf-8") as source:
            meta = json.load(source)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("stamp") != _stamp(status) or not isinstance(meta.get("etag"), str):
        return None
    return meta["etag"], str(meta.get("content_type") or "")


def _stamp(status: os.stat_result) -> list[int]:
    """What identifies one version of a data file (JSON-friendly, compared to the sidecar's copy)."""
    return [status.st_size, status.st_mtime_ns, status.st_ino]


#: renames tried by :func:`_commit`, making the key's directories again between two (a handful is enough unless
#: many threads or processes prune the same parents at once; each try is a few syscalls)
COMMIT_ATTEMPTS = 100


def _commit(tmp_name: str, path: str, overwrite: bool, what: str) -> None:
    """Move the finished temp file to ``path`` (replacing, or only if nothing is there); the key's directories
    are made when missing (first object under them, or a concurrent delete pruned them in between: that may
    happen again while they are made, each time in a tiny window, so a few attempts get through)."""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            if overwrite:
                os.replace(tmp_name, path)
            else:
                _link_new(tmp_name, path, what)
            return
        except FileNotFoundError:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
        except NotADirectoryError:
            raise StoreUnavailable(f"cannot write {what}: a parent of the key is an object") from None
        try:
            os.makedirs(path.rpartition("/")[0], exist_ok=True)
        except FileNotFoundError:
            continue  # a concurrent delete pruned a parent between two of the directories made
        except (FileExistsError, NotADirectoryError):
            raise StoreUnavailable(f"cannot write {what}: a parent of the key is an object") from None
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


def _link_new(tmp_name: str, path: str, what: str) -> None:
    """Commit the temp file as ``path`` only if nothing is there (a hard link never replaces its target)."""
    try:
        os.link(tmp_name, path)
    except FileExistsError:
        if os.path.isdir(path):
            raise StoreUnavailable(f"cannot write {what}: the key is a prefix of other keys") from None
        raise ObjectExists(f"{what} exists and is not overwritten") from None
    with contextlib.suppress(OSError):  # the object is committed; a leftover temp name is only clutter
        os.unlink(tmp_name)


def _md5_of(chunks: Iterable[bytes]) -> str:
    digest = StreamMd5()
    try:
        for chunk in chunks:
            digest.update(chunk)
    except BaseException:
        digest.close()
        raise
    return digest.hexdigest()


def _walk_sorted(directory: str, key_prefix: str) -> Iterator[tuple[str, str]]:
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
            yield from _walk_sorted(entry.path, f"{key_prefix}{entry.name}/")
        elif entry.is_file(follow_symlinks=False):
            yield f"{key_prefix}{entry.name}", entry.path
