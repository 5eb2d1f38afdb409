#!/usr/bin/env python3
"""PyTorch reference for the losses of the distillation extensions (CLIP-IT.md, decision 8):
soft-target distillation (Hinton et al. 2015), InfoNCE against fixed targets with several
positives per row (CRD / SupCon style) and the cross-entropy with unlabelled rows. Writes
their inputs, loss values and autograd gradients for Tests/ModelTests/DistillationLossTests.

Regenerate, from the repository root, in a virtual environment with the packages of
reference/requirements.txt:

    python reference/make_distillation_fixtures.py            # writes Tests/ModelTests/Fixtures/distillation_losses.safetensors
    python reference/make_distillation_fixtures.py --check    # regenerates in memory, compares with the file

Each loss is written in PyTorch the way a PyTorch implementation of the method would write it
(F.kl_div with log_target, F.normalize, torch.logsumexp, F.cross_entropy with ignore_index),
summed over this rank's rows and divided by a normalizer larger than the row count (the
global batch of a data-parallel run). Names and layouts: docs/formats.md.

Everything is float32 on the CPU with one thread and a fixed seed, so a rerun with the same
library versions reproduces every tensor bit for bit (the versions are in the file's metadata);
--check compares names, dtypes, values and metadata, not bytes (the safetensors package writes
the metadata object in hash order).
"""
import os
import sys

import numpy as np
import safetensors
import torch
import torch.nn.functional as F
from safetensors_fixtures import fixture_main
from safetensors.torch import save

SEED = 4321
FIXTURES = os.path.join("Tests", "ModelTests", "Fixtures")
NAME = "distillation_losses.safetensors"
COMMAND = "python reference/make_distillation_fixtures.py"

ROWS, CLASSES, WIDTH = 6, 5, 8
# Soft targets: temperature T, normalizer = the global batch (this rank holds ROWS of it).
KD_TEMPERATURE, KD_NORMALIZER = 2.0, 10
# Contrastive: the global batch's N = 10 report IDs (duplicates: images paired with the same
# report); this rank's rows are global rows 2..<8, so every row has a positive, ID 9 exactly
# one, ID 3 two, ID 7 three, ID 1 two.
TARGET_IDS = [3, 7, 3, 1, 9, 7, 7, 2, 5, 1]
LOCAL_ROWS = range(2, 8)
TAU, EPSILON = 0.07, 1e-8
# Cross-entropy: -1 marks an unlabelled row; the normalizer counts the labelled rows of the
# global batch (4 here, 3 on another rank).
CE_LABELS = [2, -1, 0, 4, -1, 4]
CE_NORMALIZER = 7


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def scalar(value, dtype=torch.float32):
    return torch.tensor([value], dtype=dtype)


def soft_target_loss(z, s, temperature, normalizer):
    """Σ_i T²·KL(softmax(s_i/T) ‖ softmax(z_i/T)) / N."""
    student = F.log_softmax(z / temperature, dim=1)
    teacher = F.log_softmax(s / temperature, dim=1)
    kl = F.kl_div(student, teacher, reduction="sum", log_target=True)
    return kl * temperature ** 2 / normalizer


def contrastive_target_loss(predicted, row_ids, targets, target_ids, tau, normalizer):
    """Σ_i −log(Σ_{j: id_j = id_i} e^{s_ij} / Σ_j e^{s_ij}) / N, s = u wᵀ/τ, targets constant."""
    u = F.normalize(predicted, dim=1, eps=EPSILON)
    w = F.normalize(targets.detach(), dim=1, eps=EPSILON)
    s = u @ w.T / tau
    positive = row_ids[:, None] == target_ids[None, :]
    assert positive.any(dim=1).all(), "every row needs a positive"
    per_row = torch.logsumexp(s, dim=1) - torch.logsumexp(s.masked_fill(~positive, float("-inf")), dim=1)
    return per_row.sum() / normalizer


def masked_cross_entropy(z, labels, normalizer):
    """Σ over labelled rows of −log softmax(z_i)_{y_i} / N (label −1: no label)."""
    return F.cross_entropy(z, labels, ignore_index=-1, reduction="sum") / normalizer


