#!/bin/bash
# Issue 22 epochs selection on the held-out folds: width 0.125, 6 epochs (vs the shipped 3), seed 0.
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
COMMON="--epochs 6 --frame-step 16 --variant-step 1 --width 0.125 --batch-size 32 --crops 2 --lr 1e-3 --workers 0 --quiet"
for fold in car-detection bottle-detection vtest; do echo "0 $fold"; done | xargs -P 2 -L 1 bash -c '
  seed=$0; fold=$1; mkdir -p /work/nr/runs-e6/s$seed
  t0=$(date +%s)
  nice -n 19 dctqa train-nr /work/nr/data --split unseen --fold $fold --seed $seed --out /work/nr/runs-e6/s$seed/unseen-$fold.pt '"$COMMON"' --resume \
     > /work/nr/runs-e6/s$seed/unseen-$fold.log 2>&1
  echo "$(date -u +%H:%M:%S) e6 seed $seed $fold rc $? $(( $(date +%s) - t0 )) s" >> /work/nr/runs-e6/done.txt'
