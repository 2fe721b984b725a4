"""write_report(): every output file of a report, each written atomically."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import pandas as pd

from .. import __version__
from ..fileio import prepare_output, write_bytes, write_csv, write_json, write_text
from .evaluation import Result
from .metrics import confusion_frame

PER_MAG_COLUMNS = ["magnification", "mag_low", "mag_high", "class_name", "support", "predicted",
                   "tp", "fp", "fn", "precision", "recall", "f1", "macro_f1", "accuracy_matched",
                   "loc_precision", "loc_recall", "n_missed", "n_spurious"]


def make_figures(result: Result) -> dict[str, bytes]:
    """The report's PNGs by file name."""
    from . import plots

    det = result.mode == "detection"
    cm = confusion_frame(result.confusion)
    cmn = confusion_frame(result.confusion, normalise=True)
    if not det:
        cm, cmn = cm.iloc[:-1, :-1], cmn.iloc[:-1, :-1]
    figs = {
        "confusion_counts.png": plots.confusion_png(cm, False, "Confusion matrix (counts)"),
        "confusion_normalised.png": plots.confusion_png(cmn, True,
                                                        "Confusion matrix (row-normalised)"),
    }
    if result.coco and result.coco.get("pr50"):
        key = "ap50" if det else "ap"
        ap = {k: v.get(key) for k, v in result.coco["per_class"].items()}
        title = ("Precision–recall at IoU 0.5 (COCOeval)" if det
                 else "Precision–recall from class probabilities")
        figs["pr_curve.png"] = plots.pr_png(result.coco["recall"], result.coco["pr50"], ap, title)
    if result.sweep is not None and len(result.sweep):
        figs["sweep.png"] = plots.sweep_png(result.sweep, result.headline["conf"])
    if result.per_magnification is not None and len(result.per_magnification):
        figs["magnification.png"] = plots.magnification_png(result.per_magnification)
    return figs


def write_report(result: Result, out_dir: str | os.PathLike, *, overwrite: bool = False,
                 images_dir: str | os.PathLike | None = None, worst: int = 8,
                 title: str | None = None) -> dict[str, Path]:
    """Write metrics.json, per_class.csv, per_magnification.csv, per_image.csv, the PNGs,
    report.md and a self-contained report.html into ``out_dir``; returns {name: path}.

    images_dir: where the truth's image files are (default: the dataset root the truth came
    from); the HTML draws the ``worst`` worst-scoring images it can read there.
    """
    from .render import build_sections, render_html, render_markdown

    out = prepare_output(Path(out_dir), overwrite, "report")
    figures = make_figures(result)
    strip, note = [], ""
    if result.mode == "detection":
        from .plots import draw_worst

        root = result.truth.root if result.truth is not None else None
        strip = draw_worst(result, root, Path(images_dir) if images_dir else None, n=worst)
        if not strip and (result.per_image["errors"] > 0).any():
            note = ("The worst-scoring images could not be drawn: their files were not found "
                    f"(looked under {images_dir or root}); pass --images-dir.")
        elif not strip:
            note = "No image has any error."
    sections = build_sections(result, figures, strip, note)
    name = title or Path(out_dir).name
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    if result.mode == "detection":
        src = (f"truth: {result.inputs.get('truth', '')} · predictions: "
               f"{result.inputs.get('pred', '')}")
    else:
        src = f"table: {result.inputs.get('table', '')}"
    subtitle = f"mixmag {__version__} · {result.mode} report · {stamp} · {src}"
    paths = {}

    def put(fname, writer, data):
        p = out / fname
        writer(p, data)
        paths[fname] = p

    metrics = result.to_dict()
    metrics["created"] = stamp
    metrics["mixmag_version"] = __version__
    put("metrics.json", write_json, metrics)
    put("per_class.csv", write_csv, result.per_class)
    pm = result.per_magnification
    put("per_magnification.csv", write_csv,
        pm if pm is not None else pd.DataFrame(columns=PER_MAG_COLUMNS))
    if result.per_image is not None:
        put("per_image.csv", write_csv, result.per_image)
    put("confusion.csv", write_csv, confusion_frame(result.confusion).rename_axis("true")
        .reset_index())
    for fname, png in figures.items():
        put(fname, write_bytes, png)
    put("report.md", write_text, render_markdown(f"mixmag report: {name}", sections, subtitle))
    put("report.html", write_text, render_html(f"mixmag report: {name}", sections, subtitle))
    return paths
