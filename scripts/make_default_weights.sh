#!/usr/bin/env bash
# Rebuild the weights shipped in colora/weights/ from scratch with colora's own commands:
#   1. the photo corpus from Debian wallpaper packages (scripts/make_corpus.py, scripts/corpus.json);
#   2. NAFNet (colora/presets/pretrain/nafnet_small_prod.yml) pre-trained with PROD on its 29 training photos,
#      then stage 2 (nafnet_small_prod_stage2.yml: 384-px scene views, a 40 dB loss ceiling) and
#      stage 3 (nafnet_small_prod_stage3.yml: stage 2 plus dead-leaves images);
#   3. one CoLoRA adapter per task fine-tuned on fresh synthetic pairs of the same photos
#      (scripts/train_adapters.sh: colora/presets/finetune/synthetic.yml with per-task iterations and options);
#   4. the degradation estimator, trained on synthetic pairs of the same photos;
#   5. the held-out benchmark of the result (benchmarks/vs_classical.py), which `colora demo` shows.
# Hours on a CPU: pre-training 20,000 iterations is ~5.5 h on one core of an Intel Xeon with AMX
# (bf16 autocast), ~2.5 s/iteration (~14 h) where bf16 is not native (AVX2 only, fp32); stage 2
# ~2 h (6,000 iterations at ~1.15 s on an AVX512-BF16 core), stage 3 ~1 h 45 min; the adapters
# ~1-1.3 h per 1,000 iterations on one AVX2 core, ~20 min on an AVX512-BF16 one (7,700 in all). Every step resumes
# (--auto_resume): rerun the script after an interruption and it continues where it stopped.
# One thread by default: the thread count changes float rounding.
# Usage: bash scripts/make_default_weights.sh [EXP_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
EXP=${1:-experiments_default}
TASKS="rain raindrop rain_raindrop noise blur haze"  # their recipes: scripts/train_adapters.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$EXP"
log() { echo "$(date +%s) $*" >> "$EXP/commands.log"; echo "+ $*"; }

[ -d corpus/train ] || python scripts/make_corpus.py -o corpus
cmd="colora pretrain -opt colora/presets/pretrain/nafnet_small_prod.yml --set path.experiments_root=$EXP --auto_resume"
log "$cmd"; $cmd
# stage 2 (issue 13): the stage-1 weights pre-trained further where stage 1 fell short (haze, blur,
# drops; see the preset); 6,000 iterations (the shipped run planned 8,000 and was re-fitted to end at
# 6,000 from iteration 3,750: checkpoints/README.md)
cmd="colora pretrain -opt colora/presets/pretrain/nafnet_small_prod_stage2.yml --set path.experiments_root=$EXP"
cmd="$cmd --set path.pretrain_network_g=$EXP/nafnet_small_prod/models/net_g_latest.safetensors"
cmd="$cmd --set train.total_iter=6000 --auto_resume"
log "$cmd"; $cmd
# stage 3: stage 2 continued with 29 dead-leaves images beside the photos (see the preset), 6,000 iterations
cmd="colora pretrain -opt colora/presets/pretrain/nafnet_small_prod_stage3.yml --set path.experiments_root=$EXP"
cmd="$cmd --set path.pretrain_network_g=$EXP/nafnet_small_prod_stage2/models/net_g_latest.safetensors --auto_resume"
log "$cmd"; $cmd
BASE="$EXP/nafnet_small_prod_stage3/models/net_g_latest.safetensors"
# 384: the TLC window of the shipped base (trained on 96-px patches), chosen on validation photos; see
# MANIFEST.json base.train_size_note
python scripts/pack_weights.py base "$BASE" colora/weights 384
bash scripts/train_adapters.sh colora/weights/base.safetensors "$EXP" 1 $TASKS
python scripts/pack_weights.py adapters "$EXP" colora/weights $TASKS
# the degradation estimator (colora estimator run, --adapter auto): ~50 min on one core, then 1,200
# iterations more with only visible degradations labelled (--faint-db 40, session 12; ~50 min shared)
[ -f "$EXP/estimator_start.safetensors" ] || colora estimator train -o "$EXP/estimator_start.safetensors" \
  --dataroot corpus/train --threads 1
colora estimator train -o colora/weights/estimator.safetensors --dataroot corpus/train --threads 1 --iters 1200 \
  --seed 1 --faint-db 40 --init "$EXP/estimator_start.safetensors"
python scripts/pack_weights.py estimator colora/weights
python benchmarks/vs_classical.py --threads 2 --json "$EXP/vs_classical.json" --jpeg docs/vs_classical
python scripts/pack_weights.py heldout "$EXP/vs_classical.json" colora/weights
echo "done: colora/weights/ (see colora/weights/MANIFEST.json)"
