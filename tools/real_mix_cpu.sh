#!/usr/bin/env bash
# The CPU round that mixes composites into real training (2026-12-07, candidate D in
# docs/HISTORY.md; about 75 minutes on a 2-core CPU; start it in the background:
# `nohup bash tools/real_mix_cpu.sh > runs/real-mix-cpu.log 2>&1 &`):
#   1. 1,000 m5 train composites (the generator's default, 0.5x / 1x / 1.5x, seed 13) beside the
#      2,000 real train mosaics of tools/real_round_cpu.sh (made there if missing);
#   2. the nine-class detector trained on reality (real-smear-cpu, from that script) trained
#      $MIN more minutes on both (a new cosine schedule from its weights), `--augment smear`.
# The composites keep the detector's cut-out cells on drawn backgrounds (real-smear-cpu, trained on
# real mosaics alone, missed many, small ones most); their drawn red cells carry no box, as in
# every composite the default detector trained on. Judged by the rule in docs/HISTORY.md with
# benchmarks/real.py and benchmarks/detect.py; the test split is never read.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MIN=${MIN:-60}
SPLIT=datasets/pbc-split.csv
INIT=${INIT:-runs/detect/real-smear-cpu/weights/best.pt}
export YOLO_OFFLINE=1
mm() { $PY -m mixmag "$@"; }
[ -d datasets/mosaics-train ] || bash tools/real_round_cpu.sh
[ -d datasets/mix-train13-m5 ] || mm synthesize --split $SPLIT --out datasets/mix-train13-m5 \
  --n-train 1000 --splits train --seed 13 --cache datasets/.cache --mask-version m5 --no-progress
# one data.yaml naming both train folders; ultralytics validates on the real val mosaics
mkdir -p datasets/real-mix
cat > datasets/real-mix/data.yaml <<YAML
path: $PWD/datasets
train:
  - $PWD/datasets/mosaics-train/images/train
  - $PWD/datasets/mix-train13-m5/images/train
val: $PWD/datasets/mosaics-val/images/val
YAML
sed -n '/^names:/,$p' datasets/mosaics-train/data.yaml >> datasets/real-mix/data.yaml
mm train-detector --data datasets/real-mix/data.yaml --model "$INIT" \
  --imgsz 640 --time $MIN --batch 16 --device cpu --workers 2 --cache ram --augment smear \
  --name real-mix-cpu --set warmup_epochs=0.5 close_mosaic=1
echo "done: runs/detect/real-mix-cpu/weights/best.pt"
