"""Adapt a single-cell classifier to the crops ``mixmag predict`` cuts from composites.

A classifier trained on whole PBC crops meets a different context in the pipeline: a masked cell
pasted on a procedural background (greyish red cells), cut as a square around a detector box,
and with scale normalisation a 360·m px field that may hold neighbouring white cells. Its
accuracy there falls far below its PBC figure. The cheap remedy kept here: keep the backbone,
take pooled features of crops made exactly as ``predict`` makes them (``mixmag.pipeline.crops``,
both scale-norm on and off) from the truth boxes of TRAIN composites (edges jittered to mimic
detector boxes), optionally add the PBC train crops so the PBC domain is not forgotten, and refit
only the final linear layer (multinomial logistic regression, C chosen on the val composites and
val PBC crops). The result is an ordinary classifier checkpoint (docs/CONTRACTS.md).

Only the composites' train and val splits are read; a dataset's test split is never touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..classes import CLASS_ID, CLASS_NAMES
from ..errors import MixmagError
from ..fileio import atomic_path, prepare_output, sha256_file, write_json, write_text
from ..images import read_image
from ..classify.checkpoint import build_model, load_classifier, read_checkpoint, save_checkpoint
from ..classify.metrics import classification_metrics, save_confusion_png, summary_line
from .crops import CROP_STYLES

log = logging.getLogger(__name__)

MODES = CROP_STYLES


@dataclass
class AdaptConfig:
    weights: str                      # base classifier checkpoint
    dataset: str                      # composites from `mixmag synthesize` (train/val splits used)
    out: str                          # run folder, e.g. runs/classify/NAME
    pbc_split: str | None = None      # also fit on PBC train crops (val crops help choose C)
    pbc: str | None = None
    pbc_share: float = 0.3            # share of the total sample weight given to PBC crops
    native_sizes: str | None = None   # magnification.json or cells.csv; default: the dataset's
    modes: tuple[str, ...] = MODES
    jitter: float = 0.03              # sd of each box edge, as a fraction of the box side
    default_mag_p: float = 0.25       # share of scale-norm crops sized by the all-class median
    window: int = 360
    margin: float = 0.15
    max_train_images: int | None = None
    max_val_images: int | None = None
    pbc_per_class: int | None = None  # PBC crops a class and split (None: all)
    grid: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)   # logistic-regression C
    seed: int = 0
    batch: int = 64
    cache: str = "runs/features"
    device: str = "cpu"
    overwrite: bool = False
    progress: bool = True
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- crops as predict makes them

def jitter_boxes(boxes: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Each edge moved by N(0, sd·side): truth boxes made to look like a detector's."""
    b = np.asarray(boxes, float).reshape(-1, 4).copy()
    if sd <= 0 or not len(b):
        return b
    side = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]] * 2, 1)
    b += rng.normal(0, sd, b.shape) * side
    # never flip or collapse a box
    b[:, 2] = np.maximum(b[:, 2], b[:, 0] + 2)
    b[:, 3] = np.maximum(b[:, 3], b[:, 1] + 2)
    return b


def crops_for_image(img, boxes, class_names, mode: str, size: int, estimator, rng,
                    default_mag_p: float = 0.25, window: int = 360, margin: float = 0.15):
    """Crops of one image's cells as ``mixmag predict`` cuts them (``mode`` scale or plain).

    Scale-norm crops use the magnification predict would estimate: box size over the native size
    of the cell's class (the recheck pass), or over the all-class median (the first pass) for a
    ``default_mag_p`` share, since predict keeps that crop when the two agree within 10 %.
    """
    from .crops import plain_crops, scale_norm_crops
    from ..detect.magnification import box_size

    if mode == "plain":
        return plain_crops(img, boxes, margin, size)
    if mode != "scale":
        raise MixmagError(f"--modes {mode}: expected scale or plain")
    native = estimator.native_for(class_names)
    first = rng.random(len(boxes)) < default_mag_p
    native = np.where(first, estimator.default, native)
    return scale_norm_crops(img, boxes, box_size(boxes) / native, window, size)


