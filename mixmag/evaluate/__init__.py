"""Evaluation: match predicted boxes to true cells and report per-class figures.

Public API::

    from mixmag.evaluate import evaluate, write_report, load_truth, load_predictions
    truth = load_truth("datasets/mix-v1", split="test")
    pred = load_predictions("runs/predict/x/cells.csv", truth)
    result = evaluate(truth, pred, iou=0.5, conf=0.25)      # or DataFrames of records
    write_report(result, "runs/report/x")

``evaluate_single_cell(table)`` does the same for a single-cell classifier's predictions.
"""

from .evaluation import MATCHING_RULE, Result, evaluate
from .load import Truth, load_predictions, load_truth
from .output import write_report
from .single_cell import evaluate_single_cell, load_single_cell

__all__ = ["evaluate", "evaluate_single_cell", "write_report", "load_truth", "load_predictions",
           "load_single_cell", "Result", "Truth", "MATCHING_RULE"]
