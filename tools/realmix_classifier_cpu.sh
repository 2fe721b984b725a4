#!/usr/bin/env bash
# A crop classifier that has seen real neighbours and composite cut-outs alike (candidates P and Q
# of docs/HISTORY.md, 2026-12-07): one bundle of the crops predict cuts from real train/val
# mosaics and from checked m5 composites (+ 30 % whole PBC images), then classifier-lite0-160-crops-m5
# fine-tuned on it for 3 epochs with candidate J's recipe. About 40 minutes on a 2-core CPU:
#   nohup bash tools/realmix_classifier_cpu.sh > runs/realmix-classifier.log 2>&1 &
# Needs the PBC folder and the OI-PBC labels (../shared/data or $MIXMAG_PBC / $MIXMAG_OI_PBC);
# the test split is never read.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SPLIT=datasets/pbc-split.csv
mm() { $PY -m mixmag "$@"; }
[ -d datasets/mosaics-crops ] || mm fields --split $SPLIT --out datasets/mosaics-crops --splits train val \
  --scales 0.35 0.5 0.5 0.75 1 1 1.25 1.5 1.5 2 2.5 --mosaics 1500 --seed 11 --no-progress
[ -d datasets/mix-trainval33-m5c ] || mm synthesize --split $SPLIT --out datasets/mix-trainval33-m5c \
  --n-train 1500 --n-val 300 --splits train val --seed 33 --mask-version m5 --mask-check --no-progress
[ -f datasets/crops-realmix-160.npz ] || mm pack-crops datasets/mosaics-crops datasets/mix-trainval33-m5c \
  --out datasets/crops-realmix-160.npz --pbc-split $SPLIT --pbc-share 0.3 --jitter 0.03 --size 160 \
  --seed 5 --workers 2 --no-progress
OMP_NUM_THREADS=2 mm train-classifier --bundle datasets/crops-realmix-160.npz \
  --init classifier-lite0-160-crops-m5 --epochs 3 --batch 32 --lr 7e-5 --warmup 0.05 \
  --freeze-stages 3 --scale-range 0.9 1.1 --scale-p 0.5 --label-smoothing 0.1 --augment smear \
  --no-test --name lite0-160-crops-realmix
echo "done: runs/classify/lite0-160-crops-realmix/weights/best.pt"
