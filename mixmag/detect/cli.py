"""Subcommands: train-detector, predict, export."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


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

PREDICT_EPILOG = """\
Large images are cut into tiles of the detector's training canvas (overlap merged); each
box becomes a square crop for the classifier. Writes OUT/cells.csv (one row a cell: box,
class, score, p_<class>, magnification_est), cells.json, coco_results.json, counts.csv and
drawn/ (boxes and labels on each image). Non-image files are skipped with a warning.

examples:
  mixmag predict smear.jpg --out runs/predict/smear          # the released models (models/released)
  mixmag predict smears/ --recursive --backend pytorch --out runs/predict/all   # no ONNX export
  mixmag predict smear.jpg --detector models/det.pt --classifier runs/classify/c/weights/best.pt \\
      --out runs/predict/smear
  mixmag predict datasets/mix/images/test --detector runs/detect/d/weights/best.pt \\
      --mode detector --coco-gt datasets/mix/test.json --out runs/predict/test
"""

EXPORT_EPILOG = """\
Writes OUT/detector.onnx + detector.json (class names, imgsz, training canvas, preprocessing)
and, with --classifier, classifier.onnx + classifier.json (normalisation and softmax inside the
graph). `mixmag predict --detector OUT/detector.onnx` runs it through ONNX Runtime with the same
letterbox and NMS as the .pt. --check writes parity.json (box IoU, class and count agreement).

example:
  mixmag export --detector runs/detect/d/weights/best.pt --out runs/export/d \\
      --check datasets/mix/images/test
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
                   help="model yaml (from scratch) or a local .pt to fine-tune")
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
    t.add_argument("--device", action=_Given, default=None, help="cpu, 0, 0,1 (default: GPU if present)")
    t.add_argument("--workers", action=_Given, type=int, default=2, help="dataloader processes")
    t.add_argument("--cache", action=_Given, default=None, choices=["ram", "disk"], help="cache decoded images")
    t.add_argument("--name", default=None, help="run folder name under --project")
    t.add_argument("--project", default="runs/detect", help="parent folder of the run")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="any other ultralytics train argument, e.g. --set scale=0.1 mosaic=0")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted run --project/--name (from weights/last.pt) with "
                        "its own settings; with --workers 0 the result is the uninterrupted run's, "
                        "bit for bit (options given must match the run, except --batch, "
                        "--device, --workers, --cache)")
    t.set_defaults(func=_train, given=None)

    p = sub.add_parser("predict", help="find, classify and size every cell in images",
                       description="Find every cell in each image (detector), label it "
                                   "(classifier and/or detector) and estimate its magnification.",
                       epilog=PREDICT_EPILOG, formatter_class=raw)
    p.add_argument("source", help="an image, a folder, a glob (quote it) or a .txt list of paths")
    p.add_argument("--detector", default=None,
                   help="detector weights (.pt, or .onnx from export; default: the released "
                        "models/released/detector-yolo11n-640-8class-ft)")
    p.add_argument("--classifier", default=None,
                   help="classifier checkpoint (.pt, or classifier.onnx from export); default: the "
                        "released models/released/classifier-lite0-160-crops-m5 unless --mode "
                        "detector; 'none': no classifier")
    p.add_argument("--backend", choices=["auto", "pytorch", "onnx"], default="auto",
                   help="onnx: run .pt models through ONNX Runtime, exported once into "
                        "$MIXMAG_CACHE/onnx (default ~/.cache/mixmag/onnx); 2-2.5x faster on a "
                        "CPU. auto (default): onnx on --device cpu when onnxruntime is installed, "
                        "else pytorch")
    p.add_argument("--mode", choices=["two-stage", "detector", "classifier-on-boxes"], default=None,
                   help="default: classifier-on-boxes with a classifier (the best measured, "
                        "see docs/detect.md), detector without one")
    p.add_argument("--scale-norm", choices=["on", "off"], default=None,
                   help="on: crop 360*m px around each cell (m = estimated magnification) so the "
                        "classifier sees it at native size; off: box + margin (default: what the "
                        "released classifier was trained on, off)")
    p.add_argument("--native-sizes", help="magnification.json or a dataset's cells.csv "
                                          "(default: magnification.json beside the detector)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile side in px (default: the size of the images the detector was "
                        "trained on, so cells keep the scale it learned)")
    p.add_argument("--tile-overlap", type=int, default=256,
                   help="tile overlap in px; should exceed the largest cell")
    p.add_argument("--conf", type=float, default=0.25, help="detector confidence threshold")
    p.add_argument("--iou", type=float, default=0.6, help="NMS IoU threshold")
    p.add_argument("--margin", type=float, default=0.15, help="context margin for --scale-norm off")
    p.add_argument("--window", type=int, default=360,
                   help="native field of view (px) of a scale-normalised crop (PBC: 360)")
    p.add_argument("--recursive", action="store_true", help="search folders and globs recursively")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--batch", type=int, default=16, help="detector tiles a batch (crops: 4x)")
    p.add_argument("--coco-gt", help="COCO truth JSON whose image ids the results should use")
    p.add_argument("--no-draw", action="store_true", help="skip the drawn images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output folder, e.g. runs/predict/NAME")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=_predict)

    e = sub.add_parser("export", help="ONNX export of detector and classifier, with a parity check",
                       description="Export the detector (and classifier) to ONNX for ONNX Runtime.",
                       epilog=EXPORT_EPILOG, formatter_class=raw)
    e.add_argument("--detector", required=True, help="detector weights (.pt)")
    e.add_argument("--classifier", help="classifier checkpoint to export as well")
    e.add_argument("--out", required=True, help="output folder, e.g. runs/export/NAME")
    e.add_argument("--opset", type=int, default=None, help="ONNX opset (default: ultralytics')")
    e.add_argument("--check", help="images (a SOURCE as for predict; first 16 used) to compare "
                                   "PyTorch and ONNX Runtime boxes on")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    e.set_defaults(func=_export)


