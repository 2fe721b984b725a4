"""The highest COCO mAP@0.5 (one class a cell) a classifier's per-class recall allows.

    python benchmarks/map_cap.py benchmarks/results/classify-lite2-zoom-rule2-test.json

COCO's AP averages interpolated precision at 101 recall points (0, 0.01, ..., 1); a point above a
class's highest recall counts 0. With one class a cell and every box found, a class's highest
recall is the share of its cells labelled right, so its AP is at most (floor(100 r) + 1) / 101,
reached when every right label outranks every wrong one. Given a result file with per-class
recalls (``per_class`` blocks, as benchmarks/classify_released.py writes), this prints that ceiling
for each block: what the detector + classifier pipeline could reach on composites if its crops
were classified as well as those images, with perfect boxes and perfect ranking.
"""

from __future__ import annotations

import argparse
import json
import math


def ap_cap(recall: float) -> float:
    # the 1e-9 keeps a recall of exactly k/100 on its own point despite float error
    return (math.floor(100 * recall + 1e-9) + 1) / 101


def blocks(o, path=""):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "per_class" and isinstance(v, dict):
                yield path or "/", {c: x["recall"] for c, x in v.items()}
            else:
                yield from blocks(v, f"{path}/{k}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="JSON files with per_class recall blocks")
    args = ap.parse_args()
    for f in args.results:
        with open(f) as fh:
            for where, rec in blocks(json.load(fh)):
                caps = {c: ap_cap(r) for c, r in rec.items()}
                worst = sorted(caps, key=caps.get)[:3]
                print(f"{f}{where}: mAP@0.5 at most {sum(caps.values()) / len(caps):.4f}; lowest "
                      + ", ".join(f"{c} recall {rec[c]:.3f} -> AP <= {caps[c]:.3f}" for c in worst))


if __name__ == "__main__":
    main()
