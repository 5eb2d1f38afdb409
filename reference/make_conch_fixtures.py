#!/usr/bin/env python3
"""Reference fixtures for clipit's CONCH image-tower import: a tiny random-weight CONCH CoCa model
built by CONCH's own code, saved as a CONCH model folder, with inputs, outputs and gradients.

CONCH's code is CC BY-NC-ND 4.0 and is not part of clipit: pass the path of a checkout of
github.com/mahmoodlab/CONCH (it is imported from there, nothing of it is copied). The fixture
holds only random weights and the outputs of running that code on them.

    python reference/make_conch_fixtures.py --conch PATH            # writes Tests/ImportTests/Fixtures/conch_tiny/
    python reference/make_conch_fixtures.py --conch PATH --check    # regenerates in memory, compares

Outputs (Tests/ImportTests/Fixtures/conch_tiny/):
    conch_tiny.json       the model config, in the format of CONCH's conch_ViT-B-16.json
    model.safetensors     CoCa state dict without text_decoder.* (as the released checkpoint)
    toy_byte_level_bpe.json  OUR OWN byte-level BPE (vocab 400), trained here with the `tokenizers`
                          library on tokenizer/corpus.txt with CONCH's tokenizer settings: NFD,
                          StripAccents, Lowercase, ByteLevel(add_prefix_space=True), the same 7
                          special tokens and ids, template "<start_of_text> $A <end_of_text>"
    expected_ids.safetensors  PreTrainedTokenizerFast ids (CONCH's arguments) of the corpus and of
                          edge cases, at 127 ids (CONCH's) and 15 ids (the tiny model's)
    expected.safetensors  input.pixels (B, 3, 32, 32); output.tokens: trunk forward_features
                          (every token after the final norm); output.image_embeds:
                          encode_image(normalize=False) (attentional pooler, ln_contrast,
                          @ proj_contrast); output.pooled: encode_image(proj_contrast=False,
                          normalize=False); grad_output and grad.<name>: the gradient of
                          sum(image_embeds * grad_output) for every visual parameter the
                          contrastive embedding uses, and grad.input; token_ids (4 texts, 16 ids
                          as CONCH's tokenize pads them), output.text_embeds:
                          encode_text(normalize=False), text.grad_output and text.grad.<name>:
                          gradients of sum(text_embeds * text.grad_output) for the text tower

Tiny configuration: trunk width 32, depth 2, 4 heads, patch 16, image 32; contrastive pooler
width 16 (embed_dim) with CONCH's fixed 8 heads (2 dims each) reading the 32-wide tokens, so
its q/k/v weights are separate as in the real model (512 vs 768).
"""
import argparse
import json
import os
import sys

import tempfile

import torch
import torch.nn.functional as F
from safetensors.torch import save

import timm
import tokenizers
import transformers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import perturb_constant_init  # noqa: E402
from safetensors_fixtures import write_or_check  # noqa: E402

SEED = 77
FIXTURES = os.path.join("Tests", "ImportTests", "Fixtures")
COMMAND = "python reference/make_conch_fixtures.py --conch PATH"
BATCH = 2
CONFIG = {
    "embed_dim": 16,
    "embed_dim_caption": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 16, "layers": 2, "width": 32, "num_heads": 4, "mlp_ratio": 2,
                   "attentional_pool_caption": True, "attentional_pool_contrast": True, "attn_pooler_heads": 8,
                   "n_queries_contrast": 1, "n_queries_caption": 4, "output_tokens": True},
    "text_cfg": {"context_length": 16, "vocab_size": 400, "width": 32, "heads": 4, "layers": 2, "embed_cls": True,
                 "output_tokens": True},
    "multimodal_cfg": {"context_length": 16, "vocab_size": 400, "width": 32, "heads": 4, "layers": 1},
    "custom_text": True,
}


SPECIALS = ["<pad>", "<start_of_text>", "<end_of_text>", "<|person|>", "<|mrn|>", "<|specimen_id|>", "<|date|>"]
EDGE_CASES = ["on <|date|> from <|person|>", "a  b", "H&amp;E", "Ésophage  with\ttabs\nand newlines",
              "  leading and trailing  ", "don't they're we'll I'm", "12345 3.5cm x 2,0 mm",
              "<|specimen_id|><|mrn|>", "", "Größe ﬁbrosis Œdème", "MIXED Case ÀÉÎ"]
TEXT_LINES = [0, 5, 17, 38]   # corpus lines the tiny text tower embeds (38: truncated)


def corpus():
    with open(os.path.join(FIXTURES, "tokenizer", "corpus.txt"), encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def toy_tokenizer(lines):
    """A byte-level BPE of our own with CONCH's settings (vocab 400)."""
    tok = tokenizers.Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<start_of_text> $A <end_of_text>", pair="$A $B:1",
        special_tokens=[("<start_of_text>", 1), ("<end_of_text>", 2)])
    assert [tok.token_to_id(t) for t in SPECIALS] == list(range(7)) and tok.get_vocab_size() == 400
    return tok.to_str()


