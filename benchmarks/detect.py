"""Issue 5's target figures for detectors × classifiers × scale normalisation on a generated dataset.

    python benchmarks/detect.py --data datasets/mix-test \
        --detector models/released/detector-yolo11n-640-cell/best.pt models/released/detector-yolo11n-640-8class/best.pt \
        --classifier models/released/classifier-lite0-160/best.pt models/released/classifier-lite2-224/best.pt \
        [--scale-norm on off] [--throughput 40 --throughput-config yolo11n-640-8class+lite2-224/on --throughput-onnx] \
        [--out benchmarks/results/detect.json]

Every detector runs once over the split (boxes cached in memory, and on disk with --cache-dir);
every classifier then labels those boxes with scale normalisation off (box + margin, resized) and
on (a 360·m px window, m = estimated magnification). An 8-class detector also gives its own
classes ("detector") and, with a classifier, both "classifier-on-boxes" and "two-stage" (the
geometric mean of both opinions). Each configuration is scored by mixmag.evaluate (the report
stage: Hungarian matching at IoU 0.5, predictions below --conf dropped, pycocotools mAP) and
printed with the issue's targets. The magnification estimate is compared with the generator's
records on matched cells: share within ±0.125 of the truth and the confusion of the discrete
scales (estimate snapped to the nearest scale of the truth).

--throughput N times the end-to-end pipeline (decode → tiles → detector → crops → classifier,
no output writing, as `mixmag predict` runs it) on the first N images for one configuration, with
PyTorch and, with --throughput-onnx, ONNX Runtime. It records the 1-minute load
average before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mixmag.errors import MixmagError  # noqa: E402

TARGETS = {"macro_f1": 0.98, "loc_recall": 0.995, "map50": 0.99, "map50_95": 0.85,
           "macro_f1_at_0.5": 0.97, "erythroblast_pr_every_scale": 0.98, "composites_per_s": 5.0}


def machine() -> str:
    import torch

    from mixmag.provenance import cpu_model

    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return f"{cpu}, {os.cpu_count()} CPUs" + (f", {gpu}" if gpu else "")


def git_commit() -> str:
    if os.environ.get("MIXMAG_COMMIT"):
        # a copy of the tree sent elsewhere (a lent GPU machine) names the commit it was made from
        return os.environ["MIXMAG_COMMIT"]
    try:
        head = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
        dirty = subprocess.check_output(["git", "status", "--porcelain", "--untracked-files=no"],
                                        text=True, stderr=subprocess.DEVNULL).strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _dataset_stamp(root: Path) -> str:
    """What changes when a dataset is regenerated in place (cached boxes must not outlive it)."""
    f = root / "cells.csv"
    return f"{hashlib.sha1(f.read_bytes()).hexdigest()[:12]}-{f.stat().st_mtime_ns}" if f.is_file() else ""


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def short_name(path: str) -> str:
    """models/released/detector-yolo11n-640-cell/best.pt → yolo11n-640-cell (A.pt+B.pt: an ensemble)."""
    if "+" in str(path):
        return "+".join(short_name(q) for q in str(path).split("+"))
    p = Path(path)
    name = p.parent.name if p.stem in ("best", "last", "detector", "classifier") else p.stem
    if name == "weights":
        name = p.parent.parent.name
    for prefix in ("detector-", "classifier-"):
        name = name.removeprefix(prefix)
    return name


# ---------------------------------------------------------------- stages, cached

def _groups(sources, size):
    for i in range(0, len(sources), size):
        yield sources[i:i + size]


def _read(group):
    from mixmag.images import read_image

    return [read_image(s.path) for s in group]


def box_cache(cache_dir, dname: str, dpath: str, root: Path, split: str, n_sources: int,
              det_conf: float) -> Path:
    """Where one detector's boxes on one split are kept: keyed by the weights file, the dataset
    and the cut-off, so nothing stale is reused."""
    key = hashlib.sha1(f"{Path(dpath).resolve()}|{Path(dpath).stat().st_mtime}|{root.resolve()}|"
                       f"{_dataset_stamp(root)}|"
                       f"{split}|{n_sources}|{det_conf}".encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{dname}-{key}.npz"


def prob_cache(boxes: Path, cname: str, cpath: str, backend: str, norm: str, n: int) -> Path:
    """Where one classifier's probabilities on those boxes are kept; keyed by the checkpoint file
    too, so a retrained model under the same name does not reuse the old one's."""
    ckey = hashlib.sha1("|".join(f"{Path(q).resolve()}|{Path(q).stat().st_mtime}"
                                 for q in cpath.split("+")).encode()).hexdigest()[:8]
    return boxes.with_name(f"{boxes.stem}+{cname}-{ckey}-{backend}-{norm}-{n}.npz")


