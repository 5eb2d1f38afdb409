#!/usr/bin/env python3
"""PyTorch reference for clipit: builds the tiny models of docs/model-contract.md with the
upstream libraries (timm, Hugging Face transformers, PEFT), runs them, and writes the debug
states the Swift tests compare against, tensor by tensor (llm.c style).

Regenerate, from the repository root, in a virtual environment with the packages of
reference/requirements.txt:

    python reference/make_fixtures.py            # writes Tests/ModelTests/Fixtures/*.safetensors
    python reference/make_fixtures.py --check    # regenerates in memory, compares with the files

Outputs (names and layouts: docs/formats.md):
    clipit_tiny.safetensors          full CLIP-IT: LoRA ViT + LoRA CLIP text tower + heads, loss,
                                     every trainable gradient, a 10-step Adam + clipping trajectory
    unimodal_lora_tiny.safetensors   the "unimodal + LoRA" baseline: LoRA ViT + vision head, CE only
    layers_tiny.safetensors          isolated layers: a timm ViT block, a CLIP text encoder layer,
                                     PEFT LoRA Linear / Conv2d / Embedding, with input gradients

Everything is float32 on the CPU with one thread and a fixed seed, so a rerun with the same
library versions reproduces every tensor bit for bit (the versions are in each file's metadata).
The bytes themselves may differ: the safetensors package writes the metadata object in hash
order, so --check compares names, dtypes, values and metadata, not bytes.
"""
import copy
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import peft
import safetensors
import timm
import transformers
from peft import LoraConfig, inject_adapter_in_model
from safetensors_fixtures import fixture_main
from safetensors.torch import save
from timm.models.vision_transformer import VisionTransformer
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

SEED = 1234
FIXTURES = os.path.join("Tests", "ModelTests", "Fixtures")
COMMAND = "python reference/make_fixtures.py"

# Tiny configurations (docs/model-contract.md).
IMAGE, PATCH, E, DEPTH, HEADS, MLP_RATIO, LS_INIT = 16, 8, 32, 2, 4, 2.0, 0.1
VOCAB, CONTEXT, D, TEXT_DEPTH, TEXT_HEADS, TEXT_MLP, PROJ = 64, 16, 32, 2, 4, 64, 24
BOS, EOS, PAD = 62, 63, 0
CLASSES, BATCH = 3, 3
TEXT_LENGTHS = (5, 9, 16)  # tokens including BOS and EOS; the last row has EOS at position 15
RANK, ALPHA = 4, 8
LORA_B_STD = 0.02           # replaces PEFT's zero init of the "B" factor so every LoRA gradient is non-zero
LAMBDA = 1.0
ADAM = dict(lr=1e-3, weight_decay=1e-4, betas=(0.9, 0.999), eps=1e-8)
CLIP_NORM, STEPS = 0.5, 10

VISION_TARGETS = ["qkv", "proj", "fc1", "fc2"]  # "proj" matches attn.proj and patch_embed.proj
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "token_embedding"]


# ----------------------------------------------------------------------------- models

def make_vision():
    model = VisionTransformer(
        img_size=IMAGE, patch_size=PATCH, embed_dim=E, depth=DEPTH, num_heads=HEADS,
        mlp_ratio=MLP_RATIO, init_values=LS_INIT, num_classes=0, global_pool="token")
    # The details the Swift model replicates (reference/README.md); fail loudly if timm changes them.
    assert model.norm.eps == 1e-6 and model.blocks[0].norm1.eps == 1e-6
    assert isinstance(model.norm_pre, nn.Identity) and isinstance(model.fc_norm, nn.Identity)
    assert isinstance(model.head, nn.Identity)
    assert model.blocks[0].attn.qkv.bias is not None
    assert isinstance(model.blocks[0].mlp.act, nn.GELU) and model.blocks[0].mlp.act.approximate == "none"
    assert model.num_prefix_tokens == 1 and not model.no_embed_class
    return model


def make_text():
    config = CLIPTextConfig(
        vocab_size=VOCAB, hidden_size=D, intermediate_size=TEXT_MLP, num_hidden_layers=TEXT_DEPTH,
        num_attention_heads=TEXT_HEADS, max_position_embeddings=CONTEXT, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, projection_dim=PROJ, eos_token_id=EOS, pad_token_id=PAD,
        bos_token_id=BOS, attention_dropout=0.0, dropout=0.0)
    config._attn_implementation = "eager"
    model = CLIPTextModelWithProjection(config)
    assert model.text_model.eos_token_id == EOS != 2  # pooling at the first EOS (not argmax of ids)
    return model


