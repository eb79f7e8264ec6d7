"""Runs the tests against the package in this checkout (python/unroll) and the library built in
.build/release, unless UNROLL_LIBRARY or an installed package says otherwise."""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))


def unroll_binary():
    return os.environ.get("UNROLL_BIN") or str(ROOT / ".build" / "release" / "unroll")


def write_png(path, pixels):
    """An 8-bit grayscale PNG of a uint8 array [H, W], written from the format's definition."""
    import struct
    import zlib

    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def read_png_gray(path):
    """The pixels of an 8-bit grayscale PNG as uint8, decoded from the format's definition."""
    import struct
    import zlib

    data = open(path, "rb").read()
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color == 0, (depth, color)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    import numpy as np
    rows = []
    stride = width + 1
    prev = np.zeros(width, dtype=np.int32)
    for r in range(height):
        f = raw[r * stride]
        line = np.frombuffer(raw[r * stride + 1:(r + 1) * stride], dtype=np.uint8).astype(np.int32)
        cur = np.zeros(width, dtype=np.int32)
        for i in range(width):   # the five PNG filters (none, sub, up, average, Paeth) undone
            a = cur[i - 1] if i else 0
            b = prev[i]
            c = prev[i - 1] if i else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (line[i] + pred) % 256
        rows.append(cur)
        prev = cur
    return np.array(rows, dtype=np.uint8)