@torch.inference_mode()
def pooled_features(clf, crops, batch: int = 64) -> np.ndarray:
    """Pooled backbone features of BGR crops, preprocessed as ``Classifier.predict`` does."""
    from ..classify.registry import get_backbone

    pooled = get_backbone(clf.backbone).pooled
    out = [pooled(clf.model, x).float().cpu().numpy() for x in clf._batches(crops, batch)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


@torch.inference_mode()
def check_head_is_last(clf, crops) -> None:
    """Refitting the last linear layer on pooled features only works if pooled → linear is the model."""
    x = next(clf._batches(crops[:8], 8))
    from ..classify.registry import get_backbone

    f = get_backbone(clf.backbone).pooled(clf.model, x).float()
    gap = float((head_layer(clf.model)(f) - clf.model(x).float()).abs().max())
    if gap > 1e-3:
        raise MixmagError(f"{clf.path}: pooled features through the last linear layer do not give "
                          f"the model's logits (gap {gap:.3g}); this backbone cannot be adapted here")


def pbc_features(clf, split_csv, pbc, splits, per_class: int | None, seed: int, cache, batch,
                 progress=True) -> dict:
    """Pooled features of (a per-class sample of) the manifest's PBC crops in ``splits``; cached."""
    from tqdm import tqdm

    from ..data.split import load_manifest

    m = load_manifest(split_csv, pbc=pbc)
    m = m[m["split"].isin(splits)]
    if per_class:
        m = m.sample(frac=1.0, random_state=seed).groupby(["split", "class_id"]).head(per_class)
    m = m.sort_values("path")
    key = hashlib.sha256(json.dumps({"ckpt": sha256_file(clf.path), "paths": m["path"].tolist(),
                                     "sha": m["sha256"].tolist()}).encode()).hexdigest()[:20]
    path = Path(cache) / f"domain-pbc-{key}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return {k: z[k] for k in z.files}
    X = []
    paths = m["abspath"].tolist()
    for s in tqdm(range(0, len(paths), 4 * batch), desc="PBC crops", disable=not progress):
        X.append(pooled_features(clf, [read_image(p) for p in paths[s:s + 4 * batch]], batch))
    out = {"X": np.concatenate(X).astype(np.float32), "y": m["class_id"].to_numpy(np.int64),
           "split": m["split"].to_numpy(str), "manifest_hash": np.asarray(m.attrs.get("manifest_hash", ""))}
    Path(cache).mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **out)
    return out


def composite_features(clf, dataset, split: str, cfg: AdaptConfig, estimator,
                       max_images: int | None = None) -> dict:
    """Features of every cell of ``split`` in ``dataset``, cropped in each mode; cached on disk."""
    from tqdm import tqdm

    from ..synth.export import load_cells

    if split not in ("train", "val"):
        raise MixmagError(f"composite split {split}: only train and val composites may be used")
    cells = load_cells(dataset)
    cells = cells[cells["split"] == split]
    images = sorted(cells["image"].unique())
    if max_images:
        images = images[:max_images]
    cells = cells[cells["image"].isin(images)]
    key = hashlib.sha256(json.dumps({
        "ckpt": sha256_file(clf.path), "cells": sha256_file(Path(dataset) / "cells.csv"),
        "split": split, "n": len(images), "modes": list(cfg.modes), "jitter": cfg.jitter,
        "p": cfg.default_mag_p, "window": cfg.window, "margin": cfg.margin, "seed": cfg.seed,
        "native": estimator.native, "default": estimator.default, "size": clf.input_size,
    }, sort_keys=True).encode()).hexdigest()[:20]
    path = Path(cfg.cache) / f"domain-{key}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        log.info("composite features from cache %s", path)
        return {k: z[k] for k in z.files}
    rng = np.random.default_rng([cfg.seed, 0 if split == "train" else 1])
    X, y, mode_of, mag = [], [], [], []
    pending: list = []
    t0 = time.perf_counter()

    def flush():
        if pending:
            if not X:
                check_head_is_last(clf, pending)
            X.append(pooled_features(clf, pending, cfg.batch))
            pending.clear()

    for name in tqdm(images, desc=f"crops {split}", disable=not cfg.progress, unit="img"):
        g = cells[cells["image"] == name]
        img = read_image(Path(dataset) / name)
        truth = g[["x1", "y1", "x2", "y2"]].to_numpy(float)
        names = g["class_name"].tolist()
        for mode in cfg.modes:
            boxes = jitter_boxes(truth, cfg.jitter, rng)
            pending += crops_for_image(img, boxes, names, mode, clf.input_size, estimator, rng,
                                       cfg.default_mag_p, cfg.window, cfg.margin)
            y += [CLASS_ID[c] for c in names]
            mode_of += [mode] * len(g)
            mag += g["magnification"].tolist()
        if len(pending) >= 4 * cfg.batch:
            flush()
    flush()
    out = {"X": np.concatenate(X).astype(np.float32),
           "y": np.asarray(y, np.int64), "mode": np.asarray(mode_of), "mag": np.asarray(mag, float),
           "seconds": np.float64(time.perf_counter() - t0)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **out)
    log.info("composite %s features %s in %.0fs", split, out["X"].shape, out["seconds"])
    return out


