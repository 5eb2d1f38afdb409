#!/usr/bin/env bash
# Integration test of the results page: `clipit report` writes a self-contained
# report.html and `clipit eval --html` a one-run page, and both render in a headless
# browser without errors.
#
# Usage: Tests/Report/render.sh BIN_DIR
#   BIN_DIR   folder holding the built clipit (e.g. .build/release)
# Environment: CHROMIUM (default: chromium, else chromium-browser), KEEP=1 keeps the work
#   directory (the pages and their screenshots).
#
# Data: `clipit synth --preset tiny`; a tiny retriever pretrained for 2 epochs and its
# top-1 pairs (`clipit pair`, with pairing-summary.json), and a second pairing written
# here without a summary (harness.sh's `make_pairs`: image i → report i mod M), which the
# report summarises from its pairs files. Runs: unimodal-lora and clipit (configs/tiny.yaml, 8 epochs, top-1 pairs),
# seeds 0 and 1 each, evaluated on the test split with `clipit eval --out`.
#
# Cases (one line each, then "N passed, N failed"; exit status non-zero on any failure):
#   setup          synth, pretrain, pair, 4 trainings and evaluations exit 0
#   report-html    `clipit report --pairs --data` exits 0 and writes results.md and a
#                  report.html holding every section, 4 seed dots, 2 summed confusion
#                  matrices, 2 pairing histograms, retrieval examples as inline PNGs, and
#                  no URL or script
#   eval-html      `clipit eval --html` writes a one-run page with training curves
#   console-check  Chromium logs the console message of a probe page (so the console
#                  check of the render cases can fail)
#   render-report  headless Chromium renders report.html: a screenshot with more than
#   render-eval    16 distinct colours (not blank), no console message (a script error or
#                  a blocked load would log one), and every <svg> and <img> of the file
#                  in the browser's DOM
# Without Chromium (not installed and not installable) the render cases print
# "SKIP report-render: REASON" and count as neither passed nor failed.
set -u

bin_dir=${1:?usage: Tests/Report/render.sh BIN_DIR}
clipit="$bin_dir/clipit"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ ! -x "$clipit" ]]; then
    echo "render.sh: $clipit not found; build it with: swift build -c release --product clipit" >&2
    exit 2
fi

passed=0
failed=0
work=$(mktemp -d)
if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi
# shellcheck source=../Integration/harness.sh
source "$root/Tests/Integration/harness.sh"   # record, make_pairs, manifest_count

# Occurrences of a fixed string in a file.
count() { grep -o -F -- "$1" "$2" 2>/dev/null | wc -l; }

echo "render.sh: work $work"
setup_log="$work/setup.log"
setup() {
    "$clipit" synth --preset tiny --seed 0 --out "$work/data" || return 1
    "$clipit" pretrain --config "$root/configs/tiny.yaml" --data "$work/data" --out "$work/retriever" --epochs 2 \
        --batch-size 8 || return 1
    "$clipit" pair --retriever "$work/retriever/retriever.safetensors" --data "$work/data" \
        --reports "$work/data/reports.jsonl" --out "$work/pairs/top1" --strategy top1 || return 1
    local reports split
    reports=$(manifest_count reports.jsonl)
    mkdir -p "$work/pairs/cycle"
    for split in train val test; do
        make_pairs "$split" "$(manifest_count "$split.cds")" "$reports" "$work/pairs/cycle/$split.pairs.jsonl"
    done
    local method seed run
    for method in unimodal-lora clipit; do
        for seed in 0 1; do
            run="$work/runs/$method-seed$seed"
            "$clipit" train --config "$root/configs/tiny.yaml" --data "$work/data" --pairs "$work/pairs/top1" \
                --method "$method" --seed "$seed" --epochs 8 --quiet --out "$run" || return 1
            "$clipit" eval --checkpoint "$run/best.safetensors" --data "$work/data" --out "$run/test.json" || return 1
        done
    done
}
start=$(date +%s%N)
if ! setup >"$setup_log" 2>&1; then
    tail -n 20 "$setup_log"
    record setup 1 "a pipeline step failed"
    echo "$passed passed, $failed failed"
    exit 1
fi
record setup 0 "4 runs trained and evaluated in $(seconds_since "$start") s"

# report.html: every section and the pieces the runs and pairings imply.
page="$work/report/report.html"
"$clipit" report --runs "$work/runs" --out "$work/report" --pairs "$work/pairs" --data "$work/data" \
    --order clipit,unimodal-lora --note "render test" >"$work/report.log" 2>&1
status=$?
problems=()
[[ $status -eq 0 ]] || problems+=("exit $status")
[[ -s "$work/report/results.md" ]] || problems+=("no results.md")
[[ -s "$page" ]] || problems+=("no report.html")
for id in summary accuracy curves confusion pairing retrieval; do
    grep -q "<section id=\"$id\">" "$page" 2>/dev/null || problems+=("no section $id")