def conch_ids(tokenizer, texts, length):
    """CONCH's tokenize() with max_length=length instead of 127: (N, length + 1) ids."""
    out = tokenizer(texts, max_length=length, add_special_tokens=True, return_token_type_ids=False,
                    truncation=True, padding="max_length", return_tensors="pt")
    return F.pad(out["input_ids"], (0, 1), value=tokenizer.pad_token_id)


def build(conch_path):
    sys.path.insert(0, conch_path)
    from conch.open_clip_custom.coca_model import CoCa   # noqa: E402  (from the checkout, at run time)

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(SEED + 1)
    cfg = {k: v for k, v in CONFIG.items() if k != "custom_text"}
    model = perturb_constant_init(CoCa(**cfg), generator).eval()
    with torch.no_grad():   # timm's class token is N(0, 1e-6²): make it matter
        model.visual.trunk.cls_token.copy_(torch.randn(model.visual.trunk.cls_token.shape, generator=generator))
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith("text_decoder.")}
    files = {"conch_tiny/conch_tiny.json": (json.dumps(CONFIG, indent=4) + "\n").encode(),
             "conch_tiny/model.safetensors": save(weights, metadata={"format": "pt"})}
    lines = corpus()
    tokenizer_json = toy_tokenizer(lines)
    files["conch_tiny/toy_byte_level_bpe.json"] = tokenizer_json.encode()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "toy.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(tokenizer_json)
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=path, bos_token="<start_of_text>",
                                            eos_token="<end_of_text>", pad_token="<pad>")
    texts = lines + EDGE_CASES
    files["conch_tiny/expected_ids.safetensors"] = save(
        {"ids.127": conch_ids(tokenizer, texts, 127)[:, :-1].contiguous(),
         "ids.15": conch_ids(tokenizer, texts, 15)[:, :-1].contiguous()},
        metadata={"description": "PreTrainedTokenizerFast(toy_byte_level_bpe.json, bos/eos/pad as CONCH) ids of "
                                 "tokenizer/corpus.txt lines then the edge cases, max_length 127 and 15, truncation, "
                                 "padding max_length (CONCH's extra pad dropped)",
                  "texts": json.dumps(texts, ensure_ascii=False), "generator": COMMAND,
                  "tokenizers": tokenizers.__version__, "transformers": transformers.__version__})

    pixels = torch.randn(BATCH, 3, 32, 32, generator=generator).requires_grad_(True)
    tokens = model.visual.trunk(pixels)
    embeds = model.encode_image(pixels, normalize=False)
    with torch.no_grad():
        pooled = model.encode_image(pixels, normalize=False, proj_contrast=False)
    grad_output = torch.randn(embeds.shape, generator=generator)
    (embeds * grad_output).sum().backward()
    state = {"input.pixels": pixels.detach(), "output.tokens": tokens.detach().contiguous(),
             "output.image_embeds": embeds.detach().contiguous(), "output.pooled": pooled.contiguous(),
             "grad_output": grad_output, "grad.input": pixels.grad.contiguous()}
    for name, parameter in model.visual.named_parameters():
        if parameter.grad is not None:
            state["grad.visual." + name] = parameter.grad.contiguous()

    texts = [lines[i] for i in TEXT_LINES]
    ids = conch_ids(tokenizer, texts, CONFIG["text_cfg"]["context_length"] - 1)
    model.zero_grad()
    text_embeds = model.encode_text(ids, normalize=False)
    text_grad = torch.randn(text_embeds.shape, generator=generator)
    (text_embeds * text_grad).sum().backward()
    state.update({"token_ids": ids, "output.text_embeds": text_embeds.detach().contiguous(),
                  "text.grad_output": text_grad})
    for name, parameter in model.text.named_parameters():
        state["text.grad.text." + name] = parameter.grad.contiguous()
    files["conch_tiny/expected.safetensors"] = save(state, metadata={
        "description": f"CONCH CoCa {json.dumps(CONFIG)} with random weights (constant tensors perturbed, "
                       "class token N(0,1)), eval(): trunk tokens, encode_image with and without proj_contrast "
                       "(normalize=False), gradients of sum(image_embeds * grad_output); token_ids of the texts "
                       "(toy tokenizer, CONCH's tokenize at 15 + 1 ids), encode_text(normalize=False) and the text "
                       "gradients", "texts": json.dumps(texts, ensure_ascii=False),
        "generator": COMMAND, "seed": str(SEED), "torch": torch.__version__, "timm": timm.__version__,
        "python": sys.version.split()[0]})
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conch", required=True, help="a checkout of github.com/mahmoodlab/CONCH (not copied)")
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing")
    args = parser.parse_args()
    outputs = build(os.path.abspath(args.conch))
    write_or_check(outputs, FIXTURES, args.check)


if __name__ == "__main__":
    main()