def load_classifier(path: str | None, device: str = "cpu"):
    """mixmag.classify's loader, with one-line errors for the common failures."""
    if not path:
        return None
    from ..errors import MixmagError

    if not Path(path).is_file():
        raise MixmagError(f"--classifier {path}: no such file; pass a checkpoint written by "
                          "`mixmag train-classifier` (runs/classify/NAME/weights/best.pt)")
    if str(path).lower().endswith(".onnx"):
        from .export import OnnxClassifier

        if not Path(path).with_suffix(".json").is_file():
            raise MixmagError(f"--classifier {path}: needs {Path(path).with_suffix('.json').name} "
                              "beside it (both written by `mixmag export --classifier`)")
        return OnnxClassifier(path)
    try:
        from ..classify import load_classifier as _load
    except ImportError:
        raise MixmagError("--classifier: this build has no classifier loader "
                          "(mixmag.classify.load_classifier)") from None
    return _load(path, device=device)


def _train(args: argparse.Namespace) -> int:
    from ..errors import MixmagError
    from .train import check_data_yaml, parse_overrides, resume_detector, train_detector

    # checked here: ultralytics would start (and write the run folder) before failing on these
    if args.epochs < 1:
        raise MixmagError(f"--epochs {args.epochs}: must be >= 1")
    if args.imgsz < 32:
        raise MixmagError(f"--imgsz {args.imgsz}: must be >= 32 (a multiple of 32, e.g. 640)")
    if args.batch < 1 and args.batch != -1:
        raise MixmagError(f"--batch {args.batch}: must be >= 1 (or -1: ultralytics' auto batch)")
    if args.time is not None and args.time <= 0:
        raise MixmagError(f"--time {args.time}: must be > 0 minutes")
    extra = parse_overrides(args.set)
    if args.resume:
        if args.overwrite:
            raise MixmagError("--resume and --overwrite: pick one (--resume continues the run, "
                              "--overwrite starts it again)")
        cfg = check_data_yaml(args.data)
        name = args.name or (f"{Path(args.model).stem}-{cfg['_root'].name}"
                             + ("-cell" if args.single_class else ""))
        given = {k: getattr(args, k) for k in args.given or ()}
        if "time" in given:
            given["time"] = given["time"] / 60
        run = resume_detector(Path(args.project) / name, args.data, {**given, **extra},
                              single_class=args.single_class or None)
        print(f"resumed detector: {run / 'weights' / 'best.pt'} (results: {run / 'results.csv'})")
        return 0
    kw = dict(imgsz=args.imgsz, epochs=args.epochs, batch=args.batch, workers=args.workers)
    if args.device is not None:
        kw["device"] = args.device
    if args.cache:
        kw["cache"] = args.cache
    run = train_detector(args.data, args.model, single_class=args.single_class, name=args.name,
                         project=args.project, overwrite=args.overwrite,
                         time_hours=args.time / 60 if args.time else None, **{**kw, **extra})
    print(f"trained detector: {run / 'weights' / 'best.pt'} (results: {run / 'results.csv'})")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ..errors import MixmagError
    from ..fileio import prepare_output
    from .detector import load_detector
    from .magnification import find_native_sizes
    from .outputs import StreamingOutputs, write_drawn
    from .predict import Pipeline, PredictOptions, list_sources, options_dict

    out = prepare_output(Path(args.out), args.overwrite, "prediction")
    for name, v in (("--conf", args.conf), ("--iou", args.iou)):
        if not 0 <= v <= 1:
            raise MixmagError(f"{name} {v:g}: must be in [0, 1]")
    if args.batch < 1:
        raise MixmagError(f"--batch {args.batch}: must be >= 1")
    if args.tile_overlap < 0 or (args.tile and args.tile_overlap >= args.tile):
        raise MixmagError(f"--tile-overlap {args.tile_overlap}: must be >= 0 and below --tile")
    sources, skipped = list_sources(args.source, args.recursive)
    from . import defaults

    det_path = args.detector or defaults.default_detector()
    clf_path = args.classifier
    if clf_path is None and args.mode != "detector":
        clf_path = defaults.default_classifier()
    if clf_path is not None and clf_path.lower() == "none":
        clf_path = None
    run_det, run_clf = det_path, clf_path
    backend = args.backend
    if backend == "auto":
        from .export import onnx_available

        backend = "onnx" if args.device == "cpu" and onnx_available() else "pytorch"
    if backend == "onnx":
        from .export import onnx_cached

        try:
            run_det, run_clf = onnx_cached(det_path, clf_path)
        except MixmagError:
            raise
        except Exception as e:  # noqa: BLE001 - auto falls back; an explicit request fails
            if args.backend == "onnx":
                raise MixmagError(f"--backend onnx: export failed ({type(e).__name__}: {e}); "
                                  "use --backend pytorch") from None
            log.warning("ONNX export failed (%s: %s); running with PyTorch", type(e).__name__, e)
            backend = "pytorch"
    detector = load_detector(run_det, args.device)
    classifier = load_classifier(run_clf, args.device)
    mode = args.mode or (defaults.MODE if classifier is not None else "detector")
    sizes = find_native_sizes(det_path, args.native_sizes)
    scale_norm = (args.scale_norm or defaults.SCALE_NORM) == "on"
    if args.scale_norm is None and scale_norm and sizes is None and mode != "detector":
        log.warning("no native cell sizes beside %s (magnification.json): scale normalisation "
                    "off; pass --native-sizes datasets/NAME/cells.csv to turn it on", det_path)
        scale_norm = False
    opt = PredictOptions(mode=mode, scale_norm=scale_norm, tile=args.tile,
                         overlap=args.tile_overlap, conf=args.conf, iou=args.iou,
                         batch=args.batch, margin=args.margin, window=args.window)
    if opt.scale_norm and mode == "detector":
        opt.scale_norm = False
    pipe = Pipeline(detector, classifier, sizes, opt)
    drawn = out / "drawn"
    # rows go to temporary spools as images finish (constant memory, however many images);
    # the final files are written, each atomically, only once every image is through
    with StreamingOutputs(out, args.coco_gt) as outputs:
        t0 = time.perf_counter()
        for r in pipe.iter_images(sources, progress=not args.no_progress):
            outputs.add(r.row, r.cells)
            if r.cells is not None and not args.no_draw:
                write_drawn(drawn, r.source.name, r.image, r.cells)
        seconds = time.perf_counter() - t0
        failed = [r for r in outputs.images if r["error"]]
        if len(failed) == len(outputs.images) and failed:
            # nothing could be read: an error, not an empty result
            raise MixmagError(f"{failed[0]['error']}" + (f" (and {len(failed) - 1} more unreadable "
                                                          "image(s))" if len(failed) > 1 else ""))
        meta = {"detector": str(det_path), "classifier": clf_path, "backend": backend,
                "options": options_dict(opt), "tile": pipe.tile, "seconds": round(seconds, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "native_sizes": bool(sizes)}
        outputs.finish(meta, skipped)
    n_ok = len(outputs.images) - len(failed)
    print(f"{n_ok} image(s), {outputs.n_cells} cell(s) in {seconds:.1f} s "
          f"({n_ok / max(seconds, 1e-9):.2f} images/s); wrote {out}/cells.csv, cells.json, "
          f"coco_results.json, counts.csv" + ("" if args.no_draw else ", drawn/"))
    if skipped or failed:
        print(f"skipped {len(skipped)} non-image file(s) and {len(failed)} unreadable "
              "image(s) (listed in cells.json)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..fileio import prepare_output, write_json
    from ..images import read_image
    from .export import detector_parity, export_classifier, export_detector
    from .predict import list_sources

    out = prepare_output(Path(args.out), args.overwrite, "export")
    # every input is read before the first file is written, so a bad one leaves OUT as it was
    clf = load_classifier(args.classifier)
    images = []
    if args.check:
        sources, _ = list_sources(args.check)
        images = [read_image(s.path) for s in sources[:16]]
    det_onnx = export_detector(args.detector, out, opset=args.opset)
    print(f"wrote {det_onnx} (+ detector.json)")
    if clf is not None:
        print(f"wrote {export_classifier(clf, out, source=args.classifier)} (+ classifier.json)")
    if args.check:
        report = detector_parity(args.detector, det_onnx, images)
        write_json(out / "parity.json", report)
        print("parity (PyTorch vs ONNX Runtime, same letterbox):", report)
    return 0
