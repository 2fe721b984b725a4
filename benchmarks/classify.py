"""Single-cell classification protocols (issue 4), results to benchmarks/results/classify*.json.

  1. backbones x heads: each backbone (fine-tuned; with --quick: frozen ImageNet) x {softmax, SVM,
     XGBoost, KNN, RF, logistic regression}, scored on the manifest's test split;
  2. 5-fold stratified cross-validation (train+val pooled) of the best two configurations;
  3. training-size sweep: 21 images a class, 5 %, 10 %, 30 %, 100 % of train;
  4. the test set rescaled to 0.5x, 1x, 1.5x (cell rescaled inside its canvas).
Each result: accuracy, macro/weighted P/R/F1, per-class P/R/F1, erythroblast P/R, confusion (+ PNG).
Checkpoints are zoo names (`mixmag models`) or paths; folds, heads and the record come from
mixmag.bench.

  --quick    CPU-sized: frozen ImageNet features of one backbone + the classical heads; the softmax
             row is then a logistic-regression probe. Minutes on 2 cores once features are cached.
  (default)  GPU-sized: fine-tunes each backbone (train-classifier settings below), heads on the
             fine-tuned features, 5 more fine-tunes per CV configuration, 5 for the sweep.

python benchmarks/classify.py --split datasets/pbc-split.csv --quick
python benchmarks/classify.py --split datasets/pbc-split.csv --checkpoints \
    classifier-lite2-224 classifier-lite0-160-crops-m5
python benchmarks/classify.py --split datasets/pbc-split.csv --device cuda --amp --workers 16 \
    --backbones efficientnet_lite0 efficientnet_lite2 --imgsz 160 --epochs 40 --batch 256 --lr 2e-3
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.models import resolve_model  # noqa: E402
from mixmag.bench.record import finish_record, start_record  # noqa: E402
from mixmag.bench.singlecell import SCALES, fitted_head, softmax_pred  # noqa: E402
from mixmag.classes import CLASS_NAMES  # noqa: E402
from mixmag.classify.heads import GRIDS, fit_head  # noqa: E402
from mixmag.classify.metrics import classification_metrics, save_confusion_png, summary_line  # noqa: E402
from mixmag.errors import MixmagError  # noqa: E402
from mixmag.fileio import prepare_output  # noqa: E402

SWEEP = [("21/class", {"per_class": 21}), ("5%", {"train_fraction": 0.05}),
         ("10%", {"train_fraction": 0.10}), ("30%", {"train_fraction": 0.30}), ("100%", {})]


class Recorder:
    def __init__(self, png_dir: Path):
        self.png_dir = png_dir

    def __call__(self, name: str, y_true, y_pred, **extra) -> dict:
        m = classification_metrics(y_true, y_pred)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
        png = self.png_dir / f"{slug}.png"
        save_confusion_png(m["confusion"], CLASS_NAMES, png, f"{name} (acc {m['accuracy']:.2%})")
        print(f"  {name}: {summary_line(m)}", flush=True)
        return {"name": name, **extra, **m, "confusion_png": str(png.relative_to(REPO)) if png.is_relative_to(REPO) else str(png)}


# --- quick: frozen ImageNet features + heads ----------------------------------------------------

def run_quick(args, rec) -> dict:
    from mixmag.classify.features import compute_features

    out = {}
    bb = args.backbones[0]
    kw = dict(split=args.split, bundle=args.bundle, pbc=args.pbc, backbone=bb, imgsz=args.imgsz,
              cache=args.cache, device=args.device, batch=64, workers=args.workers)
    t0 = time.perf_counter()
    fs = compute_features(**kw)
    out["features"] = {**fs.meta, "cached": fs.cached, "seconds_this_call": round(time.perf_counter() - t0, 1)}
    if not (fs.splits == "test").any():
        raise MixmagError("the quick protocol scores the test split: use a manifest, or a bundle packed with test")
    Xte, yte = fs.part("test")
    rows, heads = [], {}
    print(f"1. frozen ImageNet {bb} features ({args.imgsz} px) x heads")
    for kind in args.heads:
        h = fit_head(fs, kind, seed=args.seed)
        heads[kind] = h
        rows.append(rec(f"{bb}-imagenet-{args.imgsz}px + {kind}", yte, h.predict(Xte), head=kind,
                        params=h.params, grid=h.grid, fit_seconds=h.fit_seconds,
                        val_accuracy=h.val_metrics["accuracy"]))
    out["backbones_x_heads"] = rows
    ranked = sorted(heads, key=lambda k: heads[k].val_metrics["accuracy"], reverse=True)
    print(f"2. 5-fold CV of {ranked[:2]} (train+val pooled)")
    out["cross_validation"] = [cv_head(fs, k, heads[k].params, args.seed) for k in ranked[:2]]
    best = ranked[0]
    print(f"3. training-size sweep, {best}")
    sweep = []
    for label, sub in SWEEP:
        h = fit_head(fs, best, seed=args.seed, **sub)
        sweep.append(rec(f"sweep {label} {bb}-imagenet + {best}", yte, h.predict(Xte), subset=label,
                         train_images=h.features["train_images"], params=h.params))
    out["training_size_sweep"] = sweep
    print(f"4. rescaled test cells, {best}")
    scl = []
    for s in SCALES:
        fx = fs if s == 1.0 else compute_features(**kw, scale=s, splits=("test",))
        X, y = fx.part("test")
        scl.append(rec(f"scale {s}x {bb}-imagenet + {best}", y, heads[best].predict(X), scale=s))
    out["rescaled_test"] = scl
    return out


def cv_head(fs, kind, params, seed=0, k=5) -> dict:
    from sklearn.model_selection import StratifiedKFold

    pool = np.flatnonzero(np.isin(fs.splits, ["train", "val"]))
    X, y = fs.X[pool], fs.y[pool]
    accs, f1s = [], []
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y):
        m = classification_metrics(y[te], fitted_head(kind, params, X[tr], y[tr], seed).predict(X[te]))
        accs.append(m["accuracy"])
        f1s.append(m["macro_f1"])
    r = {"config": f"{kind} {params}", "folds": k, "accuracy_mean": float(np.mean(accs)),
         "accuracy_sd": float(np.std(accs, ddof=1)), "macro_f1_mean": float(np.mean(f1s)),
         "macro_f1_sd": float(np.std(f1s, ddof=1)), "fold_accuracy": accs}
    print(f"  CV {r['config']}: {r['accuracy_mean']:.2%} ± {r['accuracy_sd']:.2%}")
    return r


# --- full: fine-tuning ---------------------------------------------------------------------------

def _train(args, name, assign=None, **over):
    from mixmag.classify.train import TrainConfig, train_classifier

    cfg = TrainConfig(split=args.split, bundle=args.bundle, pbc=args.pbc, imgsz=args.imgsz,
                      epochs=args.epochs, batch=args.batch, lr=args.lr, device=args.device,
                      amp=args.amp, workers=args.workers, project=str(args.project), name=name,
                      overwrite=True, seed=args.seed, label_smoothing=args.label_smoothing,
                      progress=False)
    for k, v in over.items():
        setattr(cfg, k, v)
    train_classifier(cfg, assign=assign)
    return Path(cfg.project) / name / "weights" / "best.pt"


def _score_ckpt(args, ckpt, scale=1.0):
    """Pooled features of every source image through a fine-tuned checkpoint (cached)."""
    from mixmag.classify.features import compute_features

    fs = compute_features(split=args.split, bundle=args.bundle, pbc=args.pbc, model=str(ckpt),
                          cache=args.cache, device=args.device, batch=256, workers=args.workers,
                          scale=scale)
    return fs


def run_full(args, rec) -> dict:
    out, configs = {"backbones_x_heads": []}, []
    print("1. fine-tuned backbones x heads")
    for bb in args.backbones:
        ckpt = _train(args, f"{bb}-full", backbone=bb)
        fs = _score_ckpt(args, ckpt)
        ev = "test" if (fs.splits == "test").any() else "val"
        Xe, ye = fs.part(ev)
        soft = softmax_pred(ckpt, Xe, args.device)
        vacc = float((softmax_pred(ckpt, fs.part("val")[0], args.device) == fs.part("val")[1]).mean())
        out["backbones_x_heads"].append(rec(f"{bb} fine-tuned + softmax ({ev})", ye, soft,
                                            backbone=bb, head="softmax", eval_split=ev,
                                            val_accuracy=vacc, checkpoint=str(ckpt)))
        configs.append((vacc, bb, "softmax", {}))
        for kind in args.heads:
            h = fit_head(fs, kind, seed=args.seed)
            out["backbones_x_heads"].append(rec(f"{bb} fine-tuned + {kind} ({ev})", ye, h.predict(Xe),
                                                backbone=bb, head=kind, params=h.params,
                                                eval_split=ev, val_accuracy=h.val_metrics["accuracy"]))
            configs.append((h.val_metrics["accuracy"], bb, kind, h.params))
    configs.sort(key=lambda c: c[0], reverse=True)
    best_two = configs[:2]
    print(f"2. 5-fold CV of {[(b, k) for _, b, k, _ in best_two]}")
    out["cross_validation"] = cv_finetune(args, best_two)
    _, bbest, kbest, pbest = configs[0]
    print(f"3. training-size sweep: {bbest} + {kbest}")
    sweep = []
    for label, sub in SWEEP:
        ckpt = _train(args, f"sweep-{bbest}-{label.replace('/', '-').replace('%', 'pct')}",
                      backbone=bbest, **sub)
        fs = _score_ckpt(args, ckpt)
        ev = "test" if (fs.splits == "test").any() else "val"
        Xe, ye = fs.part(ev)
        from mixmag.classify.data import subset_indices

        tr = subset_indices(fs.y, np.flatnonzero(fs.splits == "train"), sub.get("train_fraction"),
                            sub.get("per_class"), args.seed)
        for kind in ("softmax", "svm"):
            if kind == "softmax":
                pred = softmax_pred(ckpt, Xe, args.device)
            else:
                pred = fitted_head("svm", GRIDS["svm"][0], fs.X[tr], fs.y[tr]).predict(Xe)
            sweep.append(rec(f"sweep {label} {bbest} + {kind} ({ev})", ye, pred, subset=label,
                             head=kind, train_images=int(len(tr))))
    out["training_size_sweep"] = sweep
    print("4. rescaled test cells, best fine-tuned checkpoint + softmax")
    ckpt = Path(args.project) / f"{bbest}-full" / "weights" / "best.pt"
    scl = []
    for s in SCALES:
        fs = _score_ckpt(args, ckpt, scale=s)
        ev = "test" if (fs.splits == "test").any() else "val"
        Xe, ye = fs.part(ev)
        pred = softmax_pred(ckpt, Xe, args.device)
        scl.append(rec(f"scale {s}x {bbest} fine-tuned ({ev})", ye, pred, scale=s, eval_split=ev))
    out["rescaled_test"] = scl
    return out


def run_checkpoints(args, rec) -> dict:
    """Protocol 1 on models already fine-tuned (e.g. the released ones, trained on a GPU): each
    checkpoint's softmax and the classical heads (grid-searched on val) on its pooled features,
    scored on the test split; then 5-fold CV of the best two heads over train+val. The backbone
    saw train (and val, for early stopping), so this CV measures the heads' spread on fixed
    features, not the fine-tuning's: it is labelled so in the results."""
    out = {"backbones_x_heads": [], "cross_validation": []}
    for ckpt in (resolve_model(c, "classify") for c in args.checkpoints):
        name = Path(ckpt).parent.name if Path(ckpt).name == "best.pt" else Path(ckpt).stem
        fs = _score_ckpt(args, ckpt)
        Xe, ye = fs.part("test")
        if not len(ye):
            raise MixmagError("--checkpoints scores the test split: use a manifest with test images")
        Xv, yv = fs.part("val")
        soft = softmax_pred(ckpt, Xe, args.device)
        vacc = float((softmax_pred(ckpt, Xv, args.device) == yv).mean())
        print(f"1. {name} (fine-tuned) x heads")
        out["backbones_x_heads"].append(rec(f"{name} + softmax", ye, soft, checkpoint=str(ckpt),
                                            head="softmax", val_accuracy=vacc))
        heads = {}
        for kind in args.heads:
            h = fit_head(fs, kind, seed=args.seed)
            heads[kind] = h
            out["backbones_x_heads"].append(rec(f"{name} + {kind}", ye, h.predict(Xe), head=kind,
                                                checkpoint=str(ckpt), params=h.params, grid=h.grid,
                                                fit_seconds=h.fit_seconds,
                                                val_accuracy=h.val_metrics["accuracy"]))
        ranked = sorted(heads, key=lambda k: heads[k].val_metrics["accuracy"], reverse=True)[:2]
        print(f"2. {name}: 5-fold CV of heads {ranked} on its fixed features (train+val pooled)")
        for kind in ranked:
            r = cv_head(fs, kind, heads[kind].params, args.seed)
            r["config"] = f"{name} features + {r['config']}"
            r["note"] = ("heads refitted per fold on fixed fine-tuned features; the backbone saw "
                         "train and val, so this is the heads' spread, not a fine-tuning CV")
            out["cross_validation"].append(r)
    return out