done
for forbidden in 'http://' 'https://' 'src="//' '<script'; do
    [[ $(count "$forbidden" "$page") -eq 0 ]] || problems+=("holds $forbidden")
done
dots=$(count '<circle class="point"' "$page")
matrices=$(count 'class="chart heat-map"' "$page")
histograms=$(count 'class="chart histogram"' "$page")
images=$(count '<img src="data:image/png;base64,' "$page")
[[ $dots -eq 4 ]] || problems+=("$dots seed dots, expected 4")
[[ $matrices -eq 2 ]] || problems+=("$matrices confusion matrices, expected 2")
[[ $histograms -eq 2 ]] || problems+=("$histograms histograms, expected 2")
[[ $images -ge 12 ]] || problems+=("$images gallery images, expected at least 12 (12 test images, 2 pairings)")
if [[ ${#problems[@]} -eq 0 ]]; then
    record report-html 0 "$(wc -c <"$page") bytes: $dots seed dots, $matrices matrices, $histograms histograms, $images images"
else
    tail -n 10 "$work/report.log"
    record report-html 1 "${problems[*]}"
fi

# The one-run page of `clipit eval --html`.
eval_page="$work/eval.html"
"$clipit" eval --checkpoint "$work/runs/clipit-seed0/best.safetensors" --data "$work/data" --html "$eval_page" \
    >"$work/eval.log" 2>&1
status=$?
curves=$(count '<polyline' "$eval_page")
cells=$(count '<rect class="cell"' "$eval_page")
if [[ $status -eq 0 && $curves -ge 4 && $cells -eq 16 && $(count 'http' "$eval_page") -eq 0 ]]; then
    record eval-html 0 "$curves curves, a 4×4 confusion matrix"
else
    tail -n 10 "$work/eval.log"
    record eval-html 1 "exit $status, $curves curves, $cells confusion cells"
fi

# Rendering in headless Chromium.
browser=${CHROMIUM:-}
if [[ -z "$browser" ]]; then
    for candidate in chromium chromium-browser; do
        command -v "$candidate" >/dev/null && { browser=$candidate; break; }
    done
fi
skip=""
if [[ -z "$browser" ]]; then
    skip="chromium is not installed (Debian: apt-get install chromium; launch/test installs it as root)"
elif ! command -v python3 >/dev/null; then
    skip="python3 is not installed (it decodes the screenshots)"
else
    # A page that logs to the console: the browser must start, and the console check
    # below must be able to see a page's messages.
    echo '<!DOCTYPE html><p>probe</p><script>console.error("render.sh probe")</script>' >"$work/probe.html"
    timeout 60 "$browser" --headless=new --no-sandbox --disable-gpu --enable-logging=stderr --v=0 \
        --dump-dom "file://$work/probe.html" 2>"$work/probe.log" | grep -q probe \
        || skip="$browser does not start: $(grep -v dbus "$work/probe.log" | tail -n 1)"
fi
if [[ -n "$skip" ]]; then
    echo "SKIP report-render: $skip"
else
    if grep -q ':CONSOLE.*render.sh probe' "$work/probe.log"; then
        record console-check 0 "$browser logs a page's console messages"
    else
        record console-check 1 "$browser logged no console line for a page that writes one; the render checks would miss errors"
    fi
    render() {  # NAME PAGE
        local name=$1 file=$2 shot="$work/$1.png" log="$work/$1-browser.log" dom="$work/$1-dom.html"
        local reasons=()
        timeout 120 "$browser" --headless=new --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0 \
            --screenshot="$shot" --window-size=1280,2400 "file://$file" >"$log" 2>&1
        local status=$?
        timeout 120 "$browser" --headless=new --no-sandbox --disable-gpu --enable-logging=stderr --v=0 \
            --dump-dom "file://$file" >"$dom" 2>>"$log"
        [[ $status -eq 0 && -s "$shot" ]] || reasons+=("no screenshot (exit $status)")
        local size="" colours=0
        if [[ -s "$shot" ]]; then
            read -r size colours < <(python3 "$here/png_check.py" "$shot")
            [[ ${colours:-0} -gt 16 ]] || reasons+=("screenshot $size has ${colours:-0} colours: blank")
        fi
        local console
        console=$(grep -E ':CONSOLE|Uncaught' "$log")
        [[ -z "$console" ]] || reasons+=("console: $(head -n 3 <<<"$console" | tr '\n' ' ')")
        local tag
        for tag in '<svg' '<img'; do
            [[ $(count "$tag" "$dom") -eq $(count "$tag" "$file") ]] \
                || reasons+=("$(count "$tag" "$dom") $tag in the browser's DOM, $(count "$tag" "$file") in the file")
        done
        if [[ ${#reasons[@]} -eq 0 ]]; then
            record "render-$name" 0 "screenshot $size, $colours colours, no console message, $(count '<svg' "$dom") SVGs in the DOM"
        else
            grep -v dbus "$log" | tail -n 5
            record "render-$name" 1 "${reasons[*]}"
        fi
    }
    render report "$page"
    render eval "$eval_page"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
