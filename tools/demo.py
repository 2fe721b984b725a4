"""The main job on a default that works: synthesize a small test set, run the released models,
write the HTML report.

    python tools/demo.py [--out runs/demo] [--n 24] [--pbc DIR] [--overwrite]

Composites are built only from the TEST sources of the committed split (datasets/pbc-split.csv), so
the released models, trained on train sources, have never seen these cells.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.cli import main as mixmag  # noqa: E402
from mixmag.errors import MixmagError  # noqa: E402
from mixmag.fileio import prepare_output  # noqa: E402

from mixmag.detect.defaults import CLASSIFIER, DETECTOR  # noqa: E402  (predict's own defaults)


def run(argv: list[str]) -> None:
    print("$ mixmag " + " ".join(argv), flush=True)
    rc = mixmag(argv)
    if rc:
        raise SystemExit(rc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/demo")
    ap.add_argument("--n", type=int, default=24, help="test composites to make")
    ap.add_argument("--pbc", help="PBC folder (default: $MIXMAG_PBC, then ../shared/data/pbc)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    try:
        prepare_output(out, args.overwrite, "demo")
        from mixmag.data.scan import find_pbc_root

        find_pbc_root(args.pbc)  # a clear message (and the fix) when the dataset is absent
    except MixmagError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    over = ["--overwrite"] if args.overwrite else []
    pbc = ["--pbc", args.pbc] if args.pbc else []
    run(["synthesize", "--split", str(REPO / "datasets" / "pbc-split.csv"), *pbc,
         "--out", str(out / "data"), "--n-test", str(args.n), "--splits", "test",
         "--seed", str(args.seed), "--preview", "--no-progress", *over])
    run(["predict", str(out / "data" / "images" / "test"), "--detector", str(DETECTOR),
         "--classifier", str(CLASSIFIER), "--out", str(out / "predict"), "--no-progress", *over])
    run(["report", "--truth", str(out / "data"), "--pred", str(out / "predict" / "cells.csv"),
         "--images-dir", str(out / "data"), "--out", str(out / "report"), *over])
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    print(f"\ndemo done in {time.time() - t0:.0f} s; open {out / 'report' / 'report.html'}")
    head = metrics.get("headline") or {}
    keys = ("macro_f1", "accuracy_matched", "loc_recall", "map50", "map50_95")
    print("headline: " + ", ".join(f"{k} {head[k]:.3f}" for k in keys if k in head))
    return 0


if __name__ == "__main__":
    sys.exit(main())