def cv_finetune(args, configs, k=5) -> list:
    """Fine-tune per fold (train+val pooled; the held-out fold is scored once, an inner 10 % val
    picks the epoch: mixmag.bench.folds.fold_assignment), score softmax and heads on the held-out
    fold. Sequential; benchmarks/classify_cv.py runs the folds as parallel processes."""
    from mixmag.bench.folds import fold_assignment
    from mixmag.classify.data import open_source

    src = open_source(args.split, args.bundle, size=args.imgsz, pbc=args.pbc, verify="none")
    res = {(b, kd): [] for _, b, kd, _ in configs}
    params = {(b, kd): p for _, b, kd, p in configs}
    for bb in sorted({b for _, b, _, _ in configs}):
        for f in range(k):
            assign = fold_assignment(np.asarray(src.splits), np.asarray(src.labels), f, k, args.seed)
            ckpt = _train(args, f"cv-{bb}-fold{f}", assign=assign, backbone=bb, eval_test=False)
            fs = _score_ckpt(args, ckpt)
            tr, va = assign == "train", assign == "test"
            Xtr, ytr, Xva, yva = fs.X[tr], fs.y[tr], fs.X[va], fs.y[va]
            for key in [c for c in res if c[0] == bb]:
                if key[1] == "softmax":
                    pred = softmax_pred(ckpt, Xva, args.device)
                else:
                    pred = fitted_head(key[1], params[key], Xtr, ytr, args.seed).predict(Xva)
                res[key].append(classification_metrics(yva, pred))
    out = []
    for (bb, kd), ms in res.items():
        accs, f1s = [m["accuracy"] for m in ms], [m["macro_f1"] for m in ms]
        out.append({"config": f"{bb} fine-tuned + {kd} {params[(bb, kd)]}", "folds": k,
                    "accuracy_mean": float(np.mean(accs)), "accuracy_sd": float(np.std(accs, ddof=1)),
                    "macro_f1_mean": float(np.mean(f1s)), "macro_f1_sd": float(np.std(f1s, ddof=1)),
                    "fold_accuracy": accs})
        print(f"  CV {out[-1]['config']}: {out[-1]['accuracy_mean']:.2%} ± {out[-1]['accuracy_sd']:.2%}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--bundle")
    ap.add_argument("--pbc")
    ap.add_argument("--quick", action="store_true", help="CPU-sized protocol (frozen features + heads)")
    ap.add_argument("--checkpoints", nargs="+",
                    help="protocol 1 (+ head CV) on these already fine-tuned checkpoints (zoo names "
                         "or paths) instead of training: minutes on a CPU")
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0"])
    ap.add_argument("--heads", nargs="+", default=None,
                    help="default: svm xgb knn rf logreg (quick: logreg svm knn rf)")
    ap.add_argument("--imgsz", type=int, default=None, help="default 160 (quick: 128)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--project", default=str(REPO / "runs" / "benchmarks" / "classify"))
    ap.add_argument("--cache", default=str(REPO / "runs" / "features"))
    ap.add_argument("--out", help="default benchmarks/results/classify[-quick].json")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    args.heads = args.heads or (["logreg", "svm", "knn", "rf"] if args.quick else ["svm", "xgb", "knn", "rf"])
    args.imgsz = args.imgsz or (128 if args.quick else 160)
    stem = "classify-quick" if args.quick else ("classify-checkpoints" if args.checkpoints else "classify")
    out = Path(args.out or REPO / "benchmarks" / "results" / f"{stem}.json")
    try:
        prepare_output(out, args.overwrite, "results")
        import torch

        # the code that runs is the checkout at the start
        doc = start_record(__file__, argv, benchmark="single-cell classification protocols (issue 4)",
                           torch_threads=torch.get_num_threads(),
                           mode=("quick (frozen ImageNet features + classical heads)" if args.quick else
                                 "checkpoints (given fine-tuned models + classical heads)" if args.checkpoints
                                 else "full (fine-tuning)"),
                           settings={k: v for k, v in vars(args).items() if k not in ("overwrite",)})
        rec = Recorder(out.parent / out.stem)
        t0 = time.perf_counter()
        if args.checkpoints:
            res = run_checkpoints(args, rec)
        else:
            res = run_quick(args, rec) if args.quick else run_full(args, rec)
    except MixmagError as e:
        print(f"benchmarks/classify.py: error: {e}", file=sys.stderr)
        return 2
    doc |= {"wall_seconds": round(time.perf_counter() - t0, 1), **res}
    finish_record(doc, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
