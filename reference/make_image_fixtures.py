#!/usr/bin/env python3
"""Small PNG, JPEG and TIFF files and Pillow's pixels for them, for the tests of
Sources/ImageDecoding (Tests/ImageDecodingTests/ImageDecoderTests.swift).

Every decodable fixture comes with the bytes of `Image.open(path).convert("RGB")`, the
contract the Swift decoder meets (exactly for PNG and TIFF; within one level for JPEG,
whose inverse DCT may differ between Pillow's bundled libjpeg-turbo and the system's).
The other fixtures are files the decoder must refuse with a clear error.

Regenerate from the repository root (needs pillow, tifffile and numpy):

    python reference/make_image_fixtures.py            # writes Tests/ImageDecodingTests/Fixtures/
    python reference/make_image_fixtures.py --check    # regenerates in a temporary folder, compares

Outputs (under Tests/ImageDecodingTests/Fixtures/):
    <name>.<ext>       the image (16x12 pixels unless the name says otherwise)
    <name>.<ext>.rgb   Pillow's RGB pixels, height x width x 3 bytes, row-major
    manifest.json      one entry per file: size, Pillow's mode, tolerance, or the expected
                       error kind and a fragment of its message; the library versions
PNGs that Pillow cannot write (16-bit colour, 16-bit grey + alpha) are written by the
minimal encoder below (one IDAT, filter type 0); the 16-bit TIFFs, tiles, MinIsWhite and
grey + alpha TIFFs by tifffile; everything else by Pillow.
"""
import argparse
import filecmp
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib

import numpy as np
import tifffile
from PIL import Image, features

OUT = "Tests/ImageDecodingTests/Fixtures"
W, H = 16, 12


