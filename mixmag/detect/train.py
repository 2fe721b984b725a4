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
from ..fileio import atomic_path, prepare_output, write_json, write_text
# ultralytics keeps --augment smear's transforms as albumentations dicts and rebuilds them by class
# name; the stain transform is mixmag's own, so its module must be imported wherever a trainer is
# rebuilt. A multi-GPU run's fresh processes import this module (its callbacks live here) before
# they build their data, which registers it there too.
from ..synth import shifts as _smear_shifts  # noqa: F401
from . import resume
from .magnification import FILE_NAME as NATIVE_SIZES_FILE
from .magnification import native_sizes_from_cells, write_native_sizes

log = logging.getLogger(__name__)

AUGMENT = dict(scale=0.0, degrees=0.0, shear=0.0, perspective=0.0, translate=0.1,
               fliplr=0.5, flipud=0.5, mosaic=1.0, mixup=0.0, cutmix=0.0, copy_paste=0.0,
               hsv_h=0.01, hsv_s=0.3, hsv_v=0.2)
# Real smears from another lab differ in stain, focus, compression, resolution and magnification.
# ``--augment smear`` trains for that, the field's way: ultralytics' own HSV jitter and zoom set
# wider, and albumentations' stain (H&E matrices), gamma, blur, resolution-loss and JPEG
# transforms on a share of the images. The ranges cover the shifts benchmarks/real_shifts.py
# measures (mixmag.synth.shifts: HED x(1 +/- 0.05), hue +/-10, saturation x0.7/x1.3, gamma
# 0.7/1.4, blur sigma 1.5, JPEG 30, half resolution) without being fitted to them; the detector's
# classes are red cell or not (the classifier labels white cells), so colour may move further
# than for the composite preset. Magnification: the real mosaics carry 0.35x-2.5x fields, and
# scale=0.25 zooms each training image by 0.75-1.25 on top.
SMEAR_AUGMENT = dict(AUGMENT, scale=0.25, hsv_h=0.03, hsv_s=0.5, hsv_v=0.3)


def smear_albumentations() -> list:
    """The albumentations transforms of ``--augment smear`` (pixel-level only: boxes stay), for
    the BGR images ultralytics hands them (mixmag.synth.shifts, beside the fixed shifts)."""
    from ..synth.shifts import smear_augmentations

    return smear_augmentations(bgr=True)


AUGMENT_PRESETS = {"composite": AUGMENT, "smear": SMEAR_AUGMENT}
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
        # ultralytics takes one folder or a list of them
        if isinstance(cfg.get(split), list) and not cfg[split]:
            raise MixmagError(f"--data {path}: '{split}' is an empty list; name one folder or more")
        for part in ([] if split not in cfg else cfg[split] if isinstance(cfg[split], list)
                     else [cfg[split]]):
            if not (root / str(part)).exists():
                raise MixmagError(f"--data {path}: {split} folder {root / str(part)} does not "
                                  "exist; regenerate the dataset or fix 'path'")
    cfg["_root"] = root
    return cfg


