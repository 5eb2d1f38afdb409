#!/usr/bin/env python3
"""Converts MahmoodLab CONCH's `pytorch_model.bin` into the `model.safetensors` clipit reads, with
the same keys: a `{'state_dict': ...}` wrapper is unwrapped and a `module.` prefix stripped (as
CONCH's own `read_state_dict` does); dtypes are kept (the importer reads fp16 and fp32).

    python reference/convert_conch.py --bin pytorch_model.bin --out models/conch/model.safetensors

Then copy CONCH's model config beside it (clipit does not ship it: CONCH's code, config, tokenizer
and weights are CC BY-NC-ND 4.0):

    cp CONCH/conch/open_clip_custom/model_configs/conch_ViT-B-16.json models/conch/

Only torch and safetensors are needed; the checkpoint is loaded with `weights_only=True`.
"""
import argparse

import torch
from safetensors.torch import save_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="CONCH's pytorch_model.bin")
    parser.add_argument("--out", required=True, help="the model.safetensors to write")
    args = parser.parse_args()
    checkpoint = torch.load(args.bin, map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"] if isinstance(checkpoint, dict) and "state_dict" in checkpoint else checkpoint
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    tensors = {k: v.detach().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    skipped = sorted(set(state) - set(tensors))
    save_file(tensors, args.out, metadata={"format": "pt"})
    visual = sum(1 for k in tensors if k.startswith("visual."))
    print(f"wrote {args.out}: {len(tensors)} tensors ({visual} visual.*)"
          + (f"; skipped non-tensors {skipped}" if skipped else ""))


if __name__ == "__main__":
    main()
