"""StreamMd5: the md5 of a chunk stream, hashed beside the stream once it is long enough."""

from __future__ import annotations

import hashlib
import os
import threading

from objectstore.checksum import MAX_PENDING_BYTES, StreamMd5


def _helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "md5"]


def test_short_streams_are_hashed_in_line_without_a_thread():
    digest = StreamMd5(inline_bytes=1024)
    digest.update(b"a" * 1000)
    assert _helpers() == []
    assert digest.hexdigest() == hashlib.md5(b"a" * 1000).hexdigest()


def test_long_streams_are_hashed_in_a_helper_and_give_the_same_md5():
    chunks = [os.urandom(n) for n in (100, 70_000, 0, 1, 65_536, 300_000, 5)] * 4
    digest = StreamMd5(inline_bytes=50_000)
    for n, chunk in enumerate(chunks):
        digest.update(chunk)
        if n == 1:
            assert len(_helpers()) == 1  # past the in-line bytes: the helper took over
    assert digest.hexdigest() == hashlib.md5(b"".join(chunks)).hexdigest()
    assert _helpers() == []  # hexdigest waited for it to end


def test_the_caller_waits_rather_than_queueing_without_bound():
    """Memory stays bounded: what the helper has not hashed yet never exceeds the budget plus one chunk."""
    chunk = b"y" * (MAX_PENDING_BYTES // 4)
    digest = StreamMd5(inline_bytes=0)
    worst = 0
    for _ in range(200):
        digest.update(chunk)
        worst = max(worst, digest._pending_bytes)
    assert worst < MAX_PENDING_BYTES + len(chunk)
    assert digest.hexdigest() == hashlib.md5(chunk * 200).hexdigest()


def test_a_reused_buffer_is_hashed_as_it_was_when_given():
    """A caller may refill a bytearray as soon as update returns: what was given is what is hashed."""
    buffer = bytearray(4096)
    expected = hashlib.md5()
    digest = StreamMd5(inline_bytes=0)
    for n in range(64):
        buffer[:] = bytes([n]) * 4096
        expected.update(buffer)
        digest.update(buffer)
        digest.update(memoryview(buffer)[:10])
        expected.update(buffer[:10])
    assert digest.hexdigest() == expected.hexdigest()


def test_close_drops_the_queued_chunks_and_ends_the_helper():
    big = b"x" * MAX_PENDING_BYTES
    digest = StreamMd5(inline_bytes=0)
    for _ in range(8):  # each update waits for the one before to be hashed: the helper is busy throughout
        digest.update(big)
    digest.close()
    digest.close()
    assert _helpers() == []
