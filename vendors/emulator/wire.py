"""HTTP plumbing of the emulator: replies, request bodies (sized or chunked), multipart form data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    code: int | None = None  # the legacy envelope code, for the request log


def envelope(code: int, msg: str, data: Any = None) -> Reply:
    """Legacy answer: always HTTP 200, ``{code, msg, data}``."""
    return json_reply({"code": code, "msg": msg, "data": data}, code=code)


def json_reply(payload: Any, *, status: int = 200, code: int | None = None) -> Reply:
    return Reply(status, json.dumps(payload, ensure_ascii=False).encode(), code=code)


class BodyTooLarge(Exception):
    """The request body is over the limit; it has been read and discarded."""


def read_body(stream: BinaryIO, headers: Any, limit_bytes: int) -> bytes:
    """The whole request body (``Content-Length`` or chunked), or :class:`BodyTooLarge` past ``limit_bytes``.

    An oversized body is still drained so that the client receives the answer instead of a reset.
    """
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        pieces = _chunks(stream)
    else:
        pieces = _sized(stream, int(headers.get("Content-Length") or 0))
    body = bytearray()
    too_large = False
    for piece in pieces:
        if not too_large:
            body += piece
            too_large = len(body) > limit_bytes
    if too_large:
        raise BodyTooLarge(f"body over {limit_bytes} bytes")
    return bytes(body)


def _sized(stream: BinaryIO, length: int):
    while length > 0:
        piece = stream.read(min(_CHUNK, length))
        if not piece:
            return
        length -= len(piece)
        yield piece


def _chunks(stream: BinaryIO):
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return
        yield from _sized(stream, size)
        stream.readline()  # CRLF after each chunk


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None
    content: bytes


_DISPOSITION_PARAM = re.compile(r'\b(name|filename)="([^"]*)"')


def parse_multipart(content_type: str, body: bytes) -> dict[str, FormPart]:
    """Parts of a ``multipart/form-data`` body by field name; ``ValueError`` if it is not one."""
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not content_type.startswith("multipart/form-data") or not match:
        raise ValueError("not multipart/form-data")
    delimiter = b"--" + match.group(1).encode()
    parts: dict[str, FormPart] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        head, sep, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part without a header block")
        params = dict(_DISPOSITION_PARAM.findall(head.decode("utf-8", "replace")))
        if "name" in params:
            part = FormPart(params["name"], params.get("filename"), content.removesuffix(b"\r\n"))
            parts[part.name] = part
    return parts