class Heads(nn.Module):
    """The CLIP-IT heads (docs/model-contract.md, prefix `heads.`)."""

    def __init__(self):
        super().__init__()
        self.vision_head = nn.Linear(E, CLASSES)
        self.projection = nn.Linear(E, PROJ)
        self.text_head = nn.Sequential(nn.Linear(PROJ, PROJ), nn.LeakyReLU(0.1), nn.Linear(PROJ, CLASSES))
        self.fusion = nn.Linear(2 * CLASSES, CLASSES)


def perturb_constant_init(model, generator):
    """Upstream initialises biases to 0, LayerNorm weights to 1 and LayerScale to 0.1; tensors
    that constant would let a Swift bug (a bias ignored, weight and bias swapped, a per-channel
    scale broadcast wrongly) pass the comparison. Add noise to each constant tensor:
    LayerScale 0.1 + N(0, 0.02²), other ones 1 + N(0, 0.1²), zeros N(0, 0.05²)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            flat = parameter.flatten()
            if flat.numel() < 2 or not torch.all(flat == flat[0]):
                continue
            std = 0.02 if name.endswith(".gamma") else 0.1 if flat[0] == 1 else 0.05
            parameter.add_(torch.randn(parameter.shape, generator=generator) * std)
    return model


def add_lora(model, targets, generator):
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=targets, bias="none")
    model = inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            # PEFT zero-initialises lora_B (Linear, Conv) and lora_embedding_A (Embedding).
            if ".lora_B." in name or ".lora_embedding_A." in name:
                assert torch.count_nonzero(parameter) == 0, name
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * LORA_B_STD)
    return model


def internal_name(prefix, name):
    """PEFT/upstream parameter name -> contract name: tower prefix, no `text_model.`,
    no `base_layer.`, no `.default` adapter key."""
    name = "." + name  # so that module-relative names ("base_layer.weight") match too
    name = name.replace(".base_layer.", ".")
    name = name.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")
    name = name.replace(".lora_embedding_A.default", ".lora_embedding_A")
    name = name.replace(".lora_embedding_B.default", ".lora_embedding_B")
    name = name[1:]
    if name.startswith("text_model."):
        name = name[len("text_model."):]
    assert "default" not in name and "base_layer" not in name, name
    return prefix + name


class CLIPIT(nn.Module):
    """Vision tower, text tower and heads, with contract names for every parameter."""

    def __init__(self, vision, text, heads):
        super().__init__()
        self.vision, self.text, self.heads = vision, text, heads

    def named_contract_parameters(self):
        for prefix, module in (("vision.", self.vision), ("text.", self.text), ("heads.", self.heads)):
            if module is None:
                continue
            for name, parameter in module.named_parameters():
                yield internal_name(prefix, name), parameter

    def trainable(self):
        return [(n, p) for n, p in self.named_contract_parameters() if p.requires_grad]

    def forward(self, images, labels, token_ids):
        tokens = self.vision.forward_features(images)                # (B, 1+N, E), final norm on all tokens
        v = self.vision.forward_head(tokens, pre_logits=True)        # (B, E), CLS token
        a = self.heads.vision_head(v)                                # (B, C)
        out = dict(vision_tokens=tokens, vision_features=v, vision_logits=a)
        if self.text is None:                                        # unimodal + LoRA baseline
            out["loss"] = F.cross_entropy(a, labels)
            return out
        t_hat = self.heads.projection(v)                             # (B, Dp)
        b = self.heads.text_head(t_hat)                              # (B, C)
        z = self.heads.fusion(torch.cat([a, b], dim=-1))             # (B, C)
        text_out = self.text(input_ids=token_ids)
        t = text_out.text_embeds                                     # (B, Dp)
        ce = F.cross_entropy(z, labels)
        distill = (1 - F.cosine_similarity(t_hat, t, dim=-1)).mean()
        out.update(projected=t_hat, text_logits=b, fused_logits=z, text_embeds=t,
                   text_hidden=text_out.last_hidden_state, ce_loss=ce, distill_loss=distill,
                   loss=ce + LAMBDA * distill)
        return out


# ----------------------------------------------------------------------------- inputs

def make_inputs(generator):
    images = torch.randn(BATCH, 3, IMAGE, IMAGE, generator=generator)
    labels = torch.randint(0, CLASSES, (BATCH,), generator=generator)
    token_ids = torch.full((BATCH, CONTEXT), PAD, dtype=torch.int64)
    for row, length in enumerate(TEXT_LENGTHS):
        token_ids[row, 0] = BOS
        token_ids[row, 1:length - 1] = torch.randint(1, BOS, (length - 2,), generator=generator)
        token_ids[row, length - 1] = EOS
    return images, labels, token_ids


# ----------------------------------------------------------------------------- fixtures

def f32(tensor):
    return tensor.detach().to(torch.float32).contiguous().clone()


def model_fixture(model, images, labels, token_ids, trajectory_names):
    """Parameters, inputs, outputs, gradients and an Adam + clipping trajectory."""
    state = {}
    for name, parameter in model.named_contract_parameters():
        state[name] = f32(parameter)
    state["input.images"] = f32(images)
    state["input.labels"] = labels.clone()
    if model.text is not None:
        state["input.token_ids"] = token_ids.clone()

    images = images.clone().requires_grad_(True)
    out = model(images, labels, token_ids)
    out["loss"].backward()
    for key, value in out.items():
        state["output." + key] = f32(value.reshape(1) if value.dim() == 0 else value)
    trainable = model.trainable()
    for name, parameter in trainable:
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name
        state["grad." + name] = f32(parameter.grad)
    state["grad.input.images"] = f32(images.grad)
    for name, parameter in model.named_contract_parameters():
        assert parameter.requires_grad == ("lora_" in name or name.startswith("heads.")), name

    # Trajectory: same batch every step; loss[k] is the loss before update k+1.
    parameters = [p for _, p in trainable]
    optimizer = torch.optim.Adam(parameters, **ADAM)
    losses, norms = [], []
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = model(images.detach(), labels, token_ids)["loss"]
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(parameters, CLIP_NORM).item())
        losses.append(loss.item())
        optimizer.step()
    assert abs(losses[0] - out["loss"].item()) < 1e-6
    state["trajectory.adam_clip.loss"] = torch.tensor(losses, dtype=torch.float32)
    state["trajectory.adam_clip.grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    named = dict(trainable)
    for name in trajectory_names:
        state["trajectory.adam_clip.final." + name] = f32(named[name])
    return state


def layer_case(state, case, module, x, generator, extra_args=()):
    """`layer.<case>.*`: parameters, input, output, a random upstream gradient, gradients of the
    input and of every parameter with requires_grad (loss = sum(output * grad_output))."""
    x = x.clone().requires_grad_(True)
    y = module(x, *extra_args)
    if isinstance(y, tuple):
        y = y[0]
    grad_output = torch.randn(y.shape, generator=generator)
    (y * grad_output).sum().backward()
    prefix = f"layer.{case}."
    state[prefix + "input"] = f32(x)
    state[prefix + "output"] = f32(y)
    state[prefix + "grad_output"] = f32(grad_output)
    state[prefix + "grad.input"] = f32(x.grad)
    for name, parameter in module.named_parameters():
        name = internal_name("", name)
        state[prefix + "param." + name] = f32(parameter)
        if parameter.requires_grad:
            state[prefix + "grad." + name] = f32(parameter.grad)


def layers_fixture(vision, text, generator):
    state = {}
    # timm Block (pre-norm, LayerScale), all parameters trainable, no LoRA.
    block = copy.deepcopy(vision.blocks[0])
    layer_case(state, "vit_block", block, torch.randn(BATCH, 1 + (IMAGE // PATCH) ** 2, E, generator=generator),
               generator)
    # HF CLIP text encoder layer with the causal additive mask CLIPTextTransformer builds.
    layer = copy.deepcopy(text.text_model.encoder.layers[0])
    mask = torch.full((CONTEXT, CONTEXT), torch.finfo(torch.float32).min).triu(1)[None, None]
    layer_case(state, "clip_text_layer", layer, torch.randn(BATCH, CONTEXT, D, generator=generator), generator,
               extra_args=(mask.expand(BATCH, 1, CONTEXT, CONTEXT),))
    # PEFT LoRA wrappers in isolation: base weights frozen, LoRA factors trainable.
    lora_generator = torch.Generator().manual_seed(SEED + 7)

    class Wrap(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    def lora(module, target):
        wrapped = add_lora(Wrap(module), [target], lora_generator)
        return wrapped.inner

    linear = lora(perturb_constant_init(nn.Linear(E, PROJ), lora_generator), "inner")
    layer_case(state, "lora_linear", linear, torch.randn(BATCH * 2, E, generator=generator), generator)
    conv = lora(perturb_constant_init(nn.Conv2d(3, E, kernel_size=PATCH, stride=PATCH), lora_generator), "inner")
    layer_case(state, "lora_conv", conv, torch.randn(BATCH, 3, IMAGE, IMAGE, generator=generator), generator)
    # Embedding: the input is integer ids, so there is no input gradient; done by hand.
    embedding = lora(nn.Embedding(VOCAB, D), "inner")
    ids = torch.tensor([[BOS, 5, 17, 5, EOS, PAD], [BOS, 60, 1, EOS, PAD, PAD]])
    y = embedding(ids)
    grad_output = torch.randn(y.shape, generator=generator)
    (y * grad_output).sum().backward()
    state["layer.lora_embedding.input"] = ids.clone()
    state["layer.lora_embedding.output"] = f32(y)
    state["layer.lora_embedding.grad_output"] = f32(grad_output)
    for name, parameter in embedding.named_parameters():
        name = internal_name("", name)
        state["layer.lora_embedding.param." + name] = f32(parameter)
        if parameter.requires_grad:
            state["layer.lora_embedding.grad." + name] = f32(parameter.grad)
    return state


def metadata(description):
    return {
        "description": description,
        "generator": COMMAND,
        "torch": torch.__version__, "timm": timm.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "safetensors": safetensors.__version__, "numpy": np.__version__,
        "python": sys.version.split()[0],
        "seed": str(SEED),
        "vision": f"timm VisionTransformer(img_size={IMAGE}, patch_size={PATCH}, embed_dim={E}, depth={DEPTH}, "
                  f"num_heads={HEADS}, mlp_ratio={MLP_RATIO}, init_values={LS_INIT}, num_classes=0, "
                  f"global_pool='token')",
        "text": f"CLIPTextModelWithProjection(vocab={VOCAB}, hidden={D}, intermediate={TEXT_MLP}, "
                f"layers={TEXT_DEPTH}, heads={TEXT_HEADS}, max_positions={CONTEXT}, quick_gelu, eps=1e-5, "
                f"projection_dim={PROJ}, bos={BOS}, eos={EOS}, pad={PAD})",
        "lora": f"r={RANK}, alpha={ALPHA}, dropout=0, vision targets {VISION_TARGETS}, text targets "
                f"{TEXT_TARGETS}; zero-initialised factor set to N(0, {LORA_B_STD}^2)",
        "init": "upstream random init; constant tensors perturbed (biases, LayerNorm, LayerScale)",
        "loss": f"cross_entropy(z, y) + {LAMBDA} * mean(1 - cos(projected, text_embeds))",
        "trajectory": f"torch.optim.Adam(lr={ADAM['lr']}, weight_decay={ADAM['weight_decay']}, "
                      f"betas={ADAM['betas']}, eps={ADAM['eps']}), clip_grad_norm_({CLIP_NORM}) "
                      f"before each step, {STEPS} steps on the same batch",
    }


def build():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    init = torch.Generator().manual_seed(SEED + 1)
    data = torch.Generator().manual_seed(SEED + 2)

    vision = add_lora(perturb_constant_init(make_vision(), init), VISION_TARGETS, init)
    text = add_lora(perturb_constant_init(make_text(), init), TEXT_TARGETS, init)
    heads = Heads()
    vision_for_unimodal = copy.deepcopy(vision)
    heads_for_unimodal = copy.deepcopy(heads)
    plain_vision = perturb_constant_init(make_vision(), init)
    plain_text = perturb_constant_init(make_text(), init)
    images, labels, token_ids = make_inputs(data)

    clipit = CLIPIT(vision, text, heads).eval()  # every dropout rate is 0; eval() only to be explicit
    files = {}
    files["clipit_tiny.safetensors"] = (model_fixture(
        clipit, images, labels, token_ids,
        ["vision.blocks.0.attn.qkv.lora_A.weight", "text.encoder.layers.1.self_attn.v_proj.lora_B.weight",
         "heads.fusion.weight"]), "CLIP-IT tiny: LoRA ViT + LoRA CLIP text tower + heads")

    unimodal_heads = heads_for_unimodal
    unimodal_heads.projection = unimodal_heads.text_head = unimodal_heads.fusion = None
    unimodal = CLIPIT(vision_for_unimodal, None, unimodal_heads).eval()
    files["unimodal_lora_tiny.safetensors"] = (model_fixture(
        unimodal, images, labels, token_ids,
        ["vision.blocks.0.attn.qkv.lora_A.weight", "vision.patch_embed.proj.lora_B.weight",
         "heads.vision_head.weight"]), "unimodal + LoRA tiny: LoRA ViT + vision head, cross-entropy only")

    files["layers_tiny.safetensors"] = (layers_fixture(plain_vision, plain_text, data),
                                        "isolated layers: timm ViT block, CLIP text layer, PEFT LoRA layers")
    return {name: save(state, metadata=metadata(description)) for name, (state, description) in files.items()}


def main():
    fixture_main(build, FIXTURES, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
