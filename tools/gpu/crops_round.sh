#!/usr/bin/env bash
# One device call (<= 10 min) for issue 5 on a lent GPU: the CPU "crops rounds" at GPU scale.
#   1. composites from carried train/val cut-outs (seed $SEED), made on the device;
#   2. the crops `predict --scale-norm off` cuts from them (`mixmag pack-crops`: truth boxes with
#      detector-like edge jitter, margin 0.15, 160 px; no PBC folder on the device, so no PBC share);
#   3. side by side: two Lite0-160 crop classifiers fine-tuned from $INIT (the default classifier)
#      (A: the CPU recipe, stem + 3 stages frozen; B: every stage trainable, EMA), and the 8-class
#      YOLO11n $DET (the default detector) fine-tuned on the new composites for $DMIN minutes;
#   4. weights (classifiers fp16) under $OUT, each copied as soon as its training ends; records
#      and logs in one tarball.
# Trainings still running DEADLINE s after the start (480; 330 for 'more') are stopped (best.pt is
# written at each best epoch, so a stopped run keeps its best so far). Candidates are judged
# afterwards on the CPU, on val composites 41/42/43, by the rule in docs/detect.md (benchmarks/
# select_pair.py); the test split is never on the device.
#
#   carry .whl .bundle2;  run from the repo root:  MIXMAG_COMMIT=<sha> bash tools/gpu/crops_round.sh
#   (the composites' masks are the bundle's: pack it with `mixmag pack-cutouts --mask-version m5`
#   for an m5 round)
#   TINY=1 bash tools/gpu/crops_round.sh     # the same steps on a CPU in about 75 s (dry run)
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
# starting points: zoo names or files. The default is the zoo's default pair; the 2026-11-27 GPU
# crops round started from the archived classifier-lite0-160-crops4 and detector-yolo11n-640-8class
# (bring their files back from git history, `mixmag models --all` names the commit, and pass them).
INIT=${INIT:-classifier-lite0-160-crops-m5}
DET=${DET:-detector-yolo11n-640-8class-ft}
PHASE=${1:-main}
if [ "${TINY:-0}" = 1 ]; then
  DEV=cpu; AMP=""; NTR=16; NVA=4; SW=2; EA=1; EB=1; EC=1; CB=16; CW=0; CW2=0; DMIN=0.3; DMIN2=0.2
  DB=4; DW=0; DW2=0; IMG=256; DAMP=fp32; DDEV=cpu; DEADLINE=${DEADLINE:-900}
else
  DEV=cuda; AMP=--amp; NTR=${NTR:-5000}; NVA=300; SW=15; EA=${EA:-6}; EB=${EB:-6}; EC=10; CB=128; CW=3; CW2=5
  DMIN=${DMIN:-5}; DMIN2=4.3; DB=64; DW=7; DW2=9; IMG=640; DAMP=bf16; DDEV=0
  DEADLINE=${DEADLINE:-$([ $PHASE = more ] && echo 330 || echo 480)}
  [ $PHASE = more ] || { $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl 2>&1 | grep -v -i "warning" | tail -3
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; }
fi
# a zoo name (or a file) as the weights file it names, checked against the zoo's sha256
zoo_file() { $PY -c "import sys; from mixmag.zoo import resolve; print(resolve(sys.argv[1], sys.argv[2])[0])" "$1" "$2"; }
INIT=$(zoo_file "$INIT" classify) || exit 1
DET=$(zoo_file "$DET" detect) || exit 1
el() { echo $(( $(date +%s) - T0 )); }
last() { tr '\r' '\n' < "$1" | grep -v '^\s*$' | grep -v '%|' | tail -${2:-1} | cut -c1-240; }

