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
    stale = []
    for name, blob in build().items():
        path = os.path.join(args.out, name)
        if args.check:
            same = os.path.exists(path) and same_contents(path, blob)
            print(f"{path}: {'up to date' if same else 'DIFFERS'}")
            stale += [] if same else [path]
        else:
            with open(path, "wb") as f:
                f.write(blob)
            print(f"wrote {path} ({len(blob)} bytes)")
    if stale:
        sys.exit("stale fixtures (library versions differ, or the script changed): " + ", ".join(stale))


def same_contents(path, blob):
    """Same names, metadata, dtypes, shapes and bits."""
    with open(path, "rb") as f:
        stored = f.read()
    old, new = load(stored), load(blob)
    if old.keys() != new.keys() or header_metadata(stored) != header_metadata(blob):
        return False
    return all(old[k].dtype == new[k].dtype and old[k].shape == new[k].shape
               and old[k].view(torch.uint8).equal(new[k].view(torch.uint8)) for k in old)


def header_metadata(blob):
    length = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + length]).get("__metadata__", {})
