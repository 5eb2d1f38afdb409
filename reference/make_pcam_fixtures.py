#!/usr/bin/env python3
"""Small PCam-style HDF5 files for the tests of `clipit import pcam` (Sources/Formats/HDF5File.swift,
Sources/Datasets/PCamImporter.swift, Tests/DatasetsTests/PCamImporterTests.swift,
Tests/Integration/pcam_fuzz.sh).

The published PatchCamelyon files (github.com/basveeling/pcam) are
camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5: dataset "x", uint8 (N, 96, 96, 3),
and dataset "y", uint8 (N, 1, 1, 1), 1 = tumour tissue in the centre 32x32 region. Both are
chunked and gzip-filtered; the fixtures here store one image per chunk with gzip level 4.

Regenerate from the repository root (needs numpy and h5py only):

    python reference/make_pcam_fixtures.py            # writes Tests/DatasetsTests/Fixtures/pcam/
    python reference/make_pcam_fixtures.py --check    # regenerates in a temporary folder, compares

Outputs (under Tests/DatasetsTests/Fixtures/pcam/):
    published/   the three splits as published: 7 train, 5 valid, 5 test images of 96x96x3,
                 x chunked (1, 96, 96, 3) and y chunked, both gzip
    contiguous/  a train split only, 3 images of 32x24x3 stored contiguous without any
                 filter, labels (N,) uint8: the uncompressed layout and a folder with
                 missing splits
    bad/<case>/  a train split that the importer must refuse (one case per folder; see CASES)

Pixels and labels follow formulas that the Swift tests repeat (PCamImporterTests.swift):
    x[i, h, w, c] = (29*(i + s) + 3*h + 7*w + 61*c + ((h*w) >> 8) + 17*(((h >> 3) ^ (w >> 3)) & 1)) mod 256
    y[i]          = (i + i // 3 + s) mod 2
with s the split's offset: train 0, valid 100, test 200 (bad cases: 0).
"""
import argparse
import filecmp
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np

OFFSETS = {"train": 0, "valid": 100, "test": 200}
PUBLISHED_COUNTS = {"train": 7, "valid": 5, "test": 5}


def pixels(count, height, width, offset):
    i = np.arange(count).reshape(-1, 1, 1, 1) + offset
    h = np.arange(height).reshape(1, -1, 1, 1)
    w = np.arange(width).reshape(1, 1, -1, 1)
    c = np.arange(3).reshape(1, 1, 1, -1)
    return ((29 * i + 3 * h + 7 * w + 61 * c + ((h * w) >> 8) + 17 * (((h >> 3) ^ (w >> 3)) & 1)) % 256).astype(np.uint8)


