#!/usr/bin/env python3
"""Reference fixtures for clipit's model import (Sources/Import): tokenizer ids, image
preprocessing and embeddings of tiny random-weight models of each supported family, made with
the upstream libraries (open_clip, Hugging Face transformers, timm, torchvision on PIL).

Regenerate, from the repository root, in a virtual environment with the packages of
reference/requirements.txt (including open-clip-torch and ftfy):

    python reference/make_import_fixtures.py            # writes Tests/ImportTests/Fixtures/
    python reference/make_import_fixtures.py --check    # regenerates in memory, compares

Outputs (under Tests/ImportTests/Fixtures/):
    tokenizer/bpe_simple_vocab_16e6.txt.gz   the CLIP BPE merges shipped with open_clip (MIT)
    tokenizer/corpus.txt                     committed input: one pathology sentence per line
    tokenizer/expected_ids.safetensors       open_clip and HF CLIPTokenizer ids of the corpus
    hf_clip/     transformers CLIPModel folder (config.json, model.safetensors, vocab.json,
                 merges.txt, preprocessor_config.json) + expected.safetensors
    open_clip/   open_clip CLIP (open_clip_config.json, open_clip_model.safetensors,
                 a truncated bpe .txt.gz) + expected.safetensors
    timm/        timm ViT with LayerScale (config.json in the hub format, model.safetensors)
                 + expected.safetensors
    preprocessing/resize.safetensors   Pillow's resize of deterministic pattern images

The tiny text towers use a truncated CLIP BPE (the first MERGES merges of the real file, a
valid BPE in its own right) so that their token embedding stays small; the tokenizer test
uses the full vocabulary. Each expected.safetensors holds the input images (uint8 HWC), the
reference-preprocessed pixels, the reference token ids and the projected embeddings.
"""
import gzip
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save

import open_clip
import timm
import torchvision
import transformers
from open_clip.tokenizer import SimpleTokenizer, bytes_to_unicode, default_bpe
from torchvision import transforms
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import perturb_constant_init  # noqa: E402
from safetensors_fixtures import fixture_main  # noqa: E402

SEED = 4321
FIXTURES = os.path.join("Tests", "ImportTests", "Fixtures")
COMMAND = "python reference/make_import_fixtures.py"
CONTEXT = 77
MERGES = 300                        # truncated BPE of the tiny text towers: vocab 512 + 300 + 2
VOCAB = 512 + MERGES + 2
IMAGE_SIZES = [(40, 52), (32, 32), (57, 45), (96, 96)]   # (height, width) of the test images
TEXT_LINES = [0, 3, 9, 38]          # corpus lines embedded by the tiny models (38: truncated)
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------- BPE files

def full_merges():
    """The merge lines open_clip uses: the file minus its header, first 49152-256-2 entries."""
    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    return lines[1:49152 - 256 - 2 + 1]


def clip_vocabulary(merges):
    """Token → id exactly as open_clip's SimpleTokenizer and OpenAI's vocab.json build it."""
    units = list(bytes_to_unicode().values())
    vocab = units + [u + "</w>" for u in units] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(vocab)}


