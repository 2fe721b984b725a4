"""The cross-validation folds of a fine-tuning recipe (issue 4, protocol 2).

The split's train and val sources are pooled and cut into k stratified folds. For fold f the
held-out fold is scored only at the end; 10 % of the other folds (stratified) is the inner
validation set that picks the best epoch, and the rest trains: no image that chose a model also
scores it. ``benchmarks/classify_cv.py`` runs the folds; ``benchmarks/classify.py`` uses the same
folds for its sequential CV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MixmagError

__all__ = ["INNER_VAL", "RECIPE_KEYS", "fold_assignment", "read_recipe", "recipe_file", "summarize_folds"]

# the settings of a run's args.yaml that make up its recipe (paths, device and naming are not)
RECIPE_KEYS = ("backbone", "pretrained", "imgsz", "store_size", "epochs", "batch", "lr",
               "weight_decay", "warmup", "label_smoothing", "class_weights", "train_fraction",
               "per_class", "scale_range", "scale_p", "freeze_stages", "colour", "patience", "ema",
               "tta", "seed")
INNER_VAL = 0.10


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
    """The recipe (``RECIPE_KEYS``) of a train-classifier ``args.yaml``; a one-line error for a
    file that is not one, or for a run that started from a checkpoint (that checkpoint saw train
    and val, so no fold of them would be held out from it)."""
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


def recipe_file(spec: str) -> str:
    """A recipe argument as a file: a zoo classifier's name gives the ``args.yaml`` beside its
    weights; anything else is a path to a run's ``args.yaml``."""
    from ..zoo import load_zoo, resolve

    if spec in load_zoo().models:
        return str(resolve(spec, "classify")[0].with_name("args.yaml"))
    return spec


def summarize_folds(folds: list[dict]) -> dict:
    """Mean ± sd over scored folds (each a ``classify_cv.py score`` result): per configuration
    the accuracy, macro F1 and erythroblast P/R (mean, sd, the fold values; a head's parameters
    per fold), and with 0.5x scores the 1x − 0.5x accuracy gap of the softmax."""
    summary = {}
    for name in folds[0]["configs"]:
        ms = [r["configs"][name] for r in folds if name in r["configs"]]
        row = {"folds": len(ms)}
        for key in ("accuracy", "macro_f1", "erythroblast_precision", "erythroblast_recall"):
            v = np.array([m[key] for m in ms], float)
            row[f"{key}_mean"] = float(v.mean())
            row[f"{key}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else None
            row[f"fold_{key}"] = v.tolist()
        if "params" in ms[0]:
            row["params"] = [m["params"] for m in ms]
        summary[name] = row
    if "softmax@0.5x" in summary:
        gap = [r["configs"]["softmax"]["accuracy"] - r["configs"]["softmax@0.5x"]["accuracy"]
               for r in folds if "softmax@0.5x" in r["configs"]]
        summary["gap_1x_minus_0.5x"] = {"mean": float(np.mean(gap)), "fold_values": gap}
    return summary
