"""Is one detector + classifier pair better than another, beyond the luck of which cells were drawn?

    python benchmarks/compare_pairs.py --data datasets/mix-val41-m5 datasets/mix-val42-m5 \\
        datasets/mix-val43-m5 --split val \\
        --baseline detector-yolo11n-640-8class-ft+classifier-lite2-224 \\
        --candidate detector-yolo11n-640-8class-ft+classifier-lite0-160-crops-m5 \\
        --cache-dir runs/deteval/boxes [--bootstrap 2000] [--out benchmarks/results/compare-....json]

Both pairs (DETECTOR+CLASSIFIER: zoo names or .pt files; classifier on boxes, scale
normalisation off unless --scale-norm on) are scored on the same generated sets, pooled. The
differences candidate − baseline in macro F1, each class's F1 and the erythroblast's precision and
recall at each scale get 95 % intervals from a paired bootstrap: every resample draws source cells
(each cell with every copy of its source, a spurious box with its image;
mixmag.evaluate.bootstrap) and scores both pairs on that same draw, so what the two pairs share
(the same hard cells) cancels. Val sets made from one split share its source cells, so pooling
them resamples each source once, not once per set. Also printed: the share of resamples in which
the candidate scores higher ("ahead"; a description of the resamples, not the probability that it
is better). Boxes and probabilities are cached as benchmarks/detect.py caches them (same keys), so
pairs it has scored cost nothing. The comparison is mixmag.bench.pairs'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.bench.models import resolve_model  # noqa: E402
from mixmag.bench.pairs import (compare, pair_cells, pooled_rows, print_comparison,  # noqa: E402
                                source_codes)
from mixmag.bench.record import finish_record, start_record  # noqa: E402
from mixmag.errors import MixmagError  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--data", nargs="+", required=True, help="generated sets (folders with cells.csv)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--baseline", required=True, help="DETECTOR+CLASSIFIER (zoo names or .pt files)")
    ap.add_argument("--candidate", required=True, help="DETECTOR+CLASSIFIER (zoo names or .pt files)")
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
        if len(parts) == 2:
            parts = [resolve_model(parts[0], "detect"), resolve_model(parts[1], "classify")]
        if len(parts) != 2 or not all(p.endswith(".pt") and Path(p).is_file() for p in parts):
            raise MixmagError(f"--{role} {getattr(args, role)}: give DETECTOR+CLASSIFIER, zoo names "
                              "or existing .pt files")
        pairs[role] = parts

    record = start_record(__file__, argv, data=args.data, split=args.split, baseline=args.baseline,
                          candidate=args.candidate, scale_norm=args.scale_norm)

    import torch

    from mixmag.evaluate import evaluate, load_truth

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
            rows[role].append((res.outcomes, truth.cells["source"].to_numpy(), offset))
            print(f"{root.name} {role}: macro F1 {res.headline['macro_f1']:.5f}", flush=True)
        truths.append(truth.cells["source"])
        offset += len(truth.images)
    codes = source_codes(truths)
    n_src = len(codes)
    out = record | compare(pooled_rows(rows["baseline"], codes),
                           pooled_rows(rows["candidate"], codes), n_src + offset, args.bootstrap,
                           args.seed)
    print(f"pooled over {len(args.data)} set(s), {offset} images, {n_src} source cells; "
          f"{args.bootstrap} paired resamples of source cells")
    print_comparison(out)
    if args.out:
        finish_record(out, args.out)
        print("wrote", args.out)
    return 0


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "benchmarks/compare_pairs.py")
