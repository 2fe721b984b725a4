"""Issue 5's target figures for detectors × classifiers × scale normalisation on a generated dataset.

    python benchmarks/detect.py --data datasets/mix-test-m5 \
        --detector detector-yolo11n-640-8class-ft \
        --classifier classifier-lite0-160-crops-m5 classifier-lite2-224 \
        [--scale-norm on off] [--throughput 40 --throughput-config yolo11n-640-8class-ft+lite0-160-crops-m5/on --throughput-onnx] \
        [--out benchmarks/results/detect.json]

Models are zoo names (`mixmag models`) or paths to weights files (an archived model brought back
from git history, a user's own run). Every detector runs once over the split (boxes cached in
memory, and on disk with --cache-dir); every classifier then labels those boxes with scale
normalisation off (box + margin, resized) and on (a 360·m px window, m = estimated
magnification). An 8-class detector also gives its own classes ("detector") and, with a
classifier, both "classifier-on-boxes" and "two-stage" (the geometric mean of both opinions).
Each configuration is scored by mixmag.evaluate (the report stage: Hungarian matching at IoU 0.5,
predictions below --conf dropped, pycocotools mAP) and printed with the issue's targets. The
magnification estimate is compared with the generator's records on matched cells: share within
±0.125 of the truth and the confusion of the discrete scales (estimate snapped to the nearest
scale of the truth). Configurations are keyed by short names (yolo11n-640-8class-ft,
lite0-160-crops-m5), the same for a zoo name and its file.

--throughput N times the end-to-end pipeline (decode → tiles → detector → crops → classifier,
no output writing, as `mixmag predict` runs it) on the first N images for one configuration, with
PyTorch and, with --throughput-onnx, ONNX Runtime. It records the 1-minute load
average before and after: the machine may be shared.

The figures, caches and timing are mixmag.bench.detection's; the record is mixmag.bench.record's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.bench.detection import (TARGETS, Scoring, load_model, print_config,  # noqa: E402
                                    score_detector, throughput_config)
from mixmag.bench.models import resolve_model, short_name  # noqa: E402
from mixmag.bench.record import finish_record, start_record  # noqa: E402
from mixmag.errors import MixmagError  # noqa: E402


def log(msg: str) -> None:
    print(msg, flush=True)


def main(argv=None) -> int:
    from mixmag.evaluate.evaluation import BOOTSTRAP_UNITS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--data", required=True, help="datasets/NAME (folder with cells.csv)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--detector", nargs="+", required=True,
                    help="detectors: zoo names (`mixmag models`) or .pt files")
    ap.add_argument("--classifier", nargs="*", default=[],
                    help="classifiers: zoo names or checkpoints (A+B: their ensemble)")
    ap.add_argument("--scale-norm", nargs="+", default=["off", "on"], choices=["on", "off"])
    ap.add_argument("--native-sizes", help="default: magnification.json beside each detector")
    ap.add_argument("--conf", type=float, default=0.25, help="detector and report cut-off")
    ap.add_argument("--map-conf", type=float, default=None, metavar="C",
                    help="run the detector at this lower cut-off (e.g. 0.001, COCO's and ultralytics' "
                         "val protocol) for the mAP columns only; the other figures still count the "
                         "cells at --conf (default: --conf for everything)")
    ap.add_argument("--conf-sweep", type=float, nargs="+", default=None, metavar="C",
                    help="also the matching figures at each of these cut-offs, from the same boxes "
                         "(each must be >= the detector's cut-off, --map-conf or --conf)")
    ap.add_argument("--iou", type=float, default=0.5, help="matching IoU")
    ap.add_argument("--bootstrap", type=int, default=0, metavar="N",
                    help="N resamples for 95 %% intervals of macro F1, per-class recall and the "
                         "erythroblast's P/R at each scale (0: off)")
    ap.add_argument("--bootstrap-unit", default="auto", choices=BOOTSTRAP_UNITS,
                    help="what the bootstrap resamples (auto: source cells when the composites "
                         "reuse sources, as generated sets do; else images)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--limit", type=int, default=0, help="first N images only")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    ap.add_argument("--cache-dir", help="keep each detector's boxes here (reused when present)")
    ap.add_argument("--throughput", type=int, default=0, metavar="N",
                    help="time the end-to-end pipeline on N images (first detector and classifier "
                         "unless --throughput-config)")
    ap.add_argument("--throughput-config", nargs="+", default=None,
                    help="DETECTOR+CLASSIFIER/NORM by short name, e.g. yolo11n-640-8class-ft+lite0-160-crops-m5/off "
                         "or yolo11n-640-8class-ft/off (detector alone); several allowed")
    ap.add_argument("--throughput-onnx", action="store_true",
                    help="time ONNX Runtime as well (models exported once to the ONNX cache (~/.cache/mixmag/onnx), as "
                         "`mixmag predict --backend onnx` does)")
    ap.add_argument("--throughput-batch", type=int, nargs="+", default=None, metavar="B",
                    help="time PyTorch at each of these --batch sizes (e.g. 1 8 32 on a GPU) and "
                         "report the best")
    ap.add_argument("--throughput-mode", default=None,
                    help="predict --mode for the timed pipeline (default: predict's own default)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (PyTorch models)")
    ap.add_argument("--skip-accuracy", action="store_true", help="throughput only")
    ap.add_argument("--backend", choices=["pytorch", "onnx"], default="pytorch",
                    help="accuracy runs through PyTorch or ONNX Runtime (models exported once to "
                         "the ONNX cache (~/.cache/mixmag/onnx), as `mixmag predict --backend onnx` does)")
    ap.add_argument("--mask-check", action="store_true",
                    help="score only the images none of whose cut-outs is disputed by OI-PBC "
                         "(mixmag.synth.maskcheck: a mask box reaching well outside OI-PBC's box of "
                         "the cell, or holding another cell); the record says how many were left out")
    ap.add_argument("--labels", help="OI-PBC folder for --mask-check (default: $MIXMAG_OI_PBC, "
                                     "../shared/data/oi-pbc)")
    ap.add_argument("--reviewed", metavar="CSV",
                    help="with --mask-check: also leave out the images where a blind review found "
                         "the composite's truth wrong (tools/composite_review.py --collect; "
                         "benchmarks/truth/m5-val-review.csv)")
    ap.add_argument("--drop-inside", type=float, default=None, metavar="SHARE",
                    help="predict's --drop-inside on each detector's boxes (default: keep every box)")
    ap.add_argument("--zoom-below", type=float, default=None, metavar="M",
                    help="predict's --zoom-below: detect again, enlarged, each image whose boxes "
                         "estimate it below M (default: one pass)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    if args.drop_inside is not None or args.zoom_below is not None:
        from mixmag.pipeline.build import check_options

        check_options(drop_inside=args.drop_inside, zoom_below=args.zoom_below)
    if args.map_conf is not None and not 0 < args.map_conf <= args.conf:
        raise MixmagError(f"--map-conf {args.map_conf}: give a cut-off in (0, --conf {args.conf}]")
    scoring = Scoring(conf=args.conf, iou=args.iou, map_conf=args.map_conf, sweep=args.conf_sweep,
                      bootstrap=args.bootstrap, bootstrap_unit=args.bootstrap_unit,
                      scale_norms=tuple(args.scale_norm), batch=args.batch, backend=args.backend,
                      native_sizes=args.native_sizes, cache_dir=args.cache_dir,
                      drop_inside=args.drop_inside, zoom_below=args.zoom_below)
    # the detector's own cut-off: boxes between it and --conf only reach the mAP columns
    det_conf = scoring.det_conf
    bad = [c for c in args.conf_sweep or [] if not 0 < c <= 1]
    if bad:
        raise MixmagError(f"--conf-sweep {bad[0]}: cut-offs must be in (0, 1]")
    if args.conf_sweep and min(args.conf_sweep) < det_conf:
        raise MixmagError(f"--conf-sweep {min(args.conf_sweep)}: below the detector's cut-off {det_conf}; "
                          "lower --map-conf to reach it")
    if args.throughput_mode is None:  # predict's own default: the default preset's mode
        from mixmag.zoo import default_preset

        args.throughput_mode = default_preset().get("mode", "classifier-on-boxes")
    # zoo names to weights files; results are keyed by the files' short names
    detectors = {short_name(p): p for p in (resolve_model(d, "detect") for d in args.detector)}
    classifiers = {short_name(p): p for p in (resolve_model(c, "classify") for c in args.classifier)}

    import torch

    from mixmag.evaluate import load_truth
    from mixmag.pipeline.predict import list_sources

    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.data)
    if not (root / "cells.csv").is_file():
        raise MixmagError(f"--data {root}: no cells.csv; pass a folder made by `mixmag synthesize`")
    truth = load_truth(root, split=args.split)
    sources, _ = list_sources(root / "images" / args.split)
    all_sources = sources
    if args.limit:
        sources = sources[: args.limit]
    mask_check = None
    if args.mask_check:
        from mixmag.data.oipbc import find_labels
        from mixmag.synth.maskcheck import disputed_images

        bad, mask_check = disputed_images(root, truth.cells, find_labels(args.labels))
        sources = [s for s in sources if s.name not in bad]
        log(f"mask check: {mask_check['cells_disputed']} of {mask_check['cells']} cells disputed; "
            f"{mask_check['images_excluded']} image(s) left out, {len(sources)} scored")
    reviewed = None
    if args.reviewed:
        if not args.mask_check:
            raise MixmagError("--reviewed: the review covers the checked images; add --mask-check")
        from mixmag.bench.review import reviewed_out

        # counted among the images this run scores (a --limit may not reach every flagged one)
        wrong, reviewed = reviewed_out(args.reviewed, root, args.split, [s.name for s in sources])
        sources = [s for s in sources if s.name not in wrong]
        log(f"review: {reviewed['images_excluded']} more image(s) left out, {len(sources)} scored")
    # the truth of the images present (--limit, or a folder holding part of a split)
    keep = {s.name for s in sources}
    truth.cells = truth.cells[truth.cells["image"].isin(keep)].reset_index(drop=True)
    truth.images = truth.images[truth.images["image"].isin(keep)].reset_index(drop=True)

    report = start_record(__file__, argv, torch_threads=torch.get_num_threads(),
                          data=str(root), split=args.split, images=len(sources),
                          cells=int(len(truth.cells)), conf=args.conf, map_conf=det_conf,
                          iou=args.iou, targets=TARGETS, mask_check=mask_check,
                          reviewed=reviewed, configs={},
                          throughput={})
    clfs = {c: (p, load_model("c", p, args.backend, args.device)) for c, p in classifiers.items()}
    dets = {d: (p, load_model("d", p, args.backend, args.device)) for d, p in detectors.items()}
    report["backend"] = args.backend

    for dname, (dpath, det) in dets.items():
        if args.skip_accuracy:
            break
        for name, f in score_detector(scoring, truth, root, args.split, sources, all_sources, dname,
                                      dpath, det, clfs, log):
            report["configs"][name] = f
            print_config(name, f)

    if args.throughput:
        specs = args.throughput_config or [None]
        report["throughput"] = {
            spec or "default": throughput_config(
                spec, detectors, classifiers, sources[: args.throughput], device=args.device,
                native_sizes=args.native_sizes, mode=args.throughput_mode, batch=args.batch,
                batches=args.throughput_batch, onnx=args.throughput_onnx,
                zoom_below=args.zoom_below, log=log)
            for spec in specs}
    if args.out:
        finish_record(report, args.out)
        print("wrote", args.out)
    return 0


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "benchmarks/detect.py")
