#!/usr/bin/env bash
# One device call (<= 10 min) for issue 5 on a lent GPU: the CPU "crops rounds" at GPU scale.
#   1. composites from carried train/val cut-outs (seed $SEED), made on the device;
#   2. the crops `predict --scale-norm off` cuts from them (`mixmag pack-crops`: truth boxes with
#      detector-like edge jitter, margin 0.15, 160 px; no PBC folder on the device, so no PBC share);
#   3. side by side: two Lite0-160 crop classifiers fine-tuned from the released crops4 default
#      (A: the CPU recipe, stem + 3 stages frozen; B: every stage trainable, EMA), and the released
#      8-class YOLO11n fine-tuned on the new composites for $DMIN minutes;
#   4. fp16 weights, logs and metrics under $OUT, each copied as soon as its training ends.
# Trainings still running DEADLINE s after the start are stopped (best.pt is written at each best
# epoch, so a stopped run keeps its best so far). Candidates are judged afterwards on the CPU, on
# val composites 41/42/43, by the rule in docs/detect.md; the test split is never on the device.
#
#   carry .whl .bundle2;  run from the repo root:  MIXMAG_COMMIT=<sha> bash tools/gpu/crops_round.sh
#   TINY=1 bash tools/gpu/crops_round.sh     # the same steps on a CPU in a few minutes (dry run)
#   bash tools/gpu/crops_round.sh more       # second call on the same warm machine (nothing carried;
#                                            # TINY=1 ... more: its CPU dry run after a TINY=1 first call):
#       the fine-tuned detector 4.3 more minutes on the same composites, and a third classifier
#       (C: B's recipe for 10 epochs, 5 workers) on the same crops; brings back ft2.pt, crops-c.pt
set -u
case "${1:-}" in ""|more) ;; *) echo "usage: crops_round.sh [more]" >&2; exit 2;; esac
T0=$(date +%s)
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
W=${W:-/tmp/mixmag-crops}
case "$W" in /tmp/mixmag-*) ;; *) echo "W=$W: must be a /tmp/mixmag-* folder (it is wiped)" >&2; exit 2;; esac
[ "${1:-}" = more ] || rm -rf "$W"; mkdir -p "$W"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD YOLO_CONFIG_DIR=$W/yolo-config YOLO_OFFLINE=1
export MIXMAG_CACHE=$W/cache OMP_NUM_THREADS=2
PY=${PY:-python3}
SEED=${SEED:-31}
INIT=models/released/classifier-lite0-160-crops4/best.pt
DET=models/released/detector-yolo11n-640-8class/best.pt
if [ "${1:-}" = more ]; then
  ls $W/mix/data.yaml $W/crops160.npz $W/detect/yolo11n-640-ft/weights/best.pt || exit 1
  if [ "${TINY:-0}" = 1 ]; then  # the CPU dry run of the same commands
    M="--imgsz 256 --batch 4 --workers 0 --amp fp32 --device cpu"; MMIN=0.2; C="--batch 16 --device cpu --workers 0"; MEP=1
  else
    M="--imgsz 640 --batch 64 --workers 9 --amp bf16 --device 0"; MMIN=4.3; C="--batch 128 --device cuda --amp --workers 5"; MEP=10
  fi
  timeout 330 $PY tools/device_train_detector.py --data $W/mix/data.yaml --out $W/detect/ft2 \
    --model $W/detect/yolo11n-640-ft/weights/best.pt --minutes $MMIN $M --cache ram --bench-batches 1 --overwrite \
    > $W/ft2.log 2>&1 &
  dpid=$!
  timeout 320 $PY -m mixmag train-classifier --bundle $W/crops160.npz --init $INIT $C --warmup 0.05 \
    --scale-range 0.9 1.1 --scale-p 0.5 --label-smoothing 0.1 --patience 100 \
    --project $W/classify --no-test --epochs $MEP --lr 1e-4 --freeze-stages 0 --ema 0.998 --name crops-c --overwrite \
    > $W/crops-c.log 2>&1 &
  cpid=$!
  wait $dpid; echo "detector rc $?"; wait $cpid; echo "classifier rc $?"; echo "done at $(( $(date +%s) - T0 )) s"
  tr '\r' '\n' < $W/crops-c.log | grep -E "epoch|best.pt" | tail -4 | cut -c1-200; grep DEVICE_TRAIN $W/ft2.log | cut -c1-500
  [ -f $W/classify/crops-c/weights/best.pt ] && $PY -c "from mixmag.classify.checkpoint import half_checkpoint as h; h('$W/classify/crops-c/weights/best.pt', '$OUT/crops-c.pt', overwrite=True)"
  [ -f $W/detect/ft2/weights/best.pt ] && cp $W/detect/ft2/weights/best.pt $OUT/ft2.pt
  tar czf $OUT/logs2.tgz -C $W --exclude='*.pt' --exclude='*.npz' detect/ft2 classify/crops-c ft2.log crops-c.log
  exit 0
fi
if [ "${TINY:-0}" = 1 ]; then
  DEV=cpu; AMP=""; NTR=16; NVA=4; SW=2; EA=1; EB=1; CB=16; CW=0; DMIN=0.3; DB=4; DW=0; IMG=256
  DEADLINE=${DEADLINE:-900}; DAMP=fp32; DDEV=cpu
