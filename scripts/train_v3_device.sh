#!/usr/bin/env bash
# One v3 training run on a GPU machine (the `atombench train` recipe of the model card).
# Usage: OUT=/some/dir PKG=/path/containing/napari_atombench scripts/train_v3_device.sh [STEPS] [MINUTES] [POOL] [WORKERS]
set -euo pipefail
STEPS=${1:-8000}; MINUTES=${2:-4.5}; POOL=${3:-6000}; WORKERS=${4:-14}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
export PYTHONPATH=${PKG:-$PWD}
$PY -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'python', sys.version.split()[0])"
$PY -m napari_atombench.cli train atombench_unet --modalities --pool-workers "$WORKERS" --pool-size "$POOL" \
    --crop 128 --batch-size 32 --steps "$STEPS" --max-minutes "$MINUTES" --lr 2e-3 --seed 0 \
    --resolution-pm 60 260 --native-pixel-size 0.08 0.5 --device "$DEVICE" \
    --out "$OUT/atombench-v3.ckpt" --export-weights "$OUT/atombench-v3.pt" 2>&1 | tee "$OUT/train.log"
ls -la "$OUT"
