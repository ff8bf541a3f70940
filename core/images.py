"""Grids of digits as PNG files, written with numpy and zlib alone.

A PNG (ISO/IEC 15948) is an 8-byte signature and chunks of (length, type, data, CRC-32):
IHDR (width, height, bit depth 8, colour type 0 = grey), IDAT (the zlib-compressed rows,
each led by its filter byte, 0 = none) and IEND.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tile(images: np.ndarray, cols: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """(n, [1,] H, W) grey images in [0, 1] -> one (rows*(H+pad)+pad, cols*(W+pad)+pad) image,
    row-major, separated by `pad` pixels of mid grey and enlarged `scale` times."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4:
        x = x.mean(axis=1)
    if x.ndim != 3 or x.shape[0] < 1:
        raise ValueError(f"a grid needs images shaped (n, H, W) or (n, C, H, W), got {np.shape(images)}")
    n, h, w = x.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 0.5)
    for i in range(n):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = x[i]
    return np.kron(out, np.ones((scale, scale))) if scale > 1 else out


def png_bytes(grey: np.ndarray) -> bytes:
    """An (H, W) image of grey levels in [0, 1] (NaN drawn black) as the bytes of an 8-bit PNG."""
    g = np.nan_to_num(np.asarray(grey, dtype=np.float64), nan=0.0)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"a PNG is drawn from one (H, W) image, got shape {g.shape}")
    levels = np.round(np.clip(g, 0.0, 1.0) * 255).astype(np.uint8)
    h, w = levels.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), levels], axis=1).tobytes()  # filter byte 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def write_grid(path, images: np.ndarray, cols: int | None = None, scale: int = 2) -> Path:
    """Write images (n, [1,] H, W) in [0, 1] as one PNG grid at `path`."""
    path = Path(path)
    path.write_bytes(png_bytes(tile(images, cols, scale=scale)))
    return path


def read_png(data: bytes) -> np.ndarray:
    """The (H, W) uint8 grey levels of a PNG written by png_bytes (8-bit grey, no filters)."""
    if data[:8] != SIGNATURE:
        raise ValueError("not a PNG: bad signature")
    pos, header, idat = 8, None, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos: pos + 4])
        kind, body = data[pos + 4: pos + 8], data[pos + 8: pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length: pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"PNG chunk {kind!r} fails its CRC")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h = header[0], header[1]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, w + 1)
    if rows[:, 0].any():
        raise ValueError("only unfiltered rows are read here")
    return rows[:, 1:]
