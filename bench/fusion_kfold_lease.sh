#!/usr/bin/env bash
# Tighnari's 10-fold protocol (tasks/fusion-paper.toml) on the full world's packed fusion table, one device call at a
# time (bench/fusion_kfold.py says why and how the pieces fit together). Each call that trains writes its log and as
# many finished files as one call brings back to $OUT; `ship` calls bring back the rest.
#
#   bash bench/fusion_kfold_lease.sh fold 0          # carry [".gpu/full.npz"]; again until fold 0 is done
#   bash bench/fusion_kfold_lease.sh ship            # again until it reports "0 left"
#   # a later lease (fold 0's weights as shipped, split over .gpu/kf-init-a and .gpu/kf-init-b, 4 shards each):
#   bash bench/fusion_kfold_lease.sh unpack          # carry [".gpu/full.npz"]
#   bash bench/fusion_kfold_lease.sh ship            # carry [".gpu/kf-init-a"] (ships nothing: only carries)
#   bash bench/fusion_kfold_lease.sh fold 1 2 3      # carry [".gpu/kf-init-b"]
#
# Copy every returned fold*-*.npz / fold*-summary.json into .gpu/kfold/ here, and init-*.pt into .gpu/kf-init-a/
# (the first 4) and .gpu/kf-init-b/; when all 10 folds are there, merge here:
#   python -m bench.fusion_kfold merge --parts .gpu/kfold --npz .gpu/full.npz --experiment tasks/fusion-paper.toml \
#     $(bash bench/fusion_kfold_lease.sh sets) --truth data/synthetic/full-seed0/_truth/GLC24_SOLUTION_FILE.csv \
#     --corrections out-bench/full/full-seed0-*/po_correction/pa_test-n5-l4-a10-m8-site/data --json ...
# LIMIT (default 540 s) bounds a training call; the fold resumes from its last checkpoint in WORK on the next call
# (while the machine stays warm: it is given back after 30 s idle). EXPERIMENT, NPZ and EXTRA (more --set pairs,
# applied last) change what is trained: the CPU test runs a small fusion through this script.
set -uo pipefail
cd "$(dirname "$0")/.."
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
cmd=${1:?usage: bench/fusion_kfold_lease.sh fold F [F ...] | ship | unpack | sets}
shift
mkdir -p "$out"
export PYTHONUNBUFFERED=1
case $cmd in
  sets)
    printf '%s ' "${sets[@]}"
    echo
    ;;
  unpack)
    python -c "from glc.loaders.pack import unpack; from pathlib import Path; unpack(Path('$npz'), Path('$work/inputs'))"
    ;;
  ship)
    python -m bench.fusion_kfold ship --work "$work" --out "$out"
    ;;
  fold)
    inits=()
    for d in .gpu/kf-init*; do [[ -d $d ]] && inits+=(--init "$d"); done
    timeout "$limit" python -m bench.fusion_kfold fold --npz "$npz" --work "$work" \
      --experiment "$experiment" "${sets[@]}" --folds "$@" "${inits[@]}" >"$out/log.txt" 2>&1
    rc=$?
    grep -E "fold [0-9]+/|Error|error" "$out/log.txt" | cut -c1-600 | tail -20
    python -m bench.fusion_kfold ship --work "$work" --out "$out"
    exit "$rc"
    ;;
  *)
    echo "bench/fusion_kfold_lease.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
