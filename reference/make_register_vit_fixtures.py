#!/usr/bin/env python3
"""Reference fixtures for timm ViTs with register tokens and DINOv2-style options (register
tokens, no_embed_class, LayerScale, patch 14, dynamic image size): tiny random-weight timm
models saved as hub-style model folders, with inputs, outputs and gradients from timm itself.

Regenerate, from the repository root, in a virtual environment with the packages of
reference/requirements.txt:

    python reference/make_register_vit_fixtures.py            # writes Tests/ImportTests/Fixtures/timm_reg*/
    python reference/make_register_vit_fixtures.py --check    # regenerates in memory, compares

Each folder holds config.json (timm's hub layout: architecture, model_args, pretrained_cfg),
model.safetensors (the state dict) and expected.safetensors:

    input.pixels        (B, 3, S, S) normalised images at the evaluation size S = input_size,
                        which is not the checkpoint's img_size: timm resamples pos_embed at every
                        forward (dynamic_img_size, resample_abs_pos_embed: bicubic, antialias=True)
    output.tokens       (B, T, E) forward_features before the final norm: the last block's
                        output for every token (class, registers, patches)
    output.features     (B, T, E) forward_features (after the final norm)
    output.pooled       (B, E) forward_head(pre_logits=True): the normed class token
    native.pixels       (B, 3, s, s) images at the checkpoint's own size s = img_size (no resampling)
    native.pooled       (B, E) pooled output at that size
    native.grad_output  (B, E) a random dL/dpooled
    native.grad.<name>  dL/d<parameter> for every parameter but patch_embed.proj.weight (the largest;
                        the patch embedding has its own fixture), L = sum(pooled * grad_output)
    native.grad.input   dL/dpixels

Cases:
    timm_reg4_dinov2/   vit_small_patch14_reg4_dinov2 (4 registers, no_embed_class, LayerScale,
                        patch 14) shrunk to width 32, depth 2, 4 heads; img_size 56 (4x4 grid),
                        evaluated at 42 (3x3): a shrunk grid, as DINOv2's 518 px checkpoints at 224
    timm_reg2_embed_class/  vit_base_patch16_224 with patch_size=8, reg_tokens=2 and
                        no_embed_class=False (the position embedding covers the class and register
                        tokens), width 32, depth 2; img_size 24 (3x3 grid), evaluated at 32 (4x4):
                        an enlarged grid

Everything runs in float32 on the CPU with one thread and a fixed seed. Class and register
tokens are drawn N(0, 1) (timm initialises them N(0, 1e-6²), which would hide a misplaced
token), and every constant-initialised tensor gets noise (make_fixtures.perturb_constant_init).
"""
import json
import os
import sys

import torch
from safetensors.torch import save

import timm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import perturb_constant_init  # noqa: E402
from make_import_fixtures import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from safetensors_fixtures import fixture_main  # noqa: E402

SEED = 2024
FIXTURES = os.path.join("Tests", "ImportTests", "Fixtures")
COMMAND = "python reference/make_register_vit_fixtures.py"
BATCH = 2

CASES = [
    # (folder, architecture, model_args, evaluation size)
    ("timm_reg4_dinov2", "vit_small_patch14_reg4_dinov2",
     dict(img_size=56, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0, dynamic_img_size=True), 42),
    ("timm_reg2_embed_class", "vit_base_patch16_224",
     dict(img_size=24, patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0, reg_tokens=2,
          no_embed_class=False, init_values=0.5, dynamic_img_size=True), 32),
]


def metadata(description):
    return {"description": description, "generator": COMMAND, "seed": str(SEED), "torch": torch.__version__,
            "timm": timm.__version__, "python": sys.version.split()[0]}


def build_case(folder, architecture, model_args, size, generator):
    model = timm.create_model(architecture, pretrained=False, num_classes=0, **model_args)
    model = perturb_constant_init(model, generator).eval()
    with torch.no_grad():
        model.cls_token.copy_(torch.randn(model.cls_token.shape, generator=generator))
        model.reg_token.copy_(torch.randn(model.reg_token.shape, generator=generator))
    pretrained_cfg = {"input_size": [3, size, size], "interpolation": "bicubic", "crop_pct": 1.0,
                      "crop_mode": "center", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                      "num_classes": 0}
    config = {"architecture": architecture, "num_classes": 0, "num_features": model.num_features,
              "global_pool": "token", "model_args": model_args, "pretrained_cfg": pretrained_cfg}
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    files = {f"{folder}/config.json": (json.dumps(config, indent=2) + "\n").encode(),
             f"{folder}/model.safetensors": save(weights, metadata={"format": "pt"})}

    state = {}
    pixels = torch.randn(BATCH, 3, size, size, generator=generator)
    with torch.no_grad():
        x = model.patch_embed(pixels)
        x = model._pos_embed(x)
        x = model.norm_pre(model.patch_drop(x))
        tokens = model.blocks(x)
        features = model.forward_features(pixels)
        pooled = model.forward_head(features, pre_logits=True)
    assert torch.equal(model.norm(tokens), features)
    state.update({"input.pixels": pixels, "output.tokens": tokens.contiguous(),
                  "output.features": features.contiguous(), "output.pooled": pooled.contiguous()})

    native = model_args["img_size"]
    native_pixels = torch.randn(BATCH, 3, native, native, generator=generator).requires_grad_(True)
    native_pooled = model.forward_head(model.forward_features(native_pixels), pre_logits=True)
    grad_output = torch.randn(native_pooled.shape, generator=generator)
    (native_pooled * grad_output).sum().backward()
    state.update({"native.pixels": native_pixels.detach(), "native.pooled": native_pooled.detach().contiguous(),
                  "native.grad_output": grad_output, "native.grad.input": native_pixels.grad.contiguous()})
    for name, parameter in model.named_parameters():
        if name != "patch_embed.proj.weight":
            state["native.grad." + name] = parameter.grad.contiguous()
    files[f"{folder}/expected.safetensors"] = save(state, metadata=metadata(
        f"timm {architecture} with {model_args}, num_classes=0, eval(); cls/reg tokens N(0,1), constant "
        f"tensors perturbed. input/output: {BATCH} images at {size}x{size} (pos_embed resampled by timm's "
        f"dynamic_img_size from the {native}x{native} grid); native: {BATCH} images at {native}x{native}, "
        "pooled output and the gradient of sum(pooled * grad_output) for every parameter and the input"))
    return files


def build():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(SEED + 1)
    files = {}
    for case in CASES:
        files.update(build_case(*case, generator))
    return files


def main():
    fixture_main(build, FIXTURES, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
