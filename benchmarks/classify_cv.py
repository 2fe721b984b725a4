"""5-fold cross-validation of a fine-tuning recipe (issue 4, protocol 2), one fold per process.

The split's train and val sources are pooled and cut into k stratified folds. For fold f the
held-out fold is scored only at the end; 10 % of the other folds (stratified) is the inner
validation set that picks the best epoch (early stopping, EMA), and the rest trains. So no image
that chose a model also scores it. Each fold scores on its held-out images: the network's own
softmax, the classical heads (each grid-searched on the inner validation set) on its pooled
features, and the softmax on the held-out cells rescaled to 0.5x / 1.5x inside their canvas.

The recipe is a run's ``args.yaml`` (or a zoo classifier's name: the ``args.yaml`` beside its
weights), so the CV measures exactly what was released; ``--epochs`` may shorten it (recorded). Folds are separate processes so that k of
them share one GPU; ``train`` can be stopped at a deadline and ``score`` then uses the fold's best
epoch so far (``stopped_by_deadline`` in its JSON says so).

    python benchmarks/classify_cv.py train --recipe classifier-lite2-224 \\
        --bundle .bundle/cells224.npz --weights .bundle/lite2_fp16.pt --fold 0 \\
        --device cuda --amp --workers 2 --project runs/cv/lite2-224
    python benchmarks/classify_cv.py score --project runs/cv/lite2-224 --fold 0 --device cuda
    python benchmarks/classify_cv.py summarize --project runs/cv/lite2-224 \\
        --out benchmarks/results/classify-cv-lite2-224.json

``tools/gpu/cv_scale.sh`` runs all of it in one device call. The folds and the summary are
mixmag.bench.folds'; the record is mixmag.bench.record's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.folds import (INNER_VAL, fold_assignment, read_recipe, recipe_file,  # noqa: E402
                                summarize_folds)
from mixmag.bench.record import finish_record, start_record  # noqa: E402
from mixmag.bench.singlecell import SCALES, softmax_pred  # noqa: E402
from mixmag.errors import MixmagError  # noqa: E402
from mixmag.fileio import prepare_output, write_json  # noqa: E402

HEADS = ("svm", "knn", "logreg", "rf")


def fold_dir(project: str, fold: int) -> Path:
    return Path(project) / f"fold{fold}"


def cmd_train(a) -> int:
    from mixmag.classify.data import open_source
    from mixmag.classify.train import TrainConfig, train_classifier

    recipe = read_recipe(recipe_file(a.recipe))
    if a.epochs:
        recipe["epochs"] = a.epochs
    src = open_source(a.split, a.bundle, size=recipe.get("imgsz", 160), pbc=a.pbc)
    assign = fold_assignment(np.asarray(src.splits), np.asarray(src.labels), a.fold, a.folds,
                             recipe.get("seed", 0))
    d = fold_dir(a.project, a.fold)
    prepare_output(d, a.overwrite, "fold")
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "cv_setup.json", {"recipe_file": a.recipe, "recipe": recipe, "fold": a.fold,
                                     "folds": a.folds, "inner_val": INNER_VAL,
                                     "bundle": a.bundle, "split": a.split,
                                     "counts": {s: int((assign == s).sum()) for s in
                                                ("train", "val", "test", "unused")}})
    cfg = TrainConfig(split=a.split, bundle=a.bundle, pbc=a.pbc, weights=a.weights, device=a.device,
                      amp=a.amp, workers=a.workers, project=str(d), name="run", overwrite=True,
                      eval_test=False, progress=False)
    valid = {f.name for f in fields(TrainConfig)}
    for k, v in recipe.items():
        if k in valid:
            setattr(cfg, k, v)
    train_classifier(cfg, assign=assign)
    return 0


def cmd_score(a) -> int:
    import pandas as pd

    from mixmag.classify.data import open_source
    from mixmag.classify.features import compute_features
    from mixmag.classify.heads import fit_head
    from mixmag.classify.metrics import classification_metrics, summary_line

    d = fold_dir(a.project, a.fold)
    setup = json.loads((d / "cv_setup.json").read_text())
    ckpt = d / "run" / "weights" / "best.pt"
    if not ckpt.is_file():
        raise MixmagError(f"{ckpt}: no best epoch yet (did `train` run?)")
    recipe = setup["recipe"]
    src = open_source(setup["split"], setup["bundle"], size=recipe.get("imgsz", 160), pbc=a.pbc)
    assign = fold_assignment(np.asarray(src.splits), np.asarray(src.labels), setup["fold"],
                             setup["folds"], recipe.get("seed", 0))
    kw = dict(split=setup["split"], bundle=setup["bundle"], pbc=a.pbc, model=str(ckpt),
              cache=str(d / "features"), device=a.device, batch=256, workers=a.workers,
              progress=False)
    t0 = time.perf_counter()
    fs = compute_features(**kw)
    fs.splits = assign  # the fold's own train / inner val / held-out
    Xte, yte = fs.part("test")
    res = {"fold": setup["fold"], "checkpoint": str(ckpt), "held_out": int(len(yte)), "configs": {}}
    m = classification_metrics(yte, softmax_pred(ckpt, Xte, a.device))
    res["configs"]["softmax"] = m
    print(f"fold {setup['fold']} softmax: {summary_line(m)}", flush=True)
    for kind in a.heads:
        h = fit_head(fs, kind, seed=recipe.get("seed", 0))
        m = classification_metrics(yte, h.predict(Xte))
        res["configs"][kind] = {**m, "params": h.params, "inner_val_accuracy": h.val_metrics["accuracy"]}
        print(f"fold {setup['fold']} {kind} {h.params}: {summary_line(m)}", flush=True)
    for s in SCALES:
        if s == 1.0:
            continue
        fx = compute_features(**kw, scale=s)
        held = assign == "test"
        m = classification_metrics(fx.y[held], softmax_pred(ckpt, fx.X[held], a.device))
        res["configs"][f"softmax@{s}x"] = m
        print(f"fold {setup['fold']} softmax at {s}x: {summary_line(m)}", flush=True)
    hist = pd.read_csv(d / "run" / "results.csv")
    epochs = int(recipe.get("epochs", 0))
    best = json.loads((d / "run" / "metrics.json").read_text()) if (d / "run" / "metrics.json").is_file() else None
    res.update(epochs_planned=epochs, epochs_run=int(len(hist)),
               best_epoch=_best_epoch(ckpt),
               stopped_by_deadline=best is None and len(hist) < epochs,
               train_seconds=float(hist["train_seconds"].sum()),
               score_seconds=round(time.perf_counter() - t0, 1))
    write_json(d / "cv_fold.json", res)
    return 0


def _best_epoch(ckpt) -> int:
    import torch

    m = torch.load(ckpt, map_location="cpu", weights_only=True)["metrics"]
    return int(m.get("best_epoch") or m["epoch"])  # a finished run's, or the epoch saved mid-run


def cmd_summarize(a, argv=None) -> int:
    folds = sorted(Path(a.project).glob("fold*/cv_fold.json"))
    if not folds:
        raise MixmagError(f"{a.project}: no fold*/cv_fold.json (run `score` first)")
    prepare_output(Path(a.out), a.overwrite, "results")
    rs = [json.loads(p.read_text()) for p in folds]
    setup = json.loads((Path(a.project) / "fold0" / "cv_setup.json").read_text()) \
        if (Path(a.project) / "fold0" / "cv_setup.json").is_file() else {}
    summary = summarize_folds(rs)
    for name, row in summary.items():
        if name == "gap_1x_minus_0.5x":
            continue
        print(f"{name:14s} accuracy {row['accuracy_mean']:.2%} ± {row['accuracy_sd'] or 0:.2%}  "
              f"macro F1 {row['macro_f1_mean']:.2%} ± {row['macro_f1_sd'] or 0:.2%}  erythroblast "
              f"P/R {row['erythroblast_precision_mean']:.2%}/{row['erythroblast_recall_mean']:.2%}"
              f"  ({row['folds']} folds)")
    if "gap_1x_minus_0.5x" in summary:
        print(f"1x - 0.5x accuracy gap: {summary['gap_1x_minus_0.5x']['mean']:.2%}")
    out = start_record(__file__, argv, protocol=__doc__.split("\n\n")[1].replace("\n", " "))
    if a.machine:  # where the folds ran, when summarized elsewhere
        out["machine"] = a.machine
    out |= {"setup": setup, "summary": summary,
            "folds": [{k: v for k, v in r.items() if k != "configs"} |
                      {"accuracy": {n: c["accuracy"] for n, c in r["configs"].items()}} for r in rs]}
    finish_record(out, Path(a.out))
    print(f"written {a.out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="fine-tune one fold")
    t.add_argument("--recipe", required=True,
                   help="a train-classifier args.yaml, or a zoo classifier's name (its args.yaml)")
    t.add_argument("--split")
    t.add_argument("--bundle")
    t.add_argument("--pbc")
    t.add_argument("--weights", help="ImageNet weights file (as train-classifier --weights)")
    t.add_argument("--epochs", type=int, default=0, help="shorten the recipe (0: its own)")
    t.add_argument("--overwrite", action="store_true")
    s = sub.add_parser("score", help="score one fold's best epoch on its held-out images")
    s.add_argument("--heads", nargs="*", default=list(HEADS))
    s.add_argument("--pbc")
    for p in (t, s):
        p.add_argument("--project", required=True, help="folder of the folds (fold0, fold1, ...)")
        p.add_argument("--fold", type=int, required=True)
        p.add_argument("--device", default="cpu")
        p.add_argument("--workers", type=int, default=0)
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--amp", action="store_true")
    m = sub.add_parser("summarize", help="mean ± sd over the scored folds")
    m.add_argument("--project", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--machine", help="where the folds ran (default: this machine)")
    m.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    if a.cmd == "summarize":
        return cmd_summarize(a, argv)
    return {"train": cmd_train, "score": cmd_score}[a.cmd](a)


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "benchmarks/classify_cv.py")
