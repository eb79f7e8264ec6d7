"""Seed inputs for the libFuzzer harness (scripts/fuzz.sh): small valid files of every format the
readers take, written by NumPy, zlib and gzip or from the formats' definitions.

    python3 scripts/fuzz_seeds.py OUT_DIR      # writes OUT_DIR/<reader>/<name>
"""

import gzip
import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
rng = np.random.default_rng(0)


def put(reader, name, data):
    d = out / reader
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def npy(a):
    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()


def npz(compressed, **arrays):
    f = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return f.getvalue()


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        dtype = {np.float32: "F32", np.float64: "F64", np.int64: "I64", np.uint8: "U8"}[a.dtype.type]
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def png(pixels, color_type, bit_depth=8, palette=None):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    h, w = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[i].astype(">u2" if bit_depth == 16 else "u1").tobytes() for i in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + (chunk(b"PLTE", palette) if palette else b"") + chunk(b"IDAT", zlib.compress(raw))
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


def idx(a):
    code = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}[a.dtype.type]
    return struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(a.dtype.newbyteorder(">")).tobytes()


x = rng.standard_normal((5, 4)).astype(np.float32)
put("npy", "f32.npy", npy(x))
put("npy", "f64-fortran.npy", npy(np.asfortranarray(x.astype(np.float64))))
put("npy", "big-endian.npy", npy(x.astype(">f4")))
put("npy", "int64-vector.npy", npy(np.arange(7, dtype=np.int64)))
put("npy", "bool.npy", npy(np.array([[True, False], [False, True]])))
put("npy", "scalar.npy", npy(np.float32(3.5)))
put("npz", "stored.npz", npz(False, X=x, y=np.arange(5)))
put("npz", "deflated.npz", npz(True, X=x, labels=np.arange(5, dtype=np.uint8)))
put("safetensors", "two.safetensors", safetensors({"a": x, "b": np.arange(3, dtype=np.int64)}, {"format": "x"}))
put("safetensors", "empty-meta.safetensors", safetensors({"w": x.astype(np.float64)}))
g = rng.integers(0, 256, (9, 11), dtype=np.uint8)
put("png", "gray8.png", png(g, 0))
put("png", "gray16.png", png(rng.integers(0, 65536, (5, 6), dtype=np.uint16), 0, 16))
put("png", "rgb.png", png(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8).reshape(6, 21), 2))
put("png", "rgba.png", png(rng.integers(0, 256, (4, 5, 4), dtype=np.uint8).reshape(4, 20), 6))
put("png", "palette.png", png(rng.integers(0, 4, (5, 5), dtype=np.uint8), 3, palette=bytes(range(12))))
put("pgm", "binary8.pgm", b"P5\n11 9\n255\n" + g.tobytes())
put("pgm", "binary16.pgm", b"P5 3 2 65535\n" + rng.integers(0, 65536, (2, 3), dtype=np.uint16).astype(">u2").tobytes())
put("pgm", "ascii.pgm", b"P2\n# a comment\n3 2\n15\n0 1 2\n3 4 15\n")
put("idx", "ubyte.idx", idx(rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)))
put("idx", "float.idx", idx(x))
put("idx", "labels.idx", idx(np.arange(10, dtype=np.uint8)))
put("gzip", "text.gz", gzip.compress(b"0.25,-1e-3\n" * 20))
put("gzip", "idx.gz", gzip.compress(idx(np.arange(12, dtype=np.uint8).reshape(3, 4))))
put("csv", "header.csv", b"a,b,c\n1,2,3\n4.5,-6,7e-3\n")
put("csv", "plain.csv", b"1;2;3\n4;5;6\n")
put("csv", "quoted.csv", b'"x","y"\n1,NaN\n-inf,2\n')
print(f"seeds in {out}")
