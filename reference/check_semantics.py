#!/usr/bin/env python3
"""Independent check of docs/model-contract.md against the fixtures: a NumPy-only forward pass
of CLIP-IT written from the contract (no torch, timm, transformers or PEFT), compared with the
outputs the upstream libraries stored in Tests/ModelTests/Fixtures. If this passes, the
contract's layouts and formulas are the ones the Swift model must implement.

Run from the repository root, in a virtual environment with the packages of
reference/requirements.txt:

    python reference/check_semantics.py
"""
import os
import sys

import numpy as np
from safetensors.numpy import load_file

FIXTURES = os.path.join("Tests", "ModelTests", "Fixtures")
E, HEADS, PATCH, D, TEXT_HEADS, EOS, RANK, ALPHA = 32, 4, 8, 32, 4, 63, 4, 8
SCALE = ALPHA / RANK


def erf(x):
    from math import erf as scalar_erf
    return np.vectorize(scalar_erf)(x)


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)  # biased variance
    return (x - mean) / np.sqrt(var + eps) * w + b


def linear(p, name, x):
    """y = x Wᵀ + b + (α/r)·(x Aᵀ) Bᵀ when `name` has LoRA factors."""
    y = x @ p[name + ".weight"].T
    if name + ".bias" in p:
        y = y + p[name + ".bias"]
    if name + ".lora_A.weight" in p:
        y = y + SCALE * (x @ p[name + ".lora_A.weight"].T) @ p[name + ".lora_B.weight"].T
    return y


def attention(q, k, v, heads, causal):
    """q, k, v: (B, T, E), heads contiguous along E; softmax(q kᵀ / sqrt(d)) v per head."""
    B, T, width = q.shape
    d = width // heads
    split = lambda x: x.reshape(B, T, heads, d).transpose(0, 2, 1, 3)
    q, k, v = split(q), split(k), split(v)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    if causal:
        s = s + np.triu(np.full((T, T), -np.inf), 1)
    s = np.exp(s - s.max(-1, keepdims=True))
    s = s / s.sum(-1, keepdims=True)
    return (s @ v).transpose(0, 2, 1, 3).reshape(B, T, width)


def vision_forward(p, images):
    B, C, H, W = images.shape
    n = (H // PATCH) * (W // PATCH)
    # Unfold: patch rows in raster order, each row (c, ky, kx)-ordered like the Conv2d weight.
    patches = images.reshape(B, C, H // PATCH, PATCH, W // PATCH, PATCH).transpose(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(B, n, C * PATCH * PATCH)
    w = p["vision.patch_embed.proj.weight"].reshape(E, -1)
    x = patches @ w.T + p["vision.patch_embed.proj.bias"]
    # Conv LoRA: A is a (r, 3, P, P) conv = a (r, 3·P·P) GEMM on the same patches; B (E, r, 1, 1) a 1×1 conv.
    a = p["vision.patch_embed.proj.lora_A.weight"].reshape(RANK, -1)
    b = p["vision.patch_embed.proj.lora_B.weight"].reshape(E, RANK)
    x = x + SCALE * (patches @ a.T) @ b.T
    cls = np.broadcast_to(p["vision.cls_token"], (B, 1, E))
    x = np.concatenate([cls, x], axis=1) + p["vision.pos_embed"]     # CLS first, pos_embed covers it
    for i in range(2):
        pre = f"vision.blocks.{i}."
        h = layer_norm(x, p[pre + "norm1.weight"], p[pre + "norm1.bias"], 1e-6)
        qkv = linear(p, pre + "attn.qkv", h)                           # (B, T, 3E): [q | k | v]
        h = attention(qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:], HEADS, causal=False)
        x = x + p[pre + "ls1.gamma"] * linear(p, pre + "attn.proj", h)
        h = layer_norm(x, p[pre + "norm2.weight"], p[pre + "norm2.bias"], 1e-6)
        h = linear(p, pre + "mlp.fc1", h)
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))                        # exact GELU
        x = x + p[pre + "ls2.gamma"] * linear(p, pre + "mlp.fc2", h)
    tokens = layer_norm(x, p["vision.norm.weight"], p["vision.norm.bias"], 1e-6)  # all tokens
    return tokens, tokens[:, 0]                                        # CLS pooling after the norm


