#!/usr/bin/env bash
# The CPU round for real smears, as run on 2026-12-07 on a 2-core CPU (about 2 hours; start it in
# the background: `nohup bash tools/real_round_cpu.sh > runs/real-round-cpu.log 2>&1 &`):
#   1. real mosaics: 2,000 train (fields at 0.35x-2.5x) and 300 val (0.5x, 1x, 1.5x), and
#      1,500 + 1,500 more of other draws for the classifier's crops;
#   2. the nine-class detector (the eight + rbc) fine-tuned from detector-yolo11n-640-8class-ft with
#      `--augment smear` for $MIN minutes (70: four epochs here);
#   3. the crops predict cuts from the crop mosaics (red cells left out, + 30 % whole PBC images)
#      and classifier-lite0-160-crops-m5 fine-tuned on them for 3 epochs with `--augment smear`.
# Candidates are then judged by the rule in docs/HISTORY.md with benchmarks/real.py (val fields
# and val mosaics) and benchmarks/detect.py (m5 val composites); the test split is never read.
# Needs the PBC folder and the OI-PBC labels (../shared/data or $MIXMAG_PBC / $MIXMAG_OI_PBC).
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MIN=${MIN:-70}
SPLIT=datasets/pbc-split.csv
SCALES="0.35 0.5 0.5 0.75 1 1 1.25 1.5 1.5 2 2.5"
export YOLO_OFFLINE=1
mm() { $PY -m mixmag "$@"; }
[ -d datasets/mosaics-train ] || mm fields --split $SPLIT --out datasets/mosaics-train --splits train \
  --scales $SCALES --mosaics 2000 --seed 7 --no-progress
[ -d datasets/mosaics-val ] || mm fields --split $SPLIT --out datasets/mosaics-val --splits val \
  --scales 0.5 1 1.5 --mosaics 300 --no-progress
[ -d datasets/mosaics-crops ] || mm fields --split $SPLIT --out datasets/mosaics-crops --splits train val \
  --scales $SCALES --mosaics 1500 --seed 11 --no-progress
# ultralytics validates on the val mosaics (the train dataset's own data.yaml names train twice)
sed -i "s#^val: .*#val: $PWD/datasets/mosaics-val/images/val#" datasets/mosaics-train/data.yaml
mm train-detector --data datasets/mosaics-train/data.yaml --model detector-yolo11n-640-8class-ft \
  --imgsz 640 --time $MIN --batch 16 --device cpu --workers 2 --cache ram --augment smear \
  --name real-smear-cpu --set warmup_epochs=1 close_mosaic=1
[ -f datasets/crops-real-160.npz ] || mm pack-crops datasets/mosaics-crops --out datasets/crops-real-160.npz \
  --pbc-split $SPLIT --pbc-share 0.3 --jitter 0.03 --size 160 --seed 5 --workers 2 --no-progress
OMP_NUM_THREADS=2 mm train-classifier --bundle datasets/crops-real-160.npz \
  --init classifier-lite0-160-crops-m5 --epochs 3 --batch 32 --lr 7e-5 --warmup 0.05 \
  --freeze-stages 3 --scale-range 0.9 1.1 --scale-p 0.5 --label-smoothing 0.1 --augment smear \
  --no-test --name lite0-160-crops-real
echo "done: runs/detect/real-smear-cpu/weights/best.pt, runs/classify/lite0-160-crops-real/weights/best.pt"
