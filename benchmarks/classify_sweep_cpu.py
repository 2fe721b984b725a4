"""Training-size sweep (issue 4, protocol 3) fine-tuned on a 2-core CPU: the CPU recipe
(EfficientNet-Lite0, 128 px, stem + 2 stages frozen, AdamW 2e-3, label smoothing 0.1, scale
augmentation 0.5-1.5 on half the images) trained on 21 images a class (the paper's "1 %"), 5 %,
10 % and 30 % of the train split, each scored on the whole test split with its own softmax and
with an SVM fitted on its fine-tuned pooled features of the same training images (the paper's
transfer-learning + SVM row).

Epochs follow a sample budget, so a small subset is seen often enough to learn from it:
epochs = clip(ceil(budget / train images), 3, max-epochs). Validation each epoch (early stopping,
best.pt) uses a fixed 40 val images a class, not the whole val split: on 21 images a class that
would cost more than the training. The 100 % point is the CPU recipe's own run
(benchmarks/results/classify-cpu-recipe.json, 3 epochs, whole val split).

    OMP_NUM_THREADS=2 python benchmarks/classify_sweep_cpu.py [--subsets 21/class 5% 10% 30%]

Writes benchmarks/results/classify-sweep-cpu.json (+ a confusion PNG per row).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.record import finish_record, start_record  # noqa: E402
from mixmag.bench.singlecell import checkpoint_features, fitted_head  # noqa: E402
from mixmag.errors import MixmagError  # noqa: E402
from mixmag.fileio import prepare_output  # noqa: E402

SUBSETS = {"21/class": {"per_class": 21}, "5%": {"train_fraction": 0.05},
           "10%": {"train_fraction": 0.10}, "30%": {"train_fraction": 0.30}}
# named presets (torchvision references style); "cpu" is the CPU recipe the README's 100 % row uses
RECIPES = {
    "cpu": dict(backbone="efficientnet_lite0", imgsz=128, freeze_stages=2, batch=32, lr=2e-3,
                label_smoothing=0.1, scale_range=(0.5, 1.5), scale_p=0.5),
    # the released backbone and input size: granule detail survives at 224 px, and Lite2's
    # ImageNet features are the stronger start when a class has 21 images
    "lite2-224": dict(backbone="efficientnet_lite2", imgsz=224, freeze_stages=2, batch=32, lr=1e-3,
                      label_smoothing=0.1, scale_range=(0.5, 1.5), scale_p=0.5),
}
VAL_PER_CLASS = 40


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--pbc")
    ap.add_argument("--subsets", nargs="+", default=list(SUBSETS), choices=list(SUBSETS))
    ap.add_argument("--recipe", choices=list(RECIPES), default="cpu",
                    help="cpu: Lite0 128 px (default); lite2-224: the released Lite2's backbone and size")
    ap.add_argument("--budget", type=int, default=12000, help="training samples a run (approx.)")
    ap.add_argument("--max-epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--project", default=str(REPO / "runs" / "benchmarks" / "sweep-cpu"))
    ap.add_argument("--cache", default=str(REPO / "runs" / "features"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "classify-sweep-cpu.json"))
    ap.add_argument("--reuse", action="store_true",
                    help="skip the training of a subset whose run already finished (metrics.json)")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    try:
        prepare_output(Path(args.out), args.overwrite, "results")
        record = document(args, argv)
        run(args, lambda rows, done: finish_record(record | {"complete": done, "rows": rows},
                                                   Path(args.out)))
    except MixmagError as e:
        print(f"benchmarks/classify_sweep_cpu.py: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


def document(args, argv) -> dict:
    """The result record without its rows (``complete`` and ``rows`` are added at each save)."""
    import torch

    return start_record(
        __file__, argv, benchmark="training-size sweep, fine-tuned on CPU (issue 4 protocol 3)",
        torch_threads=torch.get_num_threads(), subsets=args.subsets, recipe_name=args.recipe,
        recipe={k: list(v) if isinstance(v, tuple) else v for k, v in RECIPES[args.recipe].items()},
        val_per_class=VAL_PER_CLASS, budget=args.budget,
        hundred_percent="benchmarks/results/classify-cpu-recipe.json (same recipe, 3 epochs)")


def run(args, save) -> list[dict]:
    from mixmag.classes import CLASS_NAMES
    from mixmag.classify.data import open_source, subset_indices
    from mixmag.classify.heads import GRIDS
    from mixmag.classify.metrics import classification_metrics, save_confusion_png, summary_line
    from mixmag.classify.train import TrainConfig, train_classifier

    recipe = RECIPES[args.recipe]
    src = open_source(args.split, None, size=recipe["imgsz"], pbc=args.pbc, verify="none")
    rng = np.random.default_rng(args.seed)
    assign = np.array(src.splits, dtype=object)
    val = np.flatnonzero(src.splits == "val")
    for c in range(len(CLASS_NAMES)):
        members = val[src.labels[val] == c]
        assign[rng.permutation(members)[VAL_PER_CLASS:]] = "unused"
    assign = assign.astype(str)
    png_dir = Path(args.out).with_suffix("")
    rows = []
    for label in args.subsets:
        sub = SUBSETS[label]
        tr = subset_indices(src.labels, np.flatnonzero(src.splits == "train"),
                            sub.get("train_fraction"), sub.get("per_class"), args.seed)
        epochs = int(min(args.max_epochs, max(3, math.ceil(args.budget / len(tr)))))
        name = ("sweep-" if args.recipe == "cpu" else f"sweep-{args.recipe}-") + \
            label.replace("/", "-").replace("%", "pct")
        cfg = TrainConfig(split=args.split, pbc=args.pbc, epochs=epochs, patience=epochs,
                          project=args.project, name=name, overwrite=True, seed=args.seed,
                          progress=False, **sub, **recipe)
        print(f"== {label}: {len(tr)} train images, {epochs} epochs", flush=True)
        run_dir = Path(args.project) / name
        done = run_dir / "metrics.json"
        if args.reuse and done.is_file() and \
                json.loads(done.read_text()).get("train_images") == int(len(tr)):
            # an earlier invocation finished this training (same subset): score it again only
            m, secs = json.loads(done.read_text()), None
            print(f"  reusing {done}", flush=True)
        else:
            if args.reuse and (run_dir / "weights" / "last.pt").is_file():
                cfg.resume, cfg.overwrite = True, False  # an interrupted run: continue it exactly
                print(f"  resuming {run_dir}", flush=True)
            t0 = time.perf_counter()
            m = train_classifier(cfg, assign=assign)
            secs = round(time.perf_counter() - t0, 1)
        ckpt = run_dir / "weights" / "best.pt"
        va, te = np.flatnonzero(assign == "val"), np.flatnonzero(src.splits == "test")
        # one model load and one pass over the three parts
        Xtr, Xva, Xte = np.split(checkpoint_features(ckpt, src, np.concatenate([tr, va, te])),
                                 [len(tr), len(tr) + len(va)])
        yva, yte = src.labels[va], src.labels[te]
        # the SVM's C and kernel chosen on the same 40-a-class val images as the network's epoch
        fits = [fitted_head("svm", p, Xtr, src.labels[tr], args.seed) for p in GRIDS["svm"]]
        svm = max(fits, key=lambda f: (f.predict(Xva) == yva).mean())
        for head, pred in (("softmax", None), ("svm", svm.predict(Xte))):
            if head == "softmax":
                t = m["test"]
                cm = t["confusion"]
            else:
                t = classification_metrics(yte, pred)
                cm = t["confusion"]
            png = png_dir / f"{name}-{head}.png"
            save_confusion_png(cm, CLASS_NAMES, png, f"{label} {head} (acc {t['accuracy']:.2%})")
            print(f"  {label} + {head}: {summary_line(t)}", flush=True)
            rows.append({"subset": label, "head": head, "train_images": int(len(tr)),
                         "epochs": epochs, "best_epoch": m["best_epoch"],
                         "train_wall_seconds": secs, "test": t,
                         "svm_params": ({k: svm[-1].get_params()[k] for k in ("kernel", "C")}
                                        if head == "svm" else None),
                         "checkpoint": str(ckpt.relative_to(REPO)) if ckpt.is_relative_to(REPO) else str(ckpt),
                         "confusion_png": str(png.relative_to(REPO)) if png.is_relative_to(REPO) else str(png)})
        save(rows, label == args.subsets[-1])
    return rows


if __name__ == "__main__":
    sys.exit(main())
