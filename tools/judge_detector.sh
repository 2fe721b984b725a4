#!/usr/bin/env bash
# The figures the adoption rule of docs/HISTORY.md (2026-12-04) asks of a candidate detector,
# beside classifier-lite0-160-crops-m5 (the default classifier until 2026-12-08; CLS= names another):
# val real fields (0.5x / 1x / 1.5x) and val real mosaics
# (benchmarks/real.py), and m5 val composites 41 / 42 / 43 (benchmarks/detect.py), on all their
# images and on the images clause 5 is judged on since 2026-12-07 (tools/judge_composites_checked.sh).
# Writes benchmarks/results/{real-fields-val,real-mosaics-val,detect-val4N-m5,detect-val4N-m5-checked}-det-NAME.json.
#   bash tools/judge_detector.sh runs/detect/real-mix-cpu/weights/best.pt real-mix-cpu
#   CLS=runs/classify/X/weights/best.pt bash tools/judge_detector.sh DET NAME   (another classifier)
# The test split is never read.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DET=$1; NAME=$2
CLS=${CLS:-classifier-lite0-160-crops-m5}  # the classifier beside it
R=benchmarks/results
$PY benchmarks/real.py --data datasets/fields-val --detector "$DET" --classifier "$CLS" --out $R/real-fields-val-det-$NAME.json
$PY benchmarks/real.py --data datasets/mosaics-val --detector "$DET" --classifier "$CLS" --out $R/real-mosaics-val-det-$NAME.json
for s in 41 42 43; do
  $PY benchmarks/detect.py --data datasets/mix-val$s-m5 --split val --detector "$DET" \
    --classifier "$CLS" --scale-norm off --threads 2 \
    --cache-dir runs/deteval/boxes --out $R/detect-val$s-m5-det-$NAME.json
done
CLS="$CLS" REVIEWED= bash tools/judge_composites_checked.sh "$DET" "$NAME"
