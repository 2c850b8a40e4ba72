"""Cutting a chunk stream into multipart-upload parts and uploading them a few at a time.

Kept apart from the SDK so the memory arithmetic is in one place:

* :class:`PartSplitter` turns any iterable of byte chunks into parts of exactly ``part_size`` bytes (the last
  may be shorter). It holds the part being assembled plus at most one chunk carried over.
* :func:`upload_parts` keeps at most ``parallel`` parts in flight and reads the next part only once a slot is
  free, so a writer never holds more than ``part_size x (parallel + 1)`` bytes of parts: the in-flight parts
  plus the one being assembled (whose chunks and joined copy overlap while it is sealed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait


class PartSplitter:
    """Parts of ``part_size`` bytes from ``chunks``; ``total_bytes`` counts what has been read so far."""

    def __init__(self, chunks: Iterable[bytes], part_size: int) -> None:
        self._chunks = iter(chunks)
        self._part_size = part_size
        self._carry = b""  # the last chunk read; bytes before _offset are already in a part
        self._offset = 0
        self._eof = False
        self._first: bytes | None = None
        self.total_bytes = 0

    def whole_if_small(self) -> bytes | None:
        """The whole stream if it ends within one part (then one PUT is enough), else ``None``.

        In the second case the bytes read so far become the first part yielded by iteration.
        Exceptions raised by the chunk iterator propagate unchanged.
        """
        first = self._next_part()
        if self._at_eof():
            return first
        self._first = first
        return None

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None:
            part, self._first = self._first, None
            yield part
            del part  # the caller owns it now; do not pin it while the next part is assembled
        while not self._at_eof():
            part = self._next_part()
            yield part
            del part

    def _at_eof(self) -> bool:
        """Whether the stream is exhausted, pulling at most one chunk ahead to find out."""
        while self._offset >= len(self._carry) and not self._eof:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._eof = True
            else:
                self._carry, self._offset = bytes(chunk), 0  # bytes(b) is b itself: no copy
        return self._offset >= len(self._carry)

    def _next_part(self) -> bytes:
        pieces: list[bytes] = []
        missing = self._part_size
        while missing and not self._at_eof():
            pieces.append(self._take(missing))
            missing -= len(pieces[-1])
        part = b"".join(pieces)  # a single piece is returned as is, without a copy
        self.total_bytes += len(part)
        return part

    def _take(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the carried chunk; a whole chunk is passed on without copying."""
        chunk, start = self._carry, self._offset
        end = min(len(chunk), start + limit)
        self._offset = end
        if end == len(chunk):
            self._carry, self._offset = b"", 0
        return chunk if start == 0 and end == len(chunk) else chunk[start:end]


def upload_parts(parts: Iterable[bytes], upload: Callable[[int, bytes], str], parallel: int) -> list[tuple[int, str]]:
    """Call ``upload(part_number, body) -> etag`` for every part, at most ``parallel`` at a time.

    Returns ``[(part_number, etag), ...]`` in part order. On the first failure (an upload or the ``parts``
    iterator raising) pending uploads are cancelled, running ones are waited for, and the error propagates:
    the caller can then abort the multipart upload knowing no part request is still on the wire.
    """
    etags: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="cos-part") as pool:
        inflight: set[Future[tuple[int, str]]] = set()
        try:
            number = 0
            for part in _after_free_slot(parts, inflight, parallel, etags):
                number += 1
                inflight.add(pool.submit(_upload_one, upload, number, part))
                del part
            _collect(inflight, etags)
        except BaseException:
            for future in inflight:
                future.cancel()
            raise  # leaving the with-block waits for the uploads already running
    return sorted(etags.items())


def _after_free_slot(
    parts: Iterable[bytes], inflight: set[Future[tuple[int, str]]], parallel: int, etags: dict[int, str]
) -> Iterator[bytes]:
    """Yield parts, but read each one only after fewer than ``parallel`` uploads are in flight."""
    iterator = iter(parts)
    while True:
        while len(inflight) >= parallel:
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            _collect(done, etags)
            inflight -= done
        part = next(iterator, None)
        if part is None:
            return
        yield part
        del part


def _collect(done: Iterable[Future[tuple[int, str]]], etags: dict[int, str]) -> None:
    for future in done:
        number, etag = future.result()  # re-raises the upload's exception
        etags[number] = etag


def _upload_one(upload: Callable[[int, bytes], str], number: int, body: bytes) -> tuple[int, str]:
    return number, upload(number, body)
