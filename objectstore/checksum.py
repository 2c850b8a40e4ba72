"""The md5 of a stream of chunks, computed beside the stream's own work once it is long enough to pay for that.

md5 runs at about 600 MB/s on one core, slower than a loopback download writes to a file; computed in line it
halves a large download's speed. :class:`StreamMd5` hashes the first :data:`INLINE_BYTES` in the caller's
thread (small objects never start a thread), then hands the chunks to a helper thread: ``hashlib`` releases the
GIL while it hashes, so the md5 of one chunk overlaps the receiving and writing of the next ones. Memory stays
bounded: the caller waits while :data:`MAX_PENDING_BYTES` (or one larger chunk) are not hashed yet. Chunks are
not copied (``bytes`` are immutable); any other buffer is copied once, since its owner may reuse it as soon as
``update`` returns.

Contract: ``update`` in stream order, then ``hexdigest`` once (it waits for the helper) — or ``close`` to drop
the digest when the stream failed. Use one object from one thread.
"""

from __future__ import annotations

import collections
import hashlib
import threading

INLINE_BYTES = 8 * 1024 * 1024
MAX_PENDING_BYTES = 2 * 1024 * 1024


class StreamMd5:
    def __init__(self, inline_bytes: int = INLINE_BYTES) -> None:
        self._digest = hashlib.md5(usedforsecurity=False)
        self._inline_left = inline_bytes
        self._helper: threading.Thread | None = None
        self._pending: collections.deque[bytes | None] = collections.deque()  # None: the end
        self._pending_bytes = 0  # queued or being hashed
        self._changed: threading.Condition  # made with the helper (most streams are short enough to never need one)

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add ``chunk`` (in stream order); waits while the helper is :data:`MAX_PENDING_BYTES` behind."""
        if self._helper is None:
            self._digest.update(chunk)
            self._inline_left -= len(chunk)
            if self._inline_left <= 0:
                self._changed = threading.Condition()
                self._helper = threading.Thread(target=self._hash, name="md5", daemon=True)
                self._helper.start()
            return
        if not chunk:
            return
        data = chunk if type(chunk) is bytes else bytes(chunk)
        with self._changed:
            while self._pending_bytes >= MAX_PENDING_BYTES:
                self._changed.wait()
            self._pending.append(data)
            self._pending_bytes += len(data)
            self._changed.notify_all()

    def hexdigest(self) -> str:
        """The md5 hex of everything given to :meth:`update`."""
        self._stop(finish=True)
        return self._digest.hexdigest()

    def close(self) -> None:
        """Stop the helper without finishing the digest (the stream failed); idempotent."""
        self._stop(finish=False)

    def _hash(self) -> None:
        update = self._digest.update
        while True:
            with self._changed:
                while not self._pending:
                    self._changed.wait()
                chunk = self._pending.popleft()
            if chunk is None:
                return
            update(chunk)  # outside the lock, GIL released: the caller goes on meanwhile
            with self._changed:
                self._pending_bytes -= len(chunk)
                self._changed.notify_all()

    def _stop(self, *, finish: bool) -> None:
        """End the helper (after the chunks still queued when ``finish``, else dropping them) and wait for it."""
        helper, self._helper = self._helper, None
        if helper is None:
            return
        with self._changed:
            if not finish:
                self._pending.clear()
            self._pending.append(None)
            self._changed.notify_all()
        helper.join()