else
  DEV=cuda; AMP=--amp; NTR=${NTR:-5000}; NVA=300; SW=15; EA=${EA:-6}; EB=${EB:-6}; CB=128; CW=3
  DMIN=${DMIN:-5}; DB=64; DW=7; IMG=640; DEADLINE=${DEADLINE:-480}; DAMP=bf16; DDEV=0
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | grep -v -i "warning" | tail -3
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
el() { echo $(( $(date +%s) - T0 )); }
ep() { tr '\r' '\n' < "$1" 2>/dev/null | grep -c ': train loss'; }
last() { tr '\r' '\n' < "$1" | grep -v '^\s*$' | grep -v '%|' | tail -${2:-1} | cut -c1-240; }
$PY -c "import torch, timm, albumentations, ultralytics, cv2; print('torch', torch.__version__, 'timm', timm.__version__, 'albumentations', albumentations.__version__, 'ultralytics', ultralytics.__version__, 'cv2', cv2.__version__)" || exit 1
echo "commit ${MIXMAG_COMMIT:-unknown}; seed $SEED; $NTR + $NVA composites"

$PY -m mixmag synthesize --cutouts .bundle2/cutouts.npz --out $W/mix --n-train $NTR --n-val $NVA \
  --splits train val --seed $SEED --workers $SW --no-progress > $W/synth.log 2>&1 || { tail -5 $W/synth.log; exit 1; }
echo "composites made at $(el) s: $(tail -1 $W/synth.log | cut -c1-160)"

# the detector starts now; crops are packed beside it
$PY tools/device_train_detector.py --data $W/mix/data.yaml --out $W/detect/yolo11n-640-ft \
  --model $DET --minutes $DMIN --imgsz $IMG --batch $DB --workers $DW --cache ram --amp $DAMP \
  --device $DDEV --bench-batches 1,32 > $W/detect.log 2>&1 &
dpid=$!
$PY -m mixmag pack-crops $W/mix --out $W/crops160.npz --jitter 0.03 --size 160 --seed $SEED \
  --workers 8 --no-progress > $W/pack.log 2>&1 || { tail -5 $W/pack.log; kill $dpid; exit 1; }
echo "crops packed at $(el) s: $(tail -1 $W/pack.log | cut -c1-160)"

COMMON="--bundle $W/crops160.npz --init $INIT --batch $CB --warmup 0.05 --scale-range 0.9 1.1 --scale-p 0.5
  --label-smoothing 0.1 --device $DEV $AMP --workers $CW --patience 100 --project $W/classify --no-test"
$PY -m mixmag train-classifier $COMMON --epochs $EA --lr 2e-4 --freeze-stages 3 --name crops-a > $W/crops-a.log 2>&1 &
apid=$!
$PY -m mixmag train-classifier $COMMON --epochs $EB --lr 1e-4 --freeze-stages 0 --ema 0.998 --name crops-b > $W/crops-b.log 2>&1 &
bpid=$!

collect_cls() {  # fp16 copy of a finished classifier run + its records
  local n=$1 d=$W/classify/$1
  [ -f $d/weights/best.pt ] || { echo "$n: no best.pt"; return; }
  $PY -c "from mixmag.classify.checkpoint import half_checkpoint as h; h('$d/weights/best.pt', '$OUT/$n.pt', overwrite=True)"
  mkdir -p $OUT/$n; cp $d/args.yaml $d/results.csv $d/metrics.json $OUT/$n/ 2>/dev/null
}
collect_det() {
  local d=$W/detect/yolo11n-640-ft
  [ -f $d/weights/best.pt ] && cp $d/weights/best.pt $OUT/yolo11n-640-ft.pt
  mkdir -p $OUT/yolo11n-640-ft; cp $d/args.yaml $d/results.csv $d/mixmag_train.json $d/device_metrics.json \
    $d/weights/magnification.json $OUT/yolo11n-640-ft/ 2>/dev/null
}
done_a=0; done_b=0; done_d=0
while :; do
  kill -0 $apid 2>/dev/null || { [ $done_a = 0 ] && { wait $apid; echo "crops-a ended (rc $?) at $(el) s"; collect_cls crops-a; done_a=1; }; }
  kill -0 $bpid 2>/dev/null || { [ $done_b = 0 ] && { wait $bpid; echo "crops-b ended (rc $?) at $(el) s"; collect_cls crops-b; done_b=1; }; }
  kill -0 $dpid 2>/dev/null || { [ $done_d = 0 ] && { wait $dpid; echo "detector ended (rc $?) at $(el) s"; collect_det; done_d=1; }; }
  [ $((done_a + done_b + done_d)) = 3 ] && break
  if [ $(el) -ge $DEADLINE ]; then
    echo "deadline at $(el) s: stopping what still runs"
    [ $done_a = 0 ] && kill $apid; [ $done_b = 0 ] && kill $bpid; [ $done_d = 0 ] && kill $dpid
    wait 2>/dev/null  # ultralytics writes best.pt in place: copy only after it has exited
    [ $done_a = 0 ] && collect_cls crops-a; [ $done_b = 0 ] && collect_cls crops-b; [ $done_d = 0 ] && collect_det
    break
  fi
  sleep 5
  [ $(( $(el) % 30 )) -lt 5 ] && echo "t=$(el)s epochs: a $(ep $W/crops-a.log) b $(ep $W/crops-b.log); detector $(tail -n +2 $W/detect/yolo11n-640-ft/results.csv 2>/dev/null | wc -l)"
done
for n in crops-a crops-b; do echo "== $n"; last $W/$n.log 3; done
echo "== detector"; grep DEVICE_TRAIN $W/detect.log | tail -1 | cut -c1-600
tar czf $OUT/logs.tgz -C $W --exclude='*.pt' --exclude='*.npz' --exclude=mix --exclude=cache --exclude=yolo-config . 2>/dev/null
ls -la $OUT; echo "done in $(el) s"
