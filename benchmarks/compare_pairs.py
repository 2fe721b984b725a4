"""Is one detector + classifier pair better than another, beyond the luck of which cells were drawn?

    python benchmarks/compare_pairs.py --data datasets/mix-val41-m5 datasets/mix-val42-m5 \\
        datasets/mix-val43-m5 --split val \\
        --baseline models/released/detector-yolo11n-640-8class-ft/best.pt+models/released/classifier-lite0-160-crops-gpu/best.pt \\
        --candidate models/released/detector-yolo11n-640-8class-ft/best.pt+models/released/classifier-lite0-160-crops-m5/best.pt \\
        --cache-dir runs/deteval/boxes [--bootstrap 2000] [--out benchmarks/results/compare-....json]

Both pairs (DETECTOR.pt+CLASSIFIER.pt, classifier on boxes, scale normalisation off unless
--scale-norm on) are scored on the same generated sets, pooled. The differences candidate −
baseline in macro F1, each class's F1 and the erythroblast's precision and recall at each scale
get 95 % intervals from a paired bootstrap: every resample draws source cells (each cell with
every copy of its source, a spurious box with its image; mixmag.evaluate.bootstrap) and scores
both pairs on that same draw, so what the two pairs share (the same hard cells) cancels. Val sets
made from one split share its source cells, so pooling them resamples each source once, not once
per set. Also printed: the share of resamples in which the candidate scores higher ("ahead"; a
description of the resamples, not the probability that it is better). Boxes and probabilities
are cached as benchmarks/detect.py caches them (same keys), so pairs it has scored cost nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mixmag.errors import MixmagError  # noqa: E402


def pair_cells(dpath: str, cpath: str, root: Path, split: str, norm: str, cache_dir, batch: int,
               models: dict) -> pd.DataFrame:
    """Rows `mixmag predict` would write for one pair on one set (classifier on boxes)."""
    import detect as D
    from mixmag.detect.cli import load_classifier
    from mixmag.detect.detector import load_detector
    from mixmag.detect.magnification import find_native_sizes
    from mixmag.detect.predict import Pipeline, PredictOptions, list_sources

    if dpath not in models:
        models[dpath] = load_detector(dpath, device="cpu")
    if cpath not in models:
        models[cpath] = load_classifier(cpath, device="cpu")
    det, clf = models[dpath], models[cpath]
    sources, _ = list_sources(root / "images" / split)
    pipe = Pipeline(det, clf, find_native_sizes(dpath, None), PredictOptions(
        mode="classifier-on-boxes", scale_norm=norm == "on", conf=0.25, batch=batch))
    cache = (D.box_cache(cache_dir, D.short_name(dpath), dpath, root, split, len(sources), 0.25)
             if cache_dir else None)
    boxes, _ = D.detect_all(pipe, sources, cache)
    pcache = (D.prob_cache(cache, D.short_name(cpath), cpath, "pytorch", norm, len(sources))
              if cache is not None else None)
    probs, _ = D.classifier_all(pipe, sources, boxes, pcache)
    return D.cells_frame(pipe, sources, boxes, probs, "classifier-on-boxes")


def _figures(s: np.ndarray) -> dict[str, np.ndarray]:
    """The compared figures per resample from (n, 8, 3) TP/FP/FN sums (NaN where undefined)."""
    from mixmag.classes import CLASS_NAMES
    from mixmag.evaluate.bootstrap import figures_of_counts

    f = figures_of_counts(s)
    e = CLASS_NAMES.index("erythroblast")
    out = {"macro_f1": f["macro_f1"], "erythroblast_precision": f["precision"][:, e],
           "erythroblast_recall": f["recall"][:, e]}
    for k, name in enumerate(CLASS_NAMES):
        out[f"f1_{name}"] = f["f1"][:, k]
    return out


def compare(base_rows, cand_rows, n_clusters: int, n_boot: int, seed: int) -> dict:
    """Point figures of both pairs and the paired intervals of their differences."""
    from mixmag.evaluate.bootstrap import resampled_counts

    [(bt, bg), (ct, cg)], n = resampled_counts([base_rows, cand_rows], n_boot, seed, n_clusters)
    (b0, b0g), (c0, c0g) = _point(base_rows, n), _point(cand_rows, n)

    def table(tb, tc, pb, pc):
        fb, fc, pfb, pfc = _figures(tb), _figures(tc), _figures(pb), _figures(pc)
        rows = {}
        for k in fb:
            d = fc[k] - fb[k]
            d = d[np.isfinite(d)]
            rows[k] = {"baseline": _r(pfb[k][0]), "candidate": _r(pfc[k][0]),
                       "difference": _r(pfc[k][0] - pfb[k][0]),
                       "difference_ci": [_r(np.percentile(d, 2.5)), _r(np.percentile(d, 97.5))] if len(d) else None,
                       "candidate_ahead": _r(float((d > 0).mean())) if len(d) else None,
                       "tied": _r(float((d == 0).mean())) if len(d) else None}
        return rows

    out = {"n_boot": n_boot, "seed": seed, "unit": "source", "n_clusters": n,
           "pooled": table(bt, ct, b0, c0), "by_magnification": {}}
    for level in bg:
        if level in cg:
            out["by_magnification"][level] = {k: v for k, v in table(bg[level], cg[level], b0g[level],
                                                                      c0g[level]).items()
                                              if k.startswith("erythroblast") or k == "macro_f1"}
    return out


def _point(rows, n: int):
    """TP/FP/FN sums of the rows as they are (every cluster once), pooled and per group."""
    from mixmag.evaluate.bootstrap import cluster_counts

    counts, groups = cluster_counts(rows, n)
    return counts.sum(0, keepdims=True), {x: c.sum(0, keepdims=True) for x, c in groups.items()}


def _r(v):
    return None if v is None or not np.isfinite(v) else round(float(v), 5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--data", nargs="+", required=True, help="generated sets (folders with cells.csv)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--baseline", required=True, help="DETECTOR.pt+CLASSIFIER.pt")
    ap.add_argument("--candidate", required=True, help="DETECTOR.pt+CLASSIFIER.pt")
    ap.add_argument("--scale-norm", choices=["on", "off"], default="off")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", help="benchmarks/detect.py's box and probability cache")
    ap.add_argument("--out", help="write the comparison as JSON here")
    args = ap.parse_args(argv)
    if args.bootstrap < 1:
        raise MixmagError(f"--bootstrap {args.bootstrap}: give at least 1 resample (e.g. 2000)")
    pairs = {}
    for role in ("baseline", "candidate"):
        parts = getattr(args, role).split("+")
        if len(parts) != 2 or not all(p.endswith(".pt") and Path(p).is_file() for p in parts):
            raise MixmagError(f"--{role} {getattr(args, role)}: give DETECTOR.pt+CLASSIFIER.pt, both existing files")
        pairs[role] = parts

    import torch

    from mixmag.evaluate import evaluate, load_truth
    from mixmag.evaluate.bootstrap import Rows

    torch.set_num_threads(args.threads)
    models, rows = {}, {"baseline": [], "candidate": []}
    truths, offset = [], 0
    for d in args.data:
        root = Path(d)
        if not (root / "cells.csv").is_file():
            raise MixmagError(f"--data {root}: no cells.csv; pass a folder made by `mixmag synthesize`")
        truth = load_truth(root, split=args.split)
        if "source" not in truth.cells.columns:
            raise MixmagError(f"--data {root}: its cells.csv names no source cells; this compares "
                              "pairs on generated sets")
        for role, (dp, cp) in pairs.items():
            cells = pair_cells(dp, cp, root, args.split, args.scale_norm, args.cache_dir, args.batch, models)
            res = evaluate(truth, cells, iou=0.5, conf=0.25, bootstrap=0, coco=False)
            o = res.outcomes
            rows[role].append((o, truth.cells["source"].to_numpy(), offset))
            print(f"{root.name} {role}: macro F1 {res.headline['macro_f1']:.5f}", flush=True)
        truths.append(truth.cells["source"])
        offset += len(truth.images)
    # one code per source cell across the sets: sets from one split share their sources
    codes = {s: i for i, s in enumerate(pd.unique(pd.concat(truths)))}

    n_src = len(codes)

    def pooled(parts):
        from mixmag.evaluate.bootstrap import source_clusters

        true, pred, cluster, mag = [], [], [], []
        for o, sources, off in parts:
            true.append(o["true"].to_numpy())
            pred.append(o["pred"].to_numpy())
            cluster.append(source_clusters(o["t"].to_numpy(), o["img"].to_numpy() + off,
                                           np.array([codes[x] for x in sources]), n_src))
            mag.append(o["magnification"].to_numpy() if "magnification" in o else np.full(len(o), ""))
        mag = np.concatenate(mag)
        if any(str(m).startswith("[") for m in mag):
            # quantile bins differ between sets and pairs: no per-scale rows then
            mag = np.full(len(mag), "")
        return Rows(np.concatenate(true), np.concatenate(pred), np.concatenate(cluster), mag)

    out = compare(pooled(rows["baseline"]), pooled(rows["candidate"]), n_src + offset,
                  args.bootstrap, args.seed)
    out = {"command": " ".join(["python", *sys.argv]), "data": args.data, "split": args.split,
           "baseline": args.baseline, "candidate": args.candidate, "scale_norm": args.scale_norm, **out}
    print(f"pooled over {len(args.data)} set(s), {offset} images, {n_src} source cells; "
          f"{args.bootstrap} paired resamples of source cells")
    print(f"{'figure':<26s} {'baseline':>9s} {'candidate':>9s} {'diff':>8s}  {'95 % interval':>18s}  ahead")

    def show(label, v):
        ci = v["difference_ci"]
        print(f"{label:<26s} {_s(v['baseline']):>9s} {_s(v['candidate']):>9s} {_s(v['difference'], True):>8s}  "
              f"{'[' + _s(ci[0], True) + ', ' + _s(ci[1], True) + ']' if ci else '–':>18s}  "
              f"{_s(v['candidate_ahead'])}")

    for k, v in out["pooled"].items():
        show(k, v)
    for level, t in out["by_magnification"].items():
        for k, v in t.items():
            show(f"{level} {k}", v)
    if args.out:
        from mixmag.fileio import write_json

        write_json(args.out, out)
        print("wrote", args.out)
    return 0


def _s(v, sign=False):
    return "–" if v is None else (f"{v:+.4f}" if sign else f"{v:.4f}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MixmagError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
