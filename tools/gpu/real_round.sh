#!/usr/bin/env bash
# One device call (<= 10 min): the detector for real smears at GPU scale.
#   1. carried train/val PBC fields with their OI-PBC labels laid out as a small PBC folder
#      (tools/gpu/pack_fields.py unpack; the labels live on the device for this call only);
#   2. real mosaics made there: PARTS `mixmag fields --mosaics` processes in parallel, each with its
#      own seed, fields at 0.35x-2.5x (more weight on 0.5-1.5x), 150 val mosaics for ultralytics' val;
#      LAYOUT=smear makes smear canvases instead (`--layout smear --paste $PASTE`), and COMP=N adds
#      N m5 composites a part (`mixmag synthesize` from the same carried train fields) to the mix,
#      CHECK=1 from the cut-outs OI-PBC does not dispute only (`--mask-check`);
#   3. the 9-class detector (the eight + rbc) fine-tuned from $DET with `--augment smear` for $DMIN
#      minutes (AdamW at ultralytics' auto lr pinned, bf16);
#   4. best.pt under $OUT as detector-real.pt; logs and records in one tarball.
# The candidate is judged afterwards here on the CPU, by the rule in docs/HISTORY.md (2026-12-04):
# benchmarks/real.py on val fields and val mosaics, benchmarks/detect.py on m5 val composites.
# The test split is never packed.
#
# Prepare on the CPU machine first (the wheels are the GPU image's missing packages, Python 3.12):
#   echo /.bundle-real/ >> .git/info/exclude
#   python tools/gpu/pack_fields.py pack --split datasets/pbc-split.csv --train 4800 --val 600 \
#       --out .bundle-real/fields.npz
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl ultralytics==8.4.190 ultralytics-thop albumentations==2.0.8 albucore==0.0.24 \
#       pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection stringzilla simsimd \
#       cloudpickle
#   then: carry .whl .bundle-real;  MIXMAG_COMMIT=<sha> bash tools/gpu/real_round.sh
#   TINY=1 bash tools/gpu/real_round.sh      # the same steps on a CPU in about a minute (dry run)
# The next round from predict's default detector (the eight + rbc, input 800; 2026-12-08):
#   DET=detector-yolo11n-800-real IMGSZ=800 COMP=4 CHECK=1 MIXMAG_COMMIT=<sha> bash tools/gpu/real_round.sh
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
W=${W:-/tmp/mixmag-real}
case "$W" in /tmp/mixmag-*) ;; *) echo "W=$W: must be a /tmp/mixmag-* folder (it is wiped)" >&2; exit 2;; esac
rm -rf "$W"; mkdir -p "$W"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD YOLO_CONFIG_DIR=$W/yolo-config YOLO_OFFLINE=1
export MIXMAG_CACHE=$W/cache
PY=${PY:-python3}
BUNDLE=${BUNDLE:-.bundle-real/fields.npz}
DET=${DET:-detector-yolo11n-640-8class-ft}
LAYOUT=${LAYOUT:-packed}; PASTE=${PASTE:-3 8}; COMP=${COMP:-0}
CHECK=${CHECK:-0}  # 1: composites from checked cut-outs only (synthesize --mask-check, the carried labels)
SCALES="0.35 0.5 0.5 0.75 1 1 1.25 1.5 1.5 2 2.5"
if [ "${TINY:-0}" = 1 ]; then
  DEV=cpu; PARTS=2; NMOS=6; NVAL=4; DMIN=0.3; DB=4; DW=0; IMG=256; SET="warmup_epochs=0"
  [ "$COMP" -gt 0 ] && COMP=4