def write_hf_tokenizer_files(folder, merges):
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(clip_vocabulary(merges), f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def gzip_bytes(text):
    """Deterministic gzip (mtime 0, no file name)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as f:
        f.write(text.encode("utf-8"))
    return buffer.getvalue()


def hf_ids(tokenizer, texts):
    """HF ids padded with 0 (HF pads with <|endoftext|>; clipit pads with 0 as open_clip does —
    with the causal mask the padding never reaches the pooled position)."""
    out = tokenizer(texts, padding="max_length", max_length=CONTEXT, truncation=True, return_tensors="pt")
    return out["input_ids"].masked_fill(out["attention_mask"] == 0, 0)


def corpus():
    with open(os.path.join(FIXTURES, "tokenizer", "corpus.txt"), encoding="utf-8") as f:
        return f.read().split("\n")[:-1]   # one text per line, the file ends with a newline


# ----------------------------------------------------------------------------- images

def make_images(generator):
    """Smooth random fields with sharp rectangles (bicubic overshoot gets clipped), uint8 HWC."""
    images = []
    for h, w in IMAGE_SIZES:
        coarse = generator.integers(0, 256, size=(max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR)).copy()
        for _ in range(3):
            y0, x0 = generator.integers(0, h - 4), generator.integers(0, w - 4)
            y1, x1 = y0 + generator.integers(2, h // 2), x0 + generator.integers(2, w // 2)
            image[y0:y1, x0:x1] = generator.integers(0, 256, size=3)
        images.append(image)
    return images


def reference_transform(resize, crop, mean, std, interpolation=transforms.InterpolationMode.BICUBIC):
    """The CLIP / timm evaluation transform: torchvision on PIL images."""
    return transforms.Compose([
        transforms.Resize(resize, interpolation=interpolation), transforms.CenterCrop(crop),
        transforms.ToTensor(), transforms.Normalize(mean, std)])


def image_entries(state, images, transform):
    pixels = []
    for i, image in enumerate(images):
        state[f"input.image.{i}"] = torch.from_numpy(image.copy())
        x = transform(Image.fromarray(image))
        state[f"pixels.{i}"] = x.contiguous()
        pixels.append(x)
    return torch.stack(pixels)


# ----------------------------------------------------------------------------- families

def tokenizer_fixture(texts):
    merges = full_merges()
    openclip = SimpleTokenizer()                      # default bpe, ftfy + html + whitespace + lower
    with tempfile.TemporaryDirectory() as folder:
        write_hf_tokenizer_files(folder, merges)
        hf = CLIPTokenizer.from_pretrained(folder)
        state = {"openclip.ids": openclip(texts, context_length=CONTEXT),
                 "openclip.ids_context16": openclip(texts, context_length=16),
                 "hf.ids": hf_ids(hf, texts)}
    files = {"tokenizer/expected_ids.safetensors": save(state, metadata=metadata(
        "CLIP BPE ids of tokenizer/corpus.txt (one row per line): open_clip SimpleTokenizer "
        "(context 77 and 16) and transformers CLIPTokenizer from vocab.json/merges.txt built from "
        "the same merges file (context 77, padding replaced by 0)"))}
    with open(default_bpe(), "rb") as f:
        files["tokenizer/bpe_simple_vocab_16e6.txt.gz"] = f.read()
    return files


def hf_clip_fixture(texts, images, init):
    merges = full_merges()[:MERGES]
    config = CLIPConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=CONTEXT, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, bos_token_id=VOCAB - 2, eos_token_id=2, pad_token_id=1,
                         projection_dim=24),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                           projection_dim=24),
        projection_dim=24)
    model = perturb_constant_init(CLIPModel(config), init).eval()
    assert model.text_model.eos_token_id == 2    # legacy configs (PLIP): pooling at argmax(ids)
    files = {}
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        write_hf_tokenizer_files(folder, merges)
        tokenizer = CLIPTokenizer.from_pretrained(folder)
        processor_config = {
            "crop_size": {"height": 32, "width": 32}, "do_center_crop": True, "do_normalize": True,
            "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "resample": 3,
            "image_mean": list(OPENAI_MEAN), "image_std": list(OPENAI_STD), "size": {"shortest_edge": 32},
            "image_processor_type": "CLIPImageProcessor"}
        with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
            json.dump(processor_config, f, indent=2)
        for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt", "preprocessor_config.json"):
            with open(os.path.join(folder, name), "rb") as f:
                files["hf_clip/" + name] = f.read()

    state = {}
    pixels = image_entries(state, images, reference_transform(32, 32, OPENAI_MEAN, OPENAI_STD))
    ids = hf_ids(tokenizer, texts)
    with torch.no_grad():
        state["image_embeds"] = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        raw = tokenizer(texts, padding="max_length", max_length=CONTEXT, truncation=True, return_tensors="pt")
        state["text_embeds"] = model.text_projection(model.text_model(input_ids=raw["input_ids"]).pooler_output)
    state["token_ids"] = ids
    files["hf_clip/expected.safetensors"] = save(state, metadata=metadata(
        "transformers CLIPModel tiny (vision 32x32 patch 8 width 32 depth 2, text vocab "
        f"{VOCAB} width 32 depth 2, projection 24, quick_gelu, legacy eos_token_id 2): inputs, "
        "pixels (torchvision Resize(32, bicubic) + CenterCrop(32) on PIL, OpenAI mean/std), "
        "HF tokenizer ids (pad 0), image_embeds and text_embeds (projected, not normalised)",
        texts=texts))
    return files


def open_clip_fixture(texts, images, init):
    merges = full_merges()[:MERGES]
    model_cfg = {
        "embed_dim": 24, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 8, "mlp_ratio": 2.0,
                       "patch_size": 8, "ls_init_value": 0.1},
        "text_cfg": {"context_length": CONTEXT, "vocab_size": VOCAB, "width": 32, "heads": 4, "layers": 2,
                     "mlp_ratio": 2.0}}
    preprocess_cfg = {"mean": list(OPENAI_MEAN), "std": list(OPENAI_STD)}
    model = perturb_constant_init(open_clip.model.CLIP(**model_cfg), init).eval()
    blob = gzip_bytes("#version: 0.2\n" + "\n".join(merges))   # no final newline: open_clip would read an empty merge
    with tempfile.TemporaryDirectory() as folder:
        bpe = os.path.join(folder, "bpe_simple_vocab.txt.gz")
        with open(bpe, "wb") as f:
            f.write(blob)
        tokenizer = SimpleTokenizer(bpe_path=bpe, context_length=CONTEXT)
    assert tokenizer.vocab_size == VOCAB
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    files = {
        "open_clip/open_clip_config.json": json.dumps(
            {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}, indent=2).encode(),
        "open_clip/open_clip_model.safetensors": save(weights, metadata={"format": "pt"}),
        "open_clip/bpe_simple_vocab.txt.gz": blob,
    }
    transform = open_clip.transform.image_transform(32, is_train=False, mean=OPENAI_MEAN, std=OPENAI_STD)
    state = {}
    pixels = image_entries(state, images, transform)
    ids = tokenizer(texts)
    with torch.no_grad():
        state["image_embeds"] = model.encode_image(pixels)
        state["text_embeds"] = model.encode_text(ids)
    state["token_ids"] = ids
    files["open_clip/expected.safetensors"] = save(state, metadata=metadata(
        f"open_clip CLIP tiny ({json.dumps(model_cfg)}): inputs, pixels (open_clip image_transform, "
        "is_train=False), SimpleTokenizer ids, image_embeds and text_embeds (encode_image / "
        "encode_text, not normalised)", texts=texts))
    return files


def timm_fixture(images, init):
    model_args = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0,
                      init_values=0.1)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **model_args)
    model = perturb_constant_init(model, init).eval()
    pretrained_cfg = {"input_size": [3, 32, 32], "interpolation": "bicubic", "crop_pct": 0.875,
                      "crop_mode": "center", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                      "num_classes": 0}
    config = {"architecture": "vit_tiny_patch16_224", "num_classes": 0, "num_features": 32,
              "global_pool": "token", "model_args": model_args, "pretrained_cfg": pretrained_cfg}
    files = {"timm/config.json": json.dumps(config, indent=2).encode(),
             "timm/model.safetensors": save({k: v.detach().contiguous() for k, v in model.state_dict().items()},
                                            metadata={"format": "pt"})}
    transform = timm.data.create_transform(input_size=(3, 32, 32), interpolation="bicubic", crop_pct=0.875,
                                           crop_mode="center", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                           is_training=False)
    state = {}
    pixels = image_entries(state, images, transform)
    with torch.no_grad():
        state["image_embeds"] = model(pixels).contiguous()
    files["timm/expected.safetensors"] = save(state, metadata=metadata(
        f"timm vit_tiny_patch16_224 with {model_args}, num_classes=0: inputs, pixels (timm eval "
        "transform: Resize(floor(32/0.875)=36, bicubic) + CenterCrop(32), ImageNet mean/std), "
        "image_embeds (pre-logits CLS feature)"))
    return files


def pattern_image(height, width):
    """A deterministic uint8 HWC test pattern (sharp and smooth parts), also built by the Swift
    test: v = (3x² + 5y + xy + 85c) mod 256."""
    y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(3), indexing="ij")
    return ((3 * x * x + 5 * y + x * y + 85 * c) % 256).astype(np.uint8)


RESIZE_CASES = [  # (name, (height, width), (to_height, to_width), PIL filter)
    ("down_bicubic", (150, 200), (64, 85), Image.BICUBIC),
    ("up_bicubic", (31, 23), (71, 52), Image.BICUBIC),
    ("down_bilinear", (150, 200), (50, 66), Image.BILINEAR),
    ("mixed_bicubic", (40, 90), (120, 45), Image.BICUBIC),
]


def resize_fixture():
    """Pillow's Image.resize on pattern images: the resampling alone, at larger scale factors."""
    state = {}
    for name, (h, w), (th, tw), resample in RESIZE_CASES:
        out = np.asarray(Image.fromarray(pattern_image(h, w)).resize((tw, th), resample))
        state[f"resize.{name}"] = torch.from_numpy(out.copy())
    return {"preprocessing/resize.safetensors": save(state, metadata=metadata(
        "PIL Image.resize of pattern_image(h, w) = (3x^2 + 5y + xy + 85c) mod 256: "
        + "; ".join(f"{n}: {hw} -> {t} {'bicubic' if r == Image.BICUBIC else 'bilinear'}"
                    for n, hw, t, r in RESIZE_CASES)))}


def metadata(description, texts=None):
    out = {"description": description, "generator": COMMAND, "seed": str(SEED),
           "torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__,
           "transformers": transformers.__version__, "open_clip": open_clip.__version__,
           "pillow": Image.__version__, "python": sys.version.split()[0]}
    if texts is not None:
        out["texts"] = json.dumps(texts, ensure_ascii=False)
    return out


def build():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    init = torch.Generator().manual_seed(SEED + 1)
    images = make_images(np.random.default_rng(SEED + 2))
    lines = corpus()
    assert len(lines) == 40, len(lines)
    texts = [lines[i] for i in TEXT_LINES]
    files = {}
    files.update(tokenizer_fixture(lines))
    files.update(hf_clip_fixture(texts, images, init))
    files.update(open_clip_fixture(texts, images, init))
    files.update(timm_fixture(images, init))
    files.update(resize_fixture())
    return files


def main():
    fixture_main(build, FIXTURES, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
