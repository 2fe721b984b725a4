"""Pack a seeded per-class subset of train/val cut-outs for the GPU machine (fits the 64 MiB carry).

    python tools/gpu/pack_cutouts_subset.py --split datasets/pbc-split.csv \
        --train-per-class 450 --val-per-class 40 --out .bundle2/cutouts.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mixmag.data.split import load_manifest  # noqa: E402
from mixmag.synth.cutout import pack_cutouts  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", required=True)
    ap.add_argument("--train-per-class", type=int, default=450)
    ap.add_argument("--val-per-class", type=int, default=40)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default=None)
    args = ap.parse_args()
    m = load_manifest(args.split)
    parts = [m[m.split == s].sample(frac=1, random_state=0).groupby("class_name").head(n)
             for s, n in (("train", args.train_per_class), ("val", args.val_per_class))]
    sub = pd.concat(parts)
    sub.attrs = m.attrs
    print(pack_cutouts(sub, splits=("train", "val"), out_npz=args.out, cache=args.cache, progress=False))


if __name__ == "__main__":
    main()
