#!/usr/bin/env bash
# Tighnari's 10-fold protocol (tasks/fusion-paper.toml) on the full world's packed fusion table, one device call at a
# time (bench/fusion_kfold.py says why and how the pieces fit together). A training call writes its log and as many
# finished files as one call brings back to $OUT; `ship` calls bring back the rest. Files on the device persist only
# while the machine stays warm (30 s after a call), so one lease's calls must follow each other at once.
# First, here: `make gpu-table` (the full world, its fusion table and PO correction, packed into .gpu/full.npz; 36 min
# on 2 cores the first time; .gpu/full.json says where the truth and the corrections that merge reads are).
#
# Lease 1 (fold 1 from scratch: ~46 s unpacking before unpacking used every core (make bench-table-load), ~290 s
# compiling on a fresh H100, then ~28 s an epoch with validation; up to 20 epochs: ~15 minutes, more than a session's
# 15 minutes of device time leave once the machine's start and the shipping are counted, so fold 1 spans two leases):
#   LIMIT=480 bash bench/fusion_kfold_lease.sh fold 0   # carry [".gpu/full.npz"]; again (no carry) while time is left
#   bash bench/fusion_kfold_lease.sh ship               # again until it logs "0 left"
# A fold the limit stops leaves a resume set (`pause`, run by every `fold` call): its last checkpoint (weights in
# float16, AdamW's moments in bfloat16) and its best one, ~300-400 MB for the paper's net as resume0-s<STEP>-*.pt
# shards and their index resume0-s<STEP>.pt; ship brings them back. Lease 2 goes on from that epoch (copy the resume
# files into .gpu/kf-init-a, .gpu/kf-init-b, ... here, each folder under the 64 MiB a call carries beside the tree):
#   bash bench/fusion_kfold_lease.sh unpack          # carry [".gpu/full.npz"]
#   bash bench/fusion_kfold_lease.sh ship            # carry [".gpu/kf-init-a"] (ships nothing: it only carries);
#                                                    # once more for each further folder but the last
#   bash bench/fusion_kfold_lease.sh fold 0          # carry the last folder: fold 1 ends, its weights ship as init-*
# The first fold trained without a compile cache writes the machine's (compile-cache-*.bin + compile-cache.json,
# glc.training.compile_cache) after its first epoch, and ship brings it back with the fold's files: carried into a
# later lease (in any .gpu/kf-init-* folder) it turns that lease's ~290 s of compilation into cache hits.
# Later leases (fold 1's weights as shipped: init-*.pt, about 93 MiB, and the compile cache; spread them over
# .gpu/kf-init-a, .gpu/kf-init-b, ... here, each under the 64 MiB a call carries beside the tree):
#   bash bench/fusion_kfold_lease.sh unpack          # carry [".gpu/full.npz"]
#   bash bench/fusion_kfold_lease.sh ship            # carry [".gpu/kf-init-a"] (ships nothing: it only carries);
#                                                    # once more for each further folder but the last
#   bash bench/fusion_kfold_lease.sh fold 1 2 3      # carry the last folder: two or three folds a lease
#   bash bench/fusion_kfold_lease.sh ship            # again until it logs "0 left"
# A fine-tuning fold the limit stops resumes the same way (its resume set carried in beside fold 1's weights).
#
# Copy every returned fold*-*.npz / fold*-summary.json into .gpu/kfold/ here (compile-cache* and init-* into the
# .gpu/kf-init-* folders); when all 10 folds are there, merge:
#   python -m bench.fusion_kfold merge --parts .gpu/kfold --npz .gpu/full.npz --experiment tasks/fusion-paper.toml \
#     $(bash bench/fusion_kfold_lease.sh sets) $(bash bench/fusion_kfold_lease.sh merge-args) --json ...
# LIMIT (default 540 s) bounds a training call; the fold resumes from its last checkpoint in WORK on the next call.
# EXPERIMENT, NPZ and EXTRA (more --set pairs, applied last; no spaces inside a value) change what is trained: the CPU
# test runs a small fusion through this script.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}  # the interpreter with torch (the device's own; here, the venv's)
out=${OUT:-/tmp/fusion-kfold-out}
work=${WORK:-.gpu/kf-work}
limit=${LIMIT:-540}
experiment=${EXPERIMENT:-tasks/fusion-paper.toml}
npz=${NPZ:-.gpu/full.npz}
# the protocol's settings: the DCT block as the image (the raw pixels cannot travel), batch 256 with lr 5e-4 (the
# measured batch that keeps the 4-epoch accuracy), and the speed switches of bench/results/fusion_gpu.json (lease5)
sets=(--set model.image=dct16 --set train.batch_size=256 --set train.lr=0.0005 --set 'train.compile="reduce-overhead"'
  --set train.pin_memory=true --set train.fused_optimizer=true --set train.finite_check_every=50
  --set train.deterministic=false)
read -r -a extra <<<"${EXTRA:-}"
sets+=("${extra[@]}")
cmd=${1:?usage: bench/fusion_kfold_lease.sh fold F [F ...] | ship | unpack | sets | merge-args}
shift
mkdir -p "$out"
export PYTHONUNBUFFERED=1
case $cmd in
  sets)
    printf '%s ' "${sets[@]}"
    echo
    ;;
  merge-args)  # merge's --truth / --corrections, as make gpu-table recorded them beside the table
    "$py" -c 'import json, sys; print(*json.load(open(sys.argv[1]))["merge_args"])' "${npz%.npz}.json"
    ;;
  unpack)
    "$py" -m bench.fusion_kfold unpack --npz "$npz" --work "$work" --experiment "$experiment"
    ;;
  ship)
    "$py" -m bench.fusion_kfold ship --work "$work" --out "$out"
    ;;
  fold)
    inits=()
    for d in .gpu/kf-init*; do [[ -d $d ]] && inits+=(--init "$d"); done
    # SIGTERM at LIMIT (Lightning stops at the end of the batch; a compile in progress finishes first), SIGKILL 30 s
    # later; no fold is started after LIMIT - 280 s (a fine-tuning fold: ~130 s compile + 5 epochs + scoring)
    timeout -k 30 "$limit" "$py" -m bench.fusion_kfold fold --npz "$npz" --work "$work" \
      --experiment "$experiment" "${sets[@]}" --folds "$@" "${inits[@]}" --stop-after $((limit - 280)) \
      >"$out/log.txt" 2>&1
    rc=$?
    grep -E "fold [0-9]+/|Error|error" "$out/log.txt" | cut -c1-600 | tail -20
    # a fold the limit stopped: its resume set (last + best checkpoints, ~300 MB for the paper's net), so that a
    # later lease on another machine goes on from its last epoch instead of from scratch
    "$py" -m bench.fusion_kfold pause --work "$work" --experiment "$experiment" "${sets[@]}" 2>&1 | grep -E "resume|pause"
    "$py" -m bench.fusion_kfold ship --work "$work" --out "$out"
    exit "$rc"
    ;;
  *)
    echo "bench/fusion_kfold_lease.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
