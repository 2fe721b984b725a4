"""Subcommands: predict, export, models."""

from __future__ import annotations

import argparse

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



def register(sub) -> None:
    from ..pipeline.predict import MODES, PredictOptions
    from ..pipeline.runtime import BACKENDS

    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("predict", help="find, classify and size every cell in images",
                       description="Find every cell in each image (detector), label it "
                                   "(classifier and/or detector) and estimate its magnification.",
                       epilog=PREDICT_EPILOG, formatter_class=raw)
    p.add_argument("source", help="an image, a folder, a glob (quote it) or a .txt list of paths")
    d = PredictOptions()  # the library's defaults, shown in the help; the CLI sets none itself
    p.add_argument("--models", default="default", metavar="PIPELINE",
                   help="a pipeline of the model zoo (`mixmag models` lists them): its detector, "
                        "classifier and preset; --detector / --classifier replace either. "
                        "'default': the pair trained on real fields and composites (counts red "
                        "cells too); 'composite': the pair trained on composites alone "
                        "(default: 'default')")
    p.add_argument("--detector", default=None,
                   help="a zoo name (`mixmag models`) or detector weights (.pt, or .onnx from "
                        "export); default: the --models pipeline's detector")
    p.add_argument("--classifier", default=None,
                   help="a zoo name or a classifier checkpoint (.pt, or classifier.onnx from "
                        "export); default: the --models pipeline's classifier unless --mode "
                        "detector; 'none': no classifier")
    p.add_argument("--backend", choices=list(BACKENDS), default="auto",
                   help="onnx: run .pt models through ONNX Runtime, exported once into "
                        "$MIXMAG_CACHE/onnx (default ~/.cache/mixmag/onnx); 2-2.5x faster on a "
                        "CPU. auto (default): onnx on --device cpu when onnxruntime is installed, "
                        "else pytorch")
    p.add_argument("--mode", choices=list(MODES), default=None,
                   help="default: the classifier's zoo preset (classifier-on-boxes for the "
                        "released ones) with a classifier, detector without one")
    p.add_argument("--scale-norm", choices=["on", "off"], default=None,
                   help="on: crop 360*m px around each cell (m = estimated magnification) so the "
                        "classifier sees it at native size; off: box + margin (default: the "
                        "classifier's zoo preset; off for the released ones)")
    p.add_argument("--native-sizes", help="magnification.json or a dataset's cells.csv "
                                          "(default: magnification.json beside the detector)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile side in px (default: the size of the images the detector was "
                        "trained on, so cells keep the scale it learned)")
    p.add_argument("--tile-overlap", type=int, default=None,
                   help=f"tile overlap in px; should exceed the largest cell (default {d.overlap})")
    p.add_argument("--small-images", choices=("fit", "pad"), default=None,
                   help="an image smaller than a tile: 'fit' scales it onto the smallest "
                        "stride-aligned canvas at the tile's scale, sides >= --fit-min-side "
                        "(default; a 360 x 363 field costs a 288² detector input, not 800², with the default detector), "
                        "'pad' pads it to the whole tile")
    p.add_argument("--zoom-below", type=float, default=None, metavar="M",
                   help="detect an image again, enlarged by 1/m (at most 3x), when its cells are "
                        "estimated at m < M (e.g. 0.75): small cells reach the detector near the "
                        "size it learned (default: one pass)")
    p.add_argument("--drop-inside", type=float, default=None, metavar="SHARE",
                   help="drop a box (not a platelet) with at least SHARE of its area inside a "
                        "larger box of the eight: a part of a cell already boxed, such as one "
                        "lobe of an eosinophil (e.g. 0.6; default: keep every box)")
    p.add_argument("--slide-level", type=_level, default=None, metavar="auto|N",
                   help="whole slides (pyramidal TIFF / OME-TIFF / SVS, read region by region; "
                        "pip install 'mixmag[slides]'): the pyramid level to detect at (default "
                        "auto: the level whose sampled cells are estimated nearest 1x)")
    p.add_argument("--slide-region", type=int, default=None, metavar="PX",
                   help=f"whole slides: the side of the regions read one at a time (default "
                        f"{d.slide_region}; memory grows with its square)")
    p.add_argument("--fit-min-side", type=int, default=None,
                   help="--small-images fit: a fitted canvas's smallest side in px (default 256)")
    p.add_argument("--conf", type=float, default=None,
                   help=f"detector confidence threshold (default {d.conf})")
    p.add_argument("--iou", type=float, default=None, help=f"NMS IoU threshold (default {d.iou})")
    p.add_argument("--margin", type=float, default=None,
                   help=f"context margin for --scale-norm off (default: the preset's, {d.margin})")
    p.add_argument("--window", type=int, default=None,
                   help="native field of view (px) of a scale-normalised crop (default: the "
                        f"preset's; PBC: {d.window})")
    p.add_argument("--recursive", action="store_true", help="search folders and globs recursively")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--batch", type=int, default=None,
                   help=f"detector tiles a batch (crops: 4x; default {d.batch})")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: a Ray actor pool, the same outputs "
                        "(pip install 'mixmag[ray]')")
    p.add_argument("--address", help="--engine ray: join this Ray cluster (e.g. ray://HOST:10001 "
                   "or auto); without it a local one starts and stops")
    p.add_argument("--workers", type=int, help="--engine ray: actors, one model load each "
                   "(default: one a CPU)")
    p.add_argument("--coco-gt", help="COCO truth JSON whose image ids the results should use")
    p.add_argument("--no-draw", action="store_true", help="skip the drawn images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output folder, e.g. runs/predict/NAME")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=_predict)

    e = sub.add_parser("export", help="ONNX export of detector and classifier, with a parity check",
                       description="Export the detector (and classifier) to ONNX for ONNX Runtime.",
                       epilog=EXPORT_EPILOG, formatter_class=raw)
    e.add_argument("--detector", required=True, help="a zoo name or detector weights (.pt)")
    e.add_argument("--classifier", help="a zoo name or classifier checkpoint to export as well")
    e.add_argument("--out", required=True, help="output folder, e.g. runs/export/NAME")
    e.add_argument("--opset", type=int, default=None, help="ONNX opset (default: ultralytics')")
    e.add_argument("--check", help="images (a SOURCE as for predict; first 16 used) to compare "
                                   "PyTorch and ONNX Runtime boxes on")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    e.set_defaults(func=_export)

    m = sub.add_parser("models", help="the model zoo: every released model, its status and figures",
                       description="List the models of the zoo (models/zoo.yaml): name, task, "
                                   "status, what predict uses by default, and each model's "
                                   "figures with the command that made them.")
    m.add_argument("name", nargs="?", help="one model: its whole entry")
    m.add_argument("--all", action="store_true", help="archived models too")
    m.set_defaults(func=_models)


