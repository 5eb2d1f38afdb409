#!/usr/bin/env bash
# Multi-host test harness: 2 to 4 simulated hosts on one machine, each a Linux network
# namespace with its own veth link and address, Open MPI launching across them as it would
# across a cluster (--host, a remote-shell agent, the TCP BTL over the links). Results must
# equal those of the same rank count on one host, and a lost rank or link must end the job.
#
# Usage: Tests/MultiHost/run.sh BIN_DIR
#   BIN_DIR   folder holding the built clipit (e.g. .build/release)
# Environment: MPIRUN (default mpirun), HOSTS (simulated hosts, 2 to 4; default 4),
#   RUN_TIMEOUT seconds per job (default 120), ABORT_TIMEOUT seconds from the fault to the
#   job's end (default 60), KEEPALIVE=0 leaves Open MPI's out-of-band TCP keepalive at its
#   defaults (see link-down), KEEP=1 keeps the work directory.
# Needs root, `ip` (iproute2) and `unshare` (util-linux); otherwise prints one line
# "SKIP multi-host: REASON", then "0 passed, 0 failed", and exits 0.
#
# Network: namespaces clipit-mhPID-h1..hN (the hosts) and clipit-mhPID-sw (a switch holding
# a Linux bridge); host K has one veth pair, its end in hK with address 10.213.X.K/24, the
# other end on the bridge (X: the first of 7..254 for which 10.213.X.0/24 is used nowhere
# on this machine). Without a bridge (no kernel support) h1 and h2 are joined by one veth
# pair and only 2 hosts are simulated. Each host namespace holds only lo and its veth and
# has no default route; nothing is added to the root namespace, /etc/hosts is not touched.
# An EXIT trap kills every process left in the namespaces and deletes them.
#
# Open MPI: mpirun runs in h1 (in a UTS namespace named like h1's namespace, as every host
# has a host name of its own) with --host ADDR1:1,ADDR2:1,... and
#   --mca plm_rsh_agent netns-rsh     Tests/MultiHost/netns-rsh starts host K's orted in hK
#   --mca plm_rsh_no_tree_spawn 1     mpirun starts every orted itself
#   --mca pml ob1 --mca btl tcp,self  no UCX/OFI/shared memory: point to point over TCP only
#   --mca btl_tcp_if_include SUBNET --mca oob_tcp_if_include SUBNET
#   --mca oob_tcp_keepalive_time 1 --mca oob_tcp_keepalive_intvl 1
#   --mca oob_tcp_keepalive_probes 2  a daemon behind a dead link is declared lost in ~3 s,
#                                     before the 5 s collective watchdog (see link-down)
#   -x OPENBLAS_NUM_THREADS=1
#
# Data: `clipit synth --preset tiny`; training pairs cycle through the reports (as in
# Tests/Integration/train_ranks.sh). "One host" means plain `mpirun -np N` in the root
# namespace with the same N; same-N runs are bit-reproducible, so equality is exact.
#
# Cases (one line each, then "N passed, N failed"; exit status non-zero on any failure):
#   isolation        each host namespace holds only lo and its veth, with its address and
#                    no default route; the root namespace's interfaces are unchanged
#   smoke-Nhosts     `clipit smoke` across all N hosts: exit 0, rank r reports host h(r+1)
#   pretrain-2hosts  `clipit pretrain` (tiny towers) on 2 hosts: retriever.safetensors
#                    byte-identical to 2 ranks on one host
#   pair-2hosts      `clipit pair` (top1) on 2 hosts: every pairs file byte-identical, and
#                    pairing-summary.json equal apart from "seconds"
#   train-2hosts     `clipit train` (method clipit, 24 steps) on 2 hosts: last.safetensors
#                    byte-identical, every step's metrics equal apart from images_per_s
#   veth-traffic     host 2's veth carried the training run's traffic (rx+tx grew by at
#                    least 64 KiB; an MPI launch alone moves a few KB)
#   eval-2hosts      `clipit eval` on 2 hosts: metrics JSON equal apart from "seconds"
#   predict-2hosts   `clipit predict` on 2 hosts: predictions file byte-identical
#   train-Nhosts     (N = HOSTS > 2) training on N hosts (global batch 3 in micro-batches of
#                    1: at 4 hosts one rank holds none) byte-identical to N ranks on one host
#   kill-rank        kill -9 of host 2's rank mid-training: the job ends non-zero within
#                    ABORT_TIMEOUT with Open MPI's message naming the rank; no process left
#                    on any host
#   link-down        host 2's veth set down mid-training (--collective-timeout 5): the job
#                    ends non-zero within ABORT_TIMEOUT with a message (Open MPI's "lost
#                    communication with a remote daemon" or clipit's watchdog naming the
#                    collective; the detail says which); no process left on any host.
#                    Needs the out-of-band keepalive below: when the link is gone, mpirun
#                    can neither reach nor kill host 2's orted and waits for it forever
#                    unless the keepalive declares the daemon lost first.
set -u

