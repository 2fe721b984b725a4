#!/usr/bin/env bash
# The CPU rounds that mix composites into real training (2026-12-07, candidates D and E in
# docs/HISTORY.md; about 75 minutes on a 2-core CPU, plus ~35 for E's canvases; start one in the
# background: `nohup bash tools/real_mix_cpu.sh > runs/real-mix-cpu.log 2>&1 &`):
#   1. 1,000 m5 train composites (the generator's default, 0.5x / 1x / 1.5x, seed 13) beside
#      REAL=mosaics (D, default): the 2,000 real train mosaics of tools/real_round_cpu.sh (made
#      there if missing), or REAL=smear (E): 2,000 smear canvases (`mixmag fields --layout smear
#      --paste 3 8`, the same scales, seed 17);
#   2. the nine-class detector trained on reality (real-smear-cpu, from that script) trained
#      $MIN more minutes on both (a new cosine schedule from its weights), `--augment smear`.
# Candidate F: INIT=runs/detect/real-mix-cpu/weights/best.pt COMP=2 NAME=real-mix-cpu2 MIN=75
# continues D with a second 1,000 composites (seed 14), so composites are half the images.
# Candidate H: INIT=runs/detect/real-mix-cpu3/weights/best.pt COMP=2 SEED=15 CHECK=1
# NAME=real-mix-cpu4 MIN=60: composites made with `synthesize --mask-check` (cut-outs whose mask
# OI-PBC disputes left out; folders mix-trainN-m5c). Candidate I: INIT=runs/detect/real-mix-cpu4/
# weights/best.pt COMP=4 SEED=15 CHECK=1 NAME=real-mix-cpu5 MIN=35. Candidate K: INIT=runs/detect/
# real-mix-cpu5/weights/best.pt COMP=4 SEED=15 CHECK=1 NAME=real-mix-cpu6 MIN=50. Candidate U:
# I's run again at IMGSZ=800 (the 1,024 canvas letterboxed to 800, not 640: small cells 1.25x
# larger at 1.56x the cost): INIT=runs/detect/real-mix-cpu5/weights/best.pt COMP=4 SEED=15 CHECK=1
# IMGSZ=800 NAME=real-mix-cpu7-800 MIN=100.
# The composites keep the detector's cut-out cells on drawn backgrounds (real-smear-cpu, trained on
# real mosaics alone, missed many, small ones most); their drawn red cells carry no box, as in
# every composite the default detector trained on. Judged by the rule in docs/HISTORY.md with
# benchmarks/real.py and benchmarks/detect.py; the test split is never read.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MIN=${MIN:-60}
IMGSZ=${IMGSZ:-640}  # the network's input side; the training canvas stays 1,024
SPLIT=datasets/pbc-split.csv
INIT=${INIT:-runs/detect/real-smear-cpu/weights/best.pt}
REAL=${REAL:-mosaics}
COMP=${COMP:-1}  # sets of 1,000 m5 train composites (seeds SEED, SEED + 1, ...)
SEED=${SEED:-13}
CHECK=${CHECK:-0}  # 1: composites from checked cut-outs only (synthesize --mask-check)
SCALES="0.35 0.5 0.5 0.75 1 1 1.25 1.5 1.5 2 2.5"
export YOLO_OFFLINE=1
mm() { $PY -m mixmag "$@"; }
[ -d datasets/mosaics-train ] || bash tools/real_round_cpu.sh
case $REAL in
  mosaics) TRAIN=datasets/mosaics-train; NAME=${NAME:-real-mix-cpu} ;;
  smear) TRAIN=datasets/smear-train; NAME=${NAME:-real-smear-mix-cpu}
    [ -d $TRAIN ] || mm fields --split $SPLIT --out $TRAIN --splits train --scales $SCALES \
      --mosaics 2000 --layout smear --paste 3 8 --mask-version m5 --cache datasets/.cache \
      --seed 17 --no-progress ;;
  *) echo "REAL=$REAL: mosaics or smear" >&2; exit 2 ;;
esac
COMPOSITES=""
for ((k = 0; k < COMP; k++)); do
  s=$((SEED + k))
  if [ "$CHECK" = 1 ]; then D=datasets/mix-train$s-m5c; X=--mask-check; else D=datasets/mix-train$s-m5; X=; fi
  [ -d $D ] || mm synthesize --split $SPLIT --out $D $X \
    --n-train 1000 --splits train --seed $s --cache datasets/.cache --mask-version m5 --no-progress
  COMPOSITES="$COMPOSITES
  - $PWD/$D/images/train"
done
# one data.yaml naming both train folders; ultralytics validates on the real val mosaics
mkdir -p datasets/$NAME
cat > datasets/$NAME/data.yaml <<YAML
path: $PWD/datasets
train:
  - $PWD/$TRAIN/images/train$COMPOSITES
val: $PWD/datasets/mosaics-val/images/val
YAML
sed -n '/^names:/,$p' datasets/mosaics-train/data.yaml >> datasets/$NAME/data.yaml
[ -n "${DATA_ONLY:-}" ] && exit 0
mm train-detector --data datasets/$NAME/data.yaml --model "$INIT" \
  --imgsz $IMGSZ --time $MIN --batch 16 --device cpu --workers 2 --cache ram --augment smear \
  --name $NAME --set warmup_epochs=0.5 close_mosaic=1
echo "done: runs/detect/$NAME/weights/best.pt"
