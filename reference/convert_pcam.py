#!/usr/bin/env python3
"""Convert PatchCamelyon (PCam) HDF5 files into clipit dataset files (.cds).

Input: a directory holding the PCam files
    camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5
(`x`: dataset "x", (N, 96, 96, 3) uint8; `y`: dataset "y", (N, 1, 1, 1) uint8, 1 = the
centre 32x32 region contains tumour). The files are distributed gzipped (.h5.gz);
gunzip them first. Splits whose files are absent are skipped.

Output: OUT/train.cds, OUT/val.cds (from "valid"), OUT/test.cds, classes
["normal", "tumor"], written directly in the .cds layout of docs/datasets.md
(Sources/Datasets/DatasetFile.swift), streaming `--chunk` images at a time:

    offset  size  field (integers little-endian)
    0       8     magic b"CLIPITDS"
    8       4     version 1 (uint32)
    12      4     fixed header size 64 (uint32)
    16      4     height (uint32)           20  4  width (uint32)
    24      4     channels (uint32)         28  4  class count (uint32)
    32      8     image count (uint64)      40  8  JSON length, unpadded (uint64)
    48      8     images offset (uint64) = 64 + JSON length rounded up to a multiple of 8
    56      8     labels offset (uint64) = images offset + N*H*W*C rounded up to 8
    64            JSON block, UTF-8, padded with spaces (0x20) to a multiple of 8 bytes
    images offset N*H*W*C uint8 (image-major, HWC), then zero bytes up to the labels offset
    labels offset N int32 labels
    end - 4       CRC-32 (zlib.crc32, the zlib/PNG polynomial) of every byte before it (uint32)

The JSON block is {"class_names":[...],"split":"...","source":"..."} with exactly these
keys in this order, no spaces (the Swift writer's byte layout for the same content), so
the output is byte-identical to what `DatasetWriter` writes for the same images.

Usage:
    python reference/convert_pcam.py --pcam DIR --out OUT [--limit N] [--chunk 4096]
Requires numpy and h5py.
"""
import argparse
import json
import os
import struct
import sys
import zlib

import numpy as np

SPLITS = (("train", "train"), ("valid", "val"), ("test", "test"))
CLASS_NAMES = ["normal", "tumor"]
MAGIC, VERSION, FIXED_HEADER = b"CLIPITDS", 1, 64


def align8(n):
    return (n + 7) & ~7


def json_block(class_names, split, source):
    # Same text as DatasetInfo.json() in Swift for ASCII names without control characters.
    return json.dumps({"class_names": class_names, "split": split, "source": source},
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class CDSWriter:
    """Streams one .cds file: header and JSON first, images in chunks, then labels and the
    CRC; written to OUT.tmp-PID and renamed into place on close()."""

    def __init__(self, path, height, width, channels, count, class_names, split, source):
        self.path, self.count = path, count
        self.image_bytes = height * width * channels
        self.tmp = f"{path}.tmp-{os.getpid()}"
        self.file = open(self.tmp, "wb")
        self.crc = 0
        self.written = 0
        self.labels = []
        js = json_block(class_names, split, source)
        images_offset = FIXED_HEADER + align8(len(js))
        labels_offset = align8(images_offset + count * self.image_bytes)
        header = MAGIC + struct.pack("<IIIIIIQQQQ", VERSION, FIXED_HEADER, height, width, channels,
                                     len(class_names), count, len(js), images_offset, labels_offset)
        assert len(header) == FIXED_HEADER
        self._write(header + js + b" " * (align8(len(js)) - len(js)))
        self.class_count = len(class_names)

    def _write(self, data):
        self.crc = zlib.crc32(data, self.crc)
        self.written += len(data)
        self.file.write(data)

    def append(self, images, labels):
        images = np.ascontiguousarray(images, dtype=np.uint8)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        assert images.shape[0] == labels.shape[0]
        assert images[0].size == self.image_bytes, (images.shape, self.image_bytes)
        if labels.size and (labels.min() < 0 or labels.max() >= self.class_count):
            raise ValueError(f"{self.path}: label outside 0..{self.class_count - 1}")
        self._write(images.tobytes())
        self.labels.append(labels.astype("<i4"))

    def close(self):
        labels = np.concatenate(self.labels) if self.labels else np.zeros(0, "<i4")
        if labels.size != self.count:
            self.file.close()
            os.unlink(self.tmp)
            raise ValueError(f"{self.path}: {labels.size} images appended, {self.count} announced")
        self._write(b"\0" * (align8(self.written) - self.written))
        self._write(labels.astype("<i4").tobytes())
        self.file.write(struct.pack("<I", self.crc & 0xFFFFFFFF))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)


def convert_split(x_path, y_path, out_path, split, limit=None, chunk=4096):
    import h5py
    with h5py.File(x_path, "r") as fx, h5py.File(y_path, "r") as fy:
        if "x" not in fx or "y" not in fy:
            raise SystemExit(f"{x_path} / {y_path}: expected datasets 'x' and 'y' (PCam layout)")
        x, y = fx["x"], fy["y"]
        if x.ndim != 4 or x.shape[3] != 3 or x.dtype != np.uint8:
            raise SystemExit(f"{x_path}: 'x' has shape {x.shape} {x.dtype}; expected (N, H, W, 3) uint8")
        if y.shape[0] != x.shape[0] or int(np.prod(y.shape[1:])) != 1:
            raise SystemExit(f"{y_path}: 'y' has shape {y.shape}; expected ({x.shape[0]}, 1, 1, 1)")
        n = x.shape[0] if limit is None else min(limit, x.shape[0])
        source = f"PCam {os.path.basename(x_path)}"
        writer = CDSWriter(out_path, x.shape[1], x.shape[2], 3, n, CLASS_NAMES, split, source)
        for start in range(0, n, chunk):
            end = min(n, start + chunk)
            writer.append(x[start:end], y[start:end])
        writer.close()
        return n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pcam", required=True, help="directory with camelyonpatch_level_2_split_*.h5")
    parser.add_argument("--out", required=True, help="output directory for train/val/test .cds")
    parser.add_argument("--limit", type=int, help="convert only the first N images of each split")
    parser.add_argument("--chunk", type=int, default=4096, help="images read per HDF5 slice")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    done = 0
    for name, split in SPLITS:
        x = os.path.join(args.pcam, f"camelyonpatch_level_2_split_{name}_x.h5")
        y = os.path.join(args.pcam, f"camelyonpatch_level_2_split_{name}_y.h5")
        if not (os.path.exists(x) and os.path.exists(y)):
            if os.path.exists(x + ".gz") or os.path.exists(y + ".gz"):
                raise SystemExit(f"{x}.gz: gunzip the PCam files first (h5py cannot read .gz)")
            print(f"convert_pcam: {name}: files not found, skipped")
            continue
        out = os.path.join(args.out, f"{split}.cds")
        n = convert_split(x, y, out, split, args.limit, args.chunk)
        print(f"convert_pcam: {out}: {n} images")
        done += 1
    if done == 0:
        raise SystemExit(f"{args.pcam}: no PCam split found (camelyonpatch_level_2_split_*_x.h5)")


if __name__ == "__main__":
    sys.exit(main())
