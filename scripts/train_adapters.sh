#!/usr/bin/env bash
# Fine-tune the six task adapters on a base with the shipped recipes (colora/presets/finetune/synthetic.yml,
# the per-task iterations and options below): the one home of those recipes, used by
# scripts/make_default_weights.sh for the shipped set and by anyone building a set on another base.
# LANES runs that many fine-tunes side by side, one thread each (tasks spread so the lanes' iteration
# totals are as even as they can be); each lane logs its commands to EXP/commands[_laneN].log, which
# scripts/pack_weights.py reads for every adapter's command and duration. Every run resumes
# (--auto_resume): rerun after an interruption and it continues where it stopped.
# Usage: bash scripts/train_adapters.sh BASE EXP_DIR [LANES] [TASK ...]
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=$1
EXP=$2
LANES=${3:-1}
shift $(( $# < 3 ? $# : 3 ))
TASKS=${*:-rain raindrop rain_raindrop noise blur haze}
# iterations: more for the tasks the base alone does least for (haze and blur) and for raindrops
# (session 18: 1,500 -> 3,000 on 192-px crops, photo validation 29.77 -> 31.00 dB; batch 8 for 1,500
# iterations, the same crops seen, gave 30.59); rain + raindrops 1,000 -> 2,000 (23.53 -> 23.60);
# noise 600 on 96-px crops -> 1,200 on 192-px crops (session 19: 30.78 -> 30.98), rain 300 on 96-px
# crops -> 1,200 on 192-px crops (29.56 -> 30.05; 600 gave 29.84)
iters() {
  case $1 in rain) echo 1200 ;; raindrop) echo 3000 ;; rain_raindrop) echo 2000 ;; noise) echo 1200 ;;
    blur) echo 1300 ;; haze) echo 3000 ;; *) echo "unknown task $1" >&2; exit 2 ;; esac
}
# Per-task options beyond the preset, each chosen on photo-scale validation (scripts/validate_photos.py):
# raindrops (alone or with rain) degraded on a 384-px view of the photo (drops as large as on a photo,
# not a crop) and, as blur, a 40 dB ceiling on the PSNR loss (crops with nothing to restore otherwise
# dominate it). Raindrops alone are learnt on 192-px crops of that view (batch 4: a drop of 20-50 px
# is filled in from the scene around it, which a 96-px crop barely shows; session 17: photo validation
# 29.31 -> 29.77 dB); with rain as well it gave +0.18 dB on validation but -0.05 held-out: not used.
# Noise and rain are learnt on 192-px crops too (batch 4; session 19: photo validation +0.20 / +0.49 dB).
CROPS192="--set datasets.train.gt_size=192 --set datasets.train.batch_size_per_gpu=4"
DROPS="--set datasets.train.scene_size=384 --set datasets.val.scene_size=384 --set train.pixel_opt.max_psnr=40"
extra() {
  case $1 in
    raindrop) echo "$DROPS $CROPS192" ;;
    noise | rain) echo "$CROPS192" ;;
    rain_raindrop) echo "$DROPS" ;;
    blur) echo "--set train.pixel_opt.max_psnr=40" ;;
  esac
}
[ -f "$BASE" ] || { echo "no base checkpoint at '$BASE'; pass the .safetensors to fine-tune on" >&2; exit 2; }
[ "$LANES" -ge 1 ] 2>/dev/null || { echo "LANES must be a whole number >= 1, got '$LANES'" >&2; exit 2; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# the adapters fit the base's own architecture (its header records it), not the preset's default NAFNet
NET=$(colora info --json "$BASE" | python -c "import json, sys; print(json.dumps(json.load(sys.stdin)['network_g'], separators=(',', ':')))")
mkdir -p "$EXP"

# the longest runs first, each to the lane with the fewest iterations so far
declare -a LOAD QUEUE
for ((l = 0; l < LANES; l++)); do LOAD[l]=0; QUEUE[l]=""; done
for task in $(for t in $TASKS; do echo "$(iters "$t") $t"; done | sort -rn | cut -d' ' -f2); do
  best=0
  for ((l = 1; l < LANES; l++)); do [ "${LOAD[l]}" -lt "${LOAD[best]}" ] && best=$l; done
  LOAD[best]=$(( LOAD[best] + $(iters "$task") ))
  QUEUE[best]="${QUEUE[best]} $task"
done

lane() {  # lane LOGFILE TASK...
  local logf=$1; shift
  for task in "$@"; do
    local cmd="colora finetune -opt colora/presets/finetune/synthetic.yml --set name=${task}_colora --set adapter.task=$task"
    cmd="$cmd --set train.total_iter=$(iters "$task") --set logger.save_checkpoint_freq=250"
    cmd="$cmd --set datasets.train.task=$task --set datasets.val.task=$task --set path.experiments_root=$EXP"
    cmd="$cmd --set path.pretrain_network_g=$BASE --set network_g=$NET --auto_resume $(extra "$task")"
    echo "$(date +%s) $cmd" >> "$logf"; echo "+ $cmd"
    $cmd
  done
  echo "$(date +%s) adapters finished" >> "$logf"  # closing time stamp: the last adapter's duration
}

pids=()
for ((l = 0; l < LANES; l++)); do
  [ -n "${QUEUE[l]}" ] || continue
  logf="$EXP/commands.log"; [ "$LANES" -gt 1 ] && logf="$EXP/commands_lane$l.log"
  # shellcheck disable=SC2086
  if [ "$LANES" -gt 1 ]; then lane "$logf" ${QUEUE[l]} > "$EXP/lane$l.out" 2>&1 & pids+=($!); else lane "$logf" ${QUEUE[l]}; fi
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ "$status" = 0 ] || { echo "a lane failed: see $EXP/lane*.out" >&2; exit 1; }
echo "adapters in $EXP/<task>_colora/adapter (pack them with: python scripts/pack_weights.py adapters $EXP DEST $TASKS)"
