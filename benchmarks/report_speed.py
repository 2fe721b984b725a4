"""Time `mixmag report` on 10,000 synthetic images / 100,000 cells (COCOeval and bootstrap included).

    python benchmarks/report_speed.py [--images 10000] [--cells 10] [--record]

Builds truth (the generator's cells.csv columns) and predictions (`mixmag predict`'s cells.csv
columns) with mixmag.evaluate.synthetic, writes them to a temporary folder, then times the CLI
end to end (reading, checking, matching, COCOeval, 1,000 bootstrap resamples, plots, md + html).
No image files exist, so the HTML's worst-images strip is skipped (it is bounded to 8 pictures).
With --record, writes benchmarks/results/report_speed.json with mixmag.bench.record's command,
commit, machine, date and the 1-minute load at the start and the end (a shared machine's wall
time is read with its load).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.record import finish_record, start_record  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--cells", type=int, default=10, help="cells per image")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--sweep", action="store_true", help="also time the confidence sweep")
    ap.add_argument("--record", action="store_true", help="write benchmarks/results/report_speed.json")
    ap.add_argument("--shared", default=None,
                    help="note on whether the machine was shared, stored in the record (its load "
                         "is recorded either way)")
    args = ap.parse_args()
    record = start_record(__file__, python=platform.python_version())

    from mixmag.cli import main as mixmag_main
    from mixmag.evaluate.synthetic import synthetic_predictions, synthetic_truth

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        truth = synthetic_truth(args.images, args.cells, size=1024, seed=0)
        pred = synthetic_predictions(truth, seed=1)
        truth.to_csv(tmp / "cells.csv", index=False)
        (tmp / "pred").mkdir()
        pred.to_csv(tmp / "pred" / "cells.csv", index=False)
        build = time.perf_counter() - t0
        argv = ["report", "--truth", str(tmp / "cells.csv"), "--pred", str(tmp / "pred" / "cells.csv"),
                "--out", str(tmp / "report"), "--bootstrap", str(args.bootstrap)]
        if args.sweep:
            argv.append("--sweep")
        t0 = time.perf_counter()
        code = mixmag_main(argv)
        seconds = time.perf_counter() - t0
        if code != 0:
            return code
        m = json.loads((tmp / "report" / "metrics.json").read_text())
        size_html = (tmp / "report" / "report.html").stat().st_size
    print(f"{args.images:,} images, {len(truth):,} cells, {len(pred):,} predictions: report in "
          f"{seconds:.1f} s (data built in {build:.1f} s); report.html {size_html / 1e6:.2f} MB")
    if args.record:
        record |= {
            "figure": "mixmag report wall time, seconds",
            "value": round(seconds, 2),
            "target": "< 60 s",
            "report_argv": ["mixmag", *argv[:1], "--truth", "cells.csv", "--pred",
                            "pred/cells.csv", "--out", "report", *argv[7:]],
            "images": args.images, "cells": len(truth), "predictions": len(pred),
            "includes": ["read + check CSVs", "matching (Hungarian where needed)", "COCOeval",
                         f"bootstrap x{args.bootstrap}", "PNGs", "report.md", "report.html"]
                        + (["confidence sweep (19 cut-offs)"] if args.sweep else []),
            "macro_f1": m["headline"]["macro_f1"], "map50": m["headline"]["map50"],
            "html_bytes": size_html,
        }
        if args.shared:
            record["machine_shared"] = args.shared
        out = finish_record(record, REPO / "benchmarks" / "results" / "report_speed.json")
        print(f"recorded in {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