def content(seed, width=W, height=H):
    """A smooth RGB gradient with noise (so JPEG has edges and flat parts), uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 14 + y * 3, y * 19 + x * 2, (x + y) * 8 + 30], -1)
    return np.clip(base + rng.integers(0, 48, (height, width, 3)), 0, 255).astype(np.uint8)


def png16(path, array, colour_type):
    """A 16-bit PNG of `array` (uint16, (H, W) or (H, W, C)) with the given colour type."""
    height, width = array.shape[:2]
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def make(out):
    os.makedirs(out, exist_ok=True)
    rgb = content(1)
    alpha = np.random.default_rng(2).integers(0, 256, (H, W)).astype(np.uint8)
    grey = content(3)[..., 0]
    rng = np.random.default_rng(4)
    # 16-bit samples: every byte varies; grey below 256 at most pixels, so clipping and the low byte both show.
    wide16 = rng.integers(0, 65536, (H, W, 4)).astype(np.uint16)
    grey16 = np.where(rng.random((H, W)) < 0.6, rng.integers(0, 256, (H, W)), rng.integers(0, 65536, (H, W))).astype(np.uint16)
    cases, errors = [], []

    def decodable(name, tolerance=0):
        path = os.path.join(out, name)
        with Image.open(path) as image:
            mode = image.mode
            pixels = np.asarray(image.convert("RGB"))
        with open(path + ".rgb", "wb") as f:
            f.write(pixels.tobytes())
        cases.append({"file": name, "width": pixels.shape[1], "height": pixels.shape[0],
                      "pillow_mode": mode, "tolerance": tolerance})

    def refused(name, kind, fragment):
        errors.append({"file": name, "kind": kind, "fragment": fragment})

    def save(name, image, **options):
        image.save(os.path.join(out, name), **options)

    # PNG: Pillow's modes, and the 16-bit colour types Pillow reads but does not write.
    save("rgb8.png", Image.fromarray(rgb, "RGB")); decodable("rgb8.png")
    save("rgba8.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA")); decodable("rgba8.png")
    save("grey8.png", Image.fromarray(grey, "L")); decodable("grey8.png")
    save("greyalpha8.png", Image.fromarray(np.dstack([grey, alpha]), "LA")); decodable("greyalpha8.png")
    palette = Image.fromarray(rgb, "RGB").quantize(12)
    save("palette4.png", palette, bits=4); decodable("palette4.png")
    save("palette8_trns.png", palette, transparency=3); decodable("palette8_trns.png")
    save("bilevel.png", Image.fromarray(grey, "L").convert("1")); decodable("bilevel.png")
    Image.frombytes("I;16", (W, H), grey16.astype("<u2").tobytes()).save(os.path.join(out, "grey16.png"))
    decodable("grey16.png")
    png16(os.path.join(out, "greyalpha16.png"), wide16[..., :2], 4); decodable("greyalpha16.png")
    png16(os.path.join(out, "rgb16.png"), wide16[..., :3], 2); decodable("rgb16.png")
    png16(os.path.join(out, "rgba16.png"), wide16, 6); decodable("rgba16.png")

    # JPEG: 4:4:4, 4:2:0 (odd size: partial MCUs), progressive, grey; a CMYK one is refused.
    save("rgb444.jpg", Image.fromarray(rgb, "RGB"), quality=90, subsampling=0); decodable("rgb444.jpg", 1)
    save("rgb420.jpeg", Image.fromarray(content(5, 19, 13), "RGB"), quality=75, subsampling=2)
    decodable("rgb420.jpeg", 1)
    save("progressive420.jpg", Image.fromarray(rgb, "RGB"), quality=80, subsampling=2, progressive=True)
    decodable("progressive420.jpg", 1)
    save("grey.jpg", Image.fromarray(grey, "L"), quality=85); decodable("grey.jpg", 1)
    save("cmyk.jpg", Image.fromarray(rgb, "RGB").convert("CMYK"), quality=90)
    refused("cmyk.jpg", "unsupported", "CMYK")

    # TIFF: Pillow (libtiff) for the codecs, tifffile for 16 bit, tiles, strips, byte order.
    save("rgb8_raw.tif", Image.fromarray(rgb, "RGB")); decodable("rgb8_raw.tif")
    save("rgb8_lzw.tif", Image.fromarray(rgb, "RGB"), compression="tiff_lzw"); decodable("rgb8_lzw.tif")
    save("rgb8_deflate.tiff", Image.fromarray(rgb, "RGB"), compression="tiff_adobe_deflate")
    decodable("rgb8_deflate.tiff")
    save("rgb8_packbits.tif", Image.fromarray(rgb, "RGB"), compression="packbits"); decodable("rgb8_packbits.tif")
    save("rgb8_jpeg.tif", Image.fromarray(rgb, "RGB"), compression="jpeg", quality=90); decodable("rgb8_jpeg.tif")
    # The common JPEG-in-TIFF of scanners: YCbCr samples, decoded to RGB by libtiff's JPEG codec.
    save("ycbcr_jpeg.tif", Image.fromarray(rgb, "RGB").convert("YCbCr"), compression="jpeg", quality=90)
    decodable("ycbcr_jpeg.tif")
    save("rgba8_lzw.tif", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), compression="tiff_lzw")
    decodable("rgba8_lzw.tif")
    save("grey8_deflate.tif", Image.fromarray(grey, "L"), compression="tiff_adobe_deflate")
    decodable("grey8_deflate.tif")
    save("palette8.tif", palette); decodable("palette8.tif")
    save("bilevel.tif", Image.fromarray(grey, "L").convert("1")); decodable("bilevel.tif")
    tifffile.imwrite(os.path.join(out, "grey16.tif"), grey16); decodable("grey16.tif")
    tifffile.imwrite(os.path.join(out, "grey16_bigendian.tif"), grey16, byteorder=">"); decodable("grey16_bigendian.tif")
    tifffile.imwrite(os.path.join(out, "rgb16_deflate.tif"), wide16[..., :3], photometric="rgb", compression="zlib")
    decodable("rgb16_deflate.tif")
    tifffile.imwrite(os.path.join(out, "rgba16.tif"), wide16, photometric="rgb", extrasamples=["unassalpha"])
    decodable("rgba16.tif")
    tifffile.imwrite(os.path.join(out, "greyalpha8.tif"), np.dstack([grey, alpha]), photometric="minisblack",
                     extrasamples=["unassalpha"])
    decodable("greyalpha8.tif")
    tifffile.imwrite(os.path.join(out, "miniswhite8.tif"), grey, photometric="miniswhite"); decodable("miniswhite8.tif")
    tifffile.imwrite(os.path.join(out, "rgb8_tiled_20x13.tif"), content(6, 20, 13), photometric="rgb", tile=(16, 16))
    decodable("rgb8_tiled_20x13.tif")
    tifffile.imwrite(os.path.join(out, "rgb8_strips.tif"), rgb, photometric="rgb", rowsperstrip=5)
    decodable("rgb8_strips.tif")
    tifffile.imwrite(os.path.join(out, "cmyk8.tif"), np.dstack([rgb, alpha]), photometric="separated")
    refused("cmyk8.tif", "unsupported", "CMYK")
    tifffile.imwrite(os.path.join(out, "float32.tif"), grey16.astype(np.float32))
    refused("float32.tif", "unsupported", "floating-point")
    tifffile.imwrite(os.path.join(out, "greyalpha16.tif"), wide16[..., :2], photometric="minisblack",
                     extrasamples=["unassalpha"])
    refused("greyalpha16.tif", "unsupported", "16-bit")

    manifest = {
        "generator": "python reference/make_image_fixtures.py",
        "versions": {"pillow": Image.__version__, "tifffile": tifffile.__version__, "numpy": np.__version__,
                     "libjpeg": features.version("jpg"), "libtiff": features.version("libtiff")},
        "cases": cases,
        "errors": errors,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="regenerate in a temporary folder and compare")
    args = parser.parse_args()
    if not args.check:
        if os.path.isdir(OUT):
            shutil.rmtree(OUT)
        make(OUT)
        print(f"wrote {OUT}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        make(tmp)
        names = sorted(os.listdir(tmp))
        if names != sorted(os.listdir(OUT)):
            sys.exit("the file lists differ")
        _, mismatch, missing = filecmp.cmpfiles(tmp, OUT, names, shallow=False)
        if mismatch or missing:
            sys.exit(f"differ: {mismatch + missing}")
        print(f"{len(names)} files identical")


if __name__ == "__main__":
    main()
