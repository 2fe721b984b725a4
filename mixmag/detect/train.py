"""Train a YOLO detector on a generated dataset: ultralytics' trainer with defaults for this data.

Why these defaults (see docs/detect.md for the longer argument):

- ``imgsz=1024``: composites are drawn at 1024² and 0.5× platelets are only ~10–15 px there;
  training at 640 would shrink them to 6–9 px, below what a stride-8 head finds reliably.
- ``scale=0``: ultralytics' default ±50 % zoom would put cells at sizes the generator never draws
  (0.5× platelets at 5 px) and blur the size cue that separates platelets from lymphocytes; the
  generator already supplies the magnification spread we want the detector to see.
- ``degrees=0``: rotating an axis-aligned box inflates it, so labels would no longer be tight.
- ``hsv_s=0.3, hsv_v=0.2, hsv_h=0.01`` (defaults 0.7 / 0.4 / 0.015): stain colour is a class cue
  (eosinophil granules, basophil purple); mild jitter covers staining variation without erasing it.
- ``flipud=0.5`` as well as ``fliplr``: a smear has no up or down.
- ``mosaic=1.0`` (pixel scale kept, since scale=0) with ``close_mosaic`` for the last quarter:
  more cells per batch and varied crowding; cells cut at mosaic seams are clipped like any border.
- ``mixup=0, copy_paste=0``: blended cells would be ambiguous to label.

The checkpoint also records the training images' canvas size (``ckpt["mixmag"]["train_canvas"]``):
ultralytics letterboxes every training image to ``imgsz``, so a detector trained at ``imgsz=640``
on 1024² composites has seen cells at 0.625× their pixel size. ``mixmag predict`` cuts tiles of
``train_canvas`` pixels (not ``imgsz``) so cells reach the network at the scale it learned.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import yaml

from ..errors import MixmagError
from ..fileio import atomic_path, prepare_output, write_json
from .magnification import FILE_NAME as NATIVE_SIZES_FILE
from .magnification import native_sizes_from_cells, write_native_sizes

log = logging.getLogger(__name__)

AUGMENT = dict(scale=0.0, degrees=0.0, shear=0.0, perspective=0.0, translate=0.1,
               fliplr=0.5, flipud=0.5, mosaic=1.0, mixup=0.0, cutmix=0.0, copy_paste=0.0,
               hsv_h=0.01, hsv_s=0.3, hsv_v=0.2)
DEFAULTS = dict(imgsz=1024, epochs=60, batch=16, patience=20, workers=2, plots=False,
                seed=0, deterministic=False, cos_lr=True, val=True)
SINGLE_CLASS_NAME = "cell"


def parse_overrides(items: list[str] | None) -> dict:
    """``key=value`` strings (as the yolo CLI takes them) to a dict with YAML-typed values."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise MixmagError(f"--set {item}: expected key=value (e.g. --set scale=0.1)")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def check_data_yaml(data: str | os.PathLike) -> dict:
    path = Path(data)
    if not path.is_file():
        raise MixmagError(f"--data {path}: no such file; pass datasets/NAME/data.yaml written by "
                          "tools/synthesize.py")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise MixmagError(f"--data {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict) or "names" not in cfg or "train" not in cfg:
        raise MixmagError(f"--data {path}: needs 'train', 'val' and 'names' keys (ultralytics format)")
    root = Path(cfg.get("path") or path.parent)
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    for split in ("train", "val"):
        if split in cfg and not (root / cfg[split]).exists():
            raise MixmagError(f"--data {path}: {split} folder {root / cfg[split]} does not exist; "
                              "regenerate the dataset or fix 'path'")
    cfg["_root"] = root
    return cfg


def train_detector(data: str | os.PathLike, model: str | os.PathLike = "models/yolo11n-mixmag.yaml",
                   single_class: bool = False, name: str | None = None,
                   project: str | os.PathLike = "runs/detect", overwrite: bool = False,
                   time_hours: float | None = None, **overrides) -> Path:
    """Train and return the run folder (``weights/best.pt``, ``results.csv``, ``mixmag_train.json``)."""
    from .yolo_env import setup_ultralytics

    cfg = check_data_yaml(data)
    model = Path(model)
    if not model.is_file():
        raise MixmagError(f"--model {model}: no such file; use models/yolo11n-mixmag.yaml or "
                          "models/yolo11s-mixmag.yaml (or a local .pt to fine-tune)")
    if name is None:
        name = f"{model.stem}-{cfg['_root'].name}" + ("-cell" if single_class else "")
    project = Path(project).resolve()
    save_dir = prepare_output(project / name, overwrite, "detector run")

    YOLO = setup_ultralytics()
    args = {**DEFAULTS, **AUGMENT, **overrides}
    if args.get("plots"):
        from .yolo_env import polars_available

        if not polars_available():
            log.warning("plots=True needs polars (not installed): training with plots=False")
            args["plots"] = False
    if time_hours:
        args["time"] = time_hours
    # mosaic off for the last quarter; with a time budget the epoch count is unknown up front
    # (ultralytics re-estimates it each epoch), so a fixed 3 epochs
    args.setdefault("close_mosaic", 3 if time_hours else max(1, int(args["epochs"]) // 4))
    args.update(data=str(Path(data).resolve()), project=str(project), name=name, exist_ok=True,
                single_cls=single_class)
    t0 = time.time()
    yolo = YOLO(str(model))
    yolo.train(**args)
    trainer = yolo.trainer
    save_dir = Path(trainer.save_dir)
    wall = time.time() - t0

    canvas = train_canvas(cfg)
    for w in (trainer.best, trainer.last):
        _annotate_checkpoint(Path(w), single_class,
                             {"train_canvas": canvas, "imgsz": int(args["imgsz"])})
    sizes = _native_sizes(cfg)
    if sizes:
        write_native_sizes(save_dir / "weights" / NATIVE_SIZES_FILE, sizes,
                           source=str(cfg["_root"] / "cells.csv"))
    metrics = {k: float(v) for k, v in (getattr(trainer, "metrics", None) or {}).items()
               if isinstance(v, (int, float))}
    write_json(save_dir / "mixmag_train.json", {
        "data": str(Path(data).resolve()), "model": str(model), "single_class": single_class,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in args.items()},
        "wall_s": round(wall, 1), "epochs_done": int(getattr(trainer, "epoch", -1)) + 1,
        "metrics": metrics, "best": str(trainer.best), "ultralytics": _ultralytics_version(),
        "native_sizes": bool(sizes), "train_canvas": canvas})
    return save_dir


def train_canvas(cfg: dict, sample: int = 32) -> int:
    """Typical longest side (px) of the training images: cells.csv's canvas, else image headers."""
    cells = cfg["_root"] / "cells.csv"
    if cells.is_file():
        import pandas as pd

        frame = pd.read_csv(cells, usecols=lambda c: c in {"split", "width", "height"})
        if {"width", "height"} <= set(frame.columns) and len(frame):
            if "split" in frame.columns and (frame["split"] == "train").any():
                frame = frame[frame["split"] == "train"]
            return int(frame[["width", "height"]].max(axis=1).median())
    from PIL import Image

    from ..images import is_image_name

    folder = cfg["_root"] / cfg["train"] if isinstance(cfg.get("train"), str) else None
    paths = (sorted(p for p in folder.rglob("*") if is_image_name(p))[:sample]
             if folder is not None and folder.is_dir() else [])
    sides = []
    for p in paths:
        with Image.open(p) as im:  # reads the header only
            sides.append(max(im.size))
    return int(sorted(sides)[len(sides) // 2]) if sides else int(DEFAULTS["imgsz"])


def _native_sizes(cfg: dict) -> dict | None:
    cells = cfg["_root"] / "cells.csv"
    if not cells.is_file():
        log.warning("%s not found: no magnification.json written (pass --native-sizes to predict)",
                    cells)
        return None
    import pandas as pd

    try:
        return native_sizes_from_cells(pd.read_csv(cells))
    except MixmagError as e:
        log.warning("%s: %s", cells, e)
        return None


def _annotate_checkpoint(weights: Path, single_class: bool, meta: dict) -> None:
    """Store mixmag's record in the checkpoint; name a one-class detector's class 'cell'
    (ultralytics calls it 'item')."""
    import torch

    if not weights.is_file():
        return
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    if single_class:
        for key in ("model", "ema"):
            m = ckpt.get(key)
            if m is not None and hasattr(m, "names"):
                m.names = {0: SINGLE_CLASS_NAME}
    ckpt["mixmag"] = {**(ckpt.get("mixmag") or {}), **meta}
    with atomic_path(weights) as tmp:
        torch.save(ckpt, tmp)


def _ultralytics_version() -> str:
    import ultralytics

    return ultralytics.__version__


def load_train_record(run: str | os.PathLike) -> dict:
    return json.loads((Path(run) / "mixmag_train.json").read_text())
