"""The emulator's media files are real files: structure walked here, decoded by real decoders when present."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib

import pytest

from relay_core.filetypes import sniff
from vendors.emulator.media import BLOCK_MARKER, make_file, make_jpeg, make_mp4, make_png

MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf"}


def _decode_with_gdk_pixbuf(path) -> tuple[int, int]:
    """(width, height) as libpng / libjpeg see them, through gdk-pixbuf; skips when the tool is missing."""
    tool = shutil.which("gdk-pixbuf-csource")
    if tool is None:
        pytest.skip("gdk-pixbuf-csource is not installed")
    done = subprocess.run([tool, "--raw", str(path)], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # libjpeg warns on stderr about damaged data
    width = re.search(r"/\* width \((\d+)\) \*/", done.stdout)
    height = re.search(r"/\* height \((\d+)\) \*/", done.stdout)
    return int(width.group(1)), int(height.group(1))


# -- PNG ------------------------------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, payload = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF, f"bad CRC in {kind}"
        chunks.append((kind, payload))
        at += 12 + length
    assert at == len(data)
    return chunks


def test_png_has_valid_chunks_and_pixels():
    data = make_png(5, 3, seed=7)
    chunks = _png_chunks(data)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (width, height, depth, colour) == (5, 3, 8, 2)
    pixels = zlib.decompress(b"".join(p for k, p in chunks if k == b"IDAT"))
    assert len(pixels) == height * (1 + width * 3)
    assert sniff(data[:16]) == "png"


def test_png_marker_is_in_a_text_chunk():
    chunks = dict(_png_chunks(make_png(4, 4, seed=1, marker=BLOCK_MARKER)))
    assert BLOCK_MARKER in chunks[b"tEXt"]
    assert BLOCK_MARKER not in make_png(4, 4, seed=1)


def test_png_decodes(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(make_png(64, 32, seed=3, marker=BLOCK_MARKER))
    assert _decode_with_gdk_pixbuf(path) == (64, 32)


def test_png_converts_to_ppm_with_convert(tmp_path):
    convert = shutil.which("convert")
    if convert is None:
        pytest.skip("convert is not installed")
    path = tmp_path / "x.png"
    path.write_bytes(make_png(6, 4, seed=3))
    done = subprocess.run([convert, str(path), "ppm:-"], capture_output=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert re.match(rb"P6\s+6\s+4\s+255\s", done.stdout)


def test_png_rejects_absurd_sizes():
    with pytest.raises(ValueError):
        make_png(0, 10, seed=1)


# -- JPEG -----------------------------------------------------------------------------------------------


def _jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) up to SOS, then the entropy-coded data must end with EOI."""
    assert data[:2] == b"\xff\xd8"
    segments, at = [], 2
    while True:
        assert data[at] == 0xFF, f"no marker at {at}"
        marker = data[at + 1]
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        segments.append((marker, data[at + 4 : at + 2 + length]))
        at += 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data follows
            break
    entropy = data[at:-2]
    assert entropy and b"\xff\xd9" not in entropy
    assert data[-2:] == b"\xff\xd9"
    return segments


def test_jpeg_is_baseline_with_a_comment():
    data = make_jpeg(seed=42, marker=BLOCK_MARKER)
    segments = _jpeg_segments(data)
    markers = [m for m, _ in segments]
    assert markers[0] == 0xE0  # JFIF APP0 first
    assert 0xC0 in markers and 0xDB in markers and markers.count(0xC4) == 2
    sof = dict(segments)[0xC0]
    assert struct.unpack(">BHH", sof[:5]) == (8, 8, 8)
    comment = dict(segments)[0xFE]
    assert b"seed=42" in comment and BLOCK_MARKER in comment
    assert sniff(data[:16]) == "jpeg"


def test_jpeg_varies_with_seed_and_is_deterministic():
    assert make_jpeg(1) == make_jpeg(1)
    assert make_jpeg(1) != make_jpeg(2)
    assert BLOCK_MARKER not in make_jpeg(1)


def test_jpeg_decodes(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(make_jpeg(seed=9, marker=BLOCK_MARKER))
    assert _decode_with_gdk_pixbuf(path) == (8, 8)


# -- MP4 ------------------------------------------------------------------------------------------------

# boxes with fields before their child boxes: version/flags + entry count; a visual sample entry's 78 bytes
_FIELDS_BEFORE_CHILDREN = {b"stsd": 8, b"dref": 8, b"mp4v": 78}


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in data[start:end]; sizes must tile it exactly."""
    boxes, at = [], start
    while at < end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        assert size >= 8 and at + size <= end, f"box {kind} overruns its parent"
        boxes.append((kind, at + 8, at + size))
        at += size
    assert at == end
    return boxes


def _walk(data: bytes, start: int, end: int, found: dict) -> None:
    for kind, body_start, body_end in _boxes(data, start, end):
        found[kind] = (body_start, body_end)
        if kind in MP4_CONTAINERS:
            _walk(data, body_start, body_end, found)
        elif kind in _FIELDS_BEFORE_CHILDREN:
            _walk(data, body_start + _FIELDS_BEFORE_CHILDREN[kind], body_end, found)


def test_mp4_box_structure_and_sample_table():
    data = make_mp4(seed=5, marker=BLOCK_MARKER)
    top = [kind for kind, _, _ in _boxes(data, 0, len(data))]
    assert top == [b"ftyp", b"free", b"moov", b"mdat"]
    found: dict = {}
    _walk(data, 0, len(data), found)
    for kind in b"mvhd tkhd mdhd hdlr vmhd dref mp4v esds stts stsc stsz stco".split():
        assert kind in found, kind
    esds_start, esds_end = found[b"esds"]
    assert bytes([0x04, 13, 0x6C]) in data[esds_start:esds_end]  # decoder config: object type MJPEG
    hdlr_start, _ = found[b"hdlr"]
    assert data[hdlr_start + 8 : hdlr_start + 12] == b"vide"
    stsz_start, _ = found[b"stsz"]
    _, count, sample_size = struct.unpack(">III", data[stsz_start + 4 : stsz_start + 16])
    stco_start, _ = found[b"stco"]
    (offset,) = struct.unpack(">I", data[stco_start + 8 : stco_start + 12])
    mdat_start, mdat_end = found[b"mdat"]
    assert count == 1 and mdat_start <= offset and offset + sample_size == mdat_end
    assert data[offset : offset + 3] == b"\xff\xd8\xff"  # the sample is a JPEG frame
    free_start, free_end = found[b"free"]
    assert BLOCK_MARKER in data[free_start:free_end]
    assert sniff(data[:16]) == "mp4"


def test_mp4_sample_frame_decodes(tmp_path):
    data = make_mp4(seed=5)
    stco = data.index(b"stco")
    (offset,) = struct.unpack(">I", data[stco + 12 : stco + 16])  # type, version/flags, entry count
    path = tmp_path / "frame.jpg"
    path.write_bytes(data[offset:])
    assert _decode_with_gdk_pixbuf(path) == (8, 8)


def test_mp4_varies_with_seed_and_marker_only_when_asked():
    assert make_mp4(1) == make_mp4(1) and make_mp4(1) != make_mp4(2)
    assert BLOCK_MARKER not in make_mp4(1)


@pytest.mark.parametrize("file_type", ["jpeg", "png", "mp4"])
def test_make_file_sniffs_as_its_type(file_type):
    assert sniff(make_file(file_type, seed=3)[:16]) == file_type


def test_make_file_refuses_unknown_types():
    with pytest.raises(ValueError, match="webp"):
        make_file("webp", seed=1)