def labels(count, offset):
    i = np.arange(count)
    return ((i + i // 3 + offset) % 2).astype(np.uint8)


def name(split, array):
    return f"camelyonpatch_level_2_split_{split}_{array}.h5"


def write(path, dataset, data=None, **options):
    """One HDF5 file holding one dataset (h5py's defaults otherwise: no timestamps)."""
    with h5py.File(path, "w", libver="earliest") as f:
        if data is None:
            f.create_dataset(dataset, **options)  # shape and dtype only: never written
        else:
            f.create_dataset(dataset, data=data, **options)


def published(folder):
    os.makedirs(folder)
    for split, count in PUBLISHED_COUNTS.items():
        offset = OFFSETS[split]
        write(os.path.join(folder, name(split, "x")), "x", pixels(count, 96, 96, offset),
              chunks=(1, 96, 96, 3), compression="gzip", compression_opts=4)
        write(os.path.join(folder, name(split, "y")), "y", labels(count, offset).reshape(count, 1, 1, 1),
              chunks=(count, 1, 1, 1), compression="gzip", compression_opts=4)


def contiguous(folder):
    os.makedirs(folder)
    write(os.path.join(folder, name("train", "x")), "x", pixels(3, 32, 24, 0))
    write(os.path.join(folder, name("train", "y")), "y", labels(3, 0))


# Each case: (x dataset name, x options, y dataset name, y options). Options hold either
# `data` or `shape` + `dtype` (+ `chunks`) for a declared dataset that is never written.
GOOD_X = dict(data=pixels(3, 8, 8, 0))
GOOD_Y = dict(data=labels(3, 0).reshape(3, 1, 1, 1))
CASES = {
    "x_float": (dict(data=pixels(3, 8, 8, 0).astype(np.float32)), GOOD_Y),
    "x_int8": (dict(data=pixels(3, 8, 8, 0).astype(np.int8)), GOOD_Y),
    "x_rank3": (dict(data=pixels(3, 8, 8, 0)[..., 0]), GOOD_Y),
    "x_channels4": (dict(data=np.concatenate([pixels(3, 8, 8, 0), pixels(3, 8, 8, 0)[..., :1]], axis=3)), GOOD_Y),
    "x_too_tall": (dict(shape=(3, 5000, 8, 3), dtype=np.uint8, chunks=(1, 64, 8, 3)), GOOD_Y),
    "x_too_many": (dict(shape=(1 << 40, 8, 8, 3), dtype=np.uint8, chunks=(1, 8, 8, 3)),
                   dict(shape=(1 << 40, 1, 1, 1), dtype=np.uint8, chunks=(1024, 1, 1, 1))),
    "x_huge_chunks": (dict(shape=(3, 8, 8, 3), maxshape=(None, 8, 8, 3), dtype=np.uint8, chunks=(1 << 21, 8, 8, 3)), GOOD_Y),
    "x_unwritten": (dict(shape=(3, 96, 96, 3), dtype=np.uint8, chunks=(1, 96, 96, 3), compression="gzip"), GOOD_Y),
    "x_misnamed": (dict(data=pixels(3, 8, 8, 0), dataset="images"), GOOD_Y),
    "y_count": (GOOD_X, dict(data=labels(2, 0).reshape(2, 1, 1, 1))),
    "y_label2": (GOOD_X, dict(data=np.array([0, 2, 1], dtype=np.uint8).reshape(3, 1, 1, 1))),
    "y_shape": (GOOD_X, dict(data=np.zeros((3, 2), dtype=np.uint8))),
    "y_float": (GOOD_X, dict(data=labels(3, 0).astype(np.float32).reshape(3, 1, 1, 1))),
}


def bad(folder):
    for case, (x, y) in CASES.items():
        directory = os.path.join(folder, case)
        os.makedirs(directory)
        for array, options in (("x", dict(x)), ("y", dict(y))):
            dataset = options.pop("dataset", array)
            write(os.path.join(directory, name("train", array)), dataset, options.pop("data", None), **options)


def generate(root):
    published(os.path.join(root, "published"))
    contiguous(os.path.join(root, "contiguous"))
    bad(os.path.join(root, "bad"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare a fresh run with the committed files")
    args = parser.parse_args()
    target = os.path.join("Tests", "DatasetsTests", "Fixtures", "pcam")
    if not args.check:
        shutil.rmtree(target, ignore_errors=True)
        generate(target)
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(target) for f in files)
        print(f"wrote {target} ({total} bytes)")
        return
    with tempfile.TemporaryDirectory() as fresh:
        generate(fresh)
        mismatches = []
        for directory, _, files in os.walk(fresh):
            for f in files:
                relative = os.path.relpath(os.path.join(directory, f), fresh)
                committed = os.path.join(target, relative)
                if not os.path.exists(committed) or not filecmp.cmp(os.path.join(directory, f), committed, shallow=False):
                    mismatches.append(relative)
        if mismatches:
            sys.exit("differs from the committed fixtures: " + ", ".join(sorted(mismatches)))
        print("the committed fixtures match a fresh run")


if __name__ == "__main__":
    main()
