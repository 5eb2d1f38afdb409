#!/usr/bin/env python3
"""Check a `clipit export` folder against PEFT and the PyTorch reference.

    clipit export --checkpoint Tests/ModelTests/Fixtures/unimodal_lora_tiny.safetensors \
        --lora-alpha 8 --merged --out /tmp/export
    python reference/check_peft_export.py --export /tmp/export \
        --fixture Tests/ModelTests/Fixtures/unimodal_lora_tiny.safetensors

(`clipit_tiny.safetensors` works too and adds the text tower.) For each tower with an
adapter folder:
  1. build the tiny upstream model of docs/model-contract.md (timm VisionTransformer /
     HF CLIPTextModelWithProjection), load the fixture's frozen base weights into it
     (strict: every upstream tensor must be present);
  2. load OUT/<tower> with `peft.PeftModel.from_pretrained` and check that every LoRA
     factor PEFT loaded equals the fixture's (so no key was silently ignored);
  3. run the fixture's inputs and compare the features (vision: CLS features; text:
     text_embeds) and, with OUT/heads.safetensors, the vision-head logits with the
     fixture's expected outputs (which the Swift model reproduces, CLIPITParityTests);
  4. `merge_and_unload()` and compare the merged weights with OUT/merged.safetensors, and
     the outputs of an upstream model loaded from merged.safetensors alone.
Prints the maximum absolute error of each comparison; exits non-zero above --tolerance.
"""
import argparse
import json
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

LORA_KEYS = (".lora_A.", ".lora_B.", ".lora_embedding_A", ".lora_embedding_B")


def is_lora(name):
    return any(k in name for k in LORA_KEYS)


def make_vision():
    return VisionTransformer(img_size=16, patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2,
                             init_values=0.1, num_classes=0, global_pool="token")


def make_text():
    config = CLIPTextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=16, hidden_act="quick_gelu",
                            layer_norm_eps=1e-5, projection_dim=24, eos_token_id=63, pad_token_id=0,
                            bos_token_id=62, attention_dropout=0.0, dropout=0.0)
    config._attn_implementation = "eager"
    return CLIPTextModelWithProjection(config)


def upstream_name(tower, name):
    """Internal name (without the tower prefix) -> upstream state-dict name."""
    if tower == "text" and not name.startswith("text_projection"):
        return "text_model." + name
    return name


def base_state(fixture, tower):
    prefix = tower + "."
    return {upstream_name(tower, k[len(prefix):]): v for k, v in fixture.items()
            if k.startswith(prefix) and not is_lora(k)}


def max_err(a, b):
    return (a.detach().double() - b.detach().double()).abs().max().item()


def run(model, tower, fixture):
    with torch.no_grad():
        if tower == "vision":
            return model(fixture["input.images"])
        return model(input_ids=fixture["input.token_ids"]).text_embeds


def check_tower(tower, export, fixture, results):
    make = make_vision if tower == "vision" else make_text
    expected_key = "output.vision_features" if tower == "vision" else "output.text_embeds"
    model = make().eval()
    missing, unexpected = model.load_state_dict(base_state(fixture, tower), strict=False)
    assert not missing and not unexpected, (missing, unexpected)

    peft_model = PeftModel.from_pretrained(model, os.path.join(export, tower)).eval()
    # Every LoRA factor PEFT holds must equal the fixture's factor of the same module.
    loaded = 0
    for name, tensor in peft_model.named_parameters():
        if "lora_" not in name:
            continue
        internal = name.replace("base_model.model.", "", 1).replace(".default", "")
        if tower == "text":
            internal = internal.replace("text_model.", "", 1)
        reference = fixture[tower + "." + internal]
        assert torch.equal(tensor.detach(), reference), name
        loaded += 1
    fixture_factors = sum(1 for k in fixture if k.startswith(tower + ".") and is_lora(k))
    assert loaded == fixture_factors, (loaded, fixture_factors)
    results[f"{tower}: LoRA factors loaded by PEFT ({loaded}) equal the fixture's"] = 0.0

    features = run(peft_model, tower, fixture)
    results[f"{tower}: PEFT features vs fixture {expected_key}"] = max_err(features, fixture[expected_key])
    heads_path = os.path.join(export, "heads.safetensors")
    if tower == "vision" and os.path.exists(heads_path) and "output.vision_logits" in fixture:
        heads = load_file(heads_path)
        logits = features @ heads["heads.vision_head.weight"].T + heads["heads.vision_head.bias"]
        results["vision: PEFT features -> heads.vision_head vs fixture output.vision_logits"] = \
            max_err(logits, fixture["output.vision_logits"])

    merged_path = os.path.join(export, "merged.safetensors")
    if os.path.exists(merged_path):
        merged_file = load_file(merged_path)
        peft_merged = peft_model.merge_and_unload()
        state = peft_merged.state_dict()
        worst = 0.0
        for key, value in merged_file.items():
            if not key.startswith(tower + "."):
                continue
            worst = max(worst, max_err(value, state[upstream_name(tower, key[len(tower) + 1:])]))
        results[f"{tower}: merged.safetensors vs PEFT merge_and_unload weights"] = worst
        plain = make().eval()
        plain.load_state_dict(base_state(merged_file, tower), strict=True)
        results[f"{tower}: upstream model from merged.safetensors vs fixture {expected_key}"] = \
            max_err(run(plain, tower, fixture), fixture[expected_key])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export", required=True, help="folder written by `clipit export`")
    parser.add_argument("--fixture", default=os.path.join("Tests", "ModelTests", "Fixtures", "unimodal_lora_tiny.safetensors"))
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    fixture = load_file(args.fixture)
    results = {}
    towers = [t for t in ("vision", "text") if os.path.isdir(os.path.join(args.export, t))]
    if not towers:
        raise SystemExit(f"{args.export}: no vision/ or text/ adapter folder")
    for tower in towers:
        with open(os.path.join(args.export, tower, "adapter_config.json")) as f:
            config = json.load(f)
        assert config["peft_type"] == "LORA" and config["task_type"] is None
        check_tower(tower, args.export, fixture, results)
    worst = 0.0
    for name, err in results.items():
        print(f"{err:10.3e}  {name}")
        worst = max(worst, err)
    print(f"max abs error {worst:.3e} (tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
