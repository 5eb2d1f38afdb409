#!/usr/bin/env bash
# Fuzz check of `clipit import pcam` (HDF5 through libhdf5): damaged copies of the PCam
# fixtures (Tests/DatasetsTests/Fixtures/pcam, made by reference/make_pcam_fixtures.py) must
# each either import or fail with clipit's own one-line error naming the damaged file —
# never crash, hang or print HDF5's error stack.
#
# Usage: Tests/Integration/pcam_fuzz.sh BIN_DIR [CASES [SEED]]
#   BIN_DIR  folder holding the built clipit (e.g. .build/debug)
#   CASES    damaged inputs to try (default 600); SEED the mutation seed (default 1)
# Environment: KEEP=1 keeps the work directory (failing inputs stay under $work/failed),
#   CASE_TIMEOUT seconds per import (default 20), CASE_MEMORY_KB virtual memory limit per
#   import (default 4194304).
#
# Each case damages one file of a train split — x or y of the published layout (chunked,
# gzip) or of the uncompressed contiguous one — by one of: flipping 1–16 random bits;
# flipping bits only inside the first 2 KiB (superblock, object headers); truncating at a
# random length; overwriting a random run of up to 64 bytes with random bytes or zeros.
# The other file of the split is the intact fixture. Accepted outcomes:
#   exit 0 with a train.cds (the damage hit unused bytes, or pixel values of the
#     unfiltered dataset, which no checksum covers), or
#   exit 1 with one line "Error: <the split's x or y file>: …" on stderr.
# Anything else (a signal, a timeout, another status, other stderr output) fails the case.
# Ends with "N passed, N failed"; exit status non-zero on any failure.
set -u

bin_dir=${1:?usage: Tests/Integration/pcam_fuzz.sh BIN_DIR [CASES [SEED]]}
cases=${2:-600}
seed=${3:-1}
clipit="$bin_dir/clipit"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fixtures="$root/Tests/DatasetsTests/Fixtures/pcam"
[[ -x "$clipit" ]] || { echo "Tests/Integration/pcam_fuzz.sh: $clipit not found" >&2; exit 2; }
[[ -d "$fixtures/published" ]] || { echo "Tests/Integration/pcam_fuzz.sh: $fixtures not found" >&2; exit 2; }
if ! command -v python3 >/dev/null; then  # it writes the damaged files
    echo "SKIP pcam-fuzz: python3 is not installed (the standard library is all it needs)"
    echo "0 passed, 0 failed"
    exit 0
fi
work=$(mktemp -d)
if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi
export CLIPIT_COMM=single OPENBLAS_NUM_THREADS=1

# The damaged files: $work/cases/<n>/ holds the split's two files (one damaged, one a
# copy of the fixture) and `what`, a line describing the damage.
python3 - "$fixtures" "$work/cases" "$cases" "$seed" <<'EOF'
import os, random, shutil, sys
fixtures, out, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
name = "camelyonpatch_level_2_split_train_{}.h5".format
sources = [(layout, array) for layout in ("published", "contiguous") for array in ("x", "y")]
for n in range(count):
    layout, array = sources[n % len(sources)]
    data = bytearray(open(os.path.join(fixtures, layout, name(array)), "rb").read())
    kind = rng.choice(["bits", "header-bits", "truncate", "overwrite", "zeros"])
    if kind in ("bits", "header-bits"):
        span = min(len(data), 2048) if kind == "header-bits" else len(data)
        positions = sorted(rng.randrange(span * 8) for _ in range(rng.randint(1, 16)))
        for p in positions:
            data[p // 8] ^= 1 << (p % 8)
        detail = f"{kind} {positions}"
    elif kind == "truncate":
        length = rng.randrange(len(data))
        data = data[:length]
        detail = f"truncate to {length}"
    else:
        start, length = rng.randrange(len(data)), rng.randint(1, 64)
        data[start:start + length] = bytes(length) if kind == "zeros" else bytes(rng.randrange(256) for _ in range(length))
        data = data[:max(len(data), start)]
        detail = f"{kind} {length} bytes at {start}"
    directory = os.path.join(out, str(n))
    os.makedirs(directory)
    open(os.path.join(directory, name(array)), "wb").write(data)
    other = "y" if array == "x" else "x"
    shutil.copyfile(os.path.join(fixtures, layout, name(other)), os.path.join(directory, name(other)))
    open(os.path.join(directory, "what"), "w").write(f"{layout} {name(array)}: {detail}\n")
EOF

passed=0
failed=0
crashes=0
imported=0
refused=0
failure() {  # failure N DETAIL: count, report and keep the input
    failed=$((failed + 1))
    echo "FAIL case $1 ($(cat "$work/cases/$1/what" | tr -d '\n')): $2"
    mkdir -p "$work/failed" && cp -r "$work/cases/$1" "$work/failed/$1"
}
for ((n = 0; n < cases; n++)); do
    input="$work/cases/$n"
    out="$work/out/$n"
    (ulimit -v "${CASE_MEMORY_KB:-4194304}"; exec timeout -s KILL "${CASE_TIMEOUT:-20}" \
        "$clipit" import pcam --data "$input" --out "$out") >"$work/stdout" 2>"$work/stderr"
    status=$?
    errors=$(grep -v '^import pcam: ' "$work/stderr")
    if [[ $status -eq 0 ]]; then
        if [[ -n "$errors" ]]; then
            failure "$n" "exit 0 but stderr: $(head -c 300 <<<"$errors")"
        elif [[ "$(head -c 8 "$out/train.cds" 2>/dev/null)" != CLIPITDS ]]; then
            failure "$n" "exit 0 without a train.cds"
        else
            passed=$((passed + 1)); imported=$((imported + 1))
        fi
    elif [[ $status -eq 1 ]] && [[ $(wc -l <<<"$errors") -eq 1 ]] \
        && grep -qE "^Error: $input/camelyonpatch_level_2_split_train_[xy]\.h5: .+" <<<"$errors"; then
        passed=$((passed + 1)); refused=$((refused + 1))
    else
        (( status >= 128 )) && crashes=$((crashes + 1))
        failure "$n" "exit $status: $(head -c 300 <<<"$errors")"
    fi
    rm -rf "$out"
done
echo "pcam fuzz: $cases cases (seed $seed): $imported imported, $refused refused with a clipit error, $crashes crashed or timed out"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
