#!/usr/bin/env python3
"""The training step of `clipit bench step --method unimodal-lora`, in PyTorch: a timm ViT
with PEFT LoRA on the same modules, the same batch, classes, optimiser and threads.

    python reference/bench_torch_step.py --model vit-s16 --batch 32 --threads 1 --steps 3

Prints one JSON object: {"framework": "torch", "model", "batch", "threads", "seconds_per_step",
"images_per_s", "torch", "timm", "peft", "blas"}. The step, as clipit's: random images in
[-1, 1) (224 px unless --image-size), random labels over --classes, timm
`vit_{small,base}_patch16_224` (no pretrained weights) with its head as the trainable
classifier, PEFT LoRA (r = --rank, alpha = r/2, dropout 0) on every block Linear (qkv, proj,
fc1, fc2) and the patch embedding, the base frozen; cross-entropy, backward, global-norm
clipping at 0.5, Adam (lr 1e-3, weight decay 1e-4, L2 as torch.optim.Adam), zero_grad.
`--warmup` untimed steps first; the time is the median of `--steps` timed steps.
"""
import argparse
import json
import statistics
import time

import timm
import torch
from peft import LoraConfig, get_peft_model

ARCHITECTURES = {"vit-s16": "vit_small_patch16_224", "vit-b16": "vit_base_patch16_224",
                 "vit-l16": "vit_large_patch16_224"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit-s16", choices=sorted(ARCHITECTURES))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = timm.create_model(ARCHITECTURES[args.model], pretrained=False, num_classes=args.classes,
                              img_size=args.image_size)
    config = LoraConfig(r=args.rank, lora_alpha=args.rank / 2, lora_dropout=0.0,
                        target_modules=["qkv", "proj", "fc1", "fc2", "patch_embed.proj"],
                        modules_to_save=["head"])
    model = get_peft_model(model, config).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-3, weight_decay=1e-4)
    images = torch.rand(args.batch, 3, args.image_size, args.image_size) * 2 - 1
    labels = torch.randint(0, args.classes, (args.batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 0.5)
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    blas = torch.__config__.show().split("BLAS_INFO=")[-1].split(",")[0] if "BLAS_INFO=" in torch.__config__.show() else "?"
    print(json.dumps({"framework": "torch", "model": args.model, "batch": args.batch, "threads": args.threads,
                      "seconds_per_step": seconds, "images_per_s": args.batch / seconds,
                      "torch": torch.__version__, "timm": timm.__version__,
                      "peft": __import__("peft").__version__, "blas": blas}))


if __name__ == "__main__":
    main()