def detect_all(pipe, sources, cache: Path | None) -> tuple[list[np.ndarray], float]:
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return [z[f"d{i}"] for i in range(len(sources))], float(z["seconds"])
    dets, t = [], 0.0
    for group in _groups(sources, pipe.opt.batch):
        imgs = _read(group)
        t0 = time.perf_counter()
        dets += pipe.detect(imgs)
        t += time.perf_counter() - t0
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, seconds=t, **{f"d{i}": d.astype(np.float32) for i, d in enumerate(dets)})
    return dets, t


def classifier_all(pipe, sources, dets, cache: Path | None = None) -> tuple[np.ndarray, float]:
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return z["probs"], float(z["seconds"])
    out, t, k = [], 0.0, 0
    for group in _groups(sources, pipe.opt.batch):
        imgs, ds = _read(group), dets[k:k + len(group)]
        k += len(group)
        t0 = time.perf_counter()
        out.append(pipe.classifier_probs(imgs, ds, pipe.det_probs(ds)))
        t += time.perf_counter() - t0
    probs = np.concatenate(out)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, probs=probs, seconds=t)
    return probs, t


def cells_frame(pipe, sources, dets, probs, mode=None) -> pd.DataFrame:
    per = pipe.finish(dets, probs)
    frames = [pipe.rows(s.name, d, p, m, mode) for s, d, (p, m) in zip(sources, dets, per)]
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- figures

def _at(cells: pd.DataFrame, conf: float) -> pd.DataFrame:
    """The rows a detector run at ``conf`` would have given (from a run at a lower cut-off)."""
    return cells[cells["det_conf"] >= conf].reset_index(drop=True)


