#!/usr/bin/env python3
"""The training step of `clipit bench step` (--method unimodal-lora or clipit), in PyTorch:
timm ViT (and, for clipit, the Hugging Face CLIP text tower) with PEFT LoRA on the same
modules, the same batch, classes, optimiser and threads.

    python reference/bench_torch_step.py --model vit-s16 --method clipit --batch 32 --threads 1 --steps 3

Prints one JSON object: {"framework": "torch", "method", "model", "batch", "threads",
"seconds_per_step", "images_per_s", "trainable_parameters", "parameters", "torch", "timm",
"peft", "transformers" (clipit only), "blas"}, plus "gflop_per_step" with --count-flops.

Both methods: random images in [-1, 1) (224 px unless --image-size), random labels over
--classes, timm `vit_{small,base,large}_patch16_224` (no pretrained weights), PEFT LoRA
(r = --rank, alpha = r/2, dropout 0) on every block Linear (qkv, proj, fc1, fc2) and the
patch embedding, the base frozen; backward, global-norm clipping at 0.5 over the trainable
parameters, Adam (lr 1e-3, weight decay 1e-4, L2 as torch.optim.Adam), zero_grad.

unimodal-lora: timm's head (Linear(E, C)) is the trainable classifier; loss cross-entropy.

clipit (CLIP-IT.md, Stage 2, the reference method as `CLIPITModel` with the bench's config):
  - vision: the same ViT with num_classes=0, v = norm(x)[:, 0] (E wide);
  - text: `transformers.CLIPTextModelWithProjection` with the OpenAI CLIP text config
    (vocabulary 49408, context 77, width 512, 12 layers, 8 heads, MLP 2048, QuickGELU,
    eps 1e-5, 512-d text_projection without bias, end-of-text id 49407), causal attention,
    pooled at the first end-of-text token; PEFT LoRA on q_proj, k_proj, v_proj, out_proj,
    fc1, fc2 and token_embedding (not text_projection), the base frozen;
  - heads, all trainable with PyTorch's default init: h_v Linear(E, C); h_d Linear(E, 512);
    g = Linear(512, 512)-LeakyReLU(0.1)-Linear(512, C); fusion Linear(2C, C);
    z = fusion([h_v(v) ; g(h_d(v))]);
  - tokens: ids uniform in 1..49406 with one end-of-text token at a random position in the
    second half of each sequence;
  - loss CE(z, y) + 1 * mean(1 - cos(h_d(v), t)), t = text(tokens): the cosine term's
    gradient reaches the text tower's LoRA ("mutual").
  The text tower is Hugging Face's, not open_clip's, because clipit's CLIP text tower has
  the Hugging Face layout (separate q/k/v Linears, each with its own LoRA; the fixtures in
  reference/make_fixtures.py check it against this same class). open_clip's text transformer
  uses nn.MultiheadAttention with one fused in_proj_weight, which PEFT cannot wrap as
  Linears: a fused qkv with one LoRA would have fewer LoRA parameters and products than
  clipit's three. Remaining differences, all outside matrix products: Hugging Face applies
  the final LayerNorm to every token before pooling (clipit to the pooled rows), and its
  scaled_dot_product_attention may skip fully masked causal blocks (clipit multiplies full
  77 x 77 blocks).

`--warmup` untimed steps first; the time is the median of `--steps` timed steps.
`--count-flops` counts one extra (untimed) step with torch.utils.flop_counter.FlopCounterMode
(matrix products and convolutions, forward and backward), to compare with clipit's
`gemm_gflop_executed`.
"""
import argparse
import json
import statistics
import time
import warnings

import timm
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model

ARCHITECTURES = {"vit-s16": "vit_small_patch16_224", "vit-b16": "vit_base_patch16_224",
                 "vit-l16": "vit_large_patch16_224"}
VISION_TARGETS = ["qkv", "proj", "fc1", "fc2", "patch_embed.proj"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "token_embedding"]
CLIP_TEXT = dict(vocab_size=49408, max_position_embeddings=77, hidden_size=512, num_hidden_layers=12,
                 num_attention_heads=8, intermediate_size=2048, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                 projection_dim=512, attention_dropout=0.0, eos_token_id=49407)


