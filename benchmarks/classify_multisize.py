"""Multi-resolution check of a classifier on the split manifest's VAL sources (choose here, not on test).

    python benchmarks/classify_multisize.py classifier-lite2-224 \
        --sizes 224 256 288 --probs runs/fixres/probs-val.npz --out benchmarks/results/classify-lite2-multisize-val.json

Scores every val image at 0.5x / 1x / 1.5x (in-canvas, as benchmarks/classify_released.py) at each
input size, keeps the probabilities (``--probs``, reused when present), and prints the accuracy per
scale of every combination of sizes, averaged and by max-confidence (``mixmag classify --tta-sizes
--tta-rule``). A larger
input gives a 0.5x cell more pixels but shows a 1.5x cell bigger than training did.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.models import resolve_model  # noqa: E402
from mixmag.bench.record import finish_record, start_record  # noqa: E402
from mixmag.bench.singlecell import SCALES  # noqa: E402
from mixmag.classify import load_classifier  # noqa: E402
from mixmag.classify.augment import rescale_in_canvas  # noqa: E402
from mixmag.classify.checkpoint import SIZE_RULES, combine_sizes  # noqa: E402
from mixmag.cli import run_script  # noqa: E402
from mixmag.data.split import load_manifest  # noqa: E402
from mixmag.errors import MixmagError  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", help="a classifier: zoo name or checkpoint")
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 256, 288])
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--probs", required=True, help=".npz of probabilities (written, or reused when present)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    weights = resolve_model(args.weights, "classify")
    record = start_record(__file__, part="val", weights=args.weights)
    m = load_manifest(args.split)
    val = m[m["split"] == "val"]
    y = val["class_id"].to_numpy()
    record["n"] = int(len(y))
    if Path(args.probs).is_file():
        z = dict(np.load(args.probs))
        if len(z["y"]) != len(y) or (z["y"] != y).any():
            raise MixmagError(f"--probs {args.probs}: cached for another val set; delete it or give another path")
    else:
        images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in val["abspath"]]
        clf = load_classifier(weights)
        z = {"y": y}
        for s in SCALES:
            crops = [rescale_in_canvas(im, s) for im in images]
            for px in args.sizes:
                clf.set_sizes([px])
                z[f"p{px}_{s}"] = clf.predict(crops)
        Path(args.probs).parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.probs, **z)
    rows = {}
    for k in range(1, len(args.sizes) + 1):
        for combo in itertools.combinations(args.sizes, k):
            for rule in (("mean",) if k == 1 else SIZE_RULES):
                acc = {f"{s}x": round(100 * float((combine_sizes([z[f"p{px}_{s}"] for px in combo], rule)
                                                   .argmax(1) == y).mean()), 2) for s in SCALES}
                acc["gap_0.5x_vs_1x_points"] = round(acc["1.0x"] - acc["0.5x"], 2)
                acc["mean"] = round(float(np.mean([acc[f"{s}x"] for s in SCALES])), 2)
                name = "+".join(map(str, combo)) + ("" if rule == "mean" else f" ({rule})")
                rows[name] = acc
                print(f"{name:>30}: " + "  ".join(f"{k} {v}" for k, v in acc.items()))
    finish_record(record | {"accuracy_percent": rows}, args.out)
    return 0


if __name__ == "__main__":
    run_script(main, "classify_multisize")
