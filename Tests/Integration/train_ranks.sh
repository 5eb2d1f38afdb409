#!/usr/bin/env bash
# Integration test of data-parallel training: the loss trajectory must not depend on the
# number of ranks, a stopped-and-resumed run must end bit-identical to an uninterrupted
# one, evaluation must give the same metrics on any rank count, and a failing rank must
# end the job promptly.
#
# Usage: Tests/Integration/train_ranks.sh BIN_DIR [RANK_COUNTS...]
#   BIN_DIR      folder holding the built clipit (e.g. .build/release)
#   RANK_COUNTS  rank counts to compare; default "1 2 4" (the first is the reference)
# Environment: MPIRUN (default mpirun), RTOL relative loss tolerance (default 1e-4),
#   ABORT_TIMEOUT seconds (default 60), KEEP=1 keeps the work directory.
#
# Data: `clipit synth --preset tiny` (24 train, 12 val, 12 test images, 40 reports) and
# pairs files made here by cycling through the reports (image i → report i mod M; this
# test checks the data-parallel arithmetic, not pairing quality). Model: configs/tiny.yaml,
# method clipit, global batch 3 (slices 2/1 on 2 ranks, 1/1/1/0 on 4: uneven and empty
# slices), augmentation and LoRA dropout on, 3 epochs = 24 steps.
#
# Cases (one line each, then "N passed, N failed"; exit status non-zero on any failure):
#   train-npN       `clipit train` under mpirun -np N exits 0 with a complete metrics log
#   losses-npN      every step's loss equals the reference run's within RTOL (relative)
#   resume-npN      (largest N) stop after 10 steps, --resume, compare last.safetensors
#                   byte for byte with the uninterrupted run
#   sigterm-np2     SIGTERM to the ranks mid-run: exit 75 at a step boundary with the
#                   "stopped by signal at step N" message and a checkpoint of step N; then
#                   --resume auto ends byte-identical to an uninterrupted run, no step twice
#   existing-run    --out pointing at an existing run without --resume/--overwrite is refused
#   eval-npN        (largest N) `clipit eval` metrics equal the single-rank evaluation's
#   predict-npN     (largest N) `clipit predict` writes one line per test image
#   deterministic-npA-B-C  train.deterministic: byte-identical checkpoints and step logs on
#                   every rank count after 520 steps
#   resume-npN-on-np1  (N = 2 and the largest count) a deterministic run stopped on N
#                   ranks and resumed on 1 ends byte-identical to the uninterrupted 1-rank run
#   extensions-npA-B-C  the out-of-fold teachers of clipit-kd (3 folds, with an unlabelled
#                   pool) are the same bytes on every rank count, and clipit-kd and
#                   clipit-contrastive with 4 unlabelled images per batch end with
#                   byte-identical checkpoints and step logs on every rank count
#   out-folder-errors  --out under a file, or on a read-only file system (root): exit
#                   non-zero with the project's message naming the path
#   abort           a missing input file on every rank: non-zero exit within
#                   ABORT_TIMEOUT with the rank's message
#   watchdog        a rank stopped with SIGSTOP mid-run (--collective-timeout 3): the job
#                   ends non-zero within ABORT_TIMEOUT, naming the collective and the step
set -u

bin_dir=${1:?usage: Tests/Integration/train_ranks.sh BIN_DIR [RANK_COUNTS...]}
shift
rank_counts=(${*:-1 2 4})
clipit="$bin_dir/clipit"
mpirun=${MPIRUN:-mpirun}
rtol=${RTOL:-1e-4}
abort_timeout=${ABORT_TIMEOUT:-60}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

if [[ ! -x "$clipit" ]]; then
    echo "train_ranks.sh: $clipit not found; build it with: swift build -c release --product clipit" >&2
    exit 2
fi
if ! command -v "$mpirun" >/dev/null; then
    echo "train_ranks.sh: $mpirun not found; install openmpi-bin or set MPIRUN" >&2
    exit 2
fi

cores=$(nproc)
passed=0
failed=0
work=$(mktemp -d)
if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi

mpirun_extra=(-x OPENBLAS_NUM_THREADS=1)
# shellcheck source=harness.sh
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

# Step losses of a metrics log, one per line.
step_losses() {
    grep '"type":"step"' "$1" | sed -E 's/.*"loss":([^,}]*).*/\1/'
}

