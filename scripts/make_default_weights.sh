#!/usr/bin/env bash
# Rebuild the weights shipped in colora/weights/ from scratch with colora's own commands:
# a tiny NAFNet pre-trained with PROD on the photos bundled with scikit-image, then one CoLoRA
# adapter per task fine-tuned on synthetic pairs of the training photos.
# Takes about 30 minutes on one core of this machine (12.7 min pre-training + ~2.5 min per adapter).
# One thread by default: the shipped files were made so, and the thread count changes float rounding.
# Usage: bash scripts/make_default_weights.sh [EXP_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
EXP=${1:-experiments_default}
TASKS="rain raindrop rain_raindrop noise blur haze"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$EXP"
log() { echo "$(date +%s) $*" >> "$EXP/commands.log"; echo "+ $*"; }
: > "$EXP/commands.log"

cmd="colora pretrain -opt options/pretrain/nafnet_tiny_prod.yml --set path.experiments_root=$EXP"
log "$cmd"; $cmd
BASE="$EXP/nafnet_tiny_prod/models/net_g_latest.safetensors"
python scripts/pack_weights.py base "$BASE" colora/weights
for task in $TASKS; do
  cmd="colora finetune -opt options/finetune/$task.yml --set path.experiments_root=$EXP --set path.pretrain_network_g=colora/weights/base.safetensors"
  log "$cmd"; $cmd
done
log "adapters finished"   # closing time stamp: the last adapter's duration
python scripts/pack_weights.py adapters "$EXP" colora/weights $TASKS
echo "done: colora/weights/ (see colora/weights/MANIFEST.json)"
