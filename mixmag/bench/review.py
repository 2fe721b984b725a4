"""A blind review of a composite set's truth: the images it leaves out of a score.

``tools/composite_review.py`` draws every disagreement between detectors and a composite's truth
with no detector named; reviewers give each picture a verdict, and ``--collect`` keeps a picture
as ``truth_wrong`` only where every reviewer said so. An image holding such a picture is left out
(``benchmarks/detect.py --mask-check --reviewed``), as the mask check leaves out images holding a
disputed cut-out: the truth there is not the cells the image shows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ..errors import MixmagError

__all__ = ["cells_sha1", "reviewed_out"]

COLUMNS = {"data", "split", "cells_sha1", "image", "kind", "verdict"}


def cells_sha1(dataset) -> str:
    """A dataset's identity for its verdicts: the hash of its cells.csv."""
    return hashlib.sha1((Path(dataset) / "cells.csv").read_bytes()).hexdigest()[:12]


def reviewed_out(review_csv, dataset, split: str = "val", present=None) -> tuple[set[str], dict]:
    """(images of ``dataset``'s ``split`` with a truth error, a summary for the record;
    ``images_excluded`` counts those among ``present``, the image names being scored, when
    given). The review must name the dataset (its folder name) and split, and match its
    cells.csv: a regenerated set with other cells would inherit verdicts about pictures it does
    not hold."""
    f, root = Path(review_csv), Path(dataset)
    if not f.is_file():
        raise MixmagError(f"--reviewed {f}: no such file")
    rev = pd.read_csv(f, dtype=str)
    if not COLUMNS <= set(rev.columns):
        raise MixmagError(f"--reviewed {f}: not a review (columns {sorted(COLUMNS)} expected; "
                          "made by tools/composite_review.py --collect)")
    rev = rev[rev["data"] == root.name]
    if rev.empty:
        raise MixmagError(f"--reviewed {f}: no verdict on {root.name}; review it first")
    if set(rev["split"]) != {split}:
        raise MixmagError(f"--reviewed {f}: its verdicts on {root.name} are of the "
                          f"{sorted(set(rev['split']))[0]} split, not {split}")
    sha = cells_sha1(root)
    if set(rev["cells_sha1"]) != {sha}:
        raise MixmagError(f"--reviewed {f}: its verdicts on {root.name} were given on another "
                          f"cells.csv (sha1 {rev['cells_sha1'].iloc[0]}, this one {sha}); "
                          "review the set again")
    wrong = rev[rev["verdict"] == "truth_wrong"]
    images = set(wrong["image"])
    excluded = images if present is None else images & set(present)
    return images, {"file": str(f), "items": int(len(rev)), "truth_wrong": int(len(wrong)),
                    "images_flagged": len(images), "images_excluded": len(excluded)}
