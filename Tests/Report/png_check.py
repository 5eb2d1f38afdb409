#!/usr/bin/env python3
"""Decodes an 8-bit PNG with the standard library only (zlib + struct) and prints
"WIDTHxHEIGHT COLOURS" (distinct pixel values, counted up to 100000), or, with
--crop TOP HEIGHT OUT, writes rows TOP..TOP+HEIGHT of it as a new PNG.
Used by Tests/Report/render.sh to check that a screenshot is not blank."""
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG file")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace != 0:
        raise SystemExit(f"{path}: only 8-bit, non-interlaced grey/RGB(A) PNGs are handled")
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous, i = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = previous[x]
            c = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, channels, colour, rows


def write(path, width, colour, rows):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    if len(sys.argv) == 2:
        width, height, channels, _, rows = decode(sys.argv[1])
        colours = set()
        for row in rows:
            for x in range(0, len(row), channels):
                colours.add(row[x:x + channels])
            if len(colours) >= 100000:
                break
        print(f"{width}x{height} {len(colours)}")
    elif len(sys.argv) == 6 and sys.argv[2] == "--crop":
        width, height, _, colour, rows = decode(sys.argv[1])
        top, count = int(sys.argv[3]), int(sys.argv[4])
        write(sys.argv[5], width, colour, rows[top:top + count])
    else:
        raise SystemExit("usage: png_check.py FILE.png | FILE.png --crop TOP HEIGHT OUT.png")


main()