bin_dir=${1:?usage: Tests/MultiHost/run.sh BIN_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin_dir=$(cd "$bin_dir" 2>/dev/null && pwd) || { echo "run.sh: no folder $1" >&2; exit 2; }
clipit="$bin_dir/clipit"
mpirun=${MPIRUN:-mpirun}
hosts=${HOSTS:-4}
run_timeout=${RUN_TIMEOUT:-120}
abort_timeout=${ABORT_TIMEOUT:-60}

if [[ ! -x "$clipit" ]]; then
    echo "run.sh: $clipit not found; build it with: swift build -c release --product clipit" >&2
    exit 2
fi
if ! command -v "$mpirun" >/dev/null; then
    echo "run.sh: $mpirun not found; install openmpi-bin or set MPIRUN" >&2
    exit 2
fi
mpirun=$(command -v "$mpirun")
if ! [[ "$hosts" =~ ^[2-4]$ ]]; then
    echo "run.sh: HOSTS must be 2, 3 or 4 (got '$hosts')" >&2
    exit 2
fi

skip() {
    echo "SKIP multi-host: $1"
    echo "0 passed, 0 failed"
    exit 0
}
[[ $(id -u) -eq 0 ]] || skip "not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)"
command -v ip >/dev/null || skip "ip (iproute2) not found"
command -v unshare >/dev/null || skip "unshare (util-linux) not found"
unshare --uts true 2>/dev/null || skip "unshare --uts fails (no UTS namespaces)"

cores=$(nproc)
passed=0
failed=0
mpirun_extra=(-x OPENBLAS_NUM_THREADS=1)
export OPENBLAS_NUM_THREADS=1
# shellcheck source=../Integration/harness.sh
source "$here/../Integration/harness.sh"

prefix="clipit-mh$$"
switch_ns="$prefix-sw"
host_ns=()         # host_ns[k-1]: namespace of host k
host_ip=()         # its address
host_dev=()        # its veth (inside its namespace)
created_ns=()      # every namespace this run made, for the cleanup
launchers=()       # background jobs, for the cleanup

cleanup() {
    local pid ns
    for pid in "${launchers[@]}"; do kill -9 "$pid" 2>/dev/null; done
    for ns in "${created_ns[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    done
    for ns in "${created_ns[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]] && break
            sleep 0.1
        done
        ip netns delete "$ns" 2>/dev/null
    done
    # Session folders of Open MPI daemons killed above (named after the simulated hosts).
    rm -rf "${TMPDIR:-/tmp}/ompi.$prefix-h"[1-4]".$(id -u)"
    [[ "${KEEP:-0}" == 1 ]] || rm -rf "$work"
}
work=$(mktemp -d)
[[ "${KEEP:-0}" == 1 ]] && echo "work directory: $work (kept)"
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The subnet: 10.213.X.0/24 with X the first not seen in any address or route here.
used=$(ip -4 -o addr show 2>/dev/null; ip -4 route show table all 2>/dev/null)
octet=""
for x in $(seq 7 254); do
    if ! grep -q "10\.213\.$x\." <<<"$used"; then octet=$x; break; fi
done
[[ -n "$octet" ]] || skip "no free 10.213.X.0/24 subnet"
subnet="10.213.$octet.0/24"
root_links_before=$(ip -o link show | awk -F': ' '{print $2}' | sort)

# Topology.
ns_add() {
    ip netns add "$1" 2>"$work/netns.err" || return 1
    created_ns+=("$1")
    ip -n "$1" link set lo up
}
ns_add "$prefix-h1" || skip "ip netns add fails: $(head -n 1 "$work/netns.err")"
topology=bridge
if ! { ns_add "$switch_ns" && ip -n "$switch_ns" link add br0 type bridge 2>>"$work/netns.err" \
       && ip -n "$switch_ns" link set br0 up; }; then
    topology=veth-pair
    (( hosts > 2 )) && echo "note: no Linux bridge here ($(tail -n 1 "$work/netns.err")): 2 hosts on one veth pair"
    hosts=2
fi
setup_failed=""
for k in $(seq 1 "$hosts"); do
    ns="$prefix-h$k"
    (( k > 1 )) && { ns_add "$ns" || { setup_failed="ip netns add $ns: $(head -n 1 "$work/netns.err")"; break; }; }
    host_ns+=("$ns"); host_ip+=("10.213.$octet.$k"); host_dev+=("mh$$h$k")
done
if [[ -z "$setup_failed" ]]; then
    if [[ $topology == bridge ]]; then
        for k in $(seq 1 "$hosts"); do
            dev=${host_dev[k-1]} ns=${host_ns[k-1]}
            ip link add "$dev" netns "$ns" type veth peer name "mh$$s$k" netns "$switch_ns" 2>"$work/netns.err" \
                && ip -n "$switch_ns" link set "mh$$s$k" master br0 up \
                || { setup_failed="veth for host $k: $(head -n 1 "$work/netns.err")"; break; }
        done
    else
        ip link add "${host_dev[0]}" netns "${host_ns[0]}" type veth peer name "${host_dev[1]}" netns "${host_ns[1]}" \
            2>"$work/netns.err" || setup_failed="veth pair: $(head -n 1 "$work/netns.err")"
    fi
fi
if [[ -z "$setup_failed" ]]; then
    for k in $(seq 1 "$hosts"); do
        ip -n "${host_ns[k-1]}" addr add "${host_ip[k-1]}/24" dev "${host_dev[k-1]}" \
            && ip -n "${host_ns[k-1]}" link set "${host_dev[k-1]}" up \
            || { setup_failed="address of host $k"; break; }
    done
fi
[[ -z "$setup_failed" ]] || skip "cannot build the network: $setup_failed"
# Wait for the links (and the bridge ports) to come up.
for _ in $(seq 1 50); do
    down=0
    for k in $(seq 1 "$hosts"); do
        ip -n "${host_ns[k-1]}" -o link show dev "${host_dev[k-1]}" | grep -q 'LOWER_UP' || down=1
    done
    (( down == 0 )) && break
    sleep 0.1
done

agent="$work/netns-rsh"   # a copy: executable whatever the checkout's file modes
cp "$here/netns-rsh" "$agent" && chmod +x "$agent"
CLIPIT_MH_HOSTS=""
for k in $(seq 1 "$hosts"); do CLIPIT_MH_HOSTS+="${host_ip[k-1]}=${host_ns[k-1]}=$prefix-h$k "; done
export CLIPIT_MH_HOSTS

# mpirun options for a job of one rank on each of the first $1 hosts.
keepalive=()
[[ "${KEEPALIVE:-1}" == 1 ]] && keepalive=(--mca oob_tcp_keepalive_time 1 --mca oob_tcp_keepalive_intvl 1
                                           --mca oob_tcp_keepalive_probes 2)
mh_options() {
    local n=$1 list="" k
    for k in $(seq 1 "$n"); do list+="${list:+,}${host_ip[k-1]}:1"; done
    mh_opts=(-np "$n" --host "$list" --allow-run-as-root
             --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1
             --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include "$subnet"
             --mca oob_tcp_if_include "$subnet" "${keepalive[@]}" -x OPENBLAS_NUM_THREADS=1)
}

# mh_run N LOG TIMEOUT ARGS...: clipit ARGS on N hosts, mpirun in host 1, output in LOG.
mh_run() {
    local n=$1 log=$2 limit=$3
    shift 3
    mh_options "$n"
    timeout -k 5 "$limit" ip netns exec "${host_ns[0]}" unshare --uts sh -c 'printf %s "$0" >/proc/sys/kernel/hostname && exec "$@"' "$prefix-h1" \
        "$mpirun" "${mh_opts[@]}" "$clipit" "$@" >"$log" 2>&1
}

# one_run N LOG ARGS...: clipit ARGS under plain mpirun -np N in the root namespace.
one_run() {
    local n=$1 log=$2
    shift 2
    # shellcheck disable=SC2046
    timeout -k 5 "$run_timeout" "$mpirun" $(mpirun_options "$n") "$clipit" "$@" >"$log" 2>&1
}

# Processes left in the host namespaces (after waiting up to $1 seconds for them to go).
leftovers() {
    local k pids=""
    for _ in $(seq 1 $(( $1 * 10 ))); do
        pids=""
        for k in $(seq 1 "$hosts"); do pids+=$(ip netns pids "${host_ns[k-1]}" | tr '\n' ' '); done
        [[ -z "${pids// /}" ]] && break
        sleep 0.1
    done
    for pid in $pids; do printf '%s(%s) ' "$pid" "$(cat "/proc/$pid/comm" 2>/dev/null)"; done
}
kill_leftovers() {
    local k
    for k in $(seq 1 "$hosts"); do ip netns pids "${host_ns[k-1]}" | xargs -r kill -9 2>/dev/null; done
}

veth_bytes() {  # rx + tx bytes of host $1's veth
    local k=$1 rx tx
    rx=$(ip netns exec "${host_ns[k-1]}" cat "/sys/class/net/${host_dev[k-1]}/statistics/rx_bytes")
    tx=$(ip netns exec "${host_ns[k-1]}" cat "/sys/class/net/${host_dev[k-1]}/statistics/tx_bytes")
    echo $(( rx + tx ))
}

step_count() {  # steps logged in a metrics file so far
    local n
    n=$(grep -c '"type":"step"' "$1" 2>/dev/null)
    echo "${n:-0}"
}
step_metrics() {  # every step's metrics line without the throughput
    grep '"type":"step"' "$1" | sed -E 's/"images_per_s":[^,}]*,?//'
}
without_seconds() { grep -v '"seconds"' "$1"; }

joined() { local out=$1 part; shift; for part; do out+="; $part"; done; echo "$out"; }   # ARGS joined by "; "
show_log() { echo "--- $1 (last lines)"; tail -n "${2:-15}" "$1" | sed 's/^/    /'; }


echo "run.sh: $hosts hosts ($topology) on $subnet, namespaces $prefix-*, work $work"

# --- isolation
problems=()
for k in $(seq 1 "$hosts"); do
    ns=${host_ns[k-1]}
    links=$(ip -n "$ns" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')
    expected=$(printf '%s\n' lo "${host_dev[k-1]}" | sort | tr '\n' ' ')
    [[ "$links" == "$expected" ]] || problems+=("h$k has links: $links")
    ip -n "$ns" -4 -o addr show dev "${host_dev[k-1]}" | grep -q " ${host_ip[k-1]}/24 " \
        || problems+=("h$k lacks ${host_ip[k-1]}/24")
    [[ -z "$(ip -n "$ns" route show default)" ]] || problems+=("h$k has a default route")
done
root_links_after=$(ip -o link show | awk -F': ' '{print $2}' | sort)
[[ "$root_links_before" == "$root_links_after" ]] || problems+=("the root namespace's interfaces changed")
if [[ ${#problems[@]} -eq 0 ]]; then
    record isolation 0 "$hosts host namespaces with only lo and their veth, no default route; root namespace untouched"
else
    record isolation 1 "$(joined "${problems[@]}")"
fi

# --- smoke on every host
start=$(date +%s%N)
mh_run "$hosts" "$work/smoke.log" "$run_timeout" smoke --items 100 --batch 8
status=$?
elapsed=$(seconds_since "$start")
problems=()
[[ $status -eq 0 ]] || problems+=("exit $status")
for k in $(seq 1 "$hosts"); do
    grep -q "rank $((k - 1))/$hosts on $prefix-h$k\$" "$work/smoke.log" || problems+=("no 'rank $((k - 1))/$hosts on $prefix-h$k'")
done
if [[ ${#problems[@]} -eq 0 ]]; then
    record "smoke-${hosts}hosts" 0 "ranks 0..$((hosts - 1)) on $prefix-h1..h$hosts, allreduce ok, ${elapsed}s"
else
    show_log "$work/smoke.log"
    record "smoke-${hosts}hosts" 1 "$(joined "${problems[@]}"), ${elapsed}s"
fi
kill_leftovers

# --- data
make_tiny_data

# --- pretrain: 2 hosts against 2 ranks on one host
pretrain_args=(pretrain --data "$work/data" --preset tiny --epochs 5 --batch 16 --seed 0)
start=$(date +%s%N)
one_run 2 "$work/pretrain-one.log" "${pretrain_args[@]}" --out "$work/pretrain-one"
one_status=$?
one_s=$(seconds_since "$start")
start=$(date +%s%N)
mh_run 2 "$work/pretrain-2h.log" "$run_timeout" "${pretrain_args[@]}" --out "$work/pretrain-2h"
status=$?
elapsed=$(seconds_since "$start")
if [[ $one_status -eq 0 && $status -eq 0 ]] && cmp -s "$work/pretrain-one/retriever.safetensors" "$work/pretrain-2h/retriever.safetensors"; then
    record pretrain-2hosts 0 "retriever.safetensors byte-identical; ${elapsed}s on 2 hosts, ${one_s}s on one"
else
    show_log "$work/pretrain-one.log" 5; show_log "$work/pretrain-2h.log"
    record pretrain-2hosts 1 "exit $one_status on one host, $status on 2 hosts, or retriever.safetensors differs"
fi
kill_leftovers

# --- pair: with the one-host retriever, on 2 hosts and on one
retriever="$work/pretrain-one/retriever.safetensors"
pair_args=(pair --retriever "$retriever" --data "$work/data" --reports "$work/data/reports.jsonl" --strategy top1 --k 5)
start=$(date +%s%N)
one_run 2 "$work/pair-one.log" "${pair_args[@]}" --out "$work/pair-one"
one_status=$?
one_s=$(seconds_since "$start")
start=$(date +%s%N)
mh_run 2 "$work/pair-2h.log" "$run_timeout" "${pair_args[@]}" --out "$work/pair-2h"
status=$?
elapsed=$(seconds_since "$start")
problems=()
[[ $one_status -eq 0 ]] || problems+=("exit $one_status on one host")
[[ $status -eq 0 ]] || problems+=("exit $status on 2 hosts")
files=0
for split in train val test; do
    f="$split.pairs.jsonl"
    if [[ -s "$work/pair-one/$f" ]] && cmp -s "$work/pair-one/$f" "$work/pair-2h/$f"; then files=$((files + 1)); else problems+=("$f differs or is missing"); fi
done
[[ -s "$work/pair-one/pairing-summary.json" ]] \
    && [[ "$(without_seconds "$work/pair-one/pairing-summary.json")" == "$(without_seconds "$work/pair-2h/pairing-summary.json" 2>/dev/null)" ]] \
    || problems+=("pairing-summary.json differs")
if [[ ${#problems[@]} -eq 0 ]]; then
    record pair-2hosts 0 "$files pairs files byte-identical, summary equal; ${elapsed}s on 2 hosts, ${one_s}s on one"
else
    show_log "$work/pair-one.log" 5; show_log "$work/pair-2h.log"
    record pair-2hosts 1 "$(joined "${problems[@]}")"
fi
kill_leftovers

# --- train: 2 hosts against 2 ranks on one host, with the veth's byte counters
train_args=(train --config "$root/configs/tiny.yaml" --data "$work/data" --pairs "$work/pairs" --method clipit
            --seed 0 --batch 3 --epochs 3 --quiet --set data.augment=true --set model.lora.dropout=0.1
            --set train.micro_batch_size=1)   # deterministic mode (the default), 3 micro-batches
compare_train() {  # NAME ONE_DIR HOSTS_DIR ONE_STATUS STATUS DETAIL
    local name=$1 one=$2 multi=$3 steps
    steps=$(step_count "$multi/metrics.jsonl")
    if [[ $4 -eq 0 && $5 -eq 0 && $steps -eq 24 ]] && cmp -s "$one/last.safetensors" "$multi/last.safetensors" \
        && [[ "$(step_metrics "$one/metrics.jsonl")" == "$(step_metrics "$multi/metrics.jsonl")" ]]; then
        record "$name" 0 "24 steps, last.safetensors byte-identical, every step's metrics equal; $6"
    else
        show_log "$one.log" 5; show_log "$multi.log"
        record "$name" 1 "exit $4 on one host, $5 on the hosts, $steps of 24 steps; last.safetensors or step metrics differ"
    fi
}
start=$(date +%s%N)
one_run 2 "$work/train-one2.log" "${train_args[@]}" --out "$work/train-one2"
one_status=$?
one_s=$(seconds_since "$start")
bytes_before=$(veth_bytes 2)
start=$(date +%s%N)
mh_run 2 "$work/train-2h.log" "$run_timeout" "${train_args[@]}" --out "$work/train-2h"
status=$?
elapsed=$(seconds_since "$start")
bytes=$(( $(veth_bytes 2) - bytes_before ))
compare_train train-2hosts "$work/train-one2" "$work/train-2h" "$one_status" "$status" "${elapsed}s on 2 hosts, ${one_s}s on one"
record veth-traffic $(( bytes >= 65536 ? 0 : 1 )) "$bytes bytes over host 2's veth during the 2-host training (at least 65536 expected)"
kill_leftovers

# --- eval and predict of the one-host checkpoint
checkpoint="$work/train-one2/best.safetensors"
if [[ -f "$checkpoint" ]]; then
    one_run 2 "$work/eval-one.log" eval --checkpoint "$checkpoint" --data "$work/data" --out "$work/eval-one.json"
    one_status=$?
    start=$(date +%s%N)
    mh_run 2 "$work/eval-2h.log" "$run_timeout" eval --checkpoint "$checkpoint" --data "$work/data" --out "$work/eval-2h.json"
    status=$?
    elapsed=$(seconds_since "$start")
    if [[ $one_status -eq 0 && $status -eq 0 && -s "$work/eval-one.json" ]] \
        && [[ "$(without_seconds "$work/eval-one.json")" == "$(without_seconds "$work/eval-2h.json" 2>/dev/null)" ]]; then
        record eval-2hosts 0 "metrics JSON equal ($(grep -m1 '"balanced_accuracy"' "$work/eval-one.json" | tr -d ' ,')), ${elapsed}s"
    else
        show_log "$work/eval-one.log" 5; show_log "$work/eval-2h.log"
        record eval-2hosts 1 "exit $one_status on one host, $status on 2 hosts, or the metrics differ"
    fi
    kill_leftovers

    one_run 2 "$work/predict-one.log" predict --checkpoint "$checkpoint" --images "$work/data/test.cds" --out "$work/predict-one.jsonl"
    one_status=$?
    start=$(date +%s%N)
    mh_run 2 "$work/predict-2h.log" "$run_timeout" predict --checkpoint "$checkpoint" --images "$work/data/test.cds" \
        --out "$work/predict-2h.jsonl"
    status=$?
    elapsed=$(seconds_since "$start")
    lines=$(wc -l <"$work/predict-2h.jsonl" 2>/dev/null || echo 0)
    if [[ $one_status -eq 0 && $status -eq 0 && $lines -eq $(manifest_count test.cds) ]] \
        && cmp -s "$work/predict-one.jsonl" "$work/predict-2h.jsonl"; then
        record predict-2hosts 0 "$lines predictions byte-identical, ${elapsed}s"
    else
        show_log "$work/predict-one.log" 5; show_log "$work/predict-2h.log"
        record predict-2hosts 1 "exit $one_status on one host, $status on 2 hosts, $lines lines, or the files differ"
    fi
    kill_leftovers
else
    record eval-2hosts 1 "no checkpoint: the one-host training failed"
    record predict-2hosts 1 "no checkpoint: the one-host training failed"
fi

# --- train on every host (over the bridge) against the same rank count on one host
if (( hosts > 2 )); then
    start=$(date +%s%N)
    one_run "$hosts" "$work/train-one$hosts.log" "${train_args[@]}" --out "$work/train-one$hosts"
    one_status=$?
    one_s=$(seconds_since "$start")
    start=$(date +%s%N)
    mh_run "$hosts" "$work/train-${hosts}h.log" "$run_timeout" "${train_args[@]}" --out "$work/train-${hosts}h"
    status=$?
    elapsed=$(seconds_since "$start")
    compare_train "train-${hosts}hosts" "$work/train-one$hosts" "$work/train-${hosts}h" "$one_status" "$status" \
        "${elapsed}s on $hosts hosts, ${one_s}s on one"
    kill_leftovers
fi

# --- faults: a long 2-host run; once it has logged 20 steps, FAULT is applied to host 2.
long_args=("${train_args[@]}" --epochs 200)   # 1600 steps, far more than the faults allow
# fault_run NAME INJECT(shell command) [clipit options]: sets fault_status, fault_ms (from
# the fault to the job's end), fault_steps, fault_left (processes left on the hosts).
fault_run() {
    local name=$1 inject=$2 out="$work/$1" launcher start
    shift 2
    mh_run 2 "$out.log" $((abort_timeout + 30)) "${long_args[@]}" "$@" --out "$out" &
    launcher=$!
    launchers+=("$launcher")
    for _ in $(seq 1 $((run_timeout * 10))); do
        (( $(step_count "$out/metrics.jsonl") >= 20 )) && break
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.1
    done
    fault_steps=$(step_count "$out/metrics.jsonl")
    start=$(date +%s%N)
    eval "$inject"
    # The job must end within ABORT_TIMEOUT of the fault.
    for _ in $(seq 1 $((abort_timeout * 10))); do
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$launcher" 2>/dev/null; then
        fault_ms=-1
        kill -9 "$launcher" 2>/dev/null   # the timeout process; the namespaces are cleared below
        wait "$launcher" 2>/dev/null
        fault_status=timeout
    else
        wait "$launcher"
        fault_status=$?
        fault_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    fi
    launchers=()
    fault_left=$(leftovers 10)
    kill_leftovers
}
fault_verdict() {  # NAME MESSAGE(or empty) WHAT
    local problems=()
    [[ $fault_steps -ge 20 ]] || problems+=("only $fault_steps steps before the fault")
    if [[ $fault_status == timeout ]]; then
        problems+=("still running ${abort_timeout}s after the fault")
    else
        [[ $fault_status -ne 0 ]] || problems+=("exit 0")
    fi
    [[ -n "$2" ]] || problems+=("no message naming the failure")
    [[ -z "${fault_left// /}" ]] || problems+=("left running on the hosts: $fault_left")
    if [[ ${#problems[@]} -eq 0 ]]; then
        record "$1" 0 "exit $fault_status $(printf '%d.%03d' $((fault_ms / 1000)) $((fault_ms % 1000)))s after the $3: $2"
    else
        show_log "$work/$1.log"
        record "$1" 1 "$(joined "${problems[@]}")"
    fi
}

# kill-rank: kill -9 of the clipit process in host 2.
kill_host2_rank='for pid in $(ip netns pids "${host_ns[1]}"); do
    [[ "$(cat /proc/$pid/comm 2>/dev/null)" == clipit ]] && kill -9 "$pid"; done'
fault_run kill-rank "$kill_host2_rank"
message=$(grep -o 'process rank 1 with PID [0-9]* on node [^ ]* exited on signal 9' "$work/kill-rank.log" | head -n 1)
fault_verdict kill-rank "$message" "kill"

# link-down: host 2's veth goes down; the collective watchdog is at 5 s.
fault_run link-down 'ip -n "${host_ns[1]}" link set dev "${host_dev[1]}" down' --collective-timeout 5
ip -n "${host_ns[1]}" link set dev "${host_dev[1]}" up
message=""
lost=$(grep -o 'ORTE has lost communication with a remote daemon' "$work/link-down.log" | head -n 1)
watchdog=$(grep -o 'collective [a-z]* (call [0-9]*, step [0-9]*) has not completed after [0-9.]* s' "$work/link-down.log" | head -n 1)
[[ -n "$lost" ]] && message="Open MPI: $lost"
[[ -n "$watchdog" ]] && message+="${message:+; }rank 0's watchdog: $watchdog"
fault_verdict link-down "$message" "link went down"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
