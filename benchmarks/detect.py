"""Accuracy and speed of the detector (+ classifier) on a generated dataset's test split.

    python benchmarks/detect.py --data datasets/NAME --detector runs/detect/X/weights/best.pt \
        [--classifier runs/classify/Y/weights/best.pt] [--mode two-stage] [--scale-norm on|off|both] \
        [--device cpu|cuda] [--batch 16] [--throughput-batches 1,4,16,64] [--out benchmarks/results/detect-X.json]

Prints per-cell macro F1 at IoU 0.5, localisation recall, COCO mAP@0.5 and @0.5:0.95
(pycocotools), per-magnification macro F1 and erythroblast P/R, the magnification-estimate error
against the generator's records, and end-to-end composites/s (decode → classes, no output
writing). With --throughput-batches (on a GPU) it also times each batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from mixmag.errors import MixmagError  # noqa: E402


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return f"{cpu}, {os.cpu_count()} CPUs" + (f", {gpu}" if gpu else "")


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_once(pipe, sources, truth, coco_gt, iou: float) -> dict:
    from mixmag.detect.metrics import coco_map, match_cells, summary
    from mixmag.detect.outputs import coco_image_ids, coco_results

    res = pipe.run(sources, progress=False)
    n_ok = int((~res.images["error"].astype(bool)).sum())
    out = summary(match_cells(res.cells, truth, iou))
    if coco_gt and Path(coco_gt).is_file():
        ids = coco_image_ids(list(res.images["image"]), coco_gt)
        out.update(coco_map(coco_gt, coco_results(res.cells, ids)))
    out.update(images=n_ok, seconds=round(res.seconds, 3),
               composites_per_s=round(n_ok / max(res.seconds, 1e-9), 2))
    return out


def throughput(pipe, sources, batches: list[int], repeats: int = 1) -> dict:
    out = {}
    for b in batches:
        pipe.opt.batch = b
        pipe.run(sources[: max(b, 4)], progress=False)  # warm-up (cudnn, allocator)
        best = 0.0
        for _ in range(repeats):
            res = pipe.run(sources, progress=False)
            best = max(best, len(sources) / max(res.seconds, 1e-9))
        out[str(b)] = round(best, 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="datasets/NAME (folder with cells.csv) or its data.yaml")
    ap.add_argument("--split", default="test")
    ap.add_argument("--detector", required=True)
    ap.add_argument("--classifier")
    ap.add_argument("--mode", default=None, choices=["two-stage", "detector", "classifier-on-boxes"])
    ap.add_argument("--scale-norm", default="on", choices=["on", "off", "both"])
    ap.add_argument("--native-sizes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.5, help="matching IoU")
    ap.add_argument("--limit", type=int, default=0, help="use the first N images only")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    ap.add_argument("--throughput-batches", default="", help="e.g. 1,4,16,64 (GPU)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)

    import torch

    from mixmag.detect.cli import load_classifier
    from mixmag.detect.detector import load_detector
    from mixmag.detect.magnification import find_native_sizes
    from mixmag.detect.predict import Pipeline, PredictOptions, list_sources

    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.data)
    root = root.parent if root.suffix in (".yaml", ".yml") else root
    cells_csv = root / "cells.csv"
    if not cells_csv.is_file():
        raise MixmagError(f"--data {root}: no cells.csv; pass a folder made by tools/synthesize.py")
    truth = pd.read_csv(cells_csv)
    truth = truth[truth["split"] == args.split]
    sources, _ = list_sources(root / "images" / args.split)
    if args.limit:
        sources = sources[: args.limit]
        keep = {s.name for s in sources}
        truth = truth[truth["image"].map(lambda s: Path(s).name).isin(keep)]
    det = load_detector(args.detector, args.device)
    clf = load_classifier(args.classifier, args.device)
    mode = args.mode or ("two-stage" if clf is not None else "detector")
    sizes = find_native_sizes(args.detector, args.native_sizes or str(cells_csv))
    coco_gt = root / f"{args.split}.json"

    report = {"command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
              "git_commit": git_commit(), "machine": machine(),
              "date": time.strftime("%Y-%m-%d %H:%M"), "torch_threads": torch.get_num_threads(),
              "mode": mode, "detector": args.detector, "classifier": args.classifier,
              "images": len(sources), "runs": {}}
    norms = ["on", "off"] if args.scale_norm == "both" else [args.scale_norm]
    if mode == "detector":
        norms = ["off"]
    for norm in norms:
        opt = PredictOptions(mode=mode, scale_norm=norm == "on", conf=args.conf,
                             batch=args.batch)
        pipe = Pipeline(det, clf, sizes, opt)
        r = run_once(pipe, sources, truth, coco_gt, args.iou)
        report["runs"][f"scale_norm_{norm}"] = r
        _print(f"{mode}, scale-norm {norm}", r)
        if args.throughput_batches:
            bs = [int(b) for b in args.throughput_batches.split(",") if b]
            r["throughput_by_batch"] = throughput(pipe, sources, bs)
            print("  composites/s by batch:", r["throughput_by_batch"])
    report["machine_note"] = ("shared machine: other jobs may have run at the same time"
                              if not torch.cuda.is_available() else "")
    if args.out:
        from mixmag.fileio import write_json

        write_json(args.out, report)
        print("wrote", args.out)
    return 0


def _print(title: str, r: dict) -> None:
    print(f"== {title}: {r['images']} composites, {r['cells']} cells, {r['predictions']} predictions")
    keys = [("macro F1 @IoU0.5", "macro_f1"), ("localisation recall", "localisation_recall"),
            ("accuracy of found cells", "accuracy_of_found"), ("mAP@0.5", "map50"),
            ("mAP@0.5:0.95", "map50_95"), ("composites/s", "composites_per_s")]
    for label, k in keys:
        if k in r:
            print(f"  {label:26s} {r[k]:.4f}")
    for level, m in r["per_magnification"].items():
        err = m["magnification_median_rel_error"]
        print(f"  x{level:<5s} macro F1 {m['macro_f1']:.4f}  erythroblast P {m['erythroblast_precision']:.4f}"
              f" R {m['erythroblast_recall']:.4f}  mag. median rel. error "
              f"{'n/a' if err is None else f'{err:.3f}'}  ({m['cells']} cells)")
    if "magnification_error" in r:
        print("  magnification estimate:", r["magnification_error"])
    weak = sorted(r["per_class"], key=lambda c: c["f1"])[:3]
    print("  weakest classes:", ", ".join(f"{c['class']} {c['f1']:.3f}" for c in weak))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MixmagError as e:
        print(f"benchmarks/detect.py: error: {e}", file=sys.stderr)
        sys.exit(2)
