"""Nucleus-based zoom (``mixmag classify --zoom``) on the split manifest's VAL sources: choose here.

    python benchmarks/classify_zoom.py classifier-lite2-224 \
        --probs runs/zoom/probs-val.npz --out benchmarks/results/classify-lite2-zoom-val.json

Every val image at 0.5x / 1x / 1.5x (in-canvas, as benchmarks/classify_released.py), for each set
of input sizes (``--size-sets``): pass 1, the magnification estimated from the nucleus with pass 1's
class, and pass 2 (the image rescaled by 1 / estimate) for every image that any threshold in the
grid would zoom. Pass 2 depends on the estimate only, not on the threshold, so one pass 2 serves
the whole grid. Prints accuracy per scale, the 0.5x gap and the share zoomed for every
(sizes, --zoom-below, --zoom-above); probabilities are kept in ``--probs`` and reused.
The selection rule is in docs/classify.md (stated before the first run).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
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
from mixmag.classify.zoom import ZoomedClassifier, find_native_nucleus, threshold, zoom_mask  # noqa: E402
from mixmag.cli import run_script  # noqa: E402
from mixmag.data.split import load_manifest  # noqa: E402
from mixmag.errors import MixmagError  # noqa: E402
from mixmag.fileio import sha256_file  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", help="a classifier: zoo name or checkpoint")
    ap.add_argument("--size-sets", nargs="+", default=["224", "224+256"],
                    help="input sizes averaged, '+'-joined (the first is pass 1 alone)")
    ap.add_argument("--below", nargs="+", default=["off", "0.7", "0.75", "0.8"])
    ap.add_argument("--above", nargs="+", default=["off", "1.3"])
    ap.add_argument("--floor", type=float, default=0.0,
                    help="no zoom-in where the estimate is below this (mixmag classify --zoom-floor; "
                         "0: the first run's grid, before the floor existed)")
    ap.add_argument("--native-nucleus", help="default: nucleus.json beside the weights")
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--limit", type=int, default=0, help="every k-th val image, about N in all")
    ap.add_argument("--probs", required=True, help=".npz of probabilities (written, or reused when present)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    weights = resolve_model(args.weights, "classify")
    below = [threshold(v) for v in args.below]
    above = [threshold(v) for v in args.above]
    lo = max((v for v in below if v is not None), default=-np.inf)  # pass 2 for anything any
    hi = min((v for v in above if v is not None), default=np.inf)     # threshold zooms
    record = start_record(__file__, part="val")
    m = load_manifest(args.split)
    val = m[m["split"] == "val"]
    if args.limit:
        val = val.iloc[:: max(1, len(val) // args.limit)]
    y = val["class_id"].to_numpy()
    native = find_native_nucleus(weights, args.native_nucleus)
    # what the cached probabilities depend on: reusing them for anything else would score pass 1
    # as pass 2 for images that were never zoomed
    key = {"weights_sha256": sha256_file(weights), "native": json.dumps(native["native_share"], sort_keys=True),
           "size_sets": " ".join(args.size_sets), "lo": float(lo), "hi": float(hi)}
    if Path(args.probs).is_file():
        z = dict(np.load(args.probs))
        if len(z["y"]) != len(y) or (z["y"] != y).any():
            raise MixmagError(f"--probs {args.probs}: cached for another val set; delete it or give another path")
        cached = {k: z[f"key_{k}"].item() for k in key if f"key_{k}" in z}
        same = (cached.get("weights_sha256") == key["weights_sha256"] and cached.get("native") == key["native"]
                and set(args.size_sets) <= set(cached.get("size_sets", "").split())
                and key["lo"] <= cached.get("lo", -np.inf) and key["hi"] >= cached.get("hi", np.inf))
        if not same:
            raise MixmagError(f"--probs {args.probs}: cached for other weights, nucleus shares, sizes or a "
                              "narrower zoom grid; delete it or give another path")
    else:
        images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in val["abspath"]]
        clf = load_classifier(weights)
        zc = ZoomedClassifier(clf, native)
        z = {"y": y, **{f"key_{k}": np.array(v) for k, v in key.items()}}
        t0 = time.time()
        for s in SCALES:  # each scale's images made once, for every size set
            crops = [rescale_in_canvas(im, s) for im in images]
            for ss in args.size_sets:
                clf.set_sizes([int(v) for v in ss.split("+")])
                p1 = clf.predict(crops)
                mag = zc.magnification(crops, p1.argmax(1))
                idx = np.flatnonzero((mag < lo) | (mag > hi))
                p2 = p1.copy()
                if len(idx):
                    p2[idx] = clf.predict([rescale_in_canvas(crops[i], float(1 / mag[i])) for i in idx])
                z[f"p1_{ss}_{s}"], z[f"p2_{ss}_{s}"], z[f"m_{ss}_{s}"] = p1, p2, mag
                print(f"{ss} at {s}x: pass 1 and {len(idx)} zoomed in {time.time() - t0:.0f}s", flush=True)
        Path(args.probs).parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.probs, **z)
    rows = {}
    for ss, b, a in itertools.product(args.size_sets, below, above):
        acc, share = {}, {}
        for s in SCALES:
            mag = z[f"m_{ss}_{s}"]
            far = zoom_mask(mag, b, a, args.floor)  # the rule mixmag classify --zoom applies
            p = np.where(far[:, None], z[f"p2_{ss}_{s}"], z[f"p1_{ss}_{s}"])
            acc[f"{s}x"] = round(100 * float((p.argmax(1) == y).mean()), 2)
            share[f"{s}x"] = round(float(far.mean()), 3)
        acc["gap_0.5x_vs_1x_points"] = round(acc["1.0x"] - acc["0.5x"], 2)
        name = f"{ss} below {b or 'off'} above {a or 'off'}"
        rows[name] = {"accuracy_percent": acc, "share_zoomed": share}
        print(f"{name:>34}: " + "  ".join(f"{k} {v}" for k, v in acc.items())
              + "   zoomed " + " ".join(f"{v:.3f}" for v in share.values()))
    est = {}
    for s in SCALES:  # how well the estimate names the scale (pass 1 of the first size set)
        mag = z[f"m_{args.size_sets[0]}_{s}"]
        ok = np.isfinite(mag)  # no nucleus: no estimate, counted as not right
        near = np.array(SCALES)[np.abs(np.log(mag[ok, None] / np.array(SCALES))).argmin(1)]
        est[f"{s}x"] = {"median": round(float(np.nanmedian(mag)), 3),
                        "nearest_scale_right": round(float(np.isclose(near, s).sum() / len(mag)), 3),
                        "no_nucleus": int(np.isnan(mag).sum())}
    print("estimate:", est)
    finish_record(record | {"n": int(len(y)), "floor": args.floor, "weights": args.weights,
                            "native_nucleus": native.get("source", ""), "rows": rows, "estimate": est},
                  args.out)
    return 0


if __name__ == "__main__":
    run_script(main, "classify_zoom")