def _level(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        level = int(text)
    except ValueError:
        level = -1
    if level < 0:
        raise argparse.ArgumentTypeError(f"'{text}': 'auto' or a level number (0 = full resolution)")
    return level


def _predict(args: argparse.Namespace) -> int:
    from ..pipeline.run import run_predict

    summary = run_predict(
        args.source, args.out, preset=args.models, detector=args.detector,
        classifier=args.classifier,
        backend=args.backend, device=args.device, native_sizes=args.native_sizes,
        recursive=args.recursive, coco_gt=args.coco_gt, draw=not args.no_draw,
        progress=not args.no_progress, overwrite=args.overwrite, mode=args.mode,
        scale_norm=None if args.scale_norm is None else args.scale_norm == "on", tile=args.tile,
        overlap=args.tile_overlap, conf=args.conf, iou=args.iou, batch=args.batch,
        margin=args.margin, window=args.window, small_images=args.small_images,
        fit_min_side=args.fit_min_side, zoom_below=args.zoom_below,
        drop_inside=args.drop_inside, slide_level=args.slide_level,
        slide_region=args.slide_region,
        engine=args.engine, address=args.address, workers=args.workers)
    for line in summary.lines():
        print(line)
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..pipeline.export import export_models

    r = export_models(args.detector, args.out, classifier=args.classifier, opset=args.opset,
                      check=args.check, overwrite=args.overwrite)
    print(f"wrote {r.detector} (+ detector.json)")
    if r.classifier is not None:
        print(f"wrote {r.classifier} (+ classifier.json)")
    if args.check:
        print("parity (PyTorch vs ONNX Runtime, same letterbox):", r.parity)
    return 0


def _models(args: argparse.Namespace) -> int:
    from ..zoo import describe

    print(describe(args.name, archived=args.all))
    return 0