def lora_config(rank, targets, modules_to_save=None):
    return LoraConfig(r=rank, lora_alpha=rank / 2, lora_dropout=0.0, target_modules=targets,
                      modules_to_save=modules_to_save)


class Heads(torch.nn.Module):
    """The CLIP-IT heads (late fusion): z = fusion([h_v(v) ; g(h_d(v))]), t_hat = h_d(v)."""

    def __init__(self, features, text_width, classes):
        super().__init__()
        self.vision_head = torch.nn.Linear(features, classes)
        self.projection = torch.nn.Linear(features, text_width)
        self.text_head = torch.nn.Sequential(torch.nn.Linear(text_width, text_width), torch.nn.LeakyReLU(0.1),
                                             torch.nn.Linear(text_width, classes))
        self.fusion = torch.nn.Linear(2 * classes, classes)

    def forward(self, v):
        t_hat = self.projection(v)
        z = self.fusion(torch.cat([self.vision_head(v), self.text_head(t_hat)], dim=1))
        return z, t_hat


def random_tokens(batch, context, end_of_text):
    ids = torch.randint(1, end_of_text, (batch, context))
    ids[torch.arange(batch), torch.randint(context // 2, context, (batch,))] = end_of_text
    return ids


def build(args):
    """The modules, the trainable parameters, the inputs and the loss closure of one method."""
    images = torch.rand(args.batch, 3, args.image_size, args.image_size) * 2 - 1
    labels = torch.randint(0, args.classes, (args.batch,))
    if args.method == "unimodal-lora":
        model = timm.create_model(ARCHITECTURES[args.model], pretrained=False, num_classes=args.classes,
                                  img_size=args.image_size)
        model = get_peft_model(model, lora_config(args.rank, VISION_TARGETS, ["head"])).train()
        return [model], lambda: F.cross_entropy(model(images), labels)

    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    vision = timm.create_model(ARCHITECTURES[args.model], pretrained=False, num_classes=0,
                               img_size=args.image_size)
    vision = get_peft_model(vision, lora_config(args.rank, VISION_TARGETS)).train()
    config = CLIPTextConfig(**CLIP_TEXT)
    text = CLIPTextModelWithProjection(config)
    text = get_peft_model(text, lora_config(args.rank, TEXT_TARGETS)).train()
    heads = Heads(vision.num_features, config.projection_dim, args.classes).train()
    tokens = random_tokens(args.batch, config.max_position_embeddings, config.eos_token_id)

    def loss():
        z, t_hat = heads(vision(images))
        t = text(input_ids=tokens).text_embeds
        return F.cross_entropy(z, labels) + (1 - F.cosine_similarity(t_hat, t, dim=1, eps=1e-8)).mean()

    return [vision, text, heads], loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit-s16", choices=sorted(ARCHITECTURES))
    parser.add_argument("--method", default="unimodal-lora", choices=["unimodal-lora", "clipit"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--count-flops", action="store_true",
                        help="count the FLOPs of one extra untimed step (FlopCounterMode)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", category=FutureWarning)   # transformers' deprecation notes under PEFT
    modules, compute_loss = build(args)
    parameters = [p for m in modules for p in m.parameters()]
    trainable = [p for p in parameters if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-3, weight_decay=1e-4)

    def step():
        compute_loss().backward()
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
    config = torch.__config__.show()
    blas = config.split("BLAS_INFO=")[-1].split(",")[0] if "BLAS_INFO=" in config else "?"
    result = {"framework": "torch", "method": args.method, "model": args.model, "batch": args.batch,
              "threads": args.threads, "seconds_per_step": seconds, "images_per_s": args.batch / seconds,
              "trainable_parameters": sum(p.numel() for p in trainable),
              "parameters": sum(p.numel() for p in parameters),
              "torch": torch.__version__, "timm": timm.__version__, "peft": __import__("peft").__version__}
    if args.method == "clipit":
        result["transformers"] = __import__("transformers").__version__
    result["blas"] = blas
    if args.count_flops:
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as counter:
            step()
        result["gflop_per_step"] = counter.get_total_flops() / 1e9
    print(json.dumps(result))


if __name__ == "__main__":
    main()
