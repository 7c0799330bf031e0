#!/usr/bin/env bash
# One device call of the fusion's A/B table (bench/fusion_gpu.py `ab`) on the full world's packed fusion table, as
# prepared for a GPU lease: the run tool copies the working tree there, so pack the table here first and carry it:
#
#   make gpu-table    # = python -m bench.gpu_table: the world, its fusion ModelInputs, packed as below, ~36 min
#   # or, with the table already built:
#   python -m bench.fusion_gpu pack --patch-k 6 --out .gpu/full.npz \
#     --inputs out-bench/full/<world>/model_inputs/v10km-f0.2-s0-bioclim_cube+env+gfv+landsat_cube+patch_dct16+plot-k3
#   # then, on the device (carry [".gpu/full.npz"]):
#   bash bench/fusion_gpu_lease.sh "+ torch.compile" 540
#
# ROW (first argument) is the one A/B row trained; the rows before it only add their switches. The table starts at
# batch 128 / lr 2.5e-4, so the "+ 2x batch" row makes it batch 256 / lr 5e-4: the settings of the eager reference
# (781 samples/s, validation sample-F1 0.477 after 4 epochs). SECONDS (default 540) bounds the whole run; a row the
# limit stops still reports the epochs it finished. Writes $OUT/ab.json and $OUT/log.txt (TORCH_LOGS=recompiles:
# every recompilation is in the log). The row's timing.jsonl, metrics.csv and busy.txt are copied to $OUT/row-*
# even when the limit stops it, so the epochs it finished keep their seconds, validation figures and GPU readings.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}  # the interpreter with torch (the device's own; here, the venv's)
row=${1:?usage: bench/fusion_gpu_lease.sh ROW [SECONDS]}
limit=${2:-540}
out=${OUT:-/tmp/fusion-gpu-out}
npz=${NPZ:-.gpu/full.npz}
work=${WORK:-/tmp/fusion-gpu}
mkdir -p "$out"
if [[ ! -f $npz ]]; then
  echo "bench/fusion_gpu_lease.sh: no $npz here; pack it first (see the header) and carry it" >&2
  exit 2
fi
export TORCH_LOGS=${TORCH_LOGS:-recompiles} PYTHONUNBUFFERED=1
timeout -k 30 "$limit" "$py" -m bench.fusion_gpu ab --npz "$npz" --work "$work" --experiment tasks/fusion-paper.toml \
  --set train.kfold=1 --set model.image=dct16 --set train.batch_size=128 --set train.lr=0.00025 \
  --set 'train.precision="32-true"' --set train.max_epochs=4 --set train.patience=4 \
  --start "$row" --rows "$row" --json "$out/ab.json" >"$out/log.txt" 2>&1
rc=$?
# the row's own files, flattened into $OUT (a call brings back no file more than 2 folders down, 8 files at most)
rowdir=$("$py" -c "from bench.fusion_gpu import AB_ROWS; print([n for n, _ in AB_ROWS].index('$row'))" 2>/dev/null)
find "$work/ab/row${rowdir:-X}" \( -name timing.jsonl -o -name metrics.csv -o -name busy.txt \) -print0 2>/dev/null |
  while IFS= read -r -d '' f; do cp "$f" "$out/row-$(basename "$f")"; done
grep -v -i warn "$out/log.txt" | grep -E '"row"|limit_image|ecompil|Error' | cut -c1-1500 | tail -30
exit "$rc"
