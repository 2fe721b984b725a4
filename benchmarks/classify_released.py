"""Score released classifier checkpoints on the split manifest's TEST sources, at 0.5x, 1x, 1.5x.

    python benchmarks/classify_released.py --split datasets/pbc-split.csv \
        classifier-lite0-160-crops-m5 classifier-lite2-224

The rescaled protocol (``--protocol in-canvas``, the one issue 4's target is measured with) shrinks
or enlarges the cell inside its own canvas (the same in-canvas rescale the training augmentation
uses): at 0.5x the cell fills a quarter of the pixels the classifier sees, as in a fixed-size
window of a 0.5x smear. ``--protocol resample`` resizes the whole image instead (as the generator
resizes a cut-out: area to shrink, cubic to enlarge), so the classifier's own resize brings the
cell back to its usual share of the input and only the detail lost on the way differs, as for a
detector crop of a 0.5x cell. Checkpoints are zoo names (`mixmag models`) or paths; results are
keyed by the checkpoint's folder name (classifier-lite2-224 either way). Prints accuracy,
macro F1 and erythroblast P/R per scale and writes benchmarks/results/classify_released.json
(mixmag.bench.record's command, commit, machine, date, load) and a confusion PNG per model at 1x.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.models import checkpoint_name, resolve_model  # noqa: E402
from mixmag.bench.record import finish_record, start_record  # noqa: E402
from mixmag.bench.singlecell import SCALES  # noqa: E402
from mixmag.classes import CLASS_NAMES  # noqa: E402
from mixmag.classify import load_classifier  # noqa: E402
from mixmag.classify.augment import rescale_in_canvas  # noqa: E402
from mixmag.classify.metrics import classification_metrics, save_confusion_png, summary_line  # noqa: E402
from mixmag.data.split import load_manifest  # noqa: E402
from mixmag.synth.compose import scale_image  # noqa: E402  (the generator's resize of a cut-out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="classifier checkpoints: zoo names or paths")
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--pbc", default=None)
    ap.add_argument("--part", choices=["test", "val"], default="test",
                    help="val: choose between checkpoints per scale without touching the test split")
    ap.add_argument("--protocol", choices=["in-canvas", "resample"], default="in-canvas",
                    help="how a test image is brought to 0.5x / 1.5x (see the module docstring)")
    ap.add_argument("--input-size", type=int, nargs="+", metavar="PX",
                    help="also score each checkpoint at these input sizes instead of its own (a "
                         "test-time resolution check; choose with --part val)")
    ap.add_argument("--tta-sizes", type=int, nargs="+", metavar="PX",
                    help="also score each checkpoint with its probabilities averaged over these "
                         "input sizes (mixmag classify --tta-sizes)")
    ap.add_argument("--tta-rule", default="mean", help="how --tta-sizes combine: mean or max-confidence")
    ap.add_argument("--zoom", action="store_true",
                    help="score each model (with --tta-sizes, that variant) through mixmag classify "
                         "--zoom only (nucleus.json beside the weights); its unzoomed figures are "
                         "in earlier files")
    ap.add_argument("--zoom-below", default="0.75", metavar="M|off", help="mixmag classify --zoom-below")
    ap.add_argument("--zoom-above", default="off", metavar="M|off", help="mixmag classify --zoom-above")
    ap.add_argument("--zoom-floor", type=float, default=None, metavar="M",
                    help="mixmag classify --zoom-floor (default: its default)")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N test images")
    ap.add_argument("--out", help="default benchmarks/results/classify_released.json "
                    "(classify_released-resample.json with --protocol resample)")
    args = ap.parse_args()
    weights = [resolve_model(w, "classify") for w in args.weights]
    if not args.out:
        suffix = "" if args.protocol == "in-canvas" else f"-{args.protocol}"
        args.out = str(REPO / "benchmarks" / "results" / f"classify_released{suffix}.json")
    m = load_manifest(args.split, pbc=args.pbc)
    test = m[m["split"] == args.part]
    if args.limit:
        test = test.iloc[:: max(1, len(test) // args.limit)]
    images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in test["abspath"]]
    y = test["class_id"].to_numpy()
    record = start_record(__file__, part=args.part, protocol=args.protocol, n_test=int(len(y)),
                          manifest_hash=m.attrs["manifest_hash"], models={})
    # (checkpoint, input sizes averaged: None for its own)
    runs = [(w, None) for w in weights]
    runs += [(w, (px,)) for w in weights for px in (args.input_size or [])]
    runs += [(w, tuple(args.tta_sizes)) for w in weights if args.tta_sizes]
    models, last = {}, {}  # last: each checkpoint's last variant (with --tta-sizes, that one)
    for w, sizes in runs:
        clf = load_classifier(w, device="cpu")
        name = checkpoint_name(w)
        if sizes:
            rule = args.tta_rule if len(sizes) > 1 else "mean"
            clf.set_sizes(sizes, rule)
            name = f"{name}@{'+'.join(map(str, sizes))}" + ("" if rule == "mean" else f"-{rule}")
        models[name] = clf
        last[w] = name
    if args.zoom:
        from mixmag.classify.zoom import FLOOR, ZoomedClassifier, find_native_nucleus, threshold

        below, above = threshold(args.zoom_below), threshold(args.zoom_above)
        floor = FLOOR if args.zoom_floor is None else args.zoom_floor
        models = {f"{name}+zoom-below-{args.zoom_below}-above-{args.zoom_above}-floor-{floor}":
                  ZoomedClassifier(models[name], find_native_nucleus(w), below, above, floor)
                  for w, name in last.items()}
    res = {name: {} for name in models}
    for s in SCALES:  # each scale's images made once, for every model
        crops = [im if s == 1.0 else rescale_in_canvas(im, s) if args.protocol == "in-canvas"
                 else scale_image(im, s) for im in images]
        for name, clf in models.items():
            t = time.time()
            pred = clf.predict(crops, batch_size=64).argmax(1)
            met = classification_metrics(y, pred, CLASS_NAMES)
            met["images_per_s"] = round(len(crops) / (time.time() - t), 1)
            if hasattr(clf, "last_zoomed"):
                met["share_zoomed"] = round(float(clf.last_zoomed.mean()), 4)
            res[name][f"{s}x"] = met
            print(f"{name} at {s}x: {summary_line(met)}  {met['images_per_s']} img/s", flush=True)
    for name, r in res.items():
        if args.protocol == "in-canvas":  # 1x is the same image under either protocol
            png = Path(args.out).with_name(f"confusion_{name}_{args.part}.png")
            save_confusion_png(r["1.0x"]["confusion"], CLASS_NAMES, png,
                               title=f"{name}, PBC {args.part} split (n={len(y)})")
        r["gap_0.5x_vs_1x_points"] = round(100 * (r["1.0x"]["accuracy"] - r["0.5x"]["accuracy"]), 2)
        record["models"][name] = r
    finish_record(record, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
