#!/usr/bin/env bash
# GPU smoke: on one NVIDIA GPU, from a bare machine, in well under 8 minutes.
#
#   1. refuses (exit 2) unless a GPU is visible, before installing anything;
#   2. installs the CUDA build of torch (torch==2.13.0 from the default PyPI index is the CUDA
#      wheel on Linux; the Makefile installs the CPU one the same way) and the project with its
#      pinned dependencies, then refuses (exit 2) unless that torch can use CUDA;
#   3. trains tiny TIGER and MindRec runs on CUDA (bf16 autocast) on the embedded Beauty data,
#      with the shipped id tables, so no item-embedding or k-means step runs;
#   4. evaluates each checkpoint on CUDA and on CPU on the same first users of the test split;
#   5. prints training samples/s and decoding users/s, and exits 1 unless the two devices agree
#      on Hit@10 and NDCG@10 within an absolute tolerance (default 0.01: bf16 decoding on CUDA
#      against fp32 on CPU swaps near-tied beam candidates, which moves a handful of users; the
#      reasoning is in compare_devices.py, which does the comparison).
#
# Nothing is downloaded at run time except pip packages from the configured package index.
#
#   bash benchmarks/gpu/smoke.sh
#   GPU_SMOKE_VENV=/tmp/gpu-venv GPU_SMOKE_EPOCHS=1 bash benchmarks/gpu/smoke.sh
#
# Settings (environment):
#   GPU_SMOKE_VENV          virtualenv to create or reuse (default .venv, as the Makefile; a .venv
#                           that already holds CPU torch is refused: point this at a fresh one)
#   GPU_SMOKE_SKIP_INSTALL  1 = use the virtualenv as it is, install nothing
#   GPU_SMOKE_TORCH         torch requirement (default torch==2.13.0)
#   GPU_SMOKE_TORCH_INDEX   index URL for torch only (default: pip's configured index)
#   GPU_SMOKE_WORK          folder for runs, records and summary.json (default runs/gpu-smoke-DATE)
#   GPU_SMOKE_EPOCHS        training epochs of 514 steps each (default 2)
#   GPU_SMOKE_USERS         test users evaluated on each device (default 2000)
#   GPU_SMOKE_TOLERANCE     absolute tolerance on Hit@10 and NDCG@10 (default 0.01)
#   PYTHON                  interpreter that creates the virtualenv (default python3, >= 3.11)

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

VENV=${GPU_SMOKE_VENV:-.venv}
TORCH=${GPU_SMOKE_TORCH:-torch==2.13.0}
WORK=${GPU_SMOKE_WORK:-runs/gpu-smoke-$(date +%Y%m%d-%H%M%S)}
EPOCHS=${GPU_SMOKE_EPOCHS:-2}
USERS=${GPU_SMOKE_USERS:-2000}
TOLERANCE=${GPU_SMOKE_TOLERANCE:-0.01}
SID_FILE=beauty-rkmeans-e5b6cd0b8018.json   # shipped with the package, found by name
TREE_FILE=beauty-tree-de9564c12693.json

refuse() { echo "gpu smoke: $*" >&2; exit 2; }
phase() { echo "== [${SECONDS}s] $*" >&2; }

# 1. A GPU, before minutes of installing: the driver's nvidia-smi, or a device node where a
#    container mounts the GPU without the tool.
if ! { nvidia-smi -L 2>/dev/null | grep -q '^GPU'; } && ! compgen -G '/dev/nvidia[0-9]*' >/dev/null; then
    refuse "no NVIDIA GPU found (nvidia-smi -L lists none and there is no /dev/nvidia*); this smoke needs one"
fi

# 2. Install: torch first, so the project's dependencies do not pull another build of it.
if [[ ${GPU_SMOKE_SKIP_INSTALL:-0} != 1 ]]; then
    phase "installing $TORCH and the project into $VENV"
    [[ -x $VENV/bin/python ]] || "${PYTHON:-python3}" -m venv "$VENV"
    torch_index=()
    [[ -n ${GPU_SMOKE_TORCH_INDEX:-} ]] && torch_index=(--index-url "$GPU_SMOKE_TORCH_INDEX")
    "$VENV/bin/python" -m pip install --quiet ${torch_index[@]+"${torch_index[@]}"} "$TORCH"
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e .
fi
PY=$VENV/bin/python
GB=$VENV/bin/genrec-bench
[[ -x $PY && -x $GB ]] || refuse "$VENV has no python or genrec-bench; run without GPU_SMOKE_SKIP_INSTALL=1"
# One import: the version line comes out before the assert, so a refusal can name the build.
if ! gpu=$("$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda or "none")
assert torch.cuda.is_available()
print("on", torch.cuda.get_device_name(0))' 2>/dev/null); then
    refuse "${gpu:-torch (not importable)} in $VENV cannot use a GPU; a CPU build needs a fresh GPU_SMOKE_VENV," \
           "a CUDA build a working driver"
fi
echo "gpu smoke: ${gpu//$'\n'/ }" >&2

# 3. Train on CUDA. keep = last and one validation (of 256 users, at the end) keep the timed loop
#    almost all training; 2 epochs lift both models well above zero Hit@10 on the evaluated users.
mkdir -p "$WORK"
common=(-d beauty --device cuda
        --set "train.epochs=$EPOCHS" --set train.max_steps=0 --set train.patience=0 --set 'train.keep="last"'
        --set train.eval_every=1000 --set train.valid_users=256 --set train.checkpoint_every=0
        --set train.num_threads=0 --set "model.sid_file=\"$SID_FILE\"")
phase "training tiger on cuda"
"$GB" train -m tiger -c benchmarks/configs/tiger-small.toml "${common[@]}" -o "$WORK/tiger"
phase "training mindrec on cuda"
"$GB" train -m mindrec -c benchmarks/configs/mindrec-default.toml "${common[@]}" \
    --set "model.tree_file=\"$TREE_FILE\"" -o "$WORK/mindrec"

# 4. Evaluate each checkpoint on both devices, same users, records kept out of ./results.
for model in tiger mindrec; do
    for device in cuda cpu; do
        phase "evaluating $model on $device ($USERS users)"
        "$GB" eval --run "$WORK/$model" --device "$device" --max-users "$USERS" --k 10 \
            --results "$WORK/results" --json > "$WORK/$model/eval-$device.json"
    done
done

# 5. Compare and report; the helper's exit status is the smoke's.
phase "comparing devices"
status=0
"$PY" benchmarks/gpu/compare_devices.py --tolerance "$TOLERANCE" --json-out "$WORK/summary.json" \
    "$WORK/tiger" "$WORK/mindrec" || status=$?
echo "gpu smoke: ${SECONDS}s in all; runs and summary.json in $WORK" >&2
(( SECONDS <= 480 )) || echo "gpu smoke: warning: took over 8 minutes" >&2
exit "$status"
