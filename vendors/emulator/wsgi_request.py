"""What a WSGI application reads of a request: its headers, and its body (sized or chunked) under a limit.

``wsgiref`` hands an application the raw socket stream as ``wsgi.input`` and does not decode a chunked
request body (httpx sends one when it cannot size an upload). :func:`read_body` decodes it with the
standard library's HTTP/1.1 parser (:class:`http.client.HTTPResponse`, fed a made-up response head
followed by the request's chunked bytes) rather than a parser of our own.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Iterator
from typing import Any, BinaryIO
from wsgiref.headers import Headers

_PIECE = 64 * 1024
_CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


class BodyTooLarge(Exception):
    """The request body is over the limit; it has been read and discarded."""


def request_headers(environ: dict[str, Any]) -> Headers:
    """The request's headers, looked up case-insensitively (``headers.get("content-type")``).

    Names come back in the canonical case WSGI leaves (``X-Tc-Action``); values are as received (a repeated
    header joined with commas; ``wsgiref`` reports ``Content-Type: text/plain`` when none was sent).
    """
    pairs = [(key[5:].replace("_", "-").title(), str(value)) for key, value in environ.items() if key[:5] == "HTTP_"]
    for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
        if environ.get(key):
            pairs.append((name, str(environ[key])))
    return Headers(pairs)


def read_body(environ: dict[str, Any], limit_bytes: int | None = None) -> bytes:
    """The whole request body (``Content-Length`` or chunked).

    Raises :class:`BodyTooLarge` past ``limit_bytes`` (the body is still drained, so that the client
    receives the answer instead of a reset) and :class:`ValueError` for a malformed chunked body.
    """
    stream: BinaryIO = environ["wsgi.input"]
    if "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower():
        pieces = _dechunked(stream)
    else:
        pieces = _sized(stream, int(environ.get("CONTENT_LENGTH") or 0))
    body = bytearray()
    too_large = False
    for piece in pieces:
        if not too_large:
            body += piece
            too_large = limit_bytes is not None and len(body) > limit_bytes
    if too_large:
        raise BodyTooLarge(f"body over {limit_bytes} bytes")
    return bytes(body)


def _sized(stream: BinaryIO, length: int) -> Iterator[bytes]:
    while length > 0:
        piece = stream.read(min(_PIECE, length))
        if not piece:
            return
        length -= len(piece)
        yield piece


def _dechunked(stream: BinaryIO) -> Iterator[bytes]:
    response = http.client.HTTPResponse(_HeadThenBody(stream))  # type: ignore[arg-type]
    try:
        response.begin()
        while piece := response.read(_PIECE):
            yield piece
    except http.client.HTTPException as exc:  # IncompleteRead, LineTooLong: bad sizes or a cut body
        raise ValueError(f"malformed chunked body: {exc!r}") from None


class _HeadThenBody:
    """What :class:`http.client.HTTPResponse` reads from: ``_CHUNKED_HEAD``, then the request stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_Concatenated(_CHUNKED_HEAD, self._stream))


class _Concatenated(io.RawIOBase):
    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        # read1: what is there now, at most one socket read; read(n) would wait for n bytes that may never come
        self._read_some = getattr(stream, "read1", stream.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._head[: len(buffer)] if self._head else self._read_some(len(buffer))
        self._head = self._head[len(data) :] if self._head else b""
        buffer[: len(data)] = data
        return len(data)
