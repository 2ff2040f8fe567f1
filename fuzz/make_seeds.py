"""Writes the seed inputs of fuzz/safetensors_fuzz.cpp into fuzz/corpus/safetensors/:
small valid files (every dtype, metadata, 0-d and empty tensors, unaligned data) and a few
near-misses. Run: `python3 fuzz/make_seeds.py`. Standard library only.
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "safetensors")


def file_bytes(entries, metadata=None, pad=True, data=None):
    """entries: [(name, dtype, shape, nbytes)] laid out in order."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    body = data if data is not None else bytes((k * 37) % 2 for k in range(offset))
    return struct.pack("<Q", len(h)) + h + body


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "one_f32": file_bytes([("w", "F32", [2, 2], 16)]),
        "every_dtype": file_bytes([("a", "F64", [2], 16), ("b", "I64", [1], 8), ("c", "F32", [3], 12),
                                   ("d", "I32", [1], 4), ("e", "BF16", [2], 4), ("f", "F16", [2], 4),
                                   ("g", "U8", [3], 3), ("h", "BOOL", [2], 2)],
                                  metadata={"format": "pt"}),
        "metadata_only": file_bytes([], metadata={"k": "v", "empty": ""}),
        "scalar_and_empty": file_bytes([("s", "F32", [], 4), ("z", "F32", [0, 5], 0)]),
        "unaligned": file_bytes([("u", "U8", [3], 3), ("f", "F32", [2], 8)], pad=False),
        "hole": file_bytes([("a", "F32", [1], 4)], data=b"\0" * 8),
        "bad_dtype": file_bytes([("a", "Q4", [1], 4)]),
        "empty_header": struct.pack("<Q", 2) + b"{}",
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
