"""Object stores addressed by URL: ``file:///root?bucket=b`` (local) and ``cos://bucket-appid?region=...``."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from objectstore.base import ObjectStore


def open_store(url: str) -> ObjectStore:
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from objectstore.local import LocalStore

        return LocalStore.from_url(url)
    if scheme == "cos":
        from objectstore.cos import CosStore

        return CosStore.from_url(url)
    from relay_core.errors import ConfigError

    raise ConfigError(f"RELAY_STORE: unsupported store URL scheme {scheme!r} (use file:// or cos://)")
