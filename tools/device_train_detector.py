"""Train the detector on a GPU machine in a fixed time budget, then time inference.

    python tools/device_train_detector.py --data datasets/NAME/data.yaml --out runs/detect/NAME \
        [--model models/yolo11s-mixmag.yaml] [--single-class] [--minutes 4] [--imgsz 640] \
        [--batch 64] [--workers 12] [--cache ram] [--amp bf16] [--wheels .whl]

The recipe (defaults): YOLO11s from its yaml (no pretrained weights), imgsz 640 on the 1024²
composites (0.5x platelets shrink to ~6-9 px; the crude ANCHORS run found ~6 px cells with
localisation recall 0.998; 640 gives ~2.5x the epochs of 1024 in the same minutes and is the only
size near the 5 composites/s CPU target: see docs/detect.md; --imgsz 1024 --batch 32 is the
alternative to compare), batch 64, 12 dataloader workers, decoded images cached in
RAM, bf16 autocast, AdamW at ultralytics' own 'auto' learning rate (0.002*5/(4+nc)) pinned so the
choice does not flip with the epoch bound, and ultralytics' ``time=`` budget (--minutes), which
re-estimates the number of epochs after each one and stops when the budget is spent; cosine LR,
mosaic off for the last 3 epochs, mixmag's magnification-safe augmentation (mixmag.detect.train).
The budget counts training and per-epoch validation only: dataset scan, RAM caching, the final
validation of best.pt and the throughput benchmark come on top (all in ``wall_s_total``).

Made for a bare GPU image (torch, numpy, opencv, pandas, matplotlib, scipy, psutil, pyyaml,
requests, pillow; no ultralytics, polars, thop, tqdm): with --wheels DIR it installs the
ultralytics, ultralytics-thop and tqdm wheels found there (``pip install --no-deps --no-index``).
polars is not needed: mixmag replaces the one trainer method that imports it when polars is
missing, and plots are off. ``amp=bf16`` never runs ultralytics' AMP check (which would fetch
yolo26n.pt from github).

Writes to --out (ultralytics layout): weights/best.pt, weights/last.pt, weights/magnification.json,
results.csv, args.yaml, mixmag_train.json, device_metrics.json (final val metrics of best.pt,
epochs, times, training images/s, detector images/s at each --bench-batches size). Prints one
summary line starting with ``DEVICE_TRAIN``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def ensure_wheels(folder: str | None) -> list[str]:
    installed = []
    if importlib.util.find_spec("ultralytics") is not None or not folder:
        return installed
    wheels = sorted(str(p) for p in Path(folder).glob("*.whl")
                    if p.name.split("-")[0].lower() in {"ultralytics", "ultralytics_thop", "tqdm"})
    if wheels:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                               "--no-index", *wheels])
        installed = [Path(w).name for w in wheels]
    return installed


def preflight() -> None:
    """Fail in one line before any work when a module training needs is missing."""
    need = {"torch": "torch", "cv2": "opencv-python", "yaml": "pyyaml", "pandas": "pandas",
            "matplotlib": "matplotlib", "scipy": "scipy", "psutil": "psutil",
            "ultralytics": "ultralytics (pass --wheels DIR holding its wheel)"}
    missing = [pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise SystemExit(f"device_train_detector: error: missing {', '.join(missing)}")
    if importlib.util.find_spec("torchvision") is None:
        print("device_train_detector: note: torchvision missing; training and the throughput "
              "benchmark do not need it, `mixmag predict` tiling does", file=sys.stderr)


def training_rate(run: Path, n_train: int) -> dict:
    """Epochs and images/s from results.csv (its 'time' column is cumulative seconds)."""
    try:
        rows = list(csv.DictReader((run / "results.csv").open()))
    except OSError:
        return {}
    if not rows:
        return {}
    times = [float(r["time"]) for r in rows]
    return {"epochs": len(rows), "train_seconds": round(times[-1], 1),
            "train_images_per_s_incl_val": round(n_train * len(rows) / max(times[-1], 1e-9), 1),
            "last": {k.strip(): float(v) for k, v in rows[-1].items() if v.strip()}}


def detector_throughput(weights: Path, images_dir: Path, batches: list[int], imgsz: int,
                        n: int = 128) -> dict:
    import torch

    from mixmag.detect.detector import YoloDetector
    from mixmag.images import read_image

    paths = sorted(images_dir.glob("*.jpg"))[:n]
    if not paths:
        return {}
    images = [read_image(p) for p in paths]
    while len(images) < n:
        images += images[: n - len(images)]
    det = YoloDetector(weights, device="cuda" if torch.cuda.is_available() else "cpu")
    out = {}
    for b in batches:
        det.predict(images[:b], batch_size=b)  # warm-up
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        det.predict(images, batch_size=b)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out[str(b)] = round(len(images) / (time.perf_counter() - t), 1)
    return {"images_per_s_by_batch": out, "imgsz": imgsz, "n_images": len(images),
            "includes": "letterbox + forward (fp16) + NMS; decode excluded"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="run folder (runs/detect/NAME)")
    ap.add_argument("--model", default=str(REPO / "models" / "yolo11s-mixmag.yaml"))
    ap.add_argument("--single-class", action="store_true")
    ap.add_argument("--minutes", type=float, default=4.0, help="training time budget")
    ap.add_argument("--epochs", type=int, default=300, help="upper bound; --minutes decides")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=12)
    ap.add_argument("--cache", default="ram", choices=["ram", "disk", "none"])
    ap.add_argument("--amp", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--close-mosaic", type=int, default=3)
    ap.add_argument("--optimizer", default="AdamW")
    ap.add_argument("--lr0", type=float, default=None,
                    help="default: ultralytics' auto rule 0.002*5/(4+nc) (0.00083 for 8 classes)")
    ap.add_argument("--device", default="0")
    ap.add_argument("--wheels", default=None, help="folder with the ultralytics wheel")
    ap.add_argument("--bench-batches", default="1,8,32,64")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)

    t0 = time.time()
    installed = ensure_wheels(args.wheels)
    preflight()
    from mixmag.detect.train import check_data_yaml, parse_overrides, train_detector
    from mixmag.detect.yolo_env import polars_available

    out = Path(args.out).resolve()
    data_cfg = check_data_yaml(args.data)  # one line, not a traceback, for a missing or bad yaml
    nc = 1 if args.single_class else len(data_cfg["names"])
    lr0 = args.lr0 if args.lr0 is not None else round(0.002 * 5 / (4 + nc), 6)
    extra = dict(imgsz=args.imgsz, batch=args.batch, workers=args.workers, device=args.device,
                 epochs=args.epochs, close_mosaic=args.close_mosaic, plots=False,
                 optimizer=args.optimizer, lr0=lr0, momentum=0.9,
                 # bf16 autocast is CUDA-only in ultralytics: a CPU dry run trains in fp32
                 amp=False if args.device == "cpu" else
                 {"bf16": "bf16", "fp16": True, "fp32": False}[args.amp])
    if args.cache != "none":
        extra["cache"] = args.cache
    extra.update(parse_overrides(args.set))
    run = train_detector(args.data, args.model, single_class=args.single_class, name=out.name,
                         project=out.parent, overwrite=args.overwrite,
                         time_hours=args.minutes / 60, **extra)
    record = json.loads((run / "mixmag_train.json").read_text())
    root = data_cfg["_root"]  # 'path' resolved against the yaml's folder, as ultralytics does
    n_train = len(list((root / data_cfg["train"]).glob("*.jpg")))
    val_dir = root / data_cfg.get("val", data_cfg["train"])
    metrics = {
        "gpu": _gpu(), "polars_installed": polars_available(), "wheels_installed": installed,
        "n_train_images": n_train, "train": training_rate(run, n_train),
        "train_wall_s": record.get("wall_s"), "train_canvas": record.get("train_canvas"),
        "final_val": record.get("metrics", {}), "wall_s_total": None,
        "args": {k: v for k, v in vars(args).items()},
        "recipe": {**extra, "time_hours": args.minutes / 60},
        "inference": detector_throughput(run / "weights" / "best.pt", val_dir,
                                         [int(b) for b in args.bench_batches.split(",") if b],
                                         args.imgsz),
    }
    metrics["wall_s_total"] = round(time.time() - t0, 1)
    from mixmag.fileio import write_json

    write_json(run / "device_metrics.json", metrics)
    print("DEVICE_TRAIN", json.dumps({"run": str(run), "final_val": metrics["final_val"],
                                      "train": {k: v for k, v in metrics["train"].items()
                                                if k != "last"},
                                      "inference": metrics["inference"].get("images_per_s_by_batch"),
                                      "wall_s_total": metrics["wall_s_total"]}))
    return 0


def _gpu() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "device_train_detector")
