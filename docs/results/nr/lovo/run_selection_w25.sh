#!/bin/bash
# Issue 22 width selection on the held-out folds: width 0.25 (vs the shipped 0.125), 3 epochs, seed 0.
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
while pgrep -f "runs-e6/s0/unseen" > /dev/null; do sleep 10; done
COMMON="--epochs 3 --frame-step 16 --variant-step 1 --width 0.25 --batch-size 32 --crops 2 --lr 1e-3 --workers 0 --quiet"
for fold in car-detection bottle-detection vtest; do echo "0 $fold"; done | xargs -P 2 -L 1 bash -c '
  seed=$0; fold=$1; mkdir -p /work/nr/runs-w25/s$seed
  t0=$(date +%s)
  nice -n 19 dctqa train-nr /work/nr/data --split unseen --fold $fold --seed $seed --out /work/nr/runs-w25/s$seed/unseen-$fold.pt '"$COMMON"' --resume \
     > /work/nr/runs-w25/s$seed/unseen-$fold.log 2>&1
  echo "$(date -u +%H:%M:%S) w25 seed $seed $fold rc $? $(( $(date +%s) - t0 )) s" >> /work/nr/runs-w25/done.txt'
