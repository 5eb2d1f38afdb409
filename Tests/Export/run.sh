#!/usr/bin/env bash
# `clipit export`'s loading example against PyTorch: the exported timm config, base weights,
# PEFT adapter and heads, loaded by OUT/predict_example.py, predict what `clipit predict
# --images` predicts.
#
# Usage: Tests/Export/run.sh BIN_DIR
# Environment: REFERENCE_PYTHON, a Python with torch, torchvision, timm, peft, safetensors
#   and pillow (the reference environment of reference/README.md); without it the script
#   prints "SKIP export-example: REASON" and "0 passed, 0 failed". KEEP=1 keeps the work
#   directory.
#
# Cases, for unimodal-lora and clipit on the tiny preset (16 px, trained a few steps):
#   export-METHOD     the export writes vision/config.json, vision/base_model.safetensors,
#                     clipit_model.json and predict_example.py
#   example-METHOD    predict_example.py and clipit predict give the same class for every
#                     image and probabilities within 1e-6, for images at the model's size and
#                     for resized ones (the example resamples in float as clipit does); the
#                     bound: float32 rounding through the model (~1e-7) plus the example's
#                     7-decimal output
set -u

bin_dir=${1:?usage: Tests/Export/run.sh BIN_DIR}
clipit="$bin_dir/clipit"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
passed=0
failed=0
# shellcheck source=../Integration/harness.sh
source "$root/Tests/Integration/harness.sh"
python=${REFERENCE_PYTHON:-}
if [[ -z "$python" ]] || ! "$python" -c "import torch, torchvision, timm, peft, safetensors, PIL" 2>/dev/null; then
    echo "SKIP export-example: set REFERENCE_PYTHON to a Python with torch, torchvision, timm, peft, safetensors and pillow"
    echo "0 passed, 0 failed"
    exit 0
fi
work=$(mktemp -d)
if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi
export CLIPIT_COMM=single OPENBLAS_NUM_THREADS=1

"$clipit" synth --preset tiny --seed 0 --out "$work/data" >/dev/null 2>&1
reports=$(manifest_count reports.jsonl)
mkdir -p "$work/pairs" "$work/images"
for split in train val test; do make_pairs "$split" "$(manifest_count "$split.cds")" "$reports" "$work/pairs/$split.pairs.jsonl"; done
# Images: two at the model's 16 px, two that need resizing (wider, taller).
"$python" - "$work/images" <<'PY'
import sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for name, (w, h) in {"native-0": (16, 16), "native-1": (16, 16), "wide": (40, 23), "tall": (12, 30)}.items():
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(f"{sys.argv[1]}/{name}.png")
PY

for method in unimodal-lora clipit; do
    run="$work/run-$method" out="$work/export-$method"
    "$clipit" train --preset tiny --data "$work/data" --pairs "$work/pairs" --method "$method" --epochs 2 \
        --out "$run" --quiet >"$run.log" 2>&1 \
        && "$clipit" export --checkpoint "$run/last.safetensors" --out "$out" >"$out.log" 2>&1
    status=$?
    missing=()
    for file in vision/config.json vision/base_model.safetensors clipit_model.json predict_example.py heads.safetensors; do
        [[ -s "$out/$file" ]] || missing+=("$file")
    done
    record "export-$method" $(( status == 0 && ${#missing[@]} == 0 ? 0 : 1 )) \
        "exit $status${missing[*]:+, missing: ${missing[*]}}"
    "$clipit" predict --checkpoint "$run/last.safetensors" --images "$work/images" --out "$work/$method.clipit.jsonl" \
        >/dev/null 2>&1
    (cd "$work/images" && "$python" "$out/predict_example.py" native-0.png native-1.png tall.png wide.png) \
        >"$work/$method.torch.jsonl" 2>"$work/$method.torch.log"
    verdict=$("$python" - "$work/$method.clipit.jsonl" "$work/$method.torch.jsonl" <<'PY'
import json, sys
ours = {r["id"]: r for r in map(json.loads, open(sys.argv[1]))}
theirs = {r["id"]: r for r in map(json.loads, open(sys.argv[2]))}
problems, worst = [], {"native": 0.0, "resized": 0.0}
for name, r in theirs.items():
    kind = "native" if name.startswith("native") else "resized"
    d = max(abs(a - b) for a, b in zip(ours[name]["probabilities"], r["probabilities"]))
    worst[kind] = max(worst[kind], d)
    if ours[name]["prediction"] != r["prediction"]:
        problems.append(f"{name}: class {ours[name]['prediction']} vs {r['prediction']}")
if len(theirs) != 4:
    problems.append(f"{len(theirs)} of 4 images predicted")
if worst["native"] > 1e-6 or worst["resized"] > 1e-6:
    problems.append("probabilities too far apart")
print(("OK " if not problems else "BAD ") + f"max |dp| native {worst['native']:.2g}, resized {worst['resized']:.2g}"
      + ("; " + "; ".join(problems) if problems else ""))
PY
)
    [[ "$verdict" == OK* ]] || tail -n 5 "$work/$method.torch.log"
    record "example-$method" $([[ "$verdict" == OK* ]] && echo 0 || echo 1) "${verdict#* }"
done

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