def build():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(SEED + 1)
    state = {}

    # Soft targets: student and teacher logits of different spreads, so p and q differ.
    z = (2 * torch.randn(ROWS, CLASSES, generator=generator)).requires_grad_()
    s = 3 * torch.randn(ROWS, CLASSES, generator=generator)
    temperature = torch.tensor(KD_TEMPERATURE, dtype=torch.float32)
    loss = soft_target_loss(z, s, temperature, KD_NORMALIZER)
    loss.backward()
    state["soft_target.input.logits"] = f32(z)
    state["soft_target.input.teacher"] = f32(s)
    state["soft_target.input.temperature"] = scalar(KD_TEMPERATURE)
    state["soft_target.input.normalizer"] = scalar(KD_NORMALIZER, torch.int64)
    state["soft_target.output.loss"] = f32(loss.reshape(1))
    state["soft_target.grad.logits"] = f32(z.grad)

    # Contrastive: predicted rows near some targets so that the positives matter.
    target_ids = torch.tensor(TARGET_IDS, dtype=torch.int64)
    row_ids = target_ids[list(LOCAL_ROWS)]
    targets = torch.randn(len(TARGET_IDS), WIDTH, generator=generator)
    predicted = (0.5 * targets[list(LOCAL_ROWS)]
                 + torch.randn(ROWS, WIDTH, generator=generator)).requires_grad_()
    tau = torch.tensor(TAU, dtype=torch.float32)
    loss = contrastive_target_loss(predicted, row_ids, targets, target_ids, tau, len(TARGET_IDS))
    loss.backward()
    state["contrastive.input.predicted"] = f32(predicted)
    state["contrastive.input.row_ids"] = row_ids.clone()
    state["contrastive.input.targets"] = f32(targets)
    state["contrastive.input.target_ids"] = target_ids.clone()
    state["contrastive.input.temperature"] = f32(tau.reshape(1))
    state["contrastive.input.normalizer"] = scalar(len(TARGET_IDS), torch.int64)
    state["contrastive.output.loss"] = f32(loss.reshape(1))
    state["contrastive.grad.predicted"] = f32(predicted.grad)

    # Cross-entropy with unlabelled rows.
    logits = (2 * torch.randn(ROWS, CLASSES, generator=generator)).requires_grad_()
    labels = torch.tensor(CE_LABELS, dtype=torch.int64)
    loss = masked_cross_entropy(logits, labels, CE_NORMALIZER)
    loss.backward()
    state["cross_entropy.input.logits"] = f32(logits)
    state["cross_entropy.input.labels"] = labels.clone()
    state["cross_entropy.input.normalizer"] = scalar(CE_NORMALIZER, torch.int64)
    state["cross_entropy.output.loss"] = f32(loss.reshape(1))
    state["cross_entropy.grad.logits"] = f32(logits.grad)
    assert (logits.grad[labels == -1] == 0).all()
    return {NAME: save(state, metadata=metadata())}


def metadata():
    return {
        "description": "distillation losses: soft targets (KD), contrastive InfoNCE against fixed "
                       "targets with several positives, cross-entropy with unlabelled rows",
        "generator": COMMAND,
        "torch": torch.__version__, "safetensors": safetensors.__version__, "numpy": np.__version__,
        "python": sys.version.split()[0],
        "seed": str(SEED),
        "soft_target": f"F.kl_div(log_softmax(z/T), log_softmax(s/T), reduction='sum', log_target=True) "
                       f"* T^2 / {KD_NORMALIZER}, T = {KD_TEMPERATURE}",
        "contrastive": f"u = F.normalize(predicted, eps={EPSILON}), w = F.normalize(targets, eps={EPSILON}) "
                       f"(constant), s = u w^T / tau, tau = {TAU}; sum over rows of logsumexp(s) - "
                       f"logsumexp(s over equal IDs), / {len(TARGET_IDS)}; rows are global rows "
                       f"{LOCAL_ROWS.start}..<{LOCAL_ROWS.stop}",
        "cross_entropy": f"F.cross_entropy(z, y, ignore_index=-1, reduction='sum') / {CE_NORMALIZER}",
    }


def main():
    fixture_main(build, FIXTURES, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
