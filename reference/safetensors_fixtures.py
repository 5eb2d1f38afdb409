"""Writing and checking safetensors fixture files: the command line every fixture script
shares (`--out`, `--check`) and the comparison `--check` makes (names, metadata, dtypes,
shapes and bits)."""

import argparse
import json
import os
import sys

import torch
from safetensors.torch import load


def fixture_main(build, default_out, description):
    """Writes the files `build()` returns ({file name: safetensors bytes}) into --out, or
    with --check compares them with the files there and exits non-zero when one differs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=default_out, help="output folder (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing")
    args = parser.parse_args()
    write_or_check(build(), args.out, args.check)


def write_or_check(outputs, fixtures, check):
    """Writes every {relative name: bytes} of `outputs` under `fixtures`, or with `check`
    compares each with the committed file (`same_file`) and exits non-zero if any differs."""
    stale = []
    for name, blob in sorted(outputs.items()):
        path = os.path.join(fixtures, name)
        if check:
            same = os.path.exists(path) and same_file(path, blob)
            print(f"{path}: {'up to date' if same else 'DIFFERS'}")
            stale += [] if same else [path]
        else:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "wb") as f:
                f.write(blob)
            print(f"wrote {path} ({len(blob)} bytes)")
    if stale:
        sys.exit("stale fixtures (library versions differ, or the script changed): " + ", ".join(stale))


def same_file(path, blob):
    """safetensors: same names, dtypes, shapes, bits and metadata (the byte order of the
    metadata object is not reproducible); other files: same bytes."""
    with open(path, "rb") as f:
        stored = f.read()
    if not path.endswith(".safetensors"):
        return stored == blob
    old, new = load(stored), load(blob)
    if old.keys() != new.keys() or header_metadata(stored) != header_metadata(blob):
        return False
    return all(old[k].dtype == new[k].dtype and old[k].shape == new[k].shape
               and old[k].reshape(-1).view(torch.uint8).equal(new[k].reshape(-1).view(torch.uint8)) for k in old)


def header_metadata(blob):
    length = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + length]).get("__metadata__", {})
