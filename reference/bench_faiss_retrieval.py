#!/usr/bin/env python3
"""Exact top-k inner-product search of `clipit bench retrieval --write-vectors DIR`'s vectors
with faiss `IndexFlatIP`, timed like clipit's search, and checked against clipit's result.

    python reference/bench_faiss_retrieval.py --vectors DIR --threads 1 --repeats 3

Reads DIR/queries.npy (N, D) and DIR/keys.npy (M, D), float32 and L2-normalised by clipit,
and, when present, clipit's DIR/topk_indices.npy and DIR/topk_scores.npy (N, k). Adds the
keys to an `IndexFlatIP` (not timed as search), then times `index.search(queries, k)`
`--repeats` times with `faiss.omp_set_num_threads(--threads)`; the fastest counts, as in
clipit. Top-1 check: a row agrees when both name the same key, or is a tie when the two keys'
exact (float64) similarities differ by at most --tie-tolerance (different GEMM summation
orders may then rank them differently); any other difference is a mismatch and the exit
status is 1.

Prints one JSON object: {"library": "faiss", "faiss", "blas", "threads", "queries", "keys",
"dimension", "k", "add_s", "search_s", "search_gflops", "top1_agree", "top1_ties",
"top1_mismatches", "topk_same_set_rows"}. Needs faiss-cpu and numpy; never run by the tests.
"""
import argparse
import ctypes
import glob
import json
import os
import sys
import time

import faiss
import numpy as np


def bundled_blas():
    """faiss-cpu's wheel bundles OpenBLAS: its version and kernel, asked through ctypes."""
    libs = os.path.join(os.path.dirname(os.path.dirname(faiss.__file__)), "faiss_cpu.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libopenblas*.so*"))):
        lib = ctypes.CDLL(path)
        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return "%s; kernel %s" % (lib.openblas_get_config().decode().strip(), lib.openblas_get_corename().decode())
    return "unknown (no OpenBLAS bundled with this faiss)"


def top1_check(queries, keys, faiss_top1, clipit_top1, tolerance):
    """(agree, ties, mismatches) of the two top-1 columns; ties re-scored in float64."""
    differ = np.nonzero(faiss_top1 != clipit_top1)[0]
    ties = 0
    for row in differ:
        q = queries[row].astype(np.float64)
        ours = q @ keys[clipit_top1[row]].astype(np.float64)
        theirs = q @ keys[faiss_top1[row]].astype(np.float64)
        ties += abs(ours - theirs) <= tolerance
    return len(queries) - len(differ), int(ties), int(len(differ) - ties)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", required=True, help="folder written by clipit bench retrieval --write-vectors")
    parser.add_argument("--k", type=int, default=None, help="neighbours per query (default: clipit's k, else 5)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tie-tolerance", type=float, default=1e-5)
    args = parser.parse_args()

    queries = np.load(os.path.join(args.vectors, "queries.npy"))
    keys = np.load(os.path.join(args.vectors, "keys.npy"))
    indices_path = os.path.join(args.vectors, "topk_indices.npy")
    clipit_indices = np.load(indices_path) if os.path.exists(indices_path) else None
    k = args.k or (clipit_indices.shape[1] if clipit_indices is not None else 5)
    n, d = queries.shape
    m = keys.shape[0]

    faiss.omp_set_num_threads(args.threads)
    start = time.perf_counter()
    index = faiss.IndexFlatIP(d)
    index.add(keys)
    add_s = time.perf_counter() - start

    search_s = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        _, found = index.search(queries, k)
        search_s = min(search_s, time.perf_counter() - start)

    result = {"library": "faiss", "faiss": faiss.__version__, "blas": bundled_blas(), "threads": args.threads,
              "queries": n, "keys": m, "dimension": d, "k": k, "add_s": add_s, "search_s": search_s,
              "search_gflops": 2.0 * n * m * d / search_s / 1e9}
    mismatches = 0
    if clipit_indices is not None:
        agree, ties, mismatches = top1_check(queries, keys, found[:, 0], clipit_indices[:, 0], args.tie_tolerance)
        kk = min(k, clipit_indices.shape[1])
        same_set = np.all(np.sort(found[:, :kk], axis=1) == np.sort(clipit_indices[:, :kk], axis=1), axis=1)
        result.update(top1_agree=agree, top1_ties=ties, top1_mismatches=mismatches,
                      topk_same_set_rows=int(same_set.sum()))
    print(json.dumps(result))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
