#!/usr/bin/env bash
# Rebuild the weights shipped in colora/weights/ from scratch with colora's own commands:
#   1. the photo corpus from Debian wallpaper packages (scripts/make_corpus.py, scripts/corpus.json);
#   2. NAFNet (colora/presets/pretrain/nafnet_small_prod.yml) pre-trained with PROD on its 29 training photos;
#   3. one CoLoRA adapter per task fine-tuned on fresh synthetic pairs of the same photos
#      (colora/presets/finetune/synthetic.yml with the task set on the command line);
#   4. the degradation estimator, trained on synthetic pairs of the same photos.
# Hours on a CPU: pre-training 20,000 iterations is ~5.5 h on one core of an Intel Xeon with AMX
# (bf16 autocast) and slower where bf16 is not native; each adapter ~40 min. Every step resumes
# (--auto_resume): rerun the script after an interruption and it continues where it stopped.
# One thread by default: the thread count changes float rounding.
# Usage: bash scripts/make_default_weights.sh [EXP_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
EXP=${1:-experiments_default}
TASKS="rain raindrop rain_raindrop noise blur haze"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$EXP"
log() { echo "$(date +%s) $*" >> "$EXP/commands.log"; echo "+ $*"; }

[ -d corpus/train ] || python scripts/make_corpus.py -o corpus
cmd="colora pretrain -opt colora/presets/pretrain/nafnet_small_prod.yml --set path.experiments_root=$EXP --auto_resume"
log "$cmd"; $cmd
BASE="$EXP/nafnet_small_prod/models/net_g_latest.safetensors"
python scripts/pack_weights.py base "$BASE" colora/weights
for task in $TASKS; do
  cmd="colora finetune -opt colora/presets/finetune/synthetic.yml --set name=${task}_colora --set adapter.task=$task"
  cmd="$cmd --set datasets.train.task=$task --set datasets.val.task=$task --set path.experiments_root=$EXP"
  cmd="$cmd --set path.pretrain_network_g=colora/weights/base.safetensors --auto_resume"
  log "$cmd"; $cmd
done
log "adapters finished"   # closing time stamp: the last adapter's duration
python scripts/pack_weights.py adapters "$EXP" colora/weights $TASKS
# the degradation estimator (colora estimator run, --adapter auto): ~50 min on one core
colora estimator train -o colora/weights/estimator.safetensors --dataroot corpus/train --threads 1
python scripts/pack_weights.py estimator colora/weights
echo "done: colora/weights/ (see colora/weights/MANIFEST.json)"