# ---------------------------------------------------------------- the head

def head_layer(model: nn.Module) -> nn.Linear:
    """The final linear layer (timm ``classifier``, torchvision ``fc``, microcellnet ``head[-1]``)."""
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not lin:
        raise MixmagError("classifier: no final linear layer to refit")
    return lin[-1]


def fit_linear_head(X, y, w, C: float, seed: int = 0, n_classes: int = len(CLASS_NAMES)):
    """Multinomial logistic regression on standardised features, folded back to (W, b) on raw ones."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = X.mean(0), X.std(0) + 1e-6
    lr = LogisticRegression(C=C, max_iter=300, tol=1e-4, random_state=seed)
    lr.fit((X - mu) / sd, y, sample_weight=w)
    W = np.zeros((n_classes, X.shape[1]))
    b = np.full(n_classes, -30.0)  # a class absent from training never wins
    W[lr.classes_] = lr.coef_ / sd
    b[lr.classes_] = lr.intercept_ - (lr.coef_ / sd) @ mu
    return W.astype(np.float32), b.astype(np.float32)


def _acc(W, b, X, y) -> dict:
    return classification_metrics(y, (X @ W.T + b).argmax(1))


def _brief(m: dict) -> dict:
    keep = ("n", "accuracy", "macro_f1", "erythroblast_precision", "erythroblast_recall")
    return {k: m[k] for k in keep if k in m}


# ---------------------------------------------------------------- the command

def adapt_classifier(cfg: AdaptConfig) -> dict:
    from ..detect.magnification import (MagnificationEstimator, load_native_sizes,
                                        native_sizes_from_cells)
    from ..synth.export import load_cells

    run = Path(cfg.out)
    prepare_output(run, cfg.overwrite, "run folder")
    if not 0 <= cfg.pbc_share < 1:
        raise MixmagError(f"--pbc-share {cfg.pbc_share}: must be in [0, 1)")
    bad = [m for m in cfg.modes if m not in MODES]
    if bad or not cfg.modes:
        raise MixmagError(f"--modes {list(cfg.modes)}: choose from {list(MODES)}")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    ck = read_checkpoint(cfg.weights)
    clf = load_classifier(cfg.weights, cfg.device)
    cells = load_cells(cfg.dataset)
    have = set(cells["split"])
    if not {"train", "val"} <= have:
        raise MixmagError(f"{cfg.dataset}: needs train and val composites (has {sorted(have)}); "
                          "synthesize with --splits train val")
    sizes = (load_native_sizes(cfg.native_sizes) if cfg.native_sizes
             else native_sizes_from_cells(cells, "train"))
    est = MagnificationEstimator(sizes)
    ds_meta = json.loads((Path(cfg.dataset) / "dataset.json").read_text()) \
        if (Path(cfg.dataset) / "dataset.json").is_file() else {}
    if ds_meta.get("manifest_hash") and ck.get("manifest_hash") and \
            ds_meta["manifest_hash"] != ck["manifest_hash"]:
        raise MixmagError(f"{cfg.dataset}: built from manifest {ds_meta['manifest_hash']}, the "
                          f"classifier from {ck['manifest_hash']}; their splits may overlap")

    tr = composite_features(clf, cfg.dataset, "train", cfg, est, cfg.max_train_images)
    va = composite_features(clf, cfg.dataset, "val", cfg, est, cfg.max_val_images)
    lin = head_layer(clf.model)
    W0 = lin.weight.detach().float().cpu().numpy()
    b0 = lin.bias.detach().float().cpu().numpy()

    Xs, ys, ws = [tr["X"]], [tr["y"]], [np.full(len(tr["y"]), 1.0)]
    pbc_val = None
    if cfg.pbc_split:
        fs = pbc_features(clf, cfg.pbc_split, cfg.pbc, ("train", "val"), cfg.pbc_per_class,
                          cfg.seed, cfg.cache, cfg.batch, cfg.progress)
        mh = str(fs["manifest_hash"])
        if mh and ck.get("manifest_hash") and mh != ck["manifest_hash"]:
            raise MixmagError(f"{cfg.pbc_split}: not the manifest the classifier was trained on")
        Xp, yp = fs["X"][fs["split"] == "train"], fs["y"][fs["split"] == "train"]
        pbc_val = fs["X"][fs["split"] == "val"], fs["y"][fs["split"] == "val"]
        if cfg.pbc_share > 0 and len(yp):
            # weights so PBC crops carry pbc_share of the total, whatever the counts
            k = cfg.pbc_share / (1 - cfg.pbc_share) * len(tr["y"]) / len(yp)
            Xs.append(Xp)
            ys.append(yp)
            ws.append(np.full(len(yp), k))
    X, y, w = np.concatenate(Xs), np.concatenate(ys), np.concatenate(ws)
    w = w * len(w) / w.sum()

    def score(Wt, bt) -> dict:
        s = {"composite_val": _acc(Wt, bt, va["X"], va["y"])}
        for mode in cfg.modes:
            m = va["mode"] == mode
            s[f"composite_val_{mode}"] = _acc(Wt, bt, va["X"][m], va["y"][m])
        for mg in sorted(set(va["mag"].round(2))):
            m = va["mag"].round(2) == mg
            s[f"composite_val_m{mg:g}"] = _acc(Wt, bt, va["X"][m], va["y"][m])
        if pbc_val is not None:
            s["pbc_val"] = _acc(Wt, bt, *pbc_val)
        return s

    def objective(s) -> float:
        share = cfg.pbc_share if "pbc_val" in s else 0.0
        return ((1 - share) * s["composite_val"]["macro_f1"]
                + share * (s["pbc_val"]["macro_f1"] if share else 0.0))

    base = score(W0, b0)
    log.info("base: composite val %s", summary_line(base["composite_val"]))
    trials, best = [], None
    for C in cfg.grid:
        t = time.perf_counter()
        Wc, bc = fit_linear_head(X, y, w, C, cfg.seed)
        s = score(Wc, bc)
        row = {"C": C, "objective": objective(s), "seconds": round(time.perf_counter() - t, 1),
               **{k: _brief(v) for k, v in s.items()}}
        trials.append(row)
        log.info("C=%g: composite val %s%s", C, summary_line(s["composite_val"]),
                 f"; PBC val {summary_line(s['pbc_val'])}" if "pbc_val" in s else "")
        if best is None or row["objective"] > best[0]["objective"]:
            best = (row, Wc, bc, s)
    row, W, b, s = best

    model = build_model(ck, cfg.weights)
    lin = head_layer(model)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(W))
        lin.bias.copy_(torch.from_numpy(b))
    half = any(v.dtype == torch.float16 for v in ck["state_dict"].values())
    seconds = time.perf_counter() - t0
    metrics = {
        "adapted_from": str(cfg.weights), "base_sha256": sha256_file(cfg.weights),
        "method": "refit final linear layer (multinomial logistic regression) on pooled features "
                  "of pipeline-style composite crops" + (" + PBC train crops" if cfg.pbc_split else ""),
        "C": row["C"], "train_crops": int(len(tr["y"])), "pbc_train_crops": int(len(y) - len(tr["y"])),
        "val_crops": int(len(va["y"])), "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "base": {k: _brief(v) for k, v in base.items()},
        "adapted": {k: _brief(v) for k, v in s.items()},
        "grid": trials, "base_metrics": ck.get("metrics", {}),
    }
    args = {**ck.get("args", {}), "adapt": asdict(cfg)}
    wfile = run / "weights" / "best.pt"
    save_checkpoint(wfile, model, backbone=ck["backbone"], class_names=ck["class_names"],
                    input_size=ck["input_size"], mean=ck["mean"], std=ck["std"],
                    manifest_hash=ck.get("manifest_hash", ""), train_scale=ck.get("train_scale"),
                    args=args, metrics=metrics, half=half)
    write_json(run / "metrics.json", metrics)
    import yaml

    write_text(run / "args.yaml", yaml.safe_dump(json.loads(json.dumps(asdict(cfg))), sort_keys=False))
    save_confusion_png(s["composite_val"]["confusion"], CLASS_NAMES, run / "confusion_matrix.png",
                       "adapted head, val composite crops (counts; colour = row fraction)")
    return {"weights": str(wfile), **metrics}
