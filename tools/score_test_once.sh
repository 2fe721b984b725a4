#!/usr/bin/env bash
# The test split, scored once, for the pair that passed the adoption rule of 2026-12-04 and the
# default pair of then (now the `composite` pipeline) together (docs/HISTORY.md, "the detector's
# input at 800 px"): real test fields at
# 0.5x / 1x / 1.5x, 300 real test mosaics, and the 300 m5 test composites of the README.
#   bash tools/score_test_once.sh          # about 20 minutes on a 2-core CPU
# Writes benchmarks/results/{real-fields-test,real-mosaics-test}-{default,NEW}.json and
# detect-m5-test-NEW.json,
# and refuses to run when the candidate's exist: a test split is read once for each pair.
# A later candidate that replaced the default on val alone:
#   NEW=NAME NEW_DET=DETECTOR bash tools/score_test_once.sh   (its figures do not revisit the choice)
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SPLIT=datasets/pbc-split.csv
R=benchmarks/results
NEW=${NEW:-real}   # the candidate pair: zoo names below
NEW_DET=${NEW_DET:-detector-yolo11n-800-real}
NEW_CLS=${NEW_CLS:-classifier-lite0-160-crops-realmix}
mm() { $PY -m mixmag "$@"; }
for f in $R/real-fields-test-$NEW.json $R/real-mosaics-test-$NEW.json $R/detect-m5-test-$NEW.json; do
  [ ! -e "$f" ] || { echo "$f exists: the test split has been scored" >&2; exit 2; }
done
[ -d datasets/fields-test ] || mm fields --split $SPLIT --out datasets/fields-test --splits test \
  --scales 1 0.5 1.5 --no-progress
[ -d datasets/mosaics-test ] || mm fields --split $SPLIT --out datasets/mosaics-test --splits test \
  --scales 0.5 1 1.5 --mosaics 300 --no-progress
[ -d datasets/mix-test-m5 ] || mm synthesize --split $SPLIT --out datasets/mix-test-m5 --n-test 300 \
  --splits test --seed 2 --cache datasets/.cache --no-progress
for pair in "default detector-yolo11n-640-8class-ft classifier-lite0-160-crops-m5" "$NEW $NEW_DET $NEW_CLS"; do
  set -- $pair
  # the composite pair (files named `default`, the default it was) is scored once, with the first
  # candidate; a later candidate (NEW=...) is scored alone
  if [ "$1" = default ] && [ -e $R/real-fields-test-default.json ] && [ -e $R/real-mosaics-test-default.json ]; then continue; fi
  if [ "$1" = default ] && { [ -e $R/real-fields-test-default.json ] || [ -e $R/real-mosaics-test-default.json ]; }; then
    echo "the composite pair's test files are half written: look before scoring it again" >&2; exit 2
  fi
  $PY benchmarks/real.py --data datasets/fields-test --split test --detector $2 --classifier $3 \
    --out $R/real-fields-test-$1.json
  $PY benchmarks/real.py --data datasets/mosaics-test --split test --detector $2 --classifier $3 \
    --out $R/real-mosaics-test-$1.json
  # the then default (now `composite`) pair's test composites were scored at its release
  # (detect-m5-test.json)
  [ "$1" = default ] || $PY benchmarks/detect.py --data datasets/mix-test-m5 --split test \
    --detector $2 --classifier $3 --scale-norm off --threads 2 --out $R/detect-m5-test-$1.json
done
echo "scored: $R/{real-fields-test,real-mosaics-test}-{default,$NEW}.json, $R/detect-m5-test-$NEW.json"