def train_detector(data: str | os.PathLike, model: str | os.PathLike = "models/yolo11n-mixmag.yaml",
                   single_class: bool = False, name: str | None = None,
                   project: str | os.PathLike = "runs/detect", overwrite: bool = False,
                   time_hours: float | None = None, resume_state: bool = True,
                   augment: str = "composite", **overrides) -> Path:
    """Train and return the run folder (``weights/best.pt``, ``results.csv``, ``mixmag_train.json``).

    ``resume_state``: after each epoch keep ``weights/mixmag_resume.pt`` (live model, EMA and
    optimizer in float32, random states) so ``--resume`` continues exactly; it costs one write a
    epoch (~40 MB for yolo11n, ~145 MB for yolo11s: ~0.2 s on this machine's disk). Without it,
    ``--resume`` continues as ultralytics does (equivalent, not identical).

    ``augment``: ``composite`` (magnification-safe, for composites) or ``smear`` (robustness to
    another lab's stain and optics, for real fields); see SMEAR_AUGMENT."""
    from .yolo_env import setup_ultralytics

    from ..zoo import resolve

    if augment not in AUGMENT_PRESETS:
        raise MixmagError(f"--augment {augment}: one of {', '.join(AUGMENT_PRESETS)}")
    cfg = check_data_yaml(data)
    model = resolve(model, "detect")[0] if not str(model).endswith(".yaml") else Path(model)
    if not model.is_file():
        raise MixmagError(f"--model {model}: no such file; use models/yolo11n-mixmag.yaml or "
                          "models/yolo11s-mixmag.yaml (or a zoo detector's name or a local .pt to fine-tune)")
    if model.suffix.lower() == ".pt":  # refused before ultralytics unpickles it unrestricted
        from .weights import check_file

        check_file(model, "--model")
    if name is None:
        name = f"{model.stem}-{cfg['_root'].name}" + ("-cell" if single_class else "")
    project = Path(project).resolve()
    save_dir = prepare_output(project / name, overwrite, "detector run")

    YOLO = setup_ultralytics()
    args = {**DEFAULTS, **AUGMENT_PRESETS[augment], **overrides}
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
    record = {"data": str(Path(data).resolve()), "model": str(model), "single_class": single_class,
              "augment": augment,
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in args.items()},
              "resumed_at_epochs": []}
    if augment == "smear":  # ultralytics stores them in its checkpoints as albumentations dicts
        args["augmentations"] = smear_albumentations()
    # an --overwrite of an earlier run: its record of completion and resume state are stale now
    for stale in (Path(save_dir) / "mixmag_train.json", resume.state_path(save_dir)):
        stale.unlink(missing_ok=True)
    # what --resume needs to finish the run as this call would have (mixmag_train.json's args)
    write_json(Path(save_dir) / RUN_RECORD, record)
    t0 = time.time()
    yolo = YOLO(str(model))
    several = check_devices(args.get("device")) > 1
    resume.install(yolo, save=resume_state, exact=not several)
    yolo.add_callback("on_pretrain_routine_end", _record_applied)
    yolo.train(**args)
    trainer = yolo.trainer
    record["albumentations_applied"] = _check_applied(trainer, augment)
    return _finish(Path(trainer.save_dir), cfg, record, Path(trainer.best), Path(trainer.last),
                   *_outcome(trainer), time.time() - t0)


APPLIED_FILE = "albumentations_applied.json"


def _record_applied(trainer) -> None:
    """on_pretrain_routine_end, in the process that trains: the transforms its training data
    really applies, kept in the run folder. A multi-GPU run trains in processes ultralytics
    launches afresh (rank 0 writes), and the launching process never builds the data."""
    if int(os.environ.get("RANK", -1)) in (-1, 0):
        write_json(Path(trainer.save_dir) / APPLIED_FILE, applied_albumentations(trainer))


def _outcome(trainer) -> tuple[dict | None, int]:
    """(final metrics, epochs done) of a finished training: the trainer's own, or for a
    multi-GPU run, whose launching trainer did not train, the last row of results.csv."""
    if getattr(trainer, "train_loader", None) is not None:
        return getattr(trainer, "metrics", None), int(getattr(trainer, "epoch", -1)) + 1
    csv = Path(trainer.save_dir) / "results.csv"
    if not csv.is_file():
        return None, 0
    import pandas as pd

    rows = pd.read_csv(csv)
    rows.columns = [c.strip() for c in rows.columns]
    if rows.empty:
        return None, 0
    last = rows.iloc[-1]
    return {k: float(v) for k, v in last.items() if k.startswith("metrics/")}, int(last["epoch"])


def _check_applied(trainer, augment: str) -> list[str]:
    """The transforms the training dataset applied; for ``smear``, all of them, or an error
    (ultralytics drops a custom list it cannot rebuild with one log line and trains on)."""
    f = Path(trainer.save_dir) / APPLIED_FILE
    if getattr(trainer, "train_loader", None) is not None:
        applied = applied_albumentations(trainer)
    else:   # a multi-GPU run: what its rank 0 recorded
        applied = json.loads(f.read_text()) if f.is_file() else []
    f.unlink(missing_ok=True)
    want = [type(t).__name__ for t in smear_albumentations()] if augment == "smear" else []
    missing = [n for n in want if n not in applied]
    if missing:
        raise MixmagError(f"--augment smear: the training data applied {applied or 'none'} of its "
                          f"transforms, not {', '.join(missing)}; the run in "
                          f"{trainer.save_dir} did not train as asked")
    return applied


def applied_albumentations(trainer) -> list[str]:
    """Names of the albumentations transforms the training dataset really applied (read from its
    transform pipeline, not from the arguments asked for)."""
    found, todo = [], [getattr(getattr(trainer, "train_loader", None), "dataset", None)]
    while todo:
        t = todo.pop()
        if t is None:
            continue
        if type(t).__name__ == "Albumentations" and getattr(t, "transform", None) is not None:
            found += [type(x).__name__ for x in t.transform.transforms if x.p > 0]
            continue
        inner = getattr(t, "transforms", None)
        if isinstance(inner, (list, tuple)):
            todo += list(inner)[::-1]
        elif inner is not None:
            todo.append(inner)
    return found


