#!/usr/bin/env bash
# One training leg on a lent GPU, end to end, within a fixed time budget:
#   throughput benchmarks -> `pegasus-course train` (continuing the shipped model by default)
#   -> EMA export + resume shards -> 64 samples and pegasus rows with the full schedule.
# Where it starts from (LEG_RESUME overrides):
#   1. .device/resume, if present: resume shards of an earlier leg (live and EMA weights, loss history);
#   2. else, in the gpu profile, the shipped EMA file checkpoints/cifar10-horse-bird-32.safetensors
#      (its EMA weights become the live ones too; Adam restarts in every leg);
#   3. else from scratch. LEG_RESUME=none forces a fresh start.
# In the gpu profile, batch 512 at lr 1e-4 by default (LEG_BATCH, LEG_LR): what the shipped model's last
# legs used (7,163-9,491 images/s compiled on an H100, against 2,598 at batch 128).
# Everything a later session needs comes back under $OUT (at most 8 files, 15 MiB each).
# Data: the horse/bird folders of the offline CIFAR-10 copy, placed in .device/cifar10-jpg
# (an ignored folder that travels with the working tree); see tools/pack_device_data.sh.
#
# Rehearse on a CPU:  LEG_PROFILE=ci LEG_BUDGET=120 LEG_BENCH=quick OUT=/tmp/leg bash tools/device_leg.sh
set -uo pipefail
OUT=${OUT:-outputs/device-leg}
BUDGET=${LEG_BUDGET:-540}          # seconds for the whole leg
PROFILE=${LEG_PROFILE:-gpu}
BENCH=${LEG_BENCH:-full}           # full | quick | none
DATA=${LEG_DATA:-.device/cifar10-jpg}
BATCH=${LEG_BATCH:-}
[ -z "$BATCH" ] && [ "$PROFILE" = gpu ] && BATCH=512   # other profiles keep their own batch
LR=${LEG_LR:-1e-4}
RESUME=${LEG_RESUME:-}
if [ -z "$RESUME" ]; then
  if [ -e .device/resume ]; then RESUME=.device/resume
  elif [ "$PROFILE" = gpu ] && [ -f checkpoints/cifar10-horse-bird-32.safetensors ]; then
    RESUME=checkpoints/cifar10-horse-bird-32.safetensors
  fi
fi
[ "$RESUME" = none ] && RESUME=""
RUN=.device/run
mkdir -p "$OUT" "$RUN"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PEGASUS_CACHE=$PWD/.device/cache TQDM_DISABLE=1
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
log() { echo "[$(elapsed)s] $*" | tee -a "$OUT/log.txt"; }
run() { log "\$ $*"; "$@" 2>&1 | grep -v -E '^\s*$|it/s\]|level/s\]' | tee -a "$OUT/log.txt"; }

log "leg start: profile=$PROFILE budget=${BUDGET}s bench=$BENCH batch=${BATCH:-profile} lr=$LR resume=${RESUME:-none}"
command -v nvidia-smi >/dev/null && run nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
run python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

compile_flag=""
if [ "$BENCH" = full ]; then
  b=${BATCH:-128}
  run python benchmarks/train_throughput.py --sizes 32 --batches "$b" --steps 30 --warmup 10
  run python benchmarks/sampling_overhead.py
  # Train in the fastest mode the benchmark measured at this batch (eager, compiled, or compiled with
  # CUDA graphs); a compiled mode must beat bf16 eager by 20% to be worth its compilation time.
  ips() { grep -E "^\| 32 \| $b \|.*\| bf16 \| $1 " "$OUT/log.txt" | tail -1 | awk -F'|' '{gsub(/[ ,]/,"",$8); print $8}'; }
  eager=$(ips eager); comp=$(ips compiled); graphed=$(ips "graphed")
  best=$(python -c "
e, c, g = (float(v) if v else 0.0 for v in ('$eager', '$comp', '$graphed'))
print('graphed' if g > 1.2 * e and g >= c else 'compiled' if c > 1.2 * e else 'eager')")
  [ "$best" = compiled ] && compile_flag="--compile"
  [ "$best" = graphed ] && compile_flag="--compile --compile-mode reduce-overhead"
  log "batch $b bf16: eager ${eager:-?}, compiled ${comp:-?}, graphed ${graphed:-?} img/s -> $best"
elif [ "$BENCH" = quick ]; then
  run python benchmarks/sampling_overhead.py --quick
fi

resume_flag=""
[ -n "$RESUME" ] && [ -e "$RESUME" ] && resume_flag="--resume $RESUME"
# Leave ~90 s for export and sampling after training stops.
minutes=$(python -c "print(max(0.5, ($BUDGET - $(elapsed) - 90) / 60))")
log "training for at most $minutes minutes $resume_flag $compile_flag"
run python -m pegasus_course.cli train --dataset folder --data-root "$DATA" --profile "$PROFILE" \
    --steps 1000000 --max-minutes "$minutes" ${BATCH:+--batch-size "$BATCH"} --lr "$LR" --out "$RUN" --no-progress \
    --sample-every 100000000 --checkpoint-every 100000000 $resume_flag $compile_flag

CK=$RUN/checkpoint.safetensors
if [ -f "$CK" ]; then
  run python -m pegasus_course.cli export "$CK" "$OUT/cifar10-horse-bird-32.safetensors" \
      --resume-shards "$OUT/resume" --max-shard-mib 15
  cp "$RUN/losses.json" "$OUT/losses.json"
  if [ "$PROFILE" = ci ]; then extra="--num-scales 12 --steps-each 1"; else extra=""; fi
  run python -m pegasus_course.cli sample --checkpoint "$OUT/cifar10-horse-bird-32.safetensors" --n 64 \
      --out "$RUN/samples" $extra
  cp "$RUN/samples/grid.png" "$OUT/samples.png"
  run python -m pegasus_course.cli pegasus --checkpoint "$OUT/cifar10-horse-bird-32.safetensors" --auto \
      --pairs 8 --n 15 --out "$RUN/pegasus" $extra
  cp "$RUN/pegasus/rows.png" "$OUT/pegasus_rows.png"
fi
log "leg done"
