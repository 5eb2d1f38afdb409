#!/usr/bin/env bash
# The two long jobs end to end in their smoke versions (tiny sizes, 2 steps, 1 seed;
# figures meaningless): `launch/demo --quick` and `launch/study --quick`, each under
# launch/mpirun with the local cluster config, on the built binary.
#
# Usage: Tests/Integration/launch_scripts.sh BIN_DIR
# Environment: KEEP=1 keeps the work directory.
#
# Cases (one line each, then "N passed, N failed"; exit status non-zero on any failure):
#   demo-quick    exit 0; results.md lists every default method and the extension's gain;
#                 report.html written
#   study-quick   exit 0; grid.md and selection.txt (one grid point per extension and the
#                 best one) from validation; results.md of every regime with every method;
#                 a second invocation skips every finished run (resumable per run)
set -u
bin_dir=${1:?usage: Tests/Integration/launch_scripts.sh BIN_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ -x "$bin_dir/clipit" ]] || { echo "launch_scripts.sh: $bin_dir/clipit not found" >&2; exit 2; }
passed=0
failed=0
work=$(mktemp -d)
if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi
# shellcheck source=harness.sh
source "$root/Tests/Integration/harness.sh"
bin_dir=$(cd "$bin_dir" && pwd)
cd "$root"

CLIPIT_BIN=$bin_dir CLIPIT_DEMO_OUT="$work/demo" launch/demo --quick --no-build >"$work/demo.log" 2>&1
status=$?
missing=""
for method in unimodal unimodal-lora clipit clipit-contrastive clipit-contrastive-random-pairs text-only; do
    grep -q "^| $method | 1 |" "$work/demo/results.md" 2>/dev/null || missing+=" $method"
done
grep -q "clipit-contrastive − unimodal-lora" "$work/demo/results.md" 2>/dev/null || missing+=" gain-line"
[[ -f $work/demo/report.html ]] || missing+=" report.html"
if [[ $status -eq 0 && -z $missing ]]; then
    record demo-quick 0 "results.md with the six methods and the extension's gain; report.html"
else
    tail -n 15 "$work/demo.log"
    record demo-quick 1 "exit $status; missing:${missing:- nothing}"
fi

CLIPIT_BIN=$bin_dir CLIPIT_STUDY_OUT="$work/study" launch/study --quick --no-build >"$work/study.log" 2>&1
status=$?
missing=""
grep -q '^best|clipit-' "$work/study/selection.txt" 2>/dev/null || missing+=" selection"
[[ $(grep -c '^clipit-' "$work/study/selection.txt" 2>/dev/null) -eq 3 ]] || missing+=" per-extension-choice"
for regime in 400 100 100u; do
    for method in unimodal-lora clipit clipit-kd clipit-kd-random-pairs clipit-contrastive \
                  clipit-contrastive-random-pairs clipit-fusion clipit-fusion-random-pairs retriever-kd; do
        grep -q "^| $method | 1 |" "$work/study/regime$regime/results.md" 2>/dev/null || missing+=" $regime/$method"
    done
done
CLIPIT_BIN=$bin_dir CLIPIT_STUDY_OUT="$work/study" launch/study --quick --no-build --phase test >"$work/study2.log" 2>&1
again=$?
retrained=$(grep -c '\] train ' "$work/study2.log")
if [[ $status -eq 0 && -z $missing && $again -eq 0 && $retrained -eq 0 ]]; then
    record study-quick 0 "grid, selection, 3 regimes × 9 methods evaluated; a second --phase test trains nothing"
else
    tail -n 15 "$work/study.log"
    record study-quick 1 "exit $status / $again, $retrained runs trained again; missing:${missing:- nothing}"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