def _finish(save_dir: Path, cfg: dict, record: dict, best: Path, last: Path, metrics: dict | None,
            epochs_done: int, wall: float) -> Path:
    """mixmag's part once ultralytics is done: checkpoint records, native sizes, mixmag_train.json."""
    args = record["args"]
    single_class = bool(record["single_class"])
    canvas = train_canvas(cfg)
    for w in (best, last):
        _annotate_checkpoint(Path(w), single_class,
                             {"train_canvas": canvas, "imgsz": int(args["imgsz"])})
    sizes = _native_sizes(cfg)
    if sizes:
        write_native_sizes(save_dir / "weights" / NATIVE_SIZES_FILE, sizes,
                           source=str(cfg["_root"] / "cells.csv"))
    metrics = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
    write_json(save_dir / "mixmag_train.json", {
        "data": record["data"], "model": record["model"], "single_class": single_class,
        "augment": record.get("augment", "composite"),
        "albumentations_applied": record.get("albumentations_applied"), "args": args,
        "wall_s": round(wall, 1), "epochs_done": epochs_done,
        "metrics": metrics, "best": str(best), "ultralytics": _ultralytics_version(),
        "native_sizes": bool(sizes), "train_canvas": canvas,
        "resumed_at_epochs": record.get("resumed_at_epochs", [])})
    resume.state_path(save_dir).unlink(missing_ok=True)  # the run is complete: nothing to resume
    return save_dir


# ultralytics lets these change on resume (memory, device); the rest come from last.pt
RESUME_MAY_CHANGE = {"batch", "device", "workers", "cache", "patience", "val", "plots", "save_period"}


def resume_detector(run: str | os.PathLike, data: str | os.PathLike, given: dict | None = None,
                    single_class: bool | None = None) -> Path:
    """Continue the interrupted run folder ``run`` (its ``weights/last.pt``) to the end.

    Settings come from the run (last.pt's train_args and the record written at its start):
    ``given`` settings that ultralytics lets change on resume (batch, device, workers, cache…)
    are passed on, any other that differs from the run is refused. Returns the run folder.
    """
    from .yolo_env import setup_ultralytics

    run = Path(run).resolve()
    last = run / "weights" / "last.pt"
    if (run / "mixmag_train.json").is_file():
        raise MixmagError(f"--resume: run {run} finished (mixmag_train.json); nothing to resume: "
                          "choose another --name, or --overwrite (without --resume) to train it "
                          "again")
    if not last.is_file():
        raise MixmagError(f"--resume: no interrupted run at {run} (weights/last.pt missing: "
                          "killed before its first epoch ended?); start it without --resume"
                          + (" and with --overwrite" if run.exists() else ""))
    YOLO = setup_ultralytics()
    from .weights import RefusedWeights, load_checkpoint

    try:
        # the restricted unpickler first: ultralytics' trainer then reads the same file unrestricted
        ckpt = load_checkpoint(last, "--resume")
        train_args = dict(ckpt["train_args"])
        epoch = int(ckpt.get("epoch", -1))
    except RefusedWeights:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or foreign checkpoint
        raise MixmagError(f"--resume: {last} is not a readable ultralytics checkpoint "
                          f"({type(e).__name__}); the run cannot be resumed: start it again with "
                          "--overwrite") from None
    cfg = check_data_yaml(data)
    if Path(train_args.get("data", "")).resolve() != Path(data).resolve():
        raise MixmagError(f"--data {data}: run {run.name} was trained on {train_args.get('data')}; "
                          "resume with that --data")
    if single_class is not None and bool(single_class) != bool(train_args.get("single_cls")):
        raise MixmagError(f"--single-class: run {run.name} was trained "
                          f"{'with' if train_args.get('single_cls') else 'without'} it; resume "
                          "with the run's setting")
    passed = {}
    for k, v in (given or {}).items():
        if k in RESUME_MAY_CHANGE:
            passed[k] = v
        elif k == "augment":
            continue  # checked against the run's record below
        elif k == "time" and train_args.get("time") and v is not None:
            if abs(float(v) - float(train_args["time"])) > 1e-9:
                raise MixmagError(f"--time: run {run.name} was trained with a "
                                  f"{float(train_args['time']) * 60:g}-minute budget; --resume "
                                  "continues with the run's settings")
        elif k in train_args and v != train_args[k]:
            raise MixmagError(f"{k}={v}: run {run.name} was trained with {k}={train_args[k]}; "
                              "--resume continues with the run's settings (drop the option, or "
                              "start a new run)")
    record = _read_record(run, train_args)
    ran = record.get("augment", "composite")
    if (given or {}).get("augment", ran) != ran:
        raise MixmagError(f"--augment {given['augment']}: run {run.name} was trained with "
                          f"--augment {ran}; --resume continues with the run's settings")
    if ran == "smear":  # ultralytics keeps custom transforms only in an unfinished checkpoint
        passed["augmentations"] = smear_albumentations()
    if epoch < 0 or ckpt.get("optimizer") is None:
        # ultralytics finished (it strips the optimizer at the end); only mixmag's records are
        # missing: the kill came during the final validation
        log.warning("%s: training had finished; writing the run's records", run)
        best = run / "weights" / "best.pt"
        return _finish(run, cfg, record, best if best.is_file() else last, last,
                       ckpt.get("train_metrics"), int(train_args.get("epochs", 0)), 0.0)
    _trim_results(run / "results.csv", epoch + 1)
    record["resumed_at_epochs"] = [*record.get("resumed_at_epochs", []), epoch + 2]
    write_json(run / RUN_RECORD, record)
    del ckpt
    t0 = time.time()
    yolo = YOLO(str(last))
    several = check_devices(passed.get("device", train_args.get("device"))) > 1
    resume.install(yolo, exact=not several)
    yolo.add_callback("on_pretrain_routine_end", _record_applied)
    yolo.train(resume=True, data=str(Path(data).resolve()), save_dir=str(run), **passed)
    trainer = yolo.trainer
    record["albumentations_applied"] = _check_applied(trainer, ran)
    return _finish(run, cfg, record, Path(trainer.best), Path(trainer.last), *_outcome(trainer),
                   time.time() - t0)


