"""Subcommand: report (detection predictions against truth, or a single-cell table)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:
    from ..evaluate.evaluation import BOOTSTRAP_UNITS

    p = sub.add_parser(
        "report", help="per-class P/R/F1, confusion matrix, COCO mAP and an HTML report",
        description="Match predicted boxes to true cells (IoU, one-to-one, class-agnostic) and "
                    "write metrics.json, per_class.csv, per_magnification.csv, PNGs, report.md "
                    "and a self-contained report.html. Or, with --single-cell, report a "
                    "single-cell classifier's table of true and predicted classes.")
    p.add_argument("--truth", help="dataset folder, its cells.csv / cells.json, or a COCO JSON")
    p.add_argument("--pred", help="`mixmag predict` cells.csv / cells.json (or its folder), a COCO "
                                  "results JSON, or a folder of ultralytics save_txt+save_conf files")
    p.add_argument("--single-cell", metavar="CSV",
                   help="single-cell mode: CSV of image, true_class, pred_class (+ p_<class>)")
    p.add_argument("--out", required=True, help="report folder to create (e.g. runs/report/NAME)")
    p.add_argument("--split", help="evaluate only this split of the truth (e.g. test); default: "
                                   "the splits the predictions cover")
    p.add_argument("--iou", type=float, nargs="+", default=[0.5],
                   help="IoU threshold(s) for a match; the first drives the tables (default 0.5)")
    p.add_argument("--conf", type=float, default=0.25,
                   help="drop predictions scoring below this before matching (default 0.25)")
    p.add_argument("--sweep", action="store_true", help="also report figures for conf 0.05..0.95")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples for 95%% intervals (0: off)")
    p.add_argument("--bootstrap-unit", default="auto", choices=BOOTSTRAP_UNITS,
                   help="what the bootstrap resamples: whole images, or source cells (each cell "
                        "with every copy of its source; spurious boxes with their image); auto "
                        "(default): source when the truth reuses source cells, as `mixmag "
                        "synthesize` does, else image")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--no-coco", action="store_true", help="skip COCO mAP (faster)")
    p.add_argument("--map-all-classes", action="store_true",
                   help="also COCO mAP with each cell once per class it may be (p >= 0.01, "
                        "scored by the row's own rule with that class's probability), as "
                        "ultralytics' val scores detectors; needs `mixmag predict` output "
                        "(p_<class> columns)")
    p.add_argument("--images-dir", help="folder with the truth images, for the worst-images strip "
                                        "(default: the truth's dataset folder)")
    p.add_argument("--worst", type=int, default=8, help="worst images drawn in the HTML (default 8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from ..evaluate.report import make_report

    t0 = time.perf_counter()
    r = make_report(args.out, truth=args.truth, pred=args.pred, single_cell=args.single_cell,
                    split=args.split, iou=args.iou, conf=args.conf, sweep=args.sweep,
                    bootstrap=args.bootstrap, bootstrap_unit=args.bootstrap_unit, seed=args.seed,
                    coco=not args.no_coco, map_all_classes=args.map_all_classes,
                    images_dir=args.images_dir, worst=args.worst, overwrite=args.overwrite)
    for line in r.lines():
        print(line)
    print(f"wrote {len(r.paths)} files to {args.out} (open {Path(args.out) / 'report.html'}) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0