# every GPU of the machine trains each classifier (torchrun, DDP; --batch stays the global batch)
NGPU=1; [ "$DEV" = cuda ] && NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || echo 1)
MM="$PY -m mixmag"
[ "$NGPU" -gt 1 ] && MM="$PY -m torch.distributed.run --standalone --nproc_per_node $NGPU -m mixmag"
# one crop classifier from $INIT on the packed crops: NAME then its own options
classifier() {
  local n=$1; shift
  $MM train-classifier --bundle $W/crops160.npz --init $INIT --batch $CB --warmup 0.05 \
    --scale-range 0.9 1.1 --scale-p 0.5 --label-smoothing 0.1 --device $DEV $AMP --patience 100 \
    --project $W/classify --no-test --overwrite --name $n "$@" > $W/$n.log 2>&1
}
# the 8-class detector fine-tuned on the composites: NAME START_WEIGHTS MINUTES WORKERS BENCH_BATCHES
detector() {
  $PY tools/device_train_detector.py --data $W/mix/data.yaml --out $W/detect/$1 --model $2 --minutes $3 \
    --imgsz $IMG --batch $DB --workers $4 --cache ram --amp $DAMP --device $DDEV --bench-batches $5 \
    --overwrite > $W/$1.log 2>&1
}
# a finished (or stopped) run's weights to $OUT: classifiers as fp16, detectors as they are;
# records and logs travel in the tarball (a call brings back only a few files)
collect() {
  local n=$1
  if [ -f $W/classify/$n/weights/best.pt ]; then
    $PY -c "from mixmag.classify.checkpoint import half_checkpoint as h; h('$W/classify/$n/weights/best.pt', '$OUT/$n.pt', overwrite=True)"
  elif [ -f $W/detect/$n/weights/best.pt ]; then
    cp $W/detect/$n/weights/best.pt $OUT/$n.pt
  else
    echo "$n: no best.pt"
  fi
}
epochs() {  # epochs finished so far by run NAME
  if [ -f $W/detect/$1/results.csv ]; then tail -n +2 $W/detect/$1/results.csv | wc -l
  else tr '\r' '\n' < $W/$1.log 2>/dev/null | grep -c ': train loss'; fi
}
names=(); pids=(); ended=()
launch() { local n=$1; shift; "$@" & pids+=($!); names+=($n); ended+=(0); }
# wait for every launched run, collecting each as it ends; stop what still runs at DEADLINE
monitor() {
  local i left
  while :; do
    left=0
    for i in "${!pids[@]}"; do
      [ ${ended[$i]} = 1 ] && continue
      if kill -0 ${pids[$i]} 2>/dev/null; then left=$((left + 1)); continue; fi
      wait ${pids[$i]}; echo "${names[$i]} ended (rc $?) at $(el) s"; collect ${names[$i]}; ended[$i]=1
    done
    [ $left = 0 ] && break
    if [ $(el) -ge $DEADLINE ]; then
      echo "deadline at $(el) s: stopping what still runs"
      for i in "${!pids[@]}"; do [ ${ended[$i]} = 0 ] && kill ${pids[$i]}; done
      wait 2>/dev/null  # ultralytics writes best.pt in place: copy only after it has exited
      for i in "${!pids[@]}"; do [ ${ended[$i]} = 0 ] && collect ${names[$i]}; done
      break
    fi
    sleep 5
    [ $(( $(el) % 30 )) -lt 5 ] && echo "t=$(el)s epochs: $(for n in "${names[@]}"; do printf '%s %s; ' $n $(epochs $n); done)"
  done
  for n in "${names[@]}"; do
    echo "== $n"; grep -q DEVICE_TRAIN $W/$n.log && grep DEVICE_TRAIN $W/$n.log | tail -1 | cut -c1-600 || last $W/$n.log 3
  done
}

if [ $PHASE = more ]; then
  ls $W/mix/data.yaml $W/crops160.npz $W/detect/yolo11n-640-ft/weights/best.pt || exit 1
  launch ft2 detector ft2 $W/detect/yolo11n-640-ft/weights/best.pt $DMIN2 $DW2 1
  launch crops-c classifier crops-c --workers $CW2 --epochs $EC --lr 1e-4 --freeze-stages 0 --ema 0.998
  monitor
  tar czf $OUT/logs2.tgz -C $W --exclude='*.pt' --exclude='*.npz' detect/ft2 classify/crops-c ft2.log crops-c.log
  ls -la $OUT; echo "done in $(el) s"
  exit 0
fi

$PY -c "import torch, timm, albumentations, ultralytics, cv2; print('torch', torch.__version__, 'timm', timm.__version__, 'albumentations', albumentations.__version__, 'ultralytics', ultralytics.__version__, 'cv2', cv2.__version__)" || exit 1
echo "commit ${MIXMAG_COMMIT:-unknown}; seed $SEED; $NTR + $NVA composites"
$PY -m mixmag synthesize --cutouts .bundle2/cutouts.npz --out $W/mix --n-train $NTR --n-val $NVA \
  --splits train val --seed $SEED --workers $SW --no-progress > $W/synth.log 2>&1 || { tail -5 $W/synth.log; exit 1; }
echo "composites made at $(el) s: $(tail -1 $W/synth.log | cut -c1-160)"
# the detector starts now; crops are packed beside it
launch yolo11n-640-ft detector yolo11n-640-ft $DET $DMIN $DW 1,32
$PY -m mixmag pack-crops $W/mix --out $W/crops160.npz --jitter 0.03 --size 160 --seed $SEED \
  --workers 8 --no-progress > $W/pack.log 2>&1 || { tail -5 $W/pack.log; kill ${pids[0]}; exit 1; }
echo "crops packed at $(el) s: $(tail -1 $W/pack.log | cut -c1-160)"
launch crops-a classifier crops-a --workers $CW --epochs $EA --lr 2e-4 --freeze-stages 3
launch crops-b classifier crops-b --workers $CW --epochs $EB --lr 1e-4 --freeze-stages 0 --ema 0.998
monitor
tar czf $OUT/logs.tgz -C $W --exclude='*.pt' --exclude='*.npz' --exclude=mix --exclude=cache --exclude=yolo-config . 2>/dev/null
ls -la $OUT; echo "done in $(el) s"