def figures(truth, cells: pd.DataFrame, conf: float, iou: float, map_conf: float | None = None,
            sweep: list[float] | None = None, n_boot: int = 0, boot_unit: str = "auto") -> dict:
    """The target figures of one configuration. ``cells`` may hold boxes the detector found below
    ``conf`` (a run at ``map_conf``). Given ``map_conf``, COCO mAP ranks them all, as COCO and
    ultralytics' val (conf 0.001) do; every other figure, and mAP without ``map_conf``, counts only
    the cells with det_conf >= conf, as predict at ``conf`` would have written them. ``sweep``: the
    matching figures again at each of these cut-offs (each >= ``map_conf``), as a detector run there
    would give them, to choose predict's ``--conf``. ``n_boot`` > 0: 95 % bootstrap intervals
    of macro F1, per-class recall and the erythroblast's P/R at each scale, resampling
    ``boot_unit`` (auto: source cells on generated sets; see mixmag.evaluate.bootstrap)."""
    from mixmag.detect.magnification import estimate_vs_truth
    from mixmag.evaluate import evaluate

    low = map_conf is not None and map_conf < conf
    # a no-op for boxes detected at conf; with boxes from a lower run, the ones a run at conf gives
    f1_cells = _at(cells, conf)
    # the matching figures from f1_cells; mAP from every box when there are lower ones (COCO once)
    res = evaluate(truth, f1_cells, iou=iou, conf=conf, bootstrap=n_boot, coco=not low,
                   all_classes_map=not low, bootstrap_unit=boot_unit)
    m = (evaluate(truth, cells, iou=iou, conf=0.0, bootstrap=0, all_classes_map=True) if low else res)
    h, pc, mh, mpc = res.headline, res.per_class, m.headline, m.per_class
    out = {"macro_f1": h["macro_f1"], "loc_recall": h["loc_recall"],
           "loc_precision": h["loc_precision"], "accuracy_matched": h["accuracy_matched"],
           "map50": mh["map50"], "map50_95": mh["map50_95"],
           "map50_all_classes": mh.get("map50_all_classes"),
           "map50_95_all_classes": mh.get("map50_95_all_classes"), "n_truth": h["n_truth"],
           "n_pred": h["n_pred"], "n_missed": h["n_missed"], "n_spurious": h["n_spurious"],
           "per_class_f1": dict(zip(pc["class_name"], pc["f1"])),
           "per_class_ap50": dict(zip(mpc["class_name"], mpc["ap50"])),
           "per_class_ap50_all_classes": (dict(zip(mpc["class_name"], mpc["ap50_all_classes"]))
                                          if "ap50_all_classes" in mpc else None),
           "by_magnification": {}}
    pm = res.per_magnification
    for level, g in pm.groupby("magnification", sort=False):
        allrow = g[g["class_name"] == "all"].iloc[0]
        ery = g[g["class_name"] == "erythroblast"].iloc[0]
        out["by_magnification"][str(level)] = {
            "cells": int(allrow["support"]), "macro_f1": allrow["macro_f1"],
            "loc_recall": allrow["loc_recall"], "erythroblast_precision": ery["precision"],
            "erythroblast_recall": ery["recall"], "erythroblast_support": int(ery["support"])}
    b = res.bootstrap
    if b:
        out["bootstrap"] = {"n_boot": b["n_boot"], "seed": b["seed"], "unit": b["unit"],
                            "n_clusters": b["n_clusters"], "macro_f1_ci": b["macro_f1"],
                            "per_class_recall_ci": b["per_class_recall"],
                            "per_class_precision_ci": b["per_class_precision"]}
        for level, v in out["by_magnification"].items():
            g = b["by_group"].get(level)
            if g:
                v["macro_f1_ci"] = g["macro_f1"]
                v["erythroblast_precision_ci"] = g["per_class_precision"]["erythroblast"]
                v["erythroblast_recall_ci"] = g["per_class_recall"]["erythroblast"]
    out["map_detector_conf"] = map_conf if low else conf
    out["magnification_estimate"] = estimate_vs_truth(res, 0.125)
    out["erythroblast_errors"] = erythroblast_errors(res)
    # every row predict writes counts (no report cut-off): the user's view of cells.csv
    h0 = evaluate(truth, f1_cells, iou=iou, conf=0.0, bootstrap=0, coco=False).headline
    out["macro_f1_conf0"], out["loc_recall_conf0"] = h0["macro_f1"], h0["loc_recall"]
    if sweep:
        out["conf_sweep"] = {}
        for c in sweep:
            hc = evaluate(truth, _at(cells, c), iou=iou, conf=c,
                          bootstrap=0, coco=False).headline
            out["conf_sweep"][f"{c:g}"] = {k: hc[k] for k in ("macro_f1", "loc_recall", "loc_precision",
                                                            "n_missed", "n_spurious")}
    return _clean(out)


