"""HTTP plumbing of the emulator: replies, and multipart form data (uploads)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any


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


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None
    content: bytes


def parse_multipart(content_type: str, body: bytes) -> dict[str, FormPart]:
    """Parts of a ``multipart/form-data`` body by field name; ``ValueError`` if it is not one.

    Parsed by :mod:`email` (the HTTP policy: UTF-8 file names as browsers and httpx send them); a part
    without a ``name`` is skipped, a repeated name keeps the last part.
    """
    if not content_type.startswith("multipart/form-data"):
        raise ValueError("not multipart/form-data")
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(EmailMessage, policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or not message.get_boundary():
        raise ValueError("multipart/form-data without a boundary or parts")
    parts: dict[str, FormPart] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            content = part.get_payload(decode=True)
            parts[name] = FormPart(name, part.get_filename(), content if isinstance(content, bytes) else b"")
    return parts
