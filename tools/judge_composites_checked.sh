#!/usr/bin/env bash
# Clause 5 of the adoption rule over checked composites (docs/HISTORY.md, 2026-12-07 "composite
# truth checked against OI-PBC"): m5 val composites 41 / 42 / 43 with --mask-check, a detector
# beside classifier-lite0-160-crops-m5 (the default classifier until 2026-12-08; CLS= names another).
# Writes benchmarks/results/detect-val4N-m5-checked-det-NAME.json.
# REVIEWED=CSV also leaves out the images a blind review found the truth wrong in (HISTORY,
# 2026-12-07 "composite truth reviewed"): detect-val4N-m5-reviewed-det-NAME.json.
#   bash tools/judge_composites_checked.sh detector-yolo11n-640-8class-ft default
#   REVIEWED=benchmarks/truth/m5-val-review.csv bash tools/judge_composites_checked.sh DET NAME
#   ZOOM=0.75 CLS=... bash tools/judge_composites_checked.sh DET NAME   (the pair with --zoom-below)
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DET=$1; NAME=$2
CLS=${CLS:-classifier-lite0-160-crops-m5}  # the classifier beside it
REVIEWED=${REVIEWED:-}
ZOOM=${ZOOM:-}  # predict's --zoom-below for the pair (empty: one pass)
EXTRA=(); KIND=checked
if [ -n "$REVIEWED" ]; then EXTRA=(--reviewed "$REVIEWED"); KIND=reviewed; fi
if [ -n "$ZOOM" ]; then EXTRA+=(--zoom-below "$ZOOM"); fi
for s in 41 42 43; do
  $PY benchmarks/detect.py --data datasets/mix-val$s-m5 --split val --detector "$DET" \
    --classifier "$CLS" --scale-norm off --threads 2 --mask-check \
    ${EXTRA[@]+"${EXTRA[@]}"} --cache-dir runs/deteval/boxes --out benchmarks/results/detect-val$s-m5-$KIND-det-$NAME.json
done
