"""File types decided by magic bytes, never by names or vendor claims."""

from __future__ import annotations

#: bytes of a file's head that :func:`sniff` needs
HEAD_BYTES = 16

CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "mp4": "video/mp4",
}


def sniff(head: bytes) -> str | None:
    """The type of a file from its first bytes: ``jpeg``, ``png``, ``webp``, ``gif``, ``mp4`` or ``None``."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[4:8] == b"ftyp":
        return "mp4"
    return None


#: Bytes the local marker auditor treats as forbidden content; the RunningHub emulator embeds them in outputs it
#: wants blocked. Only a contract between those two local stand-ins: real moderation never looks for it.
BLOCK_MARKER = b"RELAY-EMULATOR-BLOCK"
