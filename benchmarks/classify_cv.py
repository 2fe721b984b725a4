"""5-fold cross-validation of a fine-tuning recipe (issue 4, protocol 2), one fold per process.

The split's train and val sources are pooled and cut into k stratified folds. For fold f the
held-out fold is scored only at the end; 10 % of the other folds (stratified) is the inner
validation set that picks the best epoch (early stopping, EMA), and the rest trains. So no image
that chose a model also scores it. Each fold scores on its held-out images: the network's own
softmax, the classical heads (each grid-searched on the inner validation set) on its pooled
features, and the softmax on the held-out cells rescaled to 0.5x / 1.5x inside their canvas.

The recipe is a run's ``args.yaml`` (e.g. the released model's), so the CV measures exactly what
was released; ``--epochs`` may shorten it (recorded). Folds are separate processes so that k of
them share one GPU; ``train`` can be stopped at a deadline and ``score`` then uses the fold's best
epoch so far (``stopped_by_deadline`` in its JSON says so).

    python benchmarks/classify_cv.py train --recipe models/released/classifier-lite2-224/args.yaml \\
        --bundle .bundle/cells224.npz --weights .bundle/lite2_fp16.pt --fold 0 \\
        --device cuda --amp --workers 2 --project runs/cv/lite2-224
    python benchmarks/classify_cv.py score --project runs/cv/lite2-224 --fold 0 --device cuda
    python benchmarks/classify_cv.py summarize --project runs/cv/lite2-224 \\
        --out benchmarks/results/classify-cv-lite2-224.json

``tools/gpu/cv_scale.sh`` runs all of it in one device call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.errors import MixmagError  # noqa: E402
from mixmag.fileio import prepare_output, write_json  # noqa: E402

# the settings of a run's args.yaml that make up its recipe (paths, device and naming are not)
RECIPE_KEYS = ("backbone", "pretrained", "imgsz", "store_size", "epochs", "batch", "lr",
               "weight_decay", "warmup", "label_smoothing", "class_weights", "train_fraction",
               "per_class", "scale_range", "scale_p", "freeze_stages", "colour", "patience", "ema",
               "tta", "seed")
INNER_VAL = 0.10
SCALES = (0.5, 1.0, 1.5)
HEADS = ("svm", "knn", "logreg", "rf")


def fold_assignment(splits: np.ndarray, labels: np.ndarray, fold: int, k: int = 5, seed: int = 0,
                    inner_val: float = INNER_VAL) -> np.ndarray:
    """Split names for fold ``fold``: held-out fold -> "test", inner val -> "val", rest -> "train".

    Images outside the train+val pool (the manifest's test split) become "unused"."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if not 0 <= fold < k:
        raise MixmagError(f"--fold {fold}: must be in 0..{k - 1}")
    pool = np.flatnonzero(np.isin(splits, ["train", "val"]))
    held, rest = None, None
    for f, (tr, te) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed)
                                 .split(pool, labels[pool])):
        if f == fold:
            rest, held = pool[tr], pool[te]
    tr, va = train_test_split(rest, test_size=inner_val, stratify=labels[rest], random_state=seed)
    out = np.full(len(splits), "unused", dtype=object)
    out[tr], out[va], out[held] = "train", "val", "test"
    return out.astype(str)


def read_recipe(path: str) -> dict:
    import yaml

    try:
        args = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise MixmagError(f"--recipe {path}: cannot read ({type(e).__name__})") from None
    if not isinstance(args, dict) or "backbone" not in args:
        raise MixmagError(f"--recipe {path}: not a train-classifier args.yaml")
    if args.get("init_from") or args.get("init_checkpoint"):
        # its starting checkpoint saw train and val: no fold of them would be held out from it
        raise MixmagError(f"--recipe {path}: this run started from a checkpoint (--init); "
                          "cross-validate the recipe that made that checkpoint instead")
    recipe = {k: args[k] for k in RECIPE_KEYS if k in args}
    if "scale_range" in recipe:
        recipe["scale_range"] = tuple(recipe["scale_range"])
    return recipe


def fold_dir(project: str, fold: int) -> Path:
    return Path(project) / f"fold{fold}"


def cmd_train(a) -> int:
    from mixmag.classify.data import open_source
    from mixmag.classify.train import TrainConfig, train_classifier

    recipe = read_recipe(a.recipe)
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

    from classify import softmax_pred  # benchmarks/classify.py: the network's head on its features

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


def cmd_summarize(a) -> int:
    from classify import machine  # benchmarks/classify.py
    folds = sorted(Path(a.project).glob("fold*/cv_fold.json"))
    if not folds:
        raise MixmagError(f"{a.project}: no fold*/cv_fold.json (run `score` first)")
    prepare_output(Path(a.out), a.overwrite, "results")
    rs = [json.loads(p.read_text()) for p in folds]
    setup = json.loads((Path(a.project) / "fold0" / "cv_setup.json").read_text()) \
        if (Path(a.project) / "fold0" / "cv_setup.json").is_file() else {}
    summary = {}
    for name in rs[0]["configs"]:
        ms = [r["configs"][name] for r in rs if name in r["configs"]]
        row = {"folds": len(ms)}
        for key in ("accuracy", "macro_f1", "erythroblast_precision", "erythroblast_recall"):
            v = np.array([m[key] for m in ms], float)
            row[f"{key}_mean"] = float(v.mean())
            row[f"{key}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else None
            row[f"fold_{key}"] = v.tolist()
        if "params" in ms[0]:
            row["params"] = [m["params"] for m in ms]
        summary[name] = row
        print(f"{name:14s} accuracy {row['accuracy_mean']:.2%} ± {row['accuracy_sd'] or 0:.2%}  "
              f"macro F1 {row['macro_f1_mean']:.2%} ± {row['macro_f1_sd'] or 0:.2%}  erythroblast "
              f"P/R {row['erythroblast_precision_mean']:.2%}/{row['erythroblast_recall_mean']:.2%}"
              f"  ({row['folds']} folds)")
    if "softmax@0.5x" in summary:
        gap = [r["configs"]["softmax"]["accuracy"] - r["configs"]["softmax@0.5x"]["accuracy"]
               for r in rs if "softmax@0.5x" in r["configs"]]
        summary["gap_1x_minus_0.5x"] = {"mean": float(np.mean(gap)), "fold_values": gap}
        print(f"1x - 0.5x accuracy gap: {np.mean(gap):.2%}")
    out = {"protocol": __doc__.split("\n\n")[1].replace("\n", " "),
           "command": " ".join(["python", *sys.argv]), "code_commit": os.environ.get("MIXMAG_COMMIT"),
           "date": time.strftime("%Y-%m-%d %H:%M"), "machine": a.machine or machine(),
           "setup": setup, "summary": summary,
           "folds": [{k: v for k, v in r.items() if k != "configs"} |
                     {"accuracy": {n: c["accuracy"] for n, c in r["configs"].items()}} for r in rs]}
    write_json(Path(a.out), out)
    print(f"written {a.out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="fine-tune one fold")
    t.add_argument("--recipe", required=True, help="a train-classifier args.yaml")
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
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    return {"train": cmd_train, "score": cmd_score, "summarize": cmd_summarize}[a.cmd](a)


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "benchmarks/classify_cv.py")
