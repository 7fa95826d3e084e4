#!/bin/bash
# The four training runs behind docs/results/nr (2-core CPU shared with other jobs; each run
# one thread, nice 10, all four side by side: seen and unseen-vtest started at 16:13 UTC,
# unseen-car-detection and unseen-bottle-detection at 16:21). Run from the repository root
# after `dctqa nr-data` (see README.md here).
export OMP_NUM_THREADS=1
DATA=${DATA:-/work/nr_study}
OUT=${OUT:-/work/nr_runs}
COMMON="--epochs 3 --frame-step 8 --variant-step 1 --width 0.125 --batch-size 32 --crops 2 --lr 1e-3 --workers 0 --seed 0 --quiet"
nice -n 10 dctqa train-nr $DATA --split seen --out $OUT/seen.pt $COMMON &
for fold in vtest car-detection bottle-detection; do
  nice -n 10 dctqa train-nr $DATA --split unseen --fold $fold --out $OUT/unseen-$fold.pt $COMMON &
done
wait

# The runs above were stopped after epoch 1 (deadline). Epochs 2 and 3 were run later with
# --resume on the otherwise idle machine (same settings, so --resume accepts the checkpoints),
# two runs at a time, one thread each: first epoch 2 of every run, then epoch 3.
# e.g. dctqa train-nr $DATA --split seen --out $OUT/seen.pt --resume $COMMON

# --- Extra training-only content (docs/results/nr/extra/) and the leaky random split
# (docs/results/nr/random/), same settings, one thread each, nice 10, at most two at a time.
# Data: a hard-link copy of the folder above (its encodes reused), plus pan clips over the 8
# bundled scikit-image photographs (40 frames each, 25 variants, scored by the score stage):
#   cp -al /work/nr_study /work/nr_study_extra
#   dctqa nr-data ../shared/videos/vtest.avi ../shared/videos/car-detection.mp4 \
#       ../shared/videos/bottle-detection.mp4 --out /work/nr_study_extra \
#       --labels docs/results/frames.csv --extra-skimage all --extra-frames 40
EXTRA_DATA=${EXTRA_DATA:-/work/nr_study_extra}
EXTRA_OUT=${EXTRA_OUT:-/work/nr_runs/extra}
nice -n 10 dctqa train-nr $DATA --split random --out $EXTRA_OUT/random.pt $COMMON &
for fold in vtest car-detection bottle-detection; do   # two at a time in the real run (see extra/README)
  nice -n 10 dctqa train-nr $EXTRA_DATA --split unseen --fold $fold --out $EXTRA_OUT/extra-unseen-$fold.pt $COMMON
done &
wait

# Seed check of the extra-content ablation (docs/results/nr/extra/seed1/): every fold trained
# again with and without the extra content at --seed 1 (otherwise COMMON), two at a time.
SEED1="${COMMON/--seed 0/--seed 1}"
for fold in bottle-detection car-detection vtest; do
  nice -n 10 dctqa train-nr $DATA --split unseen --fold $fold --out $EXTRA_OUT/seed1/unseen-$fold.pt $SEED1 &
  nice -n 10 dctqa train-nr $EXTRA_DATA --split unseen --fold $fold --out $EXTRA_OUT/seed1/extra-unseen-$fold.pt $SEED1 &
  wait
done
