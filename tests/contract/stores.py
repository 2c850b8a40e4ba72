"""The object-store backends the contract suite runs against.

``STORES`` maps a backend name to ``factory(tmp_path) -> ObjectStore``; the store's ``default_bucket`` must
exist and be empty. ``LEFTOVERS`` maps a backend name to ``leftovers(store) -> list[str]``: what a failed
write may leave behind outside the object namespace (temp files, incomplete multipart uploads); the suite
asserts it is empty after a write that failed. Add a backend by adding an entry to each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from objectstore.base import ObjectStore
from objectstore.local import LocalStore


def _local(tmp_path: Path) -> ObjectStore:
    """Metadata in an xattr of each data file where the filesystem takes them (probed), else in sidecars."""
    return LocalStore.from_url(f"file://{tmp_path / 'store'}?bucket=contract-bucket")


def _local_sidecar(tmp_path: Path) -> ObjectStore:
    """The fallback for filesystems without user xattrs: metadata in a ``.<name>.meta`` sidecar per object."""
    return LocalStore(tmp_path / "store", "contract-bucket", use_xattrs=False)


def _local_leftovers(store: ObjectStore) -> list[str]:
    """Temp files anywhere under the root (data files and sidecars are not leftovers)."""
    assert isinstance(store, LocalStore)
    return sorted(
        str(path.relative_to(store.root))
        for path in store.root.rglob("*")
        if path.is_file() and path.name.endswith(".tmp")
    )


def _cos(tmp_path: Path) -> ObjectStore:
    """COS through ``cos-python-sdk-v5`` against the local COS server (a fresh bucket per test)."""
    from tests.servers.cos_server import make_cos_store

    return make_cos_store(tmp_path)


def _cos_leftovers(store: ObjectStore) -> list[str]:
    """Incomplete multipart uploads in the store's bucket."""
    from tests.servers.cos_server import cos_leftovers

    return cos_leftovers(store)


STORES: dict[str, Callable[[Path], ObjectStore]] = {
    "local": _local,
    "local-sidecar": _local_sidecar,
    "cos": _cos,
}

LEFTOVERS: dict[str, Callable[[ObjectStore], list[str]]] = {
    "local": _local_leftovers,
    "local-sidecar": _local_leftovers,
    "cos": _cos_leftovers,
}
