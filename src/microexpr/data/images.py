"""Reading images from disk (errors name the file; partial files are refused before they are
decoded, as libjpeg would fill the missing part with grey) and resizing them.

The data stage owns these primitives so that everything that reads frames (image folders,
preprocessing, representations) reads them the one way, from the stage below it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from microexpr.errors import DatasetError

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG markers that stand alone (no length field): TEM, RST0..7, SOI, EOI
_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}


def _jpeg_scan_start(data: bytes) -> int | None:
    """Offset of the first entropy-coded scan (after the SOS header), 2 when the headers cannot
    be walked (then the whole file is searched), None when the file ends within its headers."""
    pos, n = 2, len(data)
    while True:
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 2 > n:
            return None
        if data[pos] != 0xFF:
            return 2
        marker = data[pos + 1]
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > n:
            return None
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if end > n:
            return None
        if marker == 0xDA:  # start of scan
            return end
        pos = end


def _png_complete(data: bytes) -> bool:
    """Whether the chunks of a PNG reach its IEND chunk (walked by their lengths)."""
    pos, n = len(_PNG_SIGNATURE), len(data)
    while pos + 8 <= n:
        length = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"IEND":
            return True
        pos += 12 + length
    return False


def _bmp_needed(data: bytes) -> int | None:
    """Bytes a BMP needs (pixel offset + rows), None when its header does not say."""
    if len(data) < 26:
        return len(data) + 1
    offset = int.from_bytes(data[10:14], "little")
    header = int.from_bytes(data[14:18], "little")
    if header == 12:  # BITMAPCOREHEADER
        width = int.from_bytes(data[18:20], "little")
        height = int.from_bytes(data[20:22], "little")
        bits, compression, image_size = int.from_bytes(data[24:26], "little"), 0, 0
    elif header >= 40 and len(data) >= 38:
        width = abs(int.from_bytes(data[18:22], "little", signed=True))
        height = abs(int.from_bytes(data[22:26], "little", signed=True))
        bits = int.from_bytes(data[28:30], "little")
        compression = int.from_bytes(data[30:34], "little")
        image_size = int.from_bytes(data[34:38], "little")
    else:
        return None
    if compression in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: plain rows
        # rows are padded to 4 bytes; a writer may leave out the last row's padding
        last_row = (width * bits + 7) // 8
        return offset + (width * bits + 31) // 32 * 4 * max(height - 1, 0) + last_row
    return offset + image_size if image_size else None


def truncation(data: bytes) -> str | None:
    """Why the bytes of a JPEG, PNG or BMP file are a partial file, or None (complete, or
    another format): the end-of-image marker, IEND chunk or pixel rows are missing."""
    if data[:2] == _JPEG_SOI:
        start = _jpeg_scan_start(data)
        # FF D9 cannot occur inside entropy-coded data (FF is stuffed), so an end-of-image
        # marker after the scan start is the real one; anything after it is padding.
        if start is None or data.rfind(_JPEG_EOI, start) < 0:
            return "no JPEG end-of-image marker"
    elif data[:8] == _PNG_SIGNATURE:
        if not _png_complete(data):
            return "no PNG IEND chunk"
    elif data[:2] == b"BM":
        needed = _bmp_needed(data)
        if needed is not None and len(data) < needed:
            return f"{len(data)} bytes, its BMP header needs {needed}"
    return None


def read_image(path: str | Path, color: bool = False, what: str = "image") -> np.ndarray:
    """An image file as uint8 gray (H x W) or RGB (H x W x 3); DatasetError names the file
    (`what` it is: "image", "frame") when it is missing, truncated or not an image.

    The file is read once; a JPEG without its end-of-image marker, a PNG without IEND or a
    BMP shorter than its header says is refused before decoding (libjpeg would otherwise
    return the missing lower part as flat grey with only a console warning).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"cannot read {what} {path}: it does not exist") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not data:
        raise DatasetError(f"{what} {path} is empty (0 bytes): re-extract or re-download it")
    reason = truncation(data)
    if reason is not None:
        raise DatasetError(f"{what} {path} is truncated ({reason}): re-extract or "
                           f"re-download it")
    flags = cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        image = None
    if image is None:
        raise DatasetError(f"cannot read {what} {path}: it is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color else image


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize to size x size (or (height, width)); area averaging when shrinking."""
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (height, width):
        return image
    shrink = height < image.shape[0] or width < image.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