def erythroblast_errors(res) -> list[dict]:
    """One record per erythroblast labelled otherwise or missed, and per cell or box labelled
    erythroblast that is not one: its source cell (when the truth names sources; generated sets
    reuse them, so several records may be copies of one cell), magnification, true class and
    what it was called."""
    from mixmag.classes import CLASS_NAMES

    o, e = res.outcomes, CLASS_NAMES.index("erythroblast")
    names = list(CLASS_NAMES)
    cells = res.truth.cells
    src = cells["source"].to_numpy() if "source" in cells else None
    rows = o[(o["true"] == e) != (o["pred"] == e)]
    return [{"source": None if src is None or r.t < 0 else str(src[r.t]),
             "magnification": getattr(r, "magnification", None) or None,
             "true": names[r.true] if r.true < len(names) else "spurious",
             "called": names[r.pred] if r.pred < len(names) else "missed"}
            for r in rows.itertuples()]


def _clean(o):
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return None if not np.isfinite(o) else round(float(o), 5)
    return o


def check_targets(f: dict) -> dict:
    mags = f["by_magnification"]
    half = next((v for k, v in mags.items() if _level(k) == 0.5), None)
    ery = [min(v["erythroblast_precision"] or 0, v["erythroblast_recall"] or 0) for v in mags.values()]
    return {"macro_f1": (f["macro_f1"] or 0) >= TARGETS["macro_f1"],
            "loc_recall": (f["loc_recall"] or 0) >= TARGETS["loc_recall"],
            "map50": (f["map50"] or 0) >= TARGETS["map50"],
            "map50_95": (f["map50_95"] or 0) >= TARGETS["map50_95"],
            "macro_f1_at_0.5": half is not None and (half["macro_f1"] or 0) >= TARGETS["macro_f1_at_0.5"],
            "erythroblast_pr_every_scale": bool(ery) and min(ery) >= TARGETS["erythroblast_pr_every_scale"]}


def _level(label: str) -> float:
    try:
        return float(str(label).rstrip("×x "))
    except ValueError:
        return float("nan")


def _fmt(v, nd=4):
    return "–" if v is None else f"{v:.{nd}f}"


def _ci(ci) -> str:
    return "" if not ci or None in ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def print_config(name: str, f: dict) -> None:
    ok = f["targets_met"]
    print(f"== {name}: macro F1 {_fmt(f['macro_f1'])}{'' if ok['macro_f1'] else ' (miss)'}, "
          f"loc recall {_fmt(f['loc_recall'])}{'' if ok['loc_recall'] else ' (miss)'}, "
          f"mAP@0.5 {_fmt(f['map50'])}{'' if ok['map50'] else ' (miss)'}, "
          f"mAP@0.5:0.95 {_fmt(f['map50_95'])}{'' if ok['map50_95'] else ' (miss)'}, "
          f"accuracy of matched {_fmt(f['accuracy_matched'])}")
    if f.get("map50_all_classes") is not None:
        print(f"   mAP over all class hypotheses (ultralytics' multi-label val) @0.5 "
              f"{_fmt(f['map50_all_classes'])}, @0.5:0.95 {_fmt(f['map50_95_all_classes'])}; "
              f"mAP from boxes at detector cut-off {f.get('map_detector_conf')}")
    b = f.get("bootstrap")
    if b:
        print(f"   95 % intervals ({b['n_boot']} resamples of {b['n_clusters']} {b['unit']} clusters): "
              f"macro F1 {_ci(b['macro_f1_ci'])}")
    for level, m in f["by_magnification"].items():
        print(f"   x{level:<4s} macro F1 {_fmt(m['macro_f1'])}{_ci(m.get('macro_f1_ci'))}  "
              f"loc R {_fmt(m['loc_recall'])}  "
              f"erythroblast P {_fmt(m['erythroblast_precision'])}{_ci(m.get('erythroblast_precision_ci'))} "
              f"R {_fmt(m['erythroblast_recall'])}{_ci(m.get('erythroblast_recall_ci'))}"
              f"  ({m['cells']} cells)")
    errs = f.get("erythroblast_errors") or []
    if errs:
        srcs = {x["source"] for x in errs if x["source"]}
        print(f"   erythroblast errors: {len(errs)} (labelled otherwise, missed, or taken for one), "
              f"from {len(srcs)} source cells")
    me = f["magnification_estimate"]
    if me.get("n"):
        print(f"   magnification estimate: within ±0.125 {me['within_0.125']:.4f}, nearest scale "
              f"right {me.get('discrete_accuracy', float('nan')):.4f}, median |error| "
              f"{me['median_abs_error']:.4f}; confusion (true → estimated) {me.get('discrete_confusion')}")
    for c, m in (f.get("conf_sweep") or {}).items():
        print(f"   at cut-off {c}: macro F1 {_fmt(m['macro_f1'])}  loc R {_fmt(m['loc_recall'])}  "
              f"P {_fmt(m['loc_precision'])}  missed {m['n_missed']}  spurious {m['n_spurious']}")
    weak = sorted(f["per_class_f1"].items(), key=lambda kv: kv[1] if kv[1] is not None else 2)[:3]
    print("   weakest classes:", ", ".join(f"{c} {_fmt(v, 3)}" for c, v in weak),
          f"| stage s/image: {f.get('seconds_per_image')}")