echo "train_ranks.sh: ranks ${rank_counts[*]}, relative tolerance $rtol, work $work"
make_tiny_data

train_args=(train --config "$root/configs/tiny.yaml" --data "$work/data" --pairs "$work/pairs" --method clipit
            --seed 0 --batch 3 --epochs 3 --quiet --set data.augment=true --set model.lora.dropout=0.1
            --set train.deterministic=false)

reference=""
for ranks in "${rank_counts[@]}"; do
    out="$work/run-np$ranks"
    start=$(date +%s%N)
    # shellcheck disable=SC2046
    $mpirun $(mpirun_options "$ranks") "$clipit" "${train_args[@]}" --out "$out" >"$out.log" 2>&1
    status=$?
    seconds=$(( ($(date +%s%N) - start) / 1000000 ))
    steps=$(step_losses "$out/metrics.jsonl" 2>/dev/null | wc -l)
    if [[ $status -ne 0 || $steps -ne 24 ]]; then
        tail -n 20 "$out.log"
        record "train-np$ranks" 1 "status $status, $steps of 24 steps logged"
        continue
    fi
    record "train-np$ranks" 0 "24 steps in ${seconds} ms"
    if [[ -z "$reference" ]]; then reference="$out"; continue; fi
    verdict=$(paste <(step_losses "$reference/metrics.jsonl") <(step_losses "$out/metrics.jsonl") | awk -v rtol="$rtol" '
        { d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1; r = m > 0 ? d / m : d
          if (r > worst) worst = r; if (r > rtol) bad++ }
        END { printf "%d %.3g", bad, worst }')
    read -r bad worst <<<"$verdict"
    record "losses-np$ranks" $(( bad == 0 ? 0 : 1 )) "largest relative deviation from -np ${rank_counts[0]}: $worst, $bad steps above $rtol"
done

largest=${rank_counts[-1]}
full="$work/run-np$largest"
if [[ -f "$full/last.safetensors" ]]; then
    # Resume: stop after 10 of 24 steps, continue from last.safetensors, compare the files.
    split_run="$work/resume-np$largest"
    # shellcheck disable=SC2046
    $mpirun $(mpirun_options "$largest") "$clipit" "${train_args[@]}" --out "$split_run" --stop-after-steps 10 \
        >"$split_run.log" 2>&1 \
    && $mpirun $(mpirun_options "$largest") "$clipit" train --resume "$split_run/last.safetensors" --quiet \
        >>"$split_run.log" 2>&1
    status=$?
    if [[ $status -eq 0 ]] && cmp -s "$full/last.safetensors" "$split_run/last.safetensors"; then
        record "resume-np$largest" 0 "10 + 14 steps give a byte-identical last.safetensors"
    else
        tail -n 20 "$split_run.log"
        record "resume-np$largest" 1 "status $status; last.safetensors differs from the uninterrupted run's"
    fi

    # Preemption: SIGTERM to the ranks of a longer run once it has logged 40 steps.
    long_args=("${train_args[@]}" --epochs 60)   # 480 steps
    whole="$work/long-whole" stopped="$work/long-stopped"
    # shellcheck disable=SC2046
    $mpirun $(mpirun_options 2) "$clipit" "${long_args[@]}" --out "$whole" >"$whole.log" 2>&1
    # shellcheck disable=SC2046
    $mpirun $(mpirun_options 2) "$clipit" "${long_args[@]}" --out "$stopped" >"$stopped.log" 2>&1 &
    launcher=$!
    for _ in $(seq 1 600); do
        [[ $(step_losses "$stopped/metrics.jsonl" 2>/dev/null | wc -l) -ge 40 ]] && break
        sleep 0.05
    done
    pkill -TERM -P "$launcher" 2>/dev/null   # the ranks, not mpirun
    wait "$launcher"
    status=$?
    at=$(grep -o 'stopped by signal at step [0-9]*' "$stopped.log" | head -n 1 | grep -o '[0-9]*$')
    logged=$(step_losses "$stopped/metrics.jsonl" 2>/dev/null | wc -l)
    # shellcheck disable=SC2046
    $mpirun $(mpirun_options 2) "$clipit" "${long_args[@]}" --out "$stopped" --resume auto >>"$stopped.log" 2>&1
    resumed=$?
    steps=$(step_losses "$stopped/metrics.jsonl" 2>/dev/null | wc -l)
    if [[ $status -eq 75 && -n "$at" && $logged -eq $at && $resumed -eq 0 && $steps -eq 480 ]] \
        && cmp -s "$whole/last.safetensors" "$stopped/last.safetensors" \
        && [[ "$(step_losses "$whole/metrics.jsonl")" == "$(step_losses "$stopped/metrics.jsonl")" ]]; then
        record sigterm-np2 0 "exit 75 at step $at; --resume auto: byte-identical last.safetensors, 480 steps logged once"
    else
        tail -n 20 "$stopped.log"
        record sigterm-np2 1 "exit $status at step ${at:-?} ($logged logged), resume exit $resumed, $steps steps logged"
    fi

    # An existing run is not overwritten silently.
    # shellcheck disable=SC2046
    $mpirun $(mpirun_options 2) "$clipit" "${train_args[@]}" --out "$full" >"$work/existing.log" 2>&1
    status=$?
    if [[ $status -ne 0 ]] && grep -q "already holds a run" "$work/existing.log"; then
        record existing-run 0 "exit $status: $(grep -o "already holds a run[^:]*" "$work/existing.log" | head -n 1)"
    else
        tail -n 10 "$work/existing.log"
        record existing-run 1 "exit $status"
    fi

    # Evaluation: the same metrics on 1 rank and on the largest count.
    for ranks in 1 "$largest"; do
        # shellcheck disable=SC2046
        $mpirun $(mpirun_options "$ranks") "$clipit" eval --checkpoint "$full/best.safetensors" --data "$work/data" \
            --out "$work/eval-np$ranks.json" >"$work/eval-np$ranks.log" 2>&1
    done
    metrics() { grep -E '"(balanced_accuracy|accuracy|macro_f1|sample_count)"' "$1" | tr -d ' ,'; }
    if [[ -s "$work/eval-np1.json" && -s "$work/eval-np$largest.json" ]] \
        && [[ "$(metrics "$work/eval-np1.json")" == "$(metrics "$work/eval-np$largest.json")" ]]; then
        record "eval-np$largest" 0 "$(grep -m1 balanced_accuracy "$work/eval-np1.json" | tr -d ' ,')"
    else
        tail -n 10 "$work/eval-np$largest.log"
        record "eval-np$largest" 1 "metrics differ from the single-rank evaluation or eval failed"
    fi

    # shellcheck disable=SC2046
    $mpirun $(mpirun_options "$largest") "$clipit" predict --checkpoint "$full/best.safetensors" \
        --images "$work/data/test.cds" --out "$work/preds.jsonl" >"$work/predict.log" 2>&1
    status=$?
    lines=$(wc -l <"$work/preds.jsonl" 2>/dev/null || echo 0)
    expected=$(manifest_count test.cds)
    record "predict-np$largest" $(( status == 0 && lines == expected ? 0 : 1 )) "status $status, $lines of $expected lines"
fi

# Deterministic mode: byte-identical checkpoints and step logs on every rank count after
# 520 steps (batch 6 in micro-batches of 2: 3 per step, held 3 / 2+1 / 1+1+1+0), and a run
# started on the largest count, stopped, and resumed on one rank ends the same.
det_args=(train --config "$root/configs/tiny.yaml" --data "$work/data" --pairs "$work/pairs" --method clipit
          --seed 0 --batch 6 --epochs 130 --quiet --set data.augment=true --set model.lora.dropout=0.1
          --set train.deterministic=true --set train.micro_batch_size=2 --set train.validations_per_epoch=1)
step_records() {  # the step records without the timing fields
    grep '"type":"step"' "$1" | sed -E 's/"(images_per_s|ranks)":[^,}]*,?//g'
}
det_reference=""
det_fail=""
for ranks in "${rank_counts[@]}"; do
    out="$work/det-np$ranks"
    # shellcheck disable=SC2046
    $mpirun $(mpirun_options "$ranks") "$clipit" "${det_args[@]}" --out "$out" >"$out.log" 2>&1 \
        || { tail -n 10 "$out.log"; det_fail+=" np$ranks exited non-zero;"; continue; }
    if [[ -z "$det_reference" ]]; then det_reference="$out"; continue; fi
    for file in last.safetensors best.safetensors; do
        cmp -s "$det_reference/$file" "$out/$file" || det_fail+=" np$ranks $file differs;"
    done
    [[ "$(step_records "$det_reference/metrics.jsonl")" == "$(step_records "$out/metrics.jsonl")" ]] \
        || det_fail+=" np$ranks step log differs;"
done
steps=$(step_records "$det_reference/metrics.jsonl" 2>/dev/null | wc -l)
joined=$(IFS=-; echo "${rank_counts[*]}")
record "deterministic-np$joined" $(( ${#det_fail} == 0 && steps == 520 ? 0 : 1 )) \
    "${det_fail:-byte-identical last/best checkpoints and step logs after $steps steps}"
if [[ -n "$det_reference" ]]; then
    for from in 2 "$largest"; do
        [[ $from -gt 1 ]] || continue
        moved="$work/det-moved-np$from"
        # shellcheck disable=SC2046
        $mpirun $(mpirun_options "$from") "$clipit" "${det_args[@]}" --out "$moved" --stop-after-steps 200 \
            >"$moved.log" 2>&1 \
        && $mpirun $(mpirun_options 1) "$clipit" "${det_args[@]}" --out "$moved" --resume auto >>"$moved.log" 2>&1
        status=$?
        if [[ $status -eq 0 ]] && cmp -s "$det_reference/last.safetensors" "$moved/last.safetensors" \
            && [[ "$(step_records "$det_reference/metrics.jsonl")" == "$(step_records "$moved/metrics.jsonl")" ]]; then
            record "resume-np$from-on-np1" 0 "200 steps on $from ranks + 320 on 1: byte-identical to the 1-rank run"
        else
            tail -n 10 "$moved.log"
            record "resume-np$from-on-np1" 1 "status $status; differs from the uninterrupted 1-rank run"
        fi
        [[ $from -eq $largest ]] && break
    done
fi

# The extensions of CLIP-IT.md decision 8 (deterministic mode): teachers and students the
# same bytes on every rank count, with an unlabelled pool in every batch.
"$clipit" synth --preset tiny --seed 0 --unlabeled 16 --out "$work/pool-data" >"$work/pool-synth.log" 2>&1
mkdir -p "$work/pool-pairs"
for split in train val unlabeled; do
    make_pairs "$split" "$(manifest_count "$split.cds" "$work/pool-data/manifest.json")" "$reports" \
        "$work/pool-pairs/$split.pairs.jsonl"
done
ext_args=(train --config "$root/configs/tiny.yaml" --data "$work/pool-data" --pairs "$work/pool-pairs" --seed 0 --batch 6
          --epochs 3 --quiet --set data.augment=true --set train.micro_batch_size=2
          --unlabeled "$work/pool-data/unlabeled.cds" --unlabeled-batch 4)
ext_fail=""
for ranks in "${rank_counts[@]}"; do
    # shellcheck disable=SC2046
    $mpirun $(mpirun_options "$ranks") "$clipit" "${ext_args[@]}" --method text-only --folds 3 \
        --unlabeled-batch 0 --out "$work/ext-teachers-np$ranks" >"$work/ext-teachers-np$ranks.log" 2>&1 \
        || { tail -n 10 "$work/ext-teachers-np$ranks.log"; ext_fail+=" teachers np$ranks exited non-zero;"; continue; }
    cmp -s "$work/ext-teachers-np${rank_counts[0]}/teacher.safetensors" "$work/ext-teachers-np$ranks/teacher.safetensors" \
        || ext_fail+=" teachers np$ranks differ;"
    for method in clipit-kd clipit-contrastive; do
        out="$work/ext-$method-np$ranks"
        # shellcheck disable=SC2046
        $mpirun $(mpirun_options "$ranks") "$clipit" "${ext_args[@]}" --method "$method" \
            --teacher "$work/ext-teachers-np${rank_counts[0]}/teacher.safetensors" --out "$out" >"$out.log" 2>&1 \
            || { tail -n 10 "$out.log"; ext_fail+=" $method np$ranks exited non-zero;"; continue; }
        reference="$work/ext-$method-np${rank_counts[0]}"
        cmp -s "$reference/last.safetensors" "$out/last.safetensors" || ext_fail+=" $method np$ranks checkpoint differs;"
        [[ "$(step_records "$reference/metrics.jsonl")" == "$(step_records "$out/metrics.jsonl")" ]] \
            || ext_fail+=" $method np$ranks step log differs;"
    done
done
ext_steps=$(step_records "$work/ext-clipit-kd-np${rank_counts[0]}/metrics.jsonl" 2>/dev/null | grep -c '"kd"')
record "extensions-np$joined" $(( ${#ext_fail} == 0 && ext_steps == 12 ? 0 : 1 )) \
    "${ext_fail:-teachers, clipit-kd and clipit-contrastive byte-identical; $ext_steps steps with the kd term}"

# Output folders that cannot be made: a file in the path, and (as root) a read-only
# file system. Both ranks exit non-zero; rank 0 names the path and what to do.
touch "$work/a-file"
out_problems=()
# shellcheck disable=SC2046
$mpirun $(mpirun_options 2) "$clipit" "${train_args[@]}" --out "$work/a-file/run" >"$work/out-file.log" 2>&1
status=$?
[[ $status -ne 0 ]] && grep -q "a-file' is a file, not a folder; choose another --out" "$work/out-file.log" \
    || out_problems+=("not-a-folder: exit $status, $(tail -n 1 "$work/out-file.log")")
read_only="skipped (no tmpfs mount here)"
mkdir -p "$work/ro"
if mount -t tmpfs -o ro,size=1m clipit-ro "$work/ro" 2>/dev/null; then
    # shellcheck disable=SC2046
    $mpirun $(mpirun_options 2) "$clipit" "${train_args[@]}" --out "$work/ro/run" >"$work/out-ro.log" 2>&1
    status=$?
    umount "$work/ro"
    read_only="refused"
    [[ $status -ne 0 ]] && grep -q "cannot create the output folder '.*ro/run' (Read-only file system)" "$work/out-ro.log" \
        || out_problems+=("read-only: exit $status, $(tail -n 1 "$work/out-ro.log")")
fi
record out-folder-errors $(( ${#out_problems[@]} == 0 ? 0 : 1 )) \
    "${out_problems[*]:-a file in the path refused; read-only file system $read_only}"

# Abort: every rank fails to open the training file; the job must end promptly, non-zero.
abort_ranks=$(( largest > 1 ? largest : 2 ))
start=$(date +%s%N)
# shellcheck disable=SC2046
timeout --kill-after=10 "$abort_timeout" $mpirun $(mpirun_options "$abort_ranks") "$clipit" train --preset tiny --train "$work/missing.cds" \
    --method unimodal --out "$work/abort" --quiet >"$work/abort.log" 2>&1
status=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [[ $status -ne 0 && $status -ne 124 ]] && grep -q "clipit: rank [0-9]*: .*missing.cds" "$work/abort.log"; then
    record abort 0 "exit $status after ${ms} ms with the rank's message"
else
    tail -n 10 "$work/abort.log"
    record abort 1 "exit $status after ${ms} ms"
fi

# Watchdog: one rank is stopped (SIGSTOP) while the other waits in a collective.
start=$(date +%s%N)
# shellcheck disable=SC2046
timeout --kill-after=10 "$abort_timeout" $mpirun $(mpirun_options 2) "$clipit" "${train_args[@]}" --epochs 60 \
    --collective-timeout 3 --out "$work/watchdog" >"$work/watchdog.log" 2>&1 &
launcher=$!
for _ in $(seq 1 600); do
    [[ $(step_losses "$work/watchdog/metrics.jsonl" 2>/dev/null | wc -l) -ge 20 ]] && break
    sleep 0.05
done
victim=$(pgrep -f "^$clipit train" | tail -n 1)   # a rank (mpirun's own command line starts with mpirun)
kill -STOP "$victim" 2>/dev/null
wait "$launcher"
status=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
kill -CONT "$victim" 2>/dev/null; kill -KILL "$victim" 2>/dev/null
if [[ $status -ne 0 && $status -ne 124 && $status -ne 137 ]] \
    && grep -q "collective .* has not completed after 3 s" "$work/watchdog.log"; then
    record watchdog 0 "exit $status after ${ms} ms: $(grep -o 'collective [a-z]* (call [0-9]*, step [0-9]*)' "$work/watchdog.log" | head -n 1)"
else
    tail -n 10 "$work/watchdog.log"
    record watchdog 1 "exit $status after ${ms} ms"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
