#!/usr/bin/env bash
# RPG at the full official recipe (facebookresearch/RPG_KDD2025) on a CUDA machine: the CPU
# configs benchmarks/configs/rpg-{beauty,sports,toys}.toml with their two compute departures
# undone: width 448 and 50-item histories, 150 epochs with 10,000 warm-up steps, validation
# every epoch, patience 20. Each run is evaluated with the official graph decoding and exactly.
#   bash benchmarks/gpu/rpg_official.sh [DATASET ...]     (default: beauty sports toys)
# Interrupted runs continue with `genrec-bench train --resume -o runs/gpu-rpg/DATASET`.
set -euo pipefail
GB=${GB:-.venv/bin/genrec-bench}
OUT=${OUT:-runs/gpu-rpg}
datasets=("$@")
[ ${#datasets[@]} -eq 0 ] && datasets=(beauty sports toys)
for d in "${datasets[@]}"; do
  "$GB" train -m rpg -d "$d" -c "benchmarks/configs/rpg-$d.toml" \
    --set model.hidden=448 --set data.max_history=50 --set train.epochs=150 \
    --set train.warmup_steps=10000 --set train.eval_every=1 --set train.num_threads=0 \
    --set train.device=cuda -o "$OUT/$d"
  "$GB" eval --run "$OUT/$d" --label "rpg (official recipe)"
  "$GB" eval --run "$OUT/$d" --label "rpg (official recipe)[decode=exact]" --decode decode=exact
done
