"""The main job on a default that works: synthesize a small test set, run the released models,
write the HTML report; then the same models on whole real PBC images (the demo sample).

    python tools/demo.py [--out runs/demo] [--n 24] [--pbc DIR] [--overwrite]

Composites are built only from the TEST sources of the committed split (datasets/pbc-split.csv), so
the released models, trained on train sources, have never seen these cells. With no PBC dataset
(no --pbc, no $MIXMAG_PBC, nothing at ../shared/data/pbc) the demo uses the sample in
datasets/sample/ (a few test-split PBC images a class, CC BY 4.0; see its README) instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.cli import main as mixmag  # noqa: E402
from mixmag.errors import MixmagError  # noqa: E402
from mixmag.fileio import prepare_output  # noqa: E402

MANIFEST = REPO / "datasets" / "pbc-split.csv"
SAMPLE = REPO / "datasets" / "sample"


def run(argv: list[str]) -> None:
    print("$ mixmag " + " ".join(argv), flush=True)
    rc = mixmag(argv)
    if rc:
        raise SystemExit(rc)


def sources(pbc: str | None, sample: Path | None = None) -> tuple[list[str], str | None]:
    """The synthesize arguments naming the sources, and a line to print when they are the sample.

    A dataset the user names (--pbc, $MIXMAG_PBC) must exist; only when none is named and none is
    found beside the clone does the demo fall back to the shipped sample.
    """
    from mixmag.data.scan import find_pbc_root

    try:
        find_pbc_root(pbc)
        return ["--split", str(MANIFEST), *(["--pbc", pbc] if pbc else [])], None
    except MixmagError as e:
        if pbc or os.environ.get("MIXMAG_PBC"):
            raise
        sample = sample or SAMPLE
        manifest, root = sample / "pbc-split.csv", sample / "pbc"
        if not (manifest.is_file() and root.is_dir()):
            raise MixmagError(f"{e} (and no demo sample at {root})") from None
        n = sum(1 for _ in manifest.open()) - 1
        note = (f"demo: no PBC dataset found; using the shipped sample of {n} test-split images in "
                f"{root} (CC BY 4.0, Acevedo et al. 2020)")
        return ["--split", str(manifest), "--pbc", str(root)], note


def folder_cells(pred: Path) -> tuple[int, int, int, int]:
    """On whole PBC images predicted as they are: (images whose own cell, the box of the eight
    nearest the centre, gets its folder's class; images; cells of the eight; red cells)."""
    import pandas as pd

    from mixmag.bench.real import centre_classes

    own = centre_classes(pred)
    cells = pd.read_csv(pred / "cells.csv")
    red = int((cells["class_name"] == "rbc").sum())
    right = int((own.to_numpy() == own.index.str.split("/").str[0]).sum())
    return right, len(own), len(cells) - red, red


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/demo")
    ap.add_argument("--n", type=int, default=24, help="test composites to make")
    ap.add_argument("--pbc", help="PBC folder (default: $MIXMAG_PBC, then ../shared/data/pbc, "
                                  "then the sample in datasets/sample)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    try:
        prepare_output(out, args.overwrite, "demo")
        src, note = sources(args.pbc)   # a clear message (and the fix) when no source is found
    except MixmagError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    if note:
        print(note, flush=True)
    t0 = time.time()
    over = ["--overwrite"] if args.overwrite else []
    run(["synthesize", *src, "--out", str(out / "data"), "--n-test", str(args.n), "--splits", "test",
         "--seed", str(args.seed), "--preview", "--no-progress", *over])
    # no --detector / --classifier: predict's own defaults (the released pair) apply
    run(["predict", str(out / "data" / "images" / "test"), "--out", str(out / "predict"),
         "--no-progress", *over])
    run(["report", "--truth", str(out / "data"), "--pred", str(out / "predict" / "cells.csv"),
         "--images-dir", str(out / "data"), "--out", str(out / "report"), *over])
    # real fields: the sample's whole PBC images (every one a test source) as a user's smear
    # would come, red cells and neighbours included; the folder names each image's own cell
    run(["predict", str(SAMPLE / "pbc"), "--recursive", "--out", str(out / "real"),
         "--no-progress", *over])
    right, n, eight, red = folder_cells(out / "real")
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    print(f"\ndemo done in {time.time() - t0:.0f} s; open {out / 'report' / 'report.html'}")
    head = metrics.get("headline") or {}
    keys = ("macro_f1", "accuracy_matched", "loc_recall", "map50", "map50_95")
    print("headline: " + ", ".join(f"{k} {head[k]:.3f}" for k in keys if k in head))
    print(f"real fields: {n} whole PBC test images ({SAMPLE / 'pbc'}): {eight} cells of the eight "
          f"and {red} red cells; the folder's own cell labelled as its folder in {right} of {n}; "
          f"boxes drawn in {out / 'real' / 'drawn'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
