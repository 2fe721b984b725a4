"""``mixmag report`` as one library call: truth and predictions (or a single-cell table) in, the
report folder written (metrics.json, per-class and per-magnification CSVs, PNGs, report.md/.html).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MixmagError
from ..fileio import prepare_output, replaced_folder
from .evaluation import Result, _check_settings, evaluate
from .load import load_predictions, load_truth, restrict
from .output import write_report
from .render import fmt


@dataclass
class Report:
    result: Result
    paths: dict = field(default_factory=dict)  # name -> file in the report folder

    def lines(self) -> list[str]:
        """The headline as the CLI prints it, then the result's notes."""
        r, h = self.result, self.result.headline
        line = f"macro F1 {fmt(h['macro_f1'])}"
        if h.get("macro_f1_ci"):
            unit = (r.bootstrap or {}).get("unit", "image")
            # say when the interval also resamples source cells: it is wider than an image-only one
            line += (f" [{fmt(h['macro_f1_ci'][0])}, {fmt(h['macro_f1_ci'][1])}"
                     f"{'' if unit == 'image' else '; ' + unit + 's'}]")
        if r.mode == "detection":
            line += (f", mAP@0.5 {fmt(h.get('map50'))}, mAP@0.5:0.95 {fmt(h.get('map50_95'))}, "
                     f"localisation P/R {fmt(h['loc_precision'])}/{fmt(h['loc_recall'])}, "
                     f"accuracy of matched {fmt(h['accuracy_matched'])}")
            if h.get("map50_all_classes") is not None:
                line += (f", mAP over all class hypotheses @0.5 {fmt(h['map50_all_classes'])}, "
                         f"@0.5:0.95 {fmt(h['map50_95_all_classes'])}")
        else:
            line += f", accuracy {fmt(h['accuracy'])}"
        line += f", erythroblast F1 {fmt(r.erythroblast.get('f1'))}"
        return [line] + [f"note: {n}" for n in r.notes]


def make_report(out: str | os.PathLike, *, truth: str | None = None, pred: str | None = None,
                single_cell: str | None = None, split: str | None = None,
                iou=(0.5,), conf: float = 0.25, sweep: bool = False, bootstrap: int = 1000,
                bootstrap_unit: str = "auto", seed: int = 0, coco: bool = True,
                map_all_classes: bool = False, images_dir: str | None = None, worst: int = 8,
                overwrite: bool = False) -> Report:
    """A detection report (``truth`` + ``pred``) or a single-cell one (``single_cell``)."""
    _check_settings(iou, conf, bootstrap, bootstrap_unit)
    if single_cell and bootstrap_unit == "source":
        raise MixmagError("--bootstrap-unit source: a single-cell table has no source cells; each "
                          "row (one cell image) is resampled")
    if worst < 0:
        raise MixmagError(f"--worst {worst}: must be >= 0")
    if single_cell and (truth or pred):
        raise MixmagError("--single-cell takes one table; drop --truth/--pred (or drop "
                          "--single-cell for a detection report)")
    if not single_cell and not (truth and pred):
        raise MixmagError("give --truth and --pred (detection report) or --single-cell CSV")
    if map_all_classes and (not coco or single_cell):
        raise MixmagError("--map-all-classes is a COCO mAP of a detection report; drop --no-coco "
                          "(and --single-cell)")
    if images_dir and not Path(images_dir).is_dir():
        raise MixmagError(f"--images-dir {images_dir}: not a folder; give the folder holding "
                          "the truth images")
    prepare_output(out, overwrite, "report")
    with replaced_folder(out, overwrite, "report", "mixmag report") as work:
        result = _result(truth, pred, single_cell, split, iou=iou, conf=conf,
                         bootstrap=bootstrap, sweep=sweep, coco=coco, seed=seed,
                         all_classes_map=map_all_classes, bootstrap_unit=bootstrap_unit)
        # the new report replaces the folder as a whole: no PNG of an earlier run survives
        paths = write_report(result, work, overwrite=True, images_dir=images_dir, worst=worst)
    return Report(result, {k: Path(out) / Path(v).relative_to(work) for k, v in paths.items()})


def _result(truth, pred, single_cell, split, *, bootstrap, seed, **settings) -> Result:
    if single_cell:
        from .single_cell import evaluate_single_cell, load_single_cell

        table = load_single_cell(single_cell)
        return evaluate_single_cell(table, bootstrap=bootstrap, seed=seed,
                                    inputs={"table": single_cell})
    return _detection(truth, pred, split=split, bootstrap=bootstrap, seed=seed, **settings)


def _detection(truth_src, pred_src, *, split, **settings) -> Result:
    truth = load_truth(truth_src, split=split)
    pred = load_predictions(pred_src, truth)
    notes = []
    splits = sorted(set(truth.images["split"]) - {""})
    if not split and len(splits) > 1 and len(pred):
        used = sorted(set(truth.images.set_index("image").loc[pred["image"].unique(), "split"]))
        if used != splits:
            truth = restrict(truth, truth.images["split"].isin(used).to_numpy())
            notes.append(f"truth restricted to split(s) {', '.join(used)} (the ones the "
                         "predictions cover; pass --split to choose)")
    result = evaluate(truth, pred, **settings,
                      inputs={"pred": str(pred_src), "split": split or ", ".join(
                          sorted(set(truth.images["split"]) - {""})) or None})
    result.notes = notes + result.notes
    return result
