#!/usr/bin/env bash
# The command line: one consistent set of flags, the old names kept as hidden aliases
# that give the same results, `clipit --version`, and `clipit train` refusing to guess
# a model.
#
# Usage: Tests/CLI/run.sh BIN_DIR   (BIN_DIR holds the built clipit; single process, no MPI)
# Environment: KEEP=1 keeps the work directory.
#
# Cases (one line each, then "N passed, N failed"; exit status non-zero on any failure):
#   version            --version names the version, the git revision, BLAS and its kernel, MPI
#   train-needs-model  train without --config/--preset: non-zero, the presets and configs listed
#   setting-flags      every setting flag of train sets the key its help names (config.yaml)
#   batch-alias-*      pretrain, pair, smoke: --batch-size gives what --batch gives
#   unlabeled-pool     synth --unlabeled: the other splits byte-identical, unlabeled.cds;
#                      pair writes unlabeled.pairs.jsonl (no image labels, no label match)
#   unlabeled-refused  train --train and eval --data refuse unlabeled.cds, naming it;
#                      predict --images takes it (no "label" key)
#   input-alias-*      import folder --root, import reports --in, import medmnist --npz,
#                      import pcam --root give byte-identical files to --images, --reports,
#                      --data, --data
#   alias-hidden       the old names are not in --help; the new ones are
#   alias-conflict     the old and the new name together are refused
#   report-paired      clipit report: per-seed differences against the baseline with their
#                      standard error, and the random-pairs control's, computed as by hand
#   bench-predict      clipit bench predict --json on a tiny ViT-S/16: a plain and a merged row
#                      per batch size, every field present, times and rates finite and positive
#   bench-data         clipit bench data --json (both pipelines, random images, --step-seconds
#                      on one): every stage's row, its fields finite and positive
set -u

bin_dir=${1:?usage: Tests/CLI/run.sh BIN_DIR}
clipit="$bin_dir/clipit"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ -x "$clipit" ]] || { echo "Tests/CLI/run.sh: $clipit not found" >&2; exit 2; }
passed=0
failed=0
work=$(mktemp -d)
if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi
export CLIPIT_COMM=single OPENBLAS_NUM_THREADS=1
# shellcheck source=../Integration/harness.sh
source "$root/Tests/Integration/harness.sh"

out=$("$clipit" --version 2>&1)
status=$?
if [[ $status -eq 0 ]] && grep -qE '^clipit [0-9]+\.[0-9]+\.[0-9]+ \(git ([0-9a-f]{12}(-dirty)?|unknown)\)$' <<<"$out" \
    && grep -qE '^BLAS: .*; kernel [A-Za-z0-9_]+' <<<"$out" && grep -qE '^MPI: .+' <<<"$out"; then
    record version 0 "$(head -n 1 <<<"$out"); $(grep -o 'kernel [A-Za-z0-9_]*' <<<"$out")"
else
    record version 1 "exit $status: $out"
fi

"$clipit" synth --preset tiny --seed 0 --out "$work/data" >/dev/null 2>&1 || { record synth 1 "clipit synth failed"; }
(cd "$root" && "$clipit" train --data "$work/data" --out "$work/run") >"$work/no-model.log" 2>&1
status=$?
if [[ $status -ne 0 ]] && grep -q "choose the model: --config FILE (here: configs/" "$work/no-model.log" \
    && grep -q -- "--preset NAME (tiny, demo" "$work/no-model.log" && [[ ! -e "$work/run/metrics.jsonl" ]]; then
    record train-needs-model 0 "exit $status, presets and configs listed"
else
    record train-needs-model 1 "exit $status: $(tail -n 1 "$work/no-model.log")"
fi

# Every setting flag of train reaches its key (config.yaml of the run).
"$clipit" train --preset tiny --data "$work/data" --method unimodal-lora --out "$work/flags" --quiet \
    --epochs 1 --batch 6 --eval-batch 5 --max-steps 2 --validations-per-epoch 1 --micro-batch 3 --no-deterministic \
    --checkpoint-every 7 --save-frozen --divergence-factor 9.5 --log-every 4 --optimizer adamw --lr 0.002 \
    --weight-decay 0.03 --beta1 0.8 --beta2 0.99 --epsilon 1e-07 --momentum 0.7 --grad-clip 2.5 --schedule warmup-cosine \
    --eta-min 1e-05 --warmup-steps 3 --lora-rank 2 --lora-alpha 4.5 --lora-dropout 0.1 --distillation-weight 0.5 \
    --text-gradient stopped --normalization clip --augment --tokenizer word >"$work/flags.log" 2>&1