# ---------------------------------------------------------------- throughput

def throughput(det, clf, sizes, mode, scale_norm, sources, batch) -> dict:
    from mixmag.detect.predict import Pipeline, PredictOptions

    pipe = Pipeline(det, clf, sizes, PredictOptions(mode=mode, scale_norm=scale_norm, batch=batch))
    # warm-up (allocator, lazy imports, cudnn autotuning at this batch size)
    pipe.run(sources[:max(4, 2 * batch)], progress=False)
    before = load1()
    res = pipe.run(sources, progress=False)
    n = int((~res.images["error"].astype(bool)).sum())
    return {"batch": batch, "images": n, "cells": len(res.cells), "seconds": round(res.seconds, 2),
            "composites_per_s": round(n / max(res.seconds, 1e-9), 2),
            "load1_before": before, "load1_after": load1()}


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    from mixmag.evaluate.evaluation import BOOTSTRAP_UNITS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--data", required=True, help="datasets/NAME (folder with cells.csv)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--detector", nargs="+", required=True, help=".pt detectors")
    ap.add_argument("--classifier", nargs="*", default=[], help="classifier checkpoints (A.pt+B.pt: their ensemble)")
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
                    help="DETECTOR+CLASSIFIER/NORM by short name, e.g. yolo11n-640-cell+lite0-160/off "
                         "or yolo11n-640-8class/off (detector alone); several allowed")
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
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    if args.map_conf is not None and not 0 < args.map_conf <= args.conf:
        raise MixmagError(f"--map-conf {args.map_conf}: give a cut-off in (0, --conf {args.conf}]")
    # the detector's own cut-off: boxes between it and --conf only reach the mAP columns
    det_conf = args.conf if args.map_conf is None else args.map_conf
    bad = [c for c in args.conf_sweep or [] if not 0 < c <= 1]
    if bad:
        raise MixmagError(f"--conf-sweep {bad[0]}: cut-offs must be in (0, 1]")
    if args.conf_sweep and min(args.conf_sweep) < det_conf:
        raise MixmagError(f"--conf-sweep {min(args.conf_sweep)}: below the detector's cut-off {det_conf}; "
                          "lower --map-conf to reach it")
    if args.throughput_mode is None:
        from mixmag.detect.defaults import MODE

        args.throughput_mode = MODE

    import torch

    from mixmag.detect.cli import load_classifier
    from mixmag.detect.detector import load_detector
    from mixmag.detect.magnification import find_native_sizes
    from mixmag.detect.predict import Pipeline, PredictOptions, list_sources
    from mixmag.evaluate import load_truth
    from mixmag.provenance import library_versions

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
    # the truth of the images present (--limit, or a folder holding part of a split)
    keep = {s.name for s in sources}
    truth.cells = truth.cells[truth.cells["image"].isin(keep)].reset_index(drop=True)
    truth.images = truth.images[truth.images["image"].isin(keep)].reset_index(drop=True)

    report = {"command": " ".join(["python", *sys.argv]), "git_commit": git_commit(),
              "machine": machine(), "libraries": library_versions(), "date": time.strftime("%Y-%m-%d %H:%M"),
              "torch_threads": torch.get_num_threads(), "load1_start": load1(),
              "data": str(root), "split": args.split, "images": len(sources),
              "cells": int(len(truth.cells)), "conf": args.conf, "map_conf": det_conf, "iou": args.iou,
              "targets": TARGETS, "configs": {}, "throughput": {}}
    from mixmag.detect.export import onnx_cached

    def model(kind, path):
        if kind == "c" and "+" in path:  # A.pt+B.pt: their probabilities averaged
            from mixmag.classify.ensemble import ClassifierEnsemble

            parts = path.split("+")
            return ClassifierEnsemble([model("c", q) for q in parts], paths=parts)
        if args.backend != "onnx":
            return (load_classifier(path, device=args.device) if kind == "c"
                    else load_detector(path, device=args.device))
        d, c = onnx_cached(path if kind == "d" else None, path if kind == "c" else None)
        return load_classifier(c) if kind == "c" else load_detector(d)

    clfs = {short_name(c): model("c", c) for c in args.classifier}
    cpaths = {short_name(c): c for c in args.classifier}
    dets = {short_name(d): (d, model("d", d)) for d in args.detector}
    report["backend"] = args.backend

    for dname, (dpath, det) in dets.items():
        if args.skip_accuracy:
            break
        sizes = find_native_sizes(dpath, args.native_sizes)
        base = Pipeline(det, None, sizes, PredictOptions(mode="detector" if len(det.names) > 1 else
                                                          "two-stage", scale_norm=False,
                                                          conf=det_conf, batch=args.batch)) \
            if len(det.names) > 1 else None
        cache = (box_cache(args.cache_dir, dname, dpath, root, args.split, len(all_sources), det_conf)
                 if args.cache_dir else None)
        probe = base or Pipeline(det, next(iter(clfs.values()), None), sizes,
                                 PredictOptions(mode="two-stage", scale_norm=False, conf=det_conf,
                                                batch=args.batch))
        boxes, t_det = detect_all(probe, all_sources if cache is not None else sources, cache)
        if cache is not None:
            t_det *= len(sources) / len(all_sources)
            boxes = boxes[:len(sources)]
        print(f"detector {dname}: {sum(map(len, boxes))} boxes on {len(sources)} images, "
              f"{t_det / len(sources):.3f} s/image (load {load1()})", flush=True)
        if base is not None:
            probs = base.det_probs(boxes)
            f = figures(truth, cells_frame(base, sources, boxes, probs), args.conf, args.iou,
                        args.map_conf, args.conf_sweep, args.bootstrap, args.bootstrap_unit)
            f["seconds_per_image"] = {"detector": round(t_det / len(sources), 4)}
            f["targets_met"] = check_targets(f)
            name = f"{dname} (detector classes)"
            f["config"] = {"detector": dname, "classifier": None, "scale_norm": None, "mode": "detector"}
            report["configs"][name] = f
            print_config(name, f)
        for cname, clf in clfs.items():
            for norm in args.scale_norm:
                pipe = Pipeline(det, clf, sizes, PredictOptions(
                    mode="classifier-on-boxes", scale_norm=norm == "on", conf=det_conf,
                    batch=args.batch))
                pcache = (prob_cache(cache, cname, cpaths[cname], args.backend, norm, len(sources))
                          if cache is not None else None)
                p_clf, t_clf = classifier_all(pipe, sources, boxes, pcache)
                sec = {"detector": round(t_det / len(sources), 4),
                       "classifier": round(t_clf / len(sources), 4)}
                variants = [("classifier-on-boxes", p_clf)]
                if pipe.det_pbc:
                    variants.append(("two-stage", pipe.combine(p_clf, pipe.det_probs(boxes))))
                for mode, probs in variants:
                    # two-stage scores a row by its combined class probability, which forgets how
                    # unsure the detector was: boxes found below --conf would rank too high, so its
                    # mAP stays at --conf (map_detector_conf says which)
                    f = figures(truth, cells_frame(pipe, sources, boxes, probs, mode), args.conf,
                                args.iou, None if mode == "two-stage" else args.map_conf,
                                args.conf_sweep, args.bootstrap, args.bootstrap_unit)
                    f["seconds_per_image"] = sec
                    f["targets_met"] = check_targets(f)
                    name = f"{dname}+{cname}/{norm}" + (f" ({mode})" if pipe.det_pbc else "")
                    # the parts as fields, so readers (benchmarks/select_pair.py) need not parse names
                    f["config"] = {"detector": dname, "classifier": cname, "scale_norm": norm, "mode": mode}
                    report["configs"][name] = f
                    print_config(name, f)

    if args.throughput:
        specs = args.throughput_config or [None]
        report["throughput"] = {k: v for spec in specs
                                for k, v in [(spec or "default", run_throughput(args, sources, spec))]}
    report["load1_end"] = load1()
    if args.out:
        from mixmag.fileio import write_json

        write_json(args.out, report)
        print("wrote", args.out)
    return 0


