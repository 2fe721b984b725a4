#!/usr/bin/env bash
# Two-stage pipeline on test composites: a detector + one classifier, scale-norm on and off, then
# `mixmag report`. Models are zoo names (`mixmag models`) or weights files.
# Usage: benchmarks/domain_eval.sh NAME CLASSIFIER LIST TRUTH
# e.g. benchmarks/domain_eval.sh lite0 classifier-lite0-160-crops-m5 runs/eval/test80.txt runs/eval/truth80/cells.csv
# DETECTOR=FILE runs another detector (default: the zoo's default one; the one-class cell detector
# these runs first used is archived: `mixmag models --all` names the commit that holds it).
set -euo pipefail
name=$1 clf=$2 list=$3 truth=$4
det=${DETECTOR:-detector-yolo11n-640-8class-ft}
py=${PYTHON:-python}
for sn in on off; do
  out=runs/eval/pred-$name-$sn
  /usr/bin/time -f "%e s wall" $py -m mixmag predict "$list" --detector "$det" --classifier "$clf" \
      --scale-norm $sn --no-draw --no-progress --out "$out" --overwrite
  $py -m mixmag report --truth "$truth" --pred "$out" --out runs/eval/report-$name-$sn \
      --bootstrap 0 --no-coco --overwrite --images-dir datasets/mix-test
done
