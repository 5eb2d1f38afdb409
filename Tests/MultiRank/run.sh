#!/usr/bin/env bash
# Multi-rank harness for the Distributed module.
#
# Usage: Tests/MultiRank/run.sh BIN_DIR [RANK_COUNTS...]
#   BIN_DIR      folder holding the built clipit-multirank-tests
#                (e.g. .build/release after `swift build -c release`)
#   RANK_COUNTS  rank counts for the suite; default "2 4"
# Environment: MPIRUN (default mpirun), ABORT_TIMEOUT seconds (default 60).
#
# Cases: the suite at each rank count (its own summary must say "0 failed"), then the
# abort test at 2 ranks under `timeout`: it must exit non-zero, not by the timeout
# (status 124), and print the failing rank's message on stderr. Prints one line per
# case and finally "N passed, N failed"; exits non-zero if any case failed.
set -u

bin_dir=${1:?usage: Tests/MultiRank/run.sh BIN_DIR [RANK_COUNTS...]}
shift
rank_counts=${*:-2 4}
binary="$bin_dir/clipit-multirank-tests"
mpirun=${MPIRUN:-mpirun}
abort_timeout=${ABORT_TIMEOUT:-60}

if [[ ! -x "$binary" ]]; then
    echo "run.sh: $binary not found; build it with: swift build -c release --product clipit-multirank-tests" >&2
    exit 2
fi
if ! command -v "$mpirun" >/dev/null; then
    echo "run.sh: $mpirun not found; install openmpi-bin or set MPIRUN" >&2
    exit 2
fi

cores=$(nproc)
passed=0
failed=0
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

mpirun_extra=()
# shellcheck source=../Integration/harness.sh
source "$(dirname "${BASH_SOURCE[0]}")/../Integration/harness.sh"

for ranks in $rank_counts; do
    log="$log_dir/suite-$ranks.log"
    # shellcheck disable=SC2046
    command=("$mpirun" $(mpirun_options "$ranks") "$binary")
    echo "+ ${command[*]}"
    start=$(date +%s%N)
    "${command[@]}" >"$log" 2>&1
    status=$?
    elapsed=$(seconds_since "$start")
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    if [[ $status -eq 0 && "$summary" =~ ' 0 failed'$ ]]; then
        record "suite at $ranks ranks" 0 "$summary, ${elapsed}s"
    else
        grep -E '^FAIL|rank [0-9]+:' "$log" | head -20
        record "suite at $ranks ranks" 1 "exit $status, summary '${summary:-none}', log follows"
        tail -30 "$log"
    fi
done

abort_ranks=2
# shellcheck disable=SC2046
command=(timeout --kill-after=10 "$abort_timeout" "$mpirun" $(mpirun_options "$abort_ranks") "$binary" --abort-test)
echo "+ ${command[*]}"
start=$(date +%s%N)
"${command[@]}" >"$log_dir/abort.out" 2>"$log_dir/abort.err"
status=$?
elapsed=$(seconds_since "$start")
failing=$((abort_ranks - 1))
expected="clipit: rank $failing: deliberate failure for the abort test"
problems=()
[[ $status -ne 0 ]] || problems+=("exited 0")
[[ $status -ne 124 ]] || problems+=("timed out after ${abort_timeout}s: a rank hung in a collective")
grep -qF "$expected" "$log_dir/abort.err" || problems+=("stderr lacks '$expected'")
if [[ ${#problems[@]} -eq 0 ]]; then
    record "abort test at $abort_ranks ranks" 0 "exit $status after ${elapsed}s"
else
    record "abort test at $abort_ranks ranks" 1 "$(IFS=';'; echo "${problems[*]}"), exit $status after ${elapsed}s"
    tail -20 "$log_dir/abort.err"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