def run_throughput(args, sources, spec=None) -> dict:
    """PyTorch models loaded afresh from their paths; ONNX Runtime from their the ONNX cache (~/.cache/mixmag/onnx) exports."""
    from mixmag.detect.cli import load_classifier
    from mixmag.detect.detector import load_detector
    from mixmag.detect.export import OnnxClassifier
    from mixmag.detect.magnification import find_native_sizes

    dets = {short_name(d): d for d in args.detector}
    clfs = {short_name(c): c for c in args.classifier}
    spec = spec or f"{next(iter(dets))}+{next(iter(clfs), '')}/off"
    dc, norm = spec.rsplit("/", 1)
    dname, _, cname = dc.partition("+")
    if dname not in dets or (cname and cname not in clfs):
        raise MixmagError(f"--throughput-config {spec}: detector/classifier names are "
                          f"{list(dets)} / {list(clfs)}")
    dpath, det = dets[dname], load_detector(dets[dname], device=args.device)
    clf = load_classifier(clfs[cname], device=args.device) if cname else None
    sizes = find_native_sizes(dpath, args.native_sizes)
    mode = args.throughput_mode if clf is not None else "detector"
    srcs = sources[: args.throughput]
    out = {"config": spec, "mode": mode, "device": args.device, "images": len(srcs)}
    if args.throughput_batch:
        # batch = tiles per detector call (crops per classifier call: 4x that), as predict --batch
        out["pytorch_by_batch"] = []
        for b in args.throughput_batch:
            r = throughput(det, clf, sizes, mode, norm == "on", srcs, b)
            out["pytorch_by_batch"].append(r)
            print(f"throughput {spec} on {args.device}, batch {b}, PyTorch: {r}", flush=True)
        out["pytorch"] = max(out["pytorch_by_batch"], key=lambda r: r["composites_per_s"])
    else:
        r = throughput(det, clf, sizes, mode, norm == "on", srcs, args.batch)
        out["pytorch"] = r
        print(f"throughput {spec}, PyTorch: {r}", flush=True)
    if args.throughput_onnx:
        from mixmag.detect.export import onnx_cached

        d_onnx, c_onnx = onnx_cached(dpath, clfs[cname] if cname else None)
        odet = load_detector(d_onnx)
        oclf = OnnxClassifier(c_onnx) if c_onnx else None
        r = throughput(odet, oclf, sizes, mode, norm == "on", srcs, args.batch)
        out["onnx"] = r
        print(f"throughput {spec}, ONNX Runtime: {r}", flush=True)
    return out


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "benchmarks/detect.py")
