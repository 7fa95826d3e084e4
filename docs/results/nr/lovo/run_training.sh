#!/bin/bash
# Issue 22's models: LOVO fold models (3 folds x 3 seeds) and the default model (split all),
# extras included, two runs at a time, one thread each, nice 10.
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
COMMON="--epochs 3 --frame-step 16 --variant-step 1 --width 0.125 --batch-size 32 --crops 2 --lr 1e-3 --workers 0 --quiet"
{
  for fold in car-detection bottle-detection vtest; do echo "0 unseen $fold"; done
  echo "0 all all"
  for seed in 1 2; do for fold in car-detection bottle-detection vtest; do echo "$seed unseen $fold"; done; done
} | xargs -P 2 -L 1 bash -c '
  seed=$0; split=$1; fold=$2; mkdir -p /work/nr/runs/s$seed
  if [ "$split" = all ]; then name=all; extra=""; else name=unseen-$fold; extra="--fold $fold"; fi
  t0=$(date +%s)
  nice -n 10 dctqa train-nr /work/nr/data --split $split $extra --seed $seed --out /work/nr/runs/s$seed/$name.pt '"$COMMON"' --resume \
     > /work/nr/runs/s$seed/$name.log 2>&1
  echo "$(date -u +%H:%M:%S) seed $seed $name rc $? $(( $(date +%s) - t0 )) s" >> /work/nr/runs/done.txt'
