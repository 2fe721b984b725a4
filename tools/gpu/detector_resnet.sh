#!/usr/bin/env bash
# Issue 5 (c) at full scale, one device call: the ResNet-style backbone (models/yolo11n-resnet-mixmag.yaml)
# trained with the released detector's exact recipe (3,000 + 300 composites, seed 1, imgsz 640,
# batch 64, 4 minutes, bf16, AdamW), so its final val figures compare one to one with
# models/released/detector-yolo11n-640-8class/device_metrics.json (same val composites: same seed).
# Carry .whl (ultralytics, albumentations, pycocotools wheels) and .bundle2 (cell cut-outs of the
# train+val sources; see train_release.sh). Move the tracked *.pt files aside first if the tree
# plus carry would pass 64 MiB. Brings back the detector weights, device_metrics.json, logs.
# TINY=1 runs the same steps on the CPU in about two minutes (the dry run before spending GPU time).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
W=/tmp/mixmag-gpu; mkdir -p $W
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD YOLO_CONFIG_DIR=$W/yolo-config YOLO_OFFLINE=1
export MIXMAG_CACHE=$W/cache
PY=${PY:-python3}
if [ "${TINY:-0}" = 1 ]; then
  DEV=cpu; AMP=fp32; NTR=16; NVA=4; MIN=0.3; BATCH=4; IMG=256; WK=1; BENCH=1
else
  DEV=0; AMP=bf16; NTR=3000; NVA=300; MIN=4; BATCH=64; IMG=640; WK=8; BENCH=1,8,32
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
t0=$(date +%s)
rm -rf $W/mix $W/detect
$PY -m mixmag synthesize --cutouts .bundle2/cutouts.npz --out $W/mix --n-train $NTR --n-val $NVA \
  --splits train val --seed 1 --workers 12 --no-progress > $W/synth.log 2>&1 || { tail -5 $W/synth.log; exit 1; }
echo "composites made in $(( $(date +%s) - t0 )) s"
$PY tools/device_train_detector.py --data $W/mix/data.yaml --out $W/detect/yolo11n-resnet-640 \
  --model models/yolo11n-resnet-mixmag.yaml --minutes $MIN --imgsz $IMG --batch $BATCH --workers $WK \
  --cache ram --amp $AMP --device $DEV --bench-batches $BENCH > $W/detect.log 2>&1 \
  || { tail -20 $W/detect.log; exit 1; }
grep DEVICE_TRAIN $W/detect.log | tail -1
D=$W/detect/yolo11n-resnet-640
cp $D/weights/best.pt $OUT/yolo11n-resnet-640.pt && cp $D/device_metrics.json $D/results.csv $D/args.yaml $OUT/ \
  || { echo "no weights or metrics came out of the run"; exit 1; }
tar czf $OUT/logs.tgz -C $W --exclude='*.pt' --exclude=mix --exclude=cache --exclude=yolo-config . 2>/dev/null
ls -la $OUT; echo "took $(( $(date +%s) - t0 )) s"
