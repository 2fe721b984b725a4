#!/usr/bin/env bash
# Device call for issue 5: end-to-end `predict` throughput on a lent GPU at batch 1 and larger
# batches (batch = composites per detector call; crops per classifier call: 4x), default models.
#   carry .whl .dev  (.dev/mix-test96: the first 96 test composites + cells.csv, as made by
#   `mixmag synthesize ... --seed 2`; the models travel in the tree, named by the zoo)
#   MIXMAG_COMMIT=<sha> bash tools/gpu/throughput.sh
set -u -o pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD YOLO_CONFIG_DIR=/tmp/yolo-config YOLO_OFFLINE=1
PY=${PY:-python3}
DEV=${DEV:-cuda}
$PY -c "import ultralytics" 2>/dev/null || $PY -m pip install -q --no-index --no-deps --no-compile \
  --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | grep -v -i warning | tail -3
D=${D:-detector-yolo11n-640-8class-ft}
C=${C:-classifier-lite0-160-crops-m5}
$PY benchmarks/detect.py --data .dev/mix-test96 --detector $D --classifier $C --skip-accuracy \
  --device $DEV --throughput ${N:-96} --throughput-batch ${BATCHES:-1 8 32} \
  --throughput-config yolo11n-640-8class-ft+lite0-160-crops-m5/off yolo11n-640-8class-ft/off \
  --out $OUT/detect-throughput-gpu.json 2>&1 | grep -v "summary (fused)"
