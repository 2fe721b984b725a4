"""The highest COCO mAP@0.5 (one class a cell) a classifier's per-class recall allows.

    python benchmarks/map_cap.py benchmarks/results/classify-lite2-zoom-rule2-test.json

COCO's AP averages interpolated precision at 101 recall points (0, 0.01, ..., 1); a point above a
class's highest recall counts 0. With one class a cell and every box found, a class's highest
recall is the share of its cells labelled right, so its AP is at most (floor(100 r) + 1) / 101,
reached when every right label outranks every wrong one. Given a result file with per-class
recalls (``per_class`` blocks, as benchmarks/classify_released.py writes), this prints that ceiling
for each block: what the detector + classifier pipeline could reach on composites if its crops
were classified as well as those images, with perfect boxes and perfect ranking
(mixmag.bench.mapcap).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.bench.mapcap import blocks, cap_line  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="JSON files with per_class recall blocks")
    args = ap.parse_args()
    for f in args.results:
        with open(f) as fh:
            for where, rec in blocks(json.load(fh)):
                print(f"{f}{where}: {cap_line(rec)}")


if __name__ == "__main__":
    main()