status=$?
missing=()
for line in "epochs: 1" "batch_size: 6" "eval_batch_size: 5" "max_steps: 2" "validations_per_epoch: 1" \
            "micro_batch_size: 3" "deterministic: false" "checkpoint_every: 7" "save_frozen: true" "divergence_factor: 9.5" \
            "log_every: 4" "optimizer: adamw" "lr: 0.002" "weight_decay: 0.03" "beta1: 0.8" "beta2: 0.99" \
            "epsilon: 1e-07" "momentum: 0.7" "grad_clip: 2.5" "schedule: warmup-cosine" "eta_min: 1e-05" "warmup_steps: 3" \
            "rank: 2" "alpha: 4.5" "dropout: 0.1" "distillation_weight: 0.5" "text_gradient: stopped" \
            "normalization: clip" "augment: true" "tokenizer: word"; do
    grep -q "^ *$line\$" "$work/flags/config.yaml" 2>/dev/null || missing+=("$line")
done
if [[ $status -eq 0 && ${#missing[@]} -eq 0 ]]; then
    record setting-flags 0 "30 flags, each in config.yaml"
else
    tail -n 3 "$work/flags.log"
    record setting-flags 1 "exit $status; not in config.yaml: ${missing[*]}"
fi

# pretrain: the same retriever bytes with --batch and --batch-size.
for name in batch batch-size; do
    "$clipit" pretrain --data "$work/data" --preset tiny --epochs 1 --"$name" 8 --out "$work/pre-$name" \
        >"$work/pre-$name.log" 2>&1 || tail -n 3 "$work/pre-$name.log"
done
cmp -s "$work/pre-batch/retriever.safetensors" "$work/pre-batch-size/retriever.safetensors"
record batch-alias-pretrain $? "retriever.safetensors byte-identical"

for name in batch batch-size; do
    "$clipit" pair --retriever "$work/pre-batch/retriever.safetensors" --data "$work/data" \
        --reports "$work/data/reports.jsonl" --out "$work/pair-$name" --"$name" 5 >"$work/pair-$name.log" 2>&1 \
        || tail -n 3 "$work/pair-$name.log"
done
cmp -s "$work/pair-batch/test.pairs.jsonl" "$work/pair-batch-size/test.pairs.jsonl" \
    && [[ -s "$work/pair-batch/test.pairs.jsonl" ]]
record batch-alias-pair $? "test.pairs.jsonl byte-identical"

# An unlabelled pool: the same benchmark plus unlabeled.cds, paired with the other splits.
"$clipit" synth --preset tiny --seed 0 --unlabeled 7 --out "$work/pool" >"$work/pool.log" 2>&1 || tail -n 3 "$work/pool.log"
"$clipit" pair --retriever "$work/pre-batch/retriever.safetensors" --data "$work/pool" \
    --reports "$work/pool/reports.jsonl" --out "$work/pair-pool" --batch 5 >"$work/pair-pool.log" 2>&1 \
    || tail -n 3 "$work/pair-pool.log"
problems=()
for f in train.cds val.cds test.cds paired.cds paired.jsonl reports.jsonl; do
    cmp -s "$work/data/$f" "$work/pool/$f" || problems+=("$f differs")
done
for split in train val test; do
    cmp -s "$work/pair-batch/$split.pairs.jsonl" "$work/pair-pool/$split.pairs.jsonl" || problems+=("$split pairs differ")
done
pool_pairs="$work/pair-pool/unlabeled.pairs.jsonl"
[[ $(wc -l <"$pool_pairs" 2>/dev/null) -eq 8 ]] || problems+=("unlabeled.pairs.jsonl: not a header and 7 records")
head -n 1 "$pool_pairs" 2>/dev/null | grep -q '"image_count":7,.*"split":"unlabeled"' || problems+=("unlabeled header")
grep -q '"image_label"' "$pool_pairs" 2>/dev/null && problems+=("image labels in unlabeled.pairs.jsonl")
grep -q 'pair: unlabeled  7 images' "$work/pair-pool.log" && ! grep 'pair: unlabeled' "$work/pair-pool.log" | grep -q 'label match' \
    || problems+=("pair's unlabeled line")
record unlabeled-pool $(( ${#problems[@]} == 0 ? 0 : 1 )) "${problems[*]:-7 unlabelled images paired, other splits and their pairs byte-identical}"

problems=()
"$clipit" train --preset tiny --data "$work/pool" --train "$work/pool/unlabeled.cds" --method unimodal-lora \
    --out "$work/pool-run" --quiet --max-steps 1 >"$work/pool-train.log" 2>&1 && problems+=("train accepted it")
grep -q "$work/pool/unlabeled.cds: holds unlabelled images (\"labelled\": false), so it cannot be data.train" \
    "$work/pool-train.log" || problems+=("train: $(tail -n 1 "$work/pool-train.log")")
"$clipit" eval --checkpoint "$work/flags/last.safetensors" --data "$work/pool/unlabeled.cds" >"$work/pool-eval.log" 2>&1 \
    && problems+=("eval accepted it")
grep -q "$work/pool/unlabeled.cds: holds unlabelled images.*cannot be evaluated" "$work/pool-eval.log" \
    || problems+=("eval: $(tail -n 1 "$work/pool-eval.log")")
"$clipit" predict --checkpoint "$work/flags/last.safetensors" --images "$work/pool/unlabeled.cds" \
    --out "$work/pool-predictions.jsonl" >"$work/pool-predict.log" 2>&1 || problems+=("predict: $(tail -n 1 "$work/pool-predict.log")")
[[ $(grep -c '"prediction"' "$work/pool-predictions.jsonl" 2>/dev/null) -eq 7 ]] || problems+=("predict: not 7 lines")
grep -q '"label"' "$work/pool-predictions.jsonl" 2>/dev/null && problems+=("predict wrote labels")
record unlabeled-refused $(( ${#problems[@]} == 0 ? 0 : 1 )) "${problems[*]:-train and eval refuse it by name, predict takes it}"

a=$("$clipit" smoke --items 50 --batch 8 2>&1) && b=$("$clipit" smoke --items 50 --batch-size 8 2>&1) \
    && [[ "$a" == "$b" ]] && grep -q "global batch 8" <<<"$a"
record batch-alias-smoke $? "same output with global batch 8"

# import folder: a two-class folder of PNGs written from the tiny test set.
mkdir -p "$work/folder/a" "$work/folder/b"
python3 - "$work/folder" <<'PY'
import struct, sys, zlib
def png(path, value):
    raw = b"".join(b"\x00" + bytes([value, 255 - value, 128] * 4) for _ in range(4))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for i in range(3):
    png(f"{sys.argv[1]}/a/{i}.png", 10 + i)
    png(f"{sys.argv[1]}/b/{i}.png", 200 + i)
PY
"$clipit" import folder --images "$work/folder" --out "$work/new.cds" >/dev/null 2>&1
"$clipit" import folder --root "$work/folder" --out "$work/old.cds" >/dev/null 2>&1
cmp -s "$work/new.cds" "$work/old.cds" && [[ -s "$work/new.cds" ]]
record input-alias-folder $? "--root and --images: byte-identical .cds"

printf 'first report\nsecond report\n' >"$work/reports.txt"
"$clipit" import reports --reports "$work/reports.txt" --out "$work/new.jsonl" >/dev/null 2>&1
"$clipit" import reports --in "$work/reports.txt" --out "$work/old.jsonl" >/dev/null 2>&1
cmp -s "$work/new.jsonl" "$work/old.jsonl" && [[ $(wc -l <"$work/new.jsonl") -eq 2 ]]
record input-alias-reports $? "--in and --reports: byte-identical corpus"

python3 - "$work/mnist.npz" <<'PY'
import io, struct, sys, zipfile
def npy(dtype, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (dtype, "".join(f"{s}, " for s in shape))
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for split in ("train", "val", "test"):
        z.writestr(f"{split}_images.npy", npy("|u1", (2, 3, 3), bytes(range(18))))
        z.writestr(f"{split}_labels.npy", npy("<i8", (2, 1), struct.pack("<2q", 0, 1)))
PY
"$clipit" import medmnist --data "$work/mnist.npz" --out "$work/mnist-new" >/dev/null 2>&1
"$clipit" import medmnist --npz "$work/mnist.npz" --out "$work/mnist-old" >/dev/null 2>&1
cmp -s "$work/mnist-new/train.cds" "$work/mnist-old/train.cds" && [[ -s "$work/mnist-new/train.cds" ]]
record input-alias-medmnist $? "--npz and --data: byte-identical train.cds"

pcam="$root/Tests/DatasetsTests/Fixtures/pcam/contiguous"   # reference/make_pcam_fixtures.py
"$clipit" import pcam --data "$pcam" --out "$work/pcam-new" >/dev/null 2>&1
"$clipit" import pcam --root "$pcam" --out "$work/pcam-old" >/dev/null 2>&1
cmp -s "$work/pcam-new/train.cds" "$work/pcam-old/train.cds" && [[ -s "$work/pcam-new/train.cds" ]]
record input-alias-pcam $? "--root and --data: byte-identical train.cds"

problems=()
for spec in "pretrain:batch:batch-size" "pair:batch:batch-size" "smoke:batch:batch-size" \
            "import folder:images:root" "import reports:reports:in" "import medmnist:data:npz" \
            "import pcam:data:root"; do
    IFS=: read -r command new old <<<"$spec"
    # shellcheck disable=SC2086
    help=$("$clipit" $command --help 2>&1)
    grep -q -- "--$new " <<<"$help" || problems+=("$command: --$new missing")
    grep -q -- "--$old " <<<"$help" && problems+=("$command: --$old shown")
done
record alias-hidden $(( ${#problems[@]} == 0 ? 0 : 1 )) "${problems[*]:-old names hidden, new names shown in 7 commands}"

"$clipit" smoke --batch 8 --batch-size 8 >"$work/conflict.log" 2>&1
status=$?
[[ $status -ne 0 ]] && grep -q -- "--batch-size is the old name of --batch: pass only --batch" "$work/conflict.log"
record alias-conflict $? "exit $status"

# clipit report's paired differences: three seeds of a baseline `a`, a method `b` and its
# control `b-random-pairs`, test.json copied from one real evaluation with the balanced
# accuracy set: b − a = +3, +2, +4 points (mean 3.00, s.e. 1/√3 = 0.58, ratio 5.20);
# control − a = 0, +1, +1 (mean 0.67, s.e. 0.33).
"$clipit" train --preset tiny --data "$work/data" --method unimodal --max-steps 2 --out "$work/report-run" --quiet \
    >/dev/null 2>&1 \
&& "$clipit" eval --checkpoint "$work/report-run/best.safetensors" --data "$work/data/test.cds" \
    --out "$work/report-template.json" >/dev/null 2>&1
for spec in a:0:0.80 a:1:0.82 a:2:0.84 b:0:0.83 b:1:0.84 b:2:0.88 \
            b-random-pairs:0:0.80 b-random-pairs:1:0.83 b-random-pairs:2:0.85; do
    IFS=: read -r name seed value <<<"$spec"
    mkdir -p "$work/report-runs/$name-seed$seed"
    sed -E -e "s/\"balanced_accuracy\" : [0-9.eE+-]+/\"balanced_accuracy\" : $value/" \
        -e "s/^  \"seed\" : [0-9]+/  \"seed\" : $seed/" "$work/report-template.json" \
        >"$work/report-runs/$name-seed$seed/test.json"
done
"$clipit" report --runs "$work/report-runs" --method b --baseline a --ablation b-random-pairs >"$work/report.log" 2>&1
status=$?
grep -qF "| b | 3 | +3.00 | 0.58 | +5.20 | +0.67 ± 0.33 |" "$work/report-runs/results.md" 2>/dev/null \
    && grep -qF "| b-random-pairs | 3 | +0.67 | 0.33 | +2.00 | – |" "$work/report-runs/results.md"
ok=$?
[[ $status -ne 0 ]] && tail -n 5 "$work/report.log"
record report-paired $(( status == 0 && ok == 0 ? 0 : 1 )) "exit $status; b: +3.00 ± 0.58 (ratio 5.20), control +0.67 ± 0.33"

# The benchmarks' JSON rows: fields present, numbers finite and positive (no timing thresholds).
# check_rows FILE EXPECTED_ROWS NUMBER_FIELDS... (string fields are checked by the caller's grep).
check_rows() {
    python3 - "$@" <<'PY'
import json, math, sys
path, expected, fields = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = [json.loads(line) for line in open(path) if line.strip()]
problems = [] if len(rows) == expected else [f"{len(rows)} rows, expected {expected}"]
for row in rows:
    for field in fields:
        value = row.get(field)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            problems.append(f"{row.get('variant') or row.get('stage')}: {field} = {value!r}")
print("; ".join(problems[:5]))
sys.exit(1 if problems else 0)
PY
}

"$clipit" bench predict --model vit-s16 --image-size 32 --batch 3 --rounds 1 --latency-forwards 2 \
    --throughput-forwards 1 --warmup 1 --threads 1 --json >"$work/bench-predict.jsonl" 2>"$work/bench-predict.log"
status=$?
problems=$(check_rows "$work/bench-predict.jsonl" 4 batch threads image_size forwards seconds cpu_seconds images_per_s latency_ms)
ok=$?
for pattern in '"variant":"plain","image_size":32,"batch":1,' '"variant":"merged","image_size":32,"batch":3,' \
               '"model":"vit-s16"' '"core":"[A-Za-z0-9]+"'; do
    grep -qE "$pattern" "$work/bench-predict.jsonl" || { ok=1; problems+=" no $pattern;"; }
done
[[ $(grep -cE '"merged_over_plain":[0-9.]+,"merged_over_plain_min":[0-9.]+,"merged_over_plain_cpu":[0-9.]+\}' "$work/bench-predict.jsonl") -eq 2 ]] \
    || { ok=1; problems+=" merged rows without their ratios;"; }
[[ $status -ne 0 ]] && tail -n 3 "$work/bench-predict.log"
record bench-predict $(( status == 0 && ok == 0 ? 0 : 1 )) "exit $status; ${problems:-4 rows, fields finite and positive}"

"$clipit" bench data --images 8 --batch 4 --repeats 1 --json >"$work/bench-data.jsonl" 2>"$work/bench-data.log" \
    && "$clipit" bench data --pipeline demo --images 8 --batch 4 --repeats 1 --step-seconds 0.5 --json \
        >"$work/bench-data-step.jsonl" 2>>"$work/bench-data.log"
status=$?
problems=$(check_rows "$work/bench-data.jsonl" 8 output_size threads images seconds cpu_seconds images_per_s \
           images_per_cpu_s us_per_image)
ok=$?
problems+=$(check_rows "$work/bench-data-step.jsonl" 4 images seconds images_per_s) || ok=1
for stage in read transform-no-jitter transform assemble; do
    for pipeline in demo 224; do
        grep -q "\"pipeline\":\"$pipeline\",\"stage\":\"$stage\"" "$work/bench-data.jsonl" \
            || { ok=1; problems+=" no $pipeline $stage row;"; }
    done
done
python3 - "$work/bench-data-step.jsonl" <<'PY' || { ok=1; problems+=" the assemble row's batch share is wrong;"; }
import json, math, sys
row = [json.loads(line) for line in open(sys.argv[1]) if '"assemble"' in line][0]
share = row["batch_seconds"] / row["step_seconds"]
sys.exit(0 if row["batch"] == 4 and row["step_seconds"] == 0.5 and row["batch_seconds"] > 0
         and math.isclose(row["step_fraction"], share, rel_tol=1e-3, abs_tol=1e-5) else 1)
PY
[[ $status -ne 0 ]] && tail -n 3 "$work/bench-data.log"
record bench-data $(( status == 0 && ok == 0 ? 0 : 1 )) "exit $status; ${problems:-8 stage rows and a step share, fields finite and positive}"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