else
  # every GPU the machine has (ultralytics' DDP for two or more), 64 images a GPU a batch
  NG=$($PY -c "import torch; print(max(1, torch.cuda.device_count()))" 2>/dev/null || echo 1)
  DEV=$(seq -s, 0 $((NG - 1))); DB=$((64 * NG))
  # IMGSZ=800 (or 1024) gives small cells more pixels at 1.56x (2.56x) the cost (HISTORY 2026-12-07,
  # "the detector's input at 800 px")
  PARTS=${PARTS:-12}; NMOS=${NMOS:-600}; NVAL=150; DMIN=${DMIN:-6}; DW=8; IMG=${IMGSZ:-640}
  SET="amp=bf16 optimizer=AdamW lr0=0.000769 warmup_epochs=1 close_mosaic=2"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl 2>&1 | grep -v -i warning | tail -3
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
el() { echo $(( $(date +%s) - T0 )); }
last() { tr '\r' '\n' < "$1" | grep -v '^\s*$' | tail -${2:-1} | cut -c1-240; }
$PY -c "import torch, albumentations, ultralytics, cv2; print('torch', torch.__version__, 'albumentations', albumentations.__version__, 'ultralytics', ultralytics.__version__, 'cv2', cv2.__version__)" || exit 1
echo "commit ${MIXMAG_COMMIT:-unknown}; $PARTS x $NMOS train $LAYOUT canvases + $PARTS x $COMP composites, $NVAL val; $DMIN min from $DET"

$PY tools/gpu/pack_fields.py unpack "$BUNDLE" --out $W/src || exit 1
fields() {  # OUT-NAME SPLIT N SEED LAYOUT-ARGS SCALES...
  local name=$1 split=$2 n=$3 seed=$4 layout=$5; shift 5
  $PY -m mixmag fields --split $W/src/manifest.csv --pbc $W/src/pbc --labels $W/src/oi --out $W/$name \
    --splits $split --scales "$@" --mosaics $n --seed $seed $layout --no-progress > $W/$name.log 2>&1
}
comp() {  # OUT-NAME N SEED: m5 composites of the carried train fields
  $PY -m mixmag synthesize --split $W/src/manifest.csv --pbc $W/src/pbc --out $W/$1 --n-train $2 \
    --splits train --seed $3 --mask-version m5 --no-progress \
    $([ "$CHECK" = 1 ] && echo --mask-check --labels $W/src/oi) > $W/$1.log 2>&1
}
LARGS=""; [ "$LAYOUT" = smear ] && LARGS="--layout smear --paste $PASTE --mask-version m5"
pids=()
for i in $(seq 1 $PARTS); do
  fields mos$i train $NMOS $i "$LARGS" $SCALES & pids+=($!)
  [ "$COMP" -gt 0 ] && { comp comp$i $COMP $((100 + i)) & pids+=($!); }
done
fields mosval val $NVAL 0 "" 0.5 1 1.5 & pids+=($!)
for p in "${pids[@]}"; do wait $p || { echo "mosaics failed:"; tail -3 $W/mos*.log $W/mosval.log $W/comp*.log 2>/dev/null; exit 1; }; done
echo "mosaics made at $(el) s: $(last $W/mos1.log)"
# one data.yaml listing every part's images (train-detector takes the train canvas and the
# native sizes for magnification.json from each part's cells.csv)
$PY - "$W" "$PARTS" <<'PYEOF'
import sys
from pathlib import Path
import yaml
w, parts = Path(sys.argv[1]), int(sys.argv[2])
folders = [f"{kind}{i}" for i in range(1, parts + 1) for kind in ("mos", "comp")
           if (w / f"{kind}{i}" / "cells.csv").is_file()]
names = yaml.safe_load((w / "mos1" / "data.yaml").read_text())["names"]
(w / "data.yaml").write_text(yaml.safe_dump({
    "path": str(w), "train": [f"{d}/images/train" for d in folders],
    "val": "mosval/images/val", "names": names}, sort_keys=False))
PYEOF
$PY -m mixmag train-detector --data $W/data.yaml --model $DET --imgsz $IMG --time $DMIN --batch $DB \
  --device $DEV --workers $DW --cache ram --augment smear --project $W/detect --name real-smear \
  --set $SET > $W/detect.log 2>&1
rc=$?
echo "detector ended (rc $rc) at $(el) s"; last $W/detect.log 3
if [ -f $W/detect/real-smear/weights/best.pt ]; then
  cp $W/detect/real-smear/weights/best.pt $OUT/detector-real.pt
  cp $W/detect/real-smear/weights/magnification.json $OUT/magnification.json 2>/dev/null
fi
tar czf $OUT/logs.tgz -C $W --exclude='*.pt' detect detect.log mos1.log mosval.log $( [ "$COMP" -gt 0 ] && echo comp1.log ) 2>/dev/null
ls -la $OUT; echo "done in $(el) s"
