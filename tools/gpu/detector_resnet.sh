#!/usr/bin/env bash
# Issue 5 (c) at full scale, one device call: YOLO11n and the same head on a ResNet-style backbone
# (models/yolo11n-resnet-mixmag.yaml), side by side on one GPU, so both get the same minutes
# under the same load. The recipe is the released detector's (3,000 + 300 composites made on the
# device from carried cut-outs, seed 1, imgsz 640, batch 64, bf16, AdamW, 4 minutes each; the
# released run shared its GPU with a classifier too), and the val composites are the released
# run's (same seed). Compare the two device_metrics.json files: final val mAP, epochs done,
# training images/s, detector images/s (timed while the other model still runs: compare them, do
# not quote them as speeds).
#   carry: .whl (ultralytics, albumentations, pycocotools wheels) and .bundle2/cutouts.npz (cell
#   cut-outs of the train+val sources, see train_release.sh). The tracked *.pt files (~49 MB) and
#   the carry (~55 MB) pass 64 MiB together: move the *.pt files aside for the call (none is used).
#   MIXMAG_COMMIT=<sha> bash tools/gpu/detector_resnet.sh
# Brings back both detectors' best.pt, their device_metrics.json, results.csv, args.yaml, and logs.
# TINY=1 runs the same steps on the CPU in a few minutes (the dry run before spending GPU time).
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
W=/tmp/mixmag-gpu; mkdir -p $W
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD YOLO_CONFIG_DIR=$W/yolo-config YOLO_OFFLINE=1
export MIXMAG_CACHE=$W/cache
PY=${PY:-python3}
t0=$(date +%s)
# logs come back whatever happens below
trap 'tar czf $OUT/logs.tgz -C $W --exclude="*.pt" --exclude=mix --exclude=cache --exclude=yolo-config . 2>/dev/null; ls -la $OUT; echo "took $(( $(date +%s) - t0 )) s"' EXIT
if [ "${TINY:-0}" = 1 ]; then
  DEV=cpu; AMP=fp32; NTR=16; NVA=4; MIN=0.3; BATCH=4; IMG=256; WK=1; BENCH=1
else
  DEV=0; AMP=bf16; NTR=3000; NVA=300; MIN=4; BATCH=64; IMG=640; WK=6; BENCH=1,8,32
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
rm -rf $W/mix $W/detect
$PY -m mixmag synthesize --cutouts .bundle2/cutouts.npz --out $W/mix --n-train $NTR --n-val $NVA \
  --splits train val --seed 1 --workers 12 --no-progress > $W/synth.log 2>&1 || { tail -5 $W/synth.log; exit 1; }
echo "composites made in $(( $(date +%s) - t0 )) s"
pids=()
for m in yolo11n yolo11n-resnet; do
  $PY tools/device_train_detector.py --data $W/mix/data.yaml --out $W/detect/$m-640 \
    --model models/$m-mixmag.yaml --minutes $MIN --imgsz $IMG --batch $BATCH --workers $WK \
    --cache ram --amp $AMP --device $DEV --bench-batches $BENCH > $W/$m.log 2>&1 &
  pids+=($!)
done
STATUS=0
for p in "${pids[@]}"; do wait $p || STATUS=1; done
for m in yolo11n yolo11n-resnet; do
  echo "== $m: $(grep DEVICE_TRAIN $W/$m.log | tail -1)"
  D=$W/detect/$m-640
  if [ -f $D/weights/best.pt ]; then
    mkdir -p $OUT/$m && cp $D/weights/best.pt $OUT/$m-640.pt && cp $D/device_metrics.json $D/results.csv $D/args.yaml $OUT/$m/
  else
    tail -20 $W/$m.log; STATUS=1
  fi
done
exit $STATUS
