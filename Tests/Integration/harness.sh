# Shared by the shell test harnesses (Tests/MultiRank/run.sh, Tests/Integration/train_ranks.sh):
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