def text_forward(p, ids):
    B, T = ids.shape
    pre = "text.embeddings.token_embedding."
    x = p[pre + "weight"][ids]
    # Embedding LoRA: row `id` gains (α/r) · B · A[:, id]   (A (r, V), B (D, r)).
    x = x + SCALE * p[pre + "lora_embedding_A"].T[ids] @ p[pre + "lora_embedding_B"].T
    x = x + p["text.embeddings.position_embedding.weight"][:T]
    for i in range(2):
        pre = f"text.encoder.layers.{i}."
        h = layer_norm(x, p[pre + "layer_norm1.weight"], p[pre + "layer_norm1.bias"], 1e-5)
        q, k, v = (linear(p, pre + f"self_attn.{n}_proj", h) for n in "qkv")
        x = x + linear(p, pre + "self_attn.out_proj", attention(q, k, v, TEXT_HEADS, causal=True))
        h = layer_norm(x, p[pre + "layer_norm2.weight"], p[pre + "layer_norm2.bias"], 1e-5)
        h = linear(p, pre + "mlp.fc1", h)
        h = h / (1 + np.exp(-1.702 * h))                               # QuickGELU
        x = x + linear(p, pre + "mlp.fc2", h)
    hidden = layer_norm(x, p["text.final_layer_norm.weight"], p["text.final_layer_norm.bias"], 1e-5)
    first_eos = (ids == EOS).argmax(-1)
    pooled = hidden[np.arange(B), first_eos]
    return hidden, pooled @ p["text.text_projection.weight"].T


def heads_forward(p, v, labels, text_embeds=None):
    a = linear(p, "heads.vision_head", v)
    out = dict(vision_logits=a)
    if text_embeds is None:
        out["loss"] = cross_entropy(a, labels)
        return out
    t_hat = linear(p, "heads.projection", v)
    h = linear(p, "heads.text_head.0", t_hat)
    h = np.where(h > 0, h, 0.1 * h)                                    # LeakyReLU(0.1)
    b = linear(p, "heads.text_head.2", h)
    z = linear(p, "heads.fusion", np.concatenate([a, b], -1))
    cos = (t_hat * text_embeds).sum(-1) / np.maximum(
        np.linalg.norm(t_hat, axis=-1) * np.linalg.norm(text_embeds, axis=-1), 1e-8)
    ce, distill = cross_entropy(z, labels), (1 - cos).mean()
    out.update(projected=t_hat, text_logits=b, fused_logits=z, ce_loss=ce, distill_loss=distill,
               loss=ce + distill)
    return out


def cross_entropy(z, y):
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


def check(file, text):
    p = {k: v.astype(np.float64) if v.dtype == np.float32 else v
         for k, v in load_file(os.path.join(FIXTURES, file)).items()}
    tokens, v = vision_forward(p, p["input.images"])
    ours = dict(vision_tokens=tokens, vision_features=v)
    if text:
        hidden, t = text_forward(p, p["input.token_ids"])
        ours.update(text_hidden=hidden, text_embeds=t)
        ours.update(heads_forward(p, v, p["input.labels"], t))
    else:
        ours.update(heads_forward(p, v, p["input.labels"]))
    worst = 0.0
    for name, value in ours.items():
        ref = p["output." + name]
        err = np.abs(np.reshape(value, ref.shape) - ref).max() / max(np.abs(ref).max(), 1e-6)
        worst = max(worst, err)
        print(f"{file}: output.{name:16s} max rel err {err:.2e}")
    return worst


if __name__ == "__main__":
    worst = max(check("clipit_tiny.safetensors", True), check("unimodal_lora_tiny.safetensors", False))
    if worst > 1e-5:
        sys.exit(f"mismatch: {worst:.2e}")
    print("all outputs agree with the contract's formulas")
