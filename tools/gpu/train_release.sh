#!/usr/bin/env bash
# Train the released models on a lent GPU machine, in two calls on one warm machine (see README,
# "Training on a GPU"). Two calls because one call carries at most 64 MiB of working tree:
#   phase a: carries .whl (ultralytics, albumentations, pycocotools wheels), .bundle (train+val
#            PBC images as 224 px WebP, Lite2 ImageNet weights fp16); installs the wheels and starts
#            the Lite2 classifier under setsid, so it runs on after the call returns.
#   phase b: carries .bundle2 (cell cut-outs of train+val sources, Lite0 ImageNet weights fp16);
#            makes composites on the device, trains the YOLO detector and the Lite0 classifier,
#            waits for Lite2, and puts fp16 weights + logs under $OUT.
# TINY=1 runs the same steps on the CPU in a minute or two (the dry run before spending GPU time).
set -u
phase=${1:?usage: train_release.sh a|b}
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
W=/tmp/mixmag-gpu; mkdir -p $W
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD YOLO_CONFIG_DIR=$W/yolo-config YOLO_OFFLINE=1
export MIXMAG_CACHE=$W/cache
PY=${PY:-python3}
if [ "${TINY:-0}" = 1 ]; then
  DEV=cpu; AMP=""; E2=1; E0=1; NTR=24; NVA=6; MIN=0.3; DBATCH=4; CBATCH=32; IMG=256; CW=1; DW=1; LIM="--per-class 12"
else
  DEV=cuda; AMP=--amp; E2=40; E0=30; NTR=3000; NVA=300; MIN=4; DBATCH=64; CBATCH=128; IMG=640; CW=5; DW=8; LIM=""
fi

if [ "$phase" = a ]; then
  if [ "${TINY:-0}" != 1 ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  fi
  $PY -c "import torch, timm, albumentations, ultralytics, pycocotools; print('torch', torch.__version__, 'timm', timm.__version__, 'albumentations', albumentations.__version__, 'ultralytics', ultralytics.__version__)" || exit 1
  rm -rf $W/classify/lite2-224
  setsid nohup $PY -m mixmag train-classifier --bundle .bundle/cells224.npz \
    --backbone efficientnet_lite2 --weights .bundle/lite2_fp16.pt --imgsz 224 --epochs $E2 \
    --batch $CBATCH --lr 1e-3 --label-smoothing 0.1 --scale-range 0.5 1.5 --scale-p 0.5 --ema 0.998 --patience 12 \
    --device $DEV $AMP --workers $CW $LIM --project $W/classify --name lite2-224 --no-test \
    > $W/lite2.log 2>&1 < /dev/null &
  sleep ${WAIT_A:-40}; tr '\r' '\n' < $W/lite2.log | grep -v '^\s*$' | tail -4
  exit 0
fi

# phase b
t0=$(date +%s)
rm -rf $W/mix $W/detect $W/classify/lite0-160
$PY -m mixmag synthesize --cutouts .bundle2/cutouts.npz --out $W/mix --n-train $NTR --n-val $NVA \
  --splits train val --seed 1 --workers 12 --no-progress > $W/synth.log 2>&1 || { tail -5 $W/synth.log; exit 1; }
echo "composites made in $(( $(date +%s) - t0 )) s"; tail -2 $W/synth.log
$PY -m mixmag train-classifier --bundle .bundle/cells224.npz --backbone efficientnet_lite0 \
  --weights .bundle2/lite0_fp16.pt --imgsz 160 --epochs $E0 --batch $CBATCH --lr 1.5e-3 \
  --label-smoothing 0.1 --scale-range 0.5 1.5 --scale-p 0.5 --ema 0.998 --patience 12 --device $DEV $AMP --workers 4 $LIM \
  --project $W/classify --name lite0-160 --no-test > $W/lite0.log 2>&1 &
lite0=$!
$PY tools/device_train_detector.py --data $W/mix/data.yaml --out $W/detect/yolo11n-640 \
  --model models/yolo11n-mixmag.yaml --minutes $MIN --imgsz $IMG --batch $DBATCH --workers $DW \
  --cache ram --amp $([ $DEV = cuda ] && echo bf16 || echo fp32) --device $([ $DEV = cuda ] && echo 0 || echo cpu) \
  --bench-batches 1,8,32 > $W/detect.log 2>&1
echo "detector done: $(grep DEVICE_TRAIN $W/detect.log | tail -1)"
wait $lite0
# Lite2 was started by phase a; give it until the call's budget allows
for i in $(seq 1 ${WAIT_B:-60}); do pgrep -f "name lite2-224" >/dev/null || break; sleep 5; done
for n in lite2 lite0; do echo "== $n"; tr '\r' '\n' < $W/$n.log | grep -v '^\s*$' | tail -3; done
# fp16 weights travel back (a file may be at most 16 MiB); logs and metrics in one archive
$PY - <<PYEOF
import torch, shutil
from pathlib import Path
W = Path("$W"); out = Path("$OUT")
for name in ("lite2-224", "lite0-160"):
    p = W / "classify" / name / "weights" / "best.pt"
    if p.is_file():
        ck = torch.load(p, map_location="cpu", weights_only=True)
        ck["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["state_dict"].items()}
        ck.pop("train_state", None)
        torch.save(ck, out / f"{name}.pt")
p = W / "detect" / "yolo11n-640" / "weights" / "best.pt"
if p.is_file():
    shutil.copy(p, out / "yolo11n-640.pt")
PYEOF
tar czf $OUT/logs.tgz -C $W --exclude='*.pt' --exclude=mix --exclude=cache --exclude=yolo-config . 2>/dev/null
ls -la $OUT; echo "phase b took $(( $(date +%s) - t0 )) s"
