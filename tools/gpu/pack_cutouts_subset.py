"""Pack a seeded per-class subset of train/val cut-outs for the GPU machine (fits the 64 MiB carry).

The two bundles made so far (the first release and the 2026-11-27 GPU crops round), as made (m4 masks; drop the option for
the present default, m5):

    python tools/gpu/pack_cutouts_subset.py --mask-version m4 --split datasets/pbc-split.csv \
        --train-per-class 450 --val-per-class 40 --out .bundle2/cutouts.npz
    # per-class counts (the GPU crops round: more sources of the classes IG is confused with)
    python tools/gpu/pack_cutouts_subset.py --mask-version m4 --split datasets/pbc-split.csv --train-per-class 280 \
        --train-count ig=600 neutrophil=400 monocyte=400 erythroblast=350 --val-per-class 30 \
        --out .bundle2/cutouts.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mixmag.data.split import load_manifest  # noqa: E402
from mixmag.synth.cutout import pack_cutouts  # noqa: E402
from mixmag.synth.mask import MASK_VERSION, MASK_VERSIONS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", required=True)
    ap.add_argument("--train-per-class", type=int, default=450)
    ap.add_argument("--val-per-class", type=int, default=40)
    ap.add_argument("--train-count", nargs="*", default=[], metavar="CLASS=N",
                    help="per-class train counts that replace --train-per-class, e.g. ig=700")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--mask-version", default=MASK_VERSION, choices=MASK_VERSIONS,
                    help="cell masks (default %(default)s; the bundles of the first release and the "
                         "2026-11-27 GPU crops round were m4)")
    args = ap.parse_args()
    m = load_manifest(args.split)
    counts = {}
    for item in args.train_count:
        name, _, n = item.partition("=")
        if name not in set(m.class_name) or not (n.isascii() and n.isdigit()) or name in counts:
            raise SystemExit(f"--train-count {item}: use CLASS=N once per class, with a class of "
                             "the manifest and a whole number")
        counts[name] = int(n)
    parts = []
    for split, n in (("train", args.train_per_class), ("val", args.val_per_class)):
        # the same seeded order for every count, so a smaller subset is a prefix of a larger one
        shuffled = m[m.split == split].sample(frac=1, random_state=0)
        rank = shuffled.groupby("class_name").cumcount()
        limit = shuffled.class_name.map(counts).fillna(n) if split == "train" else n
        parts.append(shuffled[rank < limit])
    sub = pd.concat(parts)
    sub.attrs = m.attrs
    print(pack_cutouts(sub, splits=("train", "val"), out_npz=args.out, cache=args.cache, progress=False,
                       mask_version=args.mask_version))


if __name__ == "__main__":
    main()
