"""Subcommand: train-detector."""

from __future__ import annotations

import argparse


TRAIN_EPILOG = """\
Runs ultralytics' trainer offline (config in runs/.ultralytics, no downloads, no polars needed)
with augmentation that keeps magnification labels true (no zoom, no rotation, mild colour
jitter). Writes runs/detect/NAME/: weights/best.pt, last.pt, magnification.json (native cell
sizes for --scale-norm), results.csv, args.yaml, mixmag_train.json.

examples:
  mixmag train-detector --data datasets/mix/data.yaml --model models/yolo11s-mixmag.yaml \\
      --time 4 --batch 32 --workers 12 --cache ram \\
      --set amp=bf16 optimizer=AdamW lr0=0.000833                          # GPU, 4 minutes
  mixmag train-detector --data datasets/mix/data.yaml --single-class     # one class 'cell'
  mixmag train-detector --data datasets/toy/data.yaml --imgsz 320 --epochs 50 --device cpu
  mixmag train-detector --data datasets/toy/data.yaml --imgsz 320 --epochs 50 --device cpu --resume
                                                    # the same command again, after a kill
"""

class _Given(argparse.Action):
    """Store the value and note that the user gave it (--resume compares only given settings
    with the run's own)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        given = set(getattr(namespace, "given", None) or ())
        setattr(namespace, "given", given | {self.dest})


def register(sub) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    t = sub.add_parser("train-detector", help="train a YOLO detector on a generated dataset",
                       description="Train a YOLO detector (ultralytics) on a dataset written by "
                                   "tools/synthesize.py.", epilog=TRAIN_EPILOG, formatter_class=raw)
    t.add_argument("--data", required=True, help="datasets/NAME/data.yaml (from tools/synthesize.py)")
    t.add_argument("--model", default="models/yolo11n-mixmag.yaml",
                   help="model yaml (from scratch), or a zoo detector (`mixmag models`) or a local .pt to fine-tune")
    t.add_argument("--single-class", action="store_true",
                   help="one class 'cell' (for the two-stage pipeline with a classifier)")
    t.add_argument("--imgsz", action=_Given, type=int, default=640,
                   help="network input size; 1024² composites are letterboxed to it (the released "
                        "detectors: 640, localisation recall 0.999 incl. 0.5x platelets)")
    t.add_argument("--epochs", action=_Given, type=int, default=60, help="epochs (ignored with --time)")
    t.add_argument("--time", action=_Given, type=float, default=None,
                   help="train for this many minutes instead of --epochs (ultralytics 'time': "
                        "epochs re-estimated after each one)")
    t.add_argument("--batch", action=_Given, type=int, default=16, help="images a batch")
    t.add_argument("--device", action=_Given, default=None, help="cpu or 0 (one GPU; default: the GPU if present)")
    t.add_argument("--workers", action=_Given, type=int, default=2, help="dataloader processes")
    t.add_argument("--cache", action=_Given, default=None, choices=["ram", "disk"], help="cache decoded images")
    t.add_argument("--name", default=None, help="run folder name under --project")
    t.add_argument("--project", default="runs/detect", help="parent folder of the run")
    t.add_argument("--augment", action=_Given, default="composite", choices=["composite", "smear"],
                   help="composite: magnification-safe (no zoom, mild colour), for composites; "
                        "smear: for real fields, robust to another lab's stain and optics (wider "
                        "colour and zoom, H&E stain, gamma, blur, resolution loss, JPEG)")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="any other ultralytics train argument, e.g. --set scale=0.1 mosaic=0")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted run --project/--name (from weights/last.pt) with "
                        "its own settings; with --workers 0 the result is the uninterrupted run's, "
                        "bit for bit (options given must match the run, except --batch, "
                        "--device, --workers, --cache)")
    t.set_defaults(func=_train, given=None)


def _train(args: argparse.Namespace) -> int:
    from ..detect.train import train_or_resume

    settings = {k: getattr(args, k) for k in ("imgsz", "epochs", "time", "batch", "device",
                                                "workers", "cache", "augment")}
    run = train_or_resume(args.data, args.model, settings=settings, given=set(args.given or ()),
                          overrides=args.set, single_class=args.single_class, name=args.name,
                          project=args.project, overwrite=args.overwrite, resume=args.resume)
    verb = "resumed" if args.resume else "trained"
    print(f"{verb} detector: {run / 'weights' / 'best.pt'} (results: {run / 'results.csv'})")
    return 0
