"""Object keys every store accepts: :func:`check_key` refuses a key that could escape a prefix or the store root.

Apart from :mod:`objectstore.base` so that the producer shim, which checks the key of each upload and never
opens a store, does not load the store protocol.
"""

from __future__ import annotations

from objectstore.errors import InvalidKey

#: COS limits a key to 850 bytes of UTF-8
MAX_KEY_BYTES = 850


def check_key(key: str) -> str:
    """Refuse keys that could escape a prefix or the store root."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKey(f"object key {key!r} is empty, absolute or has a backslash/NUL")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"object key {key!r} has an empty, '.' or '..' segment")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes")
    return key
