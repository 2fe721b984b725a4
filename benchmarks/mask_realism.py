"""How much of each class survives the generator's cut-out, per mask version.

    python benchmarks/mask_realism.py --per-class 100 --out benchmarks/results/mask-realism-val.json

For val sources of the split manifest (never test), each mask version cuts the centre cell out
exactly as the generator does (``make_cutout``: mask, feathered alpha, JPEG) and pastes it back
where it was, on the generator's own smear background in the source's palette. A classifier
trained on whole PBC images (default: the released Lite2-224, 99 % on PBC test) then labels the
original image and every pasted version. The pasted cell at 1x differs from the original only by
what the mask dropped or kept and by the background, so a class whose recall falls on cut-outs
lost what identifies it (m4's neutrophils lose their cytoplasm). Also recorded per class: the share
of masks at least 1.5x the nucleus' area ("whole cell"; lymphocytes and basophils rarely reach it
because their nucleus fills the cell) and the time to make a cut-out (mask + encoding).

Each version of a cell is pasted on the same background draw. m4's GrabCut depends on OpenCV's RNG
state, which here is whatever the previous mask left (the generator's workers leave another), so
m4's figures carry a little run-to-run noise; m5's do not.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.models import resolve_model  # noqa: E402
from mixmag.bench.record import finish_record, start_record  # noqa: E402
from mixmag.classes import CLASS_NAMES  # noqa: E402
from mixmag.classify import load_classifier  # noqa: E402
from mixmag.classify.metrics import classification_metrics  # noqa: E402
from mixmag.data.split import load_manifest  # noqa: E402
from mixmag.images import read_image  # noqa: E402
from mixmag.synth.background import make_bank, render_background  # noqa: E402
from mixmag.synth.compose import paste  # noqa: E402  (the generator's alpha blend)
from mixmag.synth.cutout import decode_cutout, make_cutout  # noqa: E402
from mixmag.synth.mask import MASK_VERSIONS  # noqa: E402

CANVAS = 512   # background side; PBC crops (360 x 363) are cut from its top-left corner


def pasted(img: np.ndarray, class_name: str, version: str, bank, rng) -> tuple[np.ndarray, dict, float]:
    """The source's cell cut out with ``version`` and pasted back in place on a generated smear;
    also the cut-out's meta and the seconds ``make_cutout`` took (mask + encoding)."""
    t0 = time.perf_counter()
    jpg, png, meta = make_cutout(img, class_name, version)
    dt = time.perf_counter() - t0
    cut = decode_cutout(jpg, png, meta["palette"])
    H, W = img.shape[:2]
    canvas = render_background(bank, CANVAS, cut.palette, rng)[:H, :W].copy()
    paste(canvas, cut.bgr, cut.alpha, *meta["crop_xyxy"][:2])
    return canvas, meta, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--pbc", default=None)
    ap.add_argument("--per-class", type=int, default=100, help="val sources a class (evenly spaced)")
    ap.add_argument("--classifier", default="classifier-lite2-224", help="zoo name or checkpoint")
    ap.add_argument("--versions", nargs="+", default=list(MASK_VERSIONS), choices=MASK_VERSIONS)
    ap.add_argument("--seed", type=int, default=0, help="background draws")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/mask-realism-val.json"))
    args = ap.parse_args()

    clf_path = resolve_model(args.classifier, "classify")
    record = start_record(__file__, part="val")
    m = load_manifest(args.split, pbc=args.pbc)
    val = m[m["split"] == "val"]
    keep = [i for _, g in val.groupby("class_name", sort=False)
            for i in g.index[:: max(1, len(g) // args.per_class)][: args.per_class]]
    val = val.loc[keep]
    y = val["class_id"].to_numpy()
    bank = make_bank(CANVAS, seed=args.seed, n=4)
    images = {"original": []} | {v: [] for v in args.versions}
    whole = {v: [] for v in args.versions}
    seconds = {v: 0.0 for v in args.versions}
    fallbacks = {v: 0 for v in args.versions}
    for i, (path, c) in enumerate(zip(val["abspath"], val["class_name"])):
        img = read_image(path)
        images["original"].append(img)
        for v in args.versions:
            # the same background draw for every version of a cell: the versions differ by the mask alone
            out, meta, dt = pasted(img, c, v, bank, np.random.default_rng([args.seed, i]))
            images[v].append(out)
            whole[v].append(meta["mask_area"] >= 1.5 * meta["nucleus_area"])
            seconds[v] += dt
            fallbacks[v] += meta["status"] != "ok"

    clf = load_classifier(clf_path, device="cpu")
    record |= {"n": int(len(y)), "classifier": args.classifier,
               "manifest_hash": m.attrs["manifest_hash"], "variants": {}}
    names = np.asarray(val["class_name"])
    for k, imgs in images.items():
        pred = clf.predict(imgs, batch_size=64).argmax(1)
        met = classification_metrics(y, pred)
        row = {"accuracy": met["accuracy"], "macro_f1": met["macro_f1"],
               "recall": {c: round(met["per_class"][c]["recall"], 4) for c in CLASS_NAMES}}
        if k in whole:
            w = np.asarray(whole[k])
            row["whole_cell_share"] = {c: round(float(w[names == c].mean()), 4) for c in CLASS_NAMES}
            row["fallback_masks"] = fallbacks[k]
            row["ms_per_cutout"] = round(1000 * seconds[k] / len(y), 1)
        record["variants"][k] = row
        print(f"{k:9s} accuracy {met['accuracy']:.4f}  macro F1 {met['macro_f1']:.4f}  recall "
              + " ".join(f"{c[:4]} {row['recall'][c]:.3f}" for c in CLASS_NAMES))
        if k in whole:
            print(" " * 10 + "whole-cell share "
                  + " ".join(f"{c[:4]} {row['whole_cell_share'][c]:.2f}" for c in CLASS_NAMES)
                  + f"; {row['ms_per_cutout']} ms a cut-out, {row['fallback_masks']} fallbacks")
    finish_record(record, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
