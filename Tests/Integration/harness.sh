# Shared by the shell test harnesses (Tests/MultiRank/run.sh, Tests/Integration/train_ranks.sh,
# Tests/MultiHost/run.sh, Tests/CLI/run.sh, Tests/Report/render.sh):
# source it after setting `cores` (the machine's core count), `passed=0` and `failed=0`, and
# optionally `mpirun_extra` (an array of options added to every mpirun).

# mpirun options for $1 ranks: root needs --allow-run-as-root, more ranks than cores need
# --oversubscribe.
mpirun_options() {
    local options=(-np "$1" "${mpirun_extra[@]}")
    [[ $(id -u) -eq 0 ]] && options+=(--allow-run-as-root)
    (( $1 > cores )) && options+=(--oversubscribe)
    echo "${options[@]}"
}

seconds_since() {  # seconds since a `date +%s%N` stamp, to the millisecond
    local ms=$(( ($(date +%s%N) - $1) / 1000000 ))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

record() {  # record NAME OK(0|1) DETAIL
    if [[ $2 -eq 0 ]]; then
        passed=$((passed + 1)); echo "PASS $1 ($3)"
    else
        failed=$((failed + 1)); echo "FAIL $1 ($3)"
    fi
}

# A pairs file for split $1 with $2 images over $3 reports, written to $4: image i →
# report i mod M (the tests check the arithmetic of training, not pairing quality).
make_pairs() {
    local split=$1 images=$2 reports=$3 out=$4 i
    {
        printf '{"format":"clipit-pairs","image_count":%d,"recorded_k":1,"report_count":%d,"seed":0,"split":"%s","strategy":"random","version":2}\n' \
            "$images" "$reports" "$split"
        for ((i = 0; i < images; i++)); do
            printf '{"image":%d,"report":%d,"score":0,"top":[%d],"top_scores":[0]}\n' "$i" $((i % reports)) $((i % reports))
        done
    } >"$out"
}

# The count of file $1 in a synth manifest ("path": "NAME", ..., "count": N); the manifest
# is $2, default $work/data/manifest.json.
manifest_count() {
    grep -o "\"path\": \"$1\"[^}]*\"count\": [0-9]*" "${2:-$work/data/manifest.json}" | grep -o '[0-9]*$'
}

# `clipit synth --preset tiny` into $work/data (needs $clipit) and pairs files cycling through
# its reports into $work/pairs; sets `reports`. On failure records the case and ends the
# script.
make_tiny_data() {
    if ! "$clipit" synth --preset tiny --seed 0 --out "$work/data" >"$work/synth.log" 2>&1; then
        tail -n 20 "$work/synth.log"
        record synth 1 "clipit synth --preset tiny failed"
        echo "$passed passed, $failed failed"
        exit 1
    fi
    reports=$(manifest_count reports.jsonl)
    mkdir -p "$work/pairs"
    local split
    for split in train val test; do
        make_pairs "$split" "$(manifest_count "$split.cds")" "$reports" "$work/pairs/$split.pairs.jsonl"
    done
}
