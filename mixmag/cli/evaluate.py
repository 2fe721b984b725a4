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
    from ..errors import MixmagError
    from ..fileio import prepare_output
    from ..evaluate.evaluation import _check_settings

    t0 = time.perf_counter()
    _check_settings(args.iou, args.conf, args.bootstrap, args.bootstrap_unit)
    if args.single_cell and args.bootstrap_unit == "source":
        raise MixmagError("--bootstrap-unit source: a single-cell table has no source cells; each "
                          "row (one cell image) is resampled")
    if args.worst < 0:
        raise MixmagError(f"--worst {args.worst}: must be >= 0")
    if args.single_cell and (args.truth or args.pred):
        raise MixmagError("--single-cell takes one table; drop --truth/--pred (or drop "
                          "--single-cell for a detection report)")
    if not args.single_cell and not (args.truth and args.pred):
        raise MixmagError("give --truth and --pred (detection report) or --single-cell CSV")
    if args.map_all_classes and (args.no_coco or args.single_cell):
        raise MixmagError("--map-all-classes is a COCO mAP of a detection report; drop --no-coco "
                          "(and --single-cell)")
    if args.images_dir and not Path(args.images_dir).is_dir():
        raise MixmagError(f"--images-dir {args.images_dir}: not a folder; give the folder holding "
                          "the truth images")
    prepare_output(args.out, args.overwrite, "report")

    from ..evaluate.output import write_report

    if args.single_cell:
        from ..evaluate.single_cell import evaluate_single_cell, load_single_cell

        table = load_single_cell(args.single_cell)
        result = evaluate_single_cell(table, bootstrap=args.bootstrap, seed=args.seed,
                                      inputs={"table": args.single_cell})
    else:
        result = _detection(args)
    paths = write_report(result, args.out, overwrite=args.overwrite, images_dir=args.images_dir,
                         worst=args.worst)
    h = result.headline
    line = f"macro F1 {_f(h['macro_f1'])}"
    if h.get("macro_f1_ci"):
        unit = (result.bootstrap or {}).get("unit", "image")
        # say when the interval also resamples source cells: it is wider than an image-only one
        line += (f" [{_f(h['macro_f1_ci'][0])}, {_f(h['macro_f1_ci'][1])}"
                 f"{'' if unit == 'image' else '; ' + unit + 's'}]")
    if result.mode == "detection":
        line += (f", mAP@0.5 {_f(h.get('map50'))}, mAP@0.5:0.95 {_f(h.get('map50_95'))}, "
                 f"localisation P/R {_f(h['loc_precision'])}/{_f(h['loc_recall'])}, "
                 f"accuracy of matched {_f(h['accuracy_matched'])}")
        if h.get("map50_all_classes") is not None:
            line += (f", mAP over all class hypotheses @0.5 {_f(h['map50_all_classes'])}, "
                     f"@0.5:0.95 {_f(h['map50_95_all_classes'])}")
    else:
        line += f", accuracy {_f(h['accuracy'])}"
    line += f", erythroblast F1 {_f(result.erythroblast.get('f1'))}"
    print(line)
    for n in result.notes:
        print(f"note: {n}")
    print(f"wrote {len(paths)} files to {args.out} (open {Path(args.out) / 'report.html'}) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


def _f(v) -> str:
    from ..evaluate.render import fmt

    return fmt(v)


def _detection(args):
    from ..evaluate.evaluation import evaluate
    from ..evaluate.load import load_predictions, load_truth, restrict

    truth = load_truth(args.truth, split=args.split)
    pred = load_predictions(args.pred, truth)
    notes = []
    splits = sorted(set(truth.images["split"]) - {""})
    if not args.split and len(splits) > 1 and len(pred):
        used = sorted(set(truth.images.set_index("image").loc[pred["image"].unique(), "split"]))
        if used != splits:
            truth = restrict(truth, truth.images["split"].isin(used).to_numpy())
            notes.append(f"truth restricted to split(s) {', '.join(used)} (the ones the "
                         "predictions cover; pass --split to choose)")
    result = evaluate(truth, pred, iou=args.iou, conf=args.conf, bootstrap=args.bootstrap,
                      sweep=args.sweep, coco=not args.no_coco, seed=args.seed,
                      all_classes_map=args.map_all_classes, bootstrap_unit=args.bootstrap_unit,
                      inputs={"pred": str(args.pred), "split": args.split or ", ".join(
                          sorted(set(truth.images["split"]) - {""})) or None})
    result.notes = notes + result.notes
    return result
