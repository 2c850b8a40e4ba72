"""Small, real media files made without Pillow: what the emulator serves as results.

Every maker is deterministic in ``seed`` (same seed, same bytes; different seeds, different bytes) and can
carry ``marker`` bytes inside the file where any byte scanner finds them. The moderation marker
:data:`BLOCK_MARKER` is what the local auditor treats as forbidden content:

- PNG: a ``tEXt`` chunk (``Comment``), after ``IHDR``
- JPEG: a ``COM`` segment, after ``APP0``
- MP4: a top-level ``free`` box, after ``ftyp``
"""

from __future__ import annotations

import random
import struct
import zlib

from relay_core.filetypes import BLOCK_MARKER  # noqa: F401 - re-exported: the emulator embeds it

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# An 8x8 mid-grey baseline JPEG (JFIF, one component, Huffman tables of one code each), checked with
# libjpeg (gdk-pixbuf-csource decodes it to 64 pixels of 0x80). make_jpeg puts its COM segment after APP0.
_JPEG_SOI_APP0 = bytes.fromhex("ffd8 ffe0 0010 4a46494600 0101 00 0001 0001 0000")
_JPEG_REST = (
    bytes.fromhex("ffdb 0043 00")
    + b"\x01" * 64  # DQT: table 0, every step 1
    + bytes.fromhex("ffc0 000b 08 0008 0008 01 01 11 00")  # SOF0: 8 bit, 8x8, one component
    + bytes.fromhex("ffc4 0014 00 01")
    + bytes(15)
    + b"\x00"  # DHT DC 0: one 1-bit code, category 0
    + bytes.fromhex("ffc4 0014 10 01")
    + bytes(15)
    + b"\x00"  # DHT AC 0: one 1-bit code, EOB
    + bytes.fromhex("ffda 0008 01 01 00 00 3f 00")  # SOS
    + bytes.fromhex("3f ffd9")  # entropy bits 0 (DC diff 0), 0 (EOB), then 1-padding; EOI
)
JPEG_SIZE_PX = (8, 8)


def _tag(seed: int, marker: bytes) -> bytes:
    """What a file says about itself: the seed (so files differ) and the marker, if any."""
    text = b"relay-emulator seed=%d" % seed
    return text + b" " + marker if marker else text


# -- PNG ------------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def make_png(width: int, height: int, seed: int, marker: bytes = b"") -> bytes:
    """An 8-bit RGB PNG: a diagonal gradient whose colours come from ``seed``."""
    if not (1 <= width <= 4096 and 1 <= height <= 4096):
        raise ValueError(f"png size {width}x{height} out of range 1..4096")
    rng = random.Random(seed)
    base = [rng.randrange(256) for _ in range(3)]
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            shade = (x + y) * 255 // (width + height)
            rows += bytes((c + shade) & 0xFF for c in base)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"tEXt", b"Comment\x00" + _tag(seed, marker))
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


# -- JPEG -----------------------------------------------------------------------------------------------


def make_jpeg(seed: int, marker: bytes = b"") -> bytes:
    """An 8x8 baseline JPEG carrying the seed and ``marker`` in a ``COM`` segment."""
    comment = _tag(seed, marker)
    if len(comment) > 0xFFFF - 2:
        raise ValueError("jpeg marker too long for one COM segment")
    com = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    return _JPEG_SOI_APP0 + com + _JPEG_REST


# -- MP4 ------------------------------------------------------------------------------------------------


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
_TIMESCALE = 1000
_DURATION = 1000  # one frame shown for one second


def _mp4v_entry(width: int, height: int) -> bytes:
    """``mp4v`` sample entry whose ``esds`` says object type 0x6C: each sample is one JPEG (MJPEG)."""
    decoder_config = bytes([0x04, 13, 0x6C, 0x11]) + b"\x00\x00\x00" + struct.pack(">II", 0, 0)
    sl_config = bytes([0x06, 1, 0x02])
    es_size = 3 + len(decoder_config) + len(sl_config)
    es = bytes([0x03, es_size]) + b"\x00\x01\x00" + decoder_config + sl_config  # ES_ID 1, no flags
    visual = (
        b"\x00" * 6
        + struct.pack(">H", 1)  # data_reference_index
        + b"\x00" * 16
        + struct.pack(">HHIIIH", width, height, 0x00480000, 0x00480000, 0, 1)
        + b"\x00" * 32  # compressorname
        + struct.pack(">Hh", 0x0018, -1)
    )
    return _box(b"mp4v", visual, _full_box(b"esds", 0, 0, es))


def _moov(sample_size: int, sample_offset: int) -> bytes:
    width, height = JPEG_SIZE_PX
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIH", 0, 0, _TIMESCALE, _DURATION, 0x00010000, 0x0100),
        b"\x00" * 10,
        _MATRIX,
        b"\x00" * 24,
        struct.pack(">I", 2),
    )
    tkhd = _full_box(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII", 0, 0, 1, 0, _DURATION),
        b"\x00" * 8,
        struct.pack(">hhhH", 0, 0, 0, 0),
        _MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, _TIMESCALE, _DURATION, 0x55C4, 0))
    hdlr = _full_box(b"hdlr", 0, 0, b"\x00" * 4, b"vide", b"\x00" * 12, b"VideoHandler\x00")
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, struct.pack(">I", 1), _mp4v_entry(width, height)),
        _full_box(b"stts", 0, 0, struct.pack(">III", 1, 1, _DURATION)),
        _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, 1, 1)),
        _full_box(b"stsz", 0, 0, struct.pack(">III", 0, 1, sample_size)),
        _full_box(b"stco", 0, 0, struct.pack(">II", 1, sample_offset)),
    )
    minf = _box(
        b"minf",
        _full_box(b"vmhd", 0, 1, b"\x00" * 8),
        _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1))),
        stbl,
    )
    return _box(b"moov", mvhd, _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf)))


def make_mp4(seed: int, marker: bytes = b"") -> bytes:
    """A one-frame MP4 (``ftyp free moov mdat``, moov first): one MJPEG sample of :func:`make_jpeg`.

    The ``free`` box carries the seed and ``marker``.
    """
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2mp41")
    free = _box(b"free", _tag(seed, marker))
    frame = make_jpeg(seed)
    moov_size = len(_moov(len(frame), 0))
    sample_offset = len(ftyp) + len(free) + moov_size + 8  # past the mdat header
    return ftyp + free + _moov(len(frame), sample_offset) + _box(b"mdat", frame)


def make_file(file_type: str, seed: int, marker: bytes = b"") -> bytes:
    """A file of ``file_type`` (``jpeg``, ``png`` or ``mp4``)."""
    if file_type == "jpeg":
        return make_jpeg(seed, marker)
    if file_type == "png":
        return make_png(64, 64, seed, marker)
    if file_type == "mp4":
        return make_mp4(seed, marker)
    raise ValueError(f"the emulator cannot make {file_type!r} files (jpeg, png, mp4)")


#: file types :func:`make_file` can produce, with the extension and the vendor's ``fileType`` word
SUPPORTED_TYPES = {"jpeg": "jpg", "png": "png", "mp4": "mp4"}