RUN_RECORD = "mixmag_train_start.json"


def _read_record(run: Path, train_args: dict) -> dict:
    path = run / RUN_RECORD
    if path.is_file():
        return json.loads(path.read_text())
    # a run started before the record existed: rebuild it from ultralytics' own arguments
    keys = {*DEFAULTS, *AUGMENT, "data", "project", "name", "exist_ok", "single_cls",
            "close_mosaic", "time"}
    return {"data": str(Path(train_args["data"]).resolve()), "model": str(train_args.get("model")),
            "single_class": bool(train_args.get("single_cls")),
            "args": {k: train_args[k] for k in keys if k in train_args}, "resumed_at_epochs": []}


def _trim_results(csv: Path, epochs: int) -> None:
    """results.csv rows past last.pt's epoch (written just before a kill, checkpoint not yet
    saved) would be written again by the resumed run: drop them."""
    if not csv.is_file():
        return
    lines = csv.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if ln.strip() and _epoch_of(ln) <= epochs]
    if keep != lines:
        write_text(csv, "".join(keep))


def _epoch_of(line: str) -> int:
    try:
        return int(float(line.split(",", 1)[0]))
    except ValueError:
        return 1 << 30  # a torn line: drop it


def _train_cells(cfg: dict):
    """The training images' rows of cells.csv (a DataFrame), or None: the dataset's own table, or,
    for a data.yaml whose train list names other datasets' folders (DATASET/images/train), theirs
    together."""
    import pandas as pd

    train = cfg.get("train")
    folders = train if isinstance(train, list) else [train]
    tables = [cfg["_root"] / "cells.csv"] if isinstance(train, str) else []
    if not (tables and tables[0].is_file()):
        tables = [(cfg["_root"] / str(f)).resolve().parents[1] / "cells.csv" for f in folders]
    frames = []
    for t in dict.fromkeys(tables):
        if not t.is_file():
            log.warning("%s not found: the training images of that folder have no cell table", t)
            continue
        frame = pd.read_csv(t)
        if "split" in frame.columns and (frame["split"] == "train").any():
            frame = frame[frame["split"] == "train"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None


def train_canvas(cfg: dict, sample: int = 32) -> int:
    """Typical longest side (px) of the training images: cells.csv's canvas, else image headers."""
    frame = _train_cells(cfg)
    if frame is not None and {"width", "height"} <= set(frame.columns) and len(frame):
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
    frame = _train_cells(cfg)
    if frame is None:
        log.warning("no cells.csv for the training images: no magnification.json written (pass "
                    "--native-sizes to predict)")
        return None
    try:
        return native_sizes_from_cells(frame, split=None)  # _train_cells chose the rows
    except MixmagError as e:
        log.warning("training cells: %s", e)
        return None


def _annotate_checkpoint(weights: Path, single_class: bool, meta: dict) -> None:
    """Store mixmag's record in the checkpoint; name a one-class detector's class 'cell'
    (ultralytics calls it 'item')."""
    import torch

    from .weights import load_checkpoint

    if not weights.is_file():
        return
    ckpt = load_checkpoint(weights, "train-detector")
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


def check_devices(device) -> int:
    """How many GPUs ``device`` names (``0,1`` -> 2; ``cpu``, ``0`` or None -> 1), refused in one
    line unless they are GPU indices this machine has."""
    ids = [d.strip() for d in str(device or "").split(",") if d.strip()]
    if len(ids) <= 1:
        return 1
    if not all(d.isdigit() for d in ids) or len(set(ids)) != len(ids):
        raise MixmagError(f"--device {device}: several GPUs are named by distinct indices, e.g. 0,1")
    import torch

    n = torch.cuda.device_count()
    if max(map(int, ids)) >= n:
        raise MixmagError(f"--device {device}: {len(ids)} GPUs asked, {n} visible here"
                          + ("" if n else " (train on one CPU or GPU: --device cpu / --device 0)"))
    return len(ids)


def train_or_resume(data: str | os.PathLike, model: str | os.PathLike, *, settings: dict,
                    given: set | frozenset = frozenset(), overrides: list[str] | None = None,
                    single_class: bool = False, name: str | None = None,
                    project: str | os.PathLike = "runs/detect", overwrite: bool = False,
                    resume: bool = False) -> Path:
    """``mixmag train-detector``: a new run, or with ``resume`` the interrupted run continued.

    ``settings`` holds imgsz, epochs, time (minutes or None), batch, device, workers and cache;
    ``given`` names those the user set (a resumed run compares only these with its own);
    ``overrides`` are extra ultralytics ``KEY=VALUE`` arguments. Returns the run folder."""
    s = settings
    # checked here: ultralytics would start (and write the run folder) before failing on these
    if s["epochs"] < 1:
        raise MixmagError(f"--epochs {s['epochs']}: must be >= 1")
    if s["imgsz"] < 32:
        raise MixmagError(f"--imgsz {s['imgsz']}: must be >= 32 (a multiple of 32, e.g. 640)")
    if s["batch"] < 1 and s["batch"] != -1:
        raise MixmagError(f"--batch {s['batch']}: must be >= 1 (or -1: ultralytics' auto batch)")
    if s.get("time") is not None and s["time"] <= 0:
        raise MixmagError(f"--time {s['time']}: must be > 0 minutes")
    n_gpus = check_devices(s.get("device"))
    if n_gpus > 1 and (s["batch"] < 1 or s["batch"] % n_gpus):
        # ultralytics splits the batch over the GPUs and has no auto batch across several
        raise MixmagError(f"--batch {s['batch']}: with --device {s['device']} give a total batch "
                          f"divisible by {n_gpus} (e.g. {16 * n_gpus}); it is split over the GPUs")
    extra = parse_overrides(overrides)
    if "augment" in extra:  # mixmag's preset, not an ultralytics argument
        raise MixmagError(f"--set augment={extra['augment']}: use --augment composite|smear")
    if resume:
        if overwrite:
            raise MixmagError("--resume and --overwrite: pick one (--resume continues the run, "
                              "--overwrite starts it again)")
        cfg = check_data_yaml(data)
        name = name or (f"{Path(model).stem}-{cfg['_root'].name}" + ("-cell" if single_class else ""))
        asked = {k: s[k] for k in given}
        if "time" in asked:
            asked["time"] = asked["time"] / 60
        return resume_detector(Path(project) / name, data, {**asked, **extra},
                               single_class=single_class or None)
    kw = {k: s[k] for k in ("imgsz", "epochs", "batch", "workers")}
    if s.get("device") is not None:
        kw["device"] = s["device"]
    if s.get("cache"):
        kw["cache"] = s["cache"]
    return train_detector(data, model, single_class=single_class, name=name, project=project,
                          overwrite=overwrite, time_hours=s["time"] / 60 if s.get("time") else None,
                          augment=s.get("augment") or "composite", **{**kw, **extra})
