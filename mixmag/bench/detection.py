"""The target figures of a detector (+ classifier) configuration on a generated set, as
``benchmarks/detect.py`` scores them, and the end-to-end throughput of the pipeline.

Stages are cached: every detector runs once over a split (``detect_all``; boxes kept on disk under
``box_cache``'s key), every classifier then labels those boxes (``classifier_all``, under
``prob_cache``'s key); ``cells_frame`` gives the rows ``mixmag predict`` would write, and
``figures`` scores them with mixmag.evaluate (the report stage: Hungarian matching, pycocotools
mAP) against the issue's ``TARGETS`` (``check_targets``). ``score_detector`` runs all of it for one
detector and every classifier and scale normalisation; ``throughput`` times the whole pipeline.
``benchmarks/compare_pairs.py`` reuses the caches with the same keys.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MixmagError
from ..fileio import atomic_path
from .record import load1

__all__ = ["TARGETS", "Scoring", "box_cache", "cells_frame", "check_targets", "classifier_all",
           "clean", "dataset_stamp", "detect_all", "erythroblast_errors", "figures", "load_model",
           "print_config", "prob_cache", "rows_at", "score_detector", "throughput",
           "throughput_config"]

TARGETS = {"macro_f1": 0.98, "loc_recall": 0.995, "map50": 0.99, "map50_95": 0.85,
           "macro_f1_at_0.5": 0.97, "erythroblast_pr_every_scale": 0.98, "composites_per_s": 5.0}

def load_model(kind: str, path: str, backend: str = "pytorch", device: str = "cpu"):
    """A detector (``kind`` "d") or classifier ("c") from its weights file, run by PyTorch on
    ``device`` or, with ``backend`` "onnx", by ONNX Runtime from the one-time export in the ONNX
    cache (~/.cache/mixmag/onnx), as ``mixmag predict --backend onnx`` runs it. A classifier
    ``A.pt+B.pt`` is the ensemble of both (their probabilities averaged)."""
    from ..pipeline.runtime import load_classifier, load_detector, onnx_cached

    if kind == "c" and "+" in path:  # A.pt+B.pt: their probabilities averaged
        from ..classify.ensemble import ClassifierEnsemble

        parts = path.split("+")
        return ClassifierEnsemble([load_model("c", q, backend, device) for q in parts], paths=parts)
    if backend != "onnx":
        return (load_classifier(path, device=device) if kind == "c"
                else load_detector(path, device=device))
    d, c = onnx_cached(path if kind == "d" else None, path if kind == "c" else None)
    return load_classifier(c) if kind == "c" else load_detector(d)


# ---------------------------------------------------------------- stages, cached

def dataset_stamp(root: Path) -> str:
    """What changes when a dataset is regenerated in place (cached boxes must not outlive it)."""
    from .review import cells_sha1

    f = root / "cells.csv"
    return f"{cells_sha1(root)}-{f.stat().st_mtime_ns}" if f.is_file() else ""


def _groups(sources, size):
    for i in range(0, len(sources), size):
        yield sources[i:i + size]


def _read(group):
    from ..images import read_image

    return [read_image(s.path) for s in group]


def box_cache(cache_dir, dname: str, dpath: str, root: Path, split: str, n_sources: int,
              det_conf: float, zoom_below: float | None = None) -> Path:
    """Where one detector's boxes on one split are kept: keyed by the weights file, the dataset,
    the cut-off and predict's --zoom-below (a second pass changes the boxes), so nothing stale is
    reused. Without a zoom the key is the one it always was."""
    zoom = f"|zoom{zoom_below:g}" if zoom_below else ""
    key = hashlib.sha1(f"{Path(dpath).resolve()}|{Path(dpath).stat().st_mtime}|{root.resolve()}|"
                       f"{dataset_stamp(root)}|"
                       f"{split}|{n_sources}|{det_conf}{zoom}".encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{dname}-{key}.npz"


def prob_cache(boxes: Path, cname: str, cpath: str, backend: str, norm: str, n: int | str) -> Path:
    """Where one classifier's probabilities on those boxes are kept; keyed by the checkpoint file
    too, so a retrained model under the same name does not reuse the old one's. ``n``: the images
    scored (a count for the first N, or ``subset_key`` for any other subset)."""
    ckey = hashlib.sha1("|".join(f"{Path(q).resolve()}|{Path(q).stat().st_mtime}"
                                 for q in cpath.split("+")).encode()).hexdigest()[:8]
    return boxes.with_name(f"{boxes.stem}+{cname}-{ckey}-{backend}-{norm}-{n}.npz")


def subset_key(sources, all_sources) -> int | str:
    """The images scored, for cache names: N for the first N of the split, else N and a hash of
    their names (a subset chosen otherwise, e.g. by --mask-check)."""
    n = len(sources)
    if list(sources) == list(all_sources[:n]):
        return n
    return f"{n}s{hashlib.sha1('|'.join(x.name for x in sources).encode()).hexdigest()[:8]}"


def detect_all(pipe, sources, cache: Path | None) -> tuple[list[np.ndarray], float]:
    """``pipe``'s detector over ``sources`` in groups of ``pipe.opt.batch``: (boxes per image,
    seconds spent detecting, decoding excluded); read from ``cache`` when it is there, else
    written to it (None: no cache). A detector that knows red cells keeps only the eight's boxes:
    predict writes its red boxes as rbc rows, never classified, and the report leaves them out."""
    dets, t = _detect_all(pipe, sources, cache)
    return pipe.split_red(dets)[0], t


def _detect_all(pipe, sources, cache: Path | None) -> tuple[list[np.ndarray], float]:
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
        with atomic_path(cache) as tmp:  # a killed run leaves no half-written cache
            np.savez(tmp, seconds=t, **{f"d{i}": d.astype(np.float32) for i, d in enumerate(dets)})
    return dets, t


def classifier_all(pipe, sources, dets, cache: Path | None = None) -> tuple[np.ndarray, float]:
    """``pipe``'s classifier on the boxes ``dets`` of ``sources``: (class probabilities of every
    box, all images' boxes in order; seconds spent classifying); cached as ``detect_all``."""
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
        with atomic_path(cache) as tmp:
            np.savez(tmp, probs=probs, seconds=t)
    return probs, t


def cells_frame(pipe, sources, dets, probs, mode=None) -> pd.DataFrame:
    """The rows ``mixmag predict`` would write for these boxes and probabilities (``mode``:
    how a row is scored; None: ``pipe``'s own)."""
    per = pipe.finish(dets, probs)
    frames = [pipe.rows(s.name, d, p, m, mode) for s, d, (p, m) in zip(sources, dets, per)]
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- figures

def rows_at(cells: pd.DataFrame, conf: float) -> pd.DataFrame:
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
    from ..detect.magnification import estimate_vs_truth
    from ..evaluate import evaluate

    low = map_conf is not None and map_conf < conf
    # a no-op for boxes detected at conf; with boxes from a lower run, the ones a run at conf gives
    f1_cells = rows_at(cells, conf)
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
            hc = evaluate(truth, rows_at(cells, c), iou=iou, conf=c,
                          bootstrap=0, coco=False).headline
            out["conf_sweep"][f"{c:g}"] = {k: hc[k] for k in ("macro_f1", "loc_recall", "loc_precision",
                                                            "n_missed", "n_spurious")}
    return clean(out)


def erythroblast_errors(res) -> list[dict]:
    """One record per erythroblast labelled otherwise or missed, and per cell or box labelled
    erythroblast that is not one: its source cell (when the truth names sources; generated sets
    reuse them, so several records may be copies of one cell), magnification, true class and
    what it was called."""
    from ..classes import CLASS_NAMES

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


def clean(o):
    """``o`` as plain JSON: numpy numbers to Python ones, floats rounded to 5 decimals, NaN and
    infinities to None."""
    if isinstance(o, dict):
        return {k: clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return None if not np.isfinite(o) else round(float(o), 5)
    return o


def check_targets(f: dict) -> dict:
    """Which of ``TARGETS`` the figures ``f`` (from ``figures``) meet, by target name."""
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
    """Print one configuration's figures (a few lines: headline, each scale, errors, sweep)."""
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

def throughput(det, clf, sizes, mode, scale_norm, sources, batch, zoom_below=None) -> dict:
    """Time the end-to-end pipeline (decode, tiles, detector, crops, classifier; no output
    writing, as ``mixmag predict`` runs it) on ``sources`` after a warm-up: images, cells,
    seconds, composites per second and the 1-minute load before and after."""
    from ..pipeline.predict import Pipeline, PredictOptions

    pipe = Pipeline(det, clf, sizes, PredictOptions(mode=mode, scale_norm=scale_norm, batch=batch,
                                                    zoom_below=zoom_below))
    # warm-up (allocator, lazy imports, cudnn autotuning at this batch size)
    pipe.run(sources[:max(4, 2 * batch)], progress=False)
    before = load1()
    res = pipe.run(sources, progress=False)
    n = int((~res.images["error"].astype(bool)).sum())
    return {"batch": batch, "images": n, "cells": len(res.cells), "seconds": round(res.seconds, 2),
            "composites_per_s": round(n / max(res.seconds, 1e-9), 2),
            "load1_before": before, "load1_after": load1()}


def throughput_config(spec: str | None, detectors: dict[str, str], classifiers: dict[str, str],
                      sources, *, device: str = "cpu", native_sizes: str | None = None,
                      mode: str = "classifier-on-boxes", batch: int = 16,
                      batches: list[int] | None = None, onnx: bool = False,
                      zoom_below: float | None = None,
                      log: Callable[[str], None] = print) -> dict:
    """``throughput`` of one configuration ``DETECTOR+CLASSIFIER/NORM`` (short names, keys of
    ``detectors`` / ``classifiers``: name -> weights file; ``DETECTOR/NORM``: the detector alone;
    None: the first of each, off), models loaded afresh: PyTorch on ``device`` (at each of
    ``batches`` when given, the best kept as "pytorch") and, with ``onnx``, ONNX Runtime from the
    ONNX cache's exports."""
    from ..classify.onnx_model import OnnxClassifier
    from ..detect.magnification import find_native_sizes
    from ..pipeline.runtime import load_classifier, load_detector, onnx_cached

    dets, clfs = detectors, classifiers
    spec = spec or f"{next(iter(dets))}+{next(iter(clfs), '')}/off"
    dc, norm = spec.rsplit("/", 1)
    dname, _, cname = dc.partition("+")
    if dname not in dets or (cname and cname not in clfs):
        raise MixmagError(f"--throughput-config {spec}: detector/classifier names are "
                          f"{list(dets)} / {list(clfs)}")
    dpath, det = dets[dname], load_detector(dets[dname], device=device)
    clf = load_classifier(clfs[cname], device=device) if cname else None
    sizes = find_native_sizes(dpath, native_sizes)
    mode = mode if clf is not None else "detector"
    out = {"config": spec, "mode": mode, "device": device, "images": len(sources),
           "zoom_below": zoom_below}
    if batches:
        # batch = tiles per detector call (crops per classifier call: 4x that), as predict --batch
        out["pytorch_by_batch"] = []
        for b in batches:
            r = throughput(det, clf, sizes, mode, norm == "on", sources, b, zoom_below)
            out["pytorch_by_batch"].append(r)
            log(f"throughput {spec} on {device}, batch {b}, PyTorch: {r}")
        out["pytorch"] = max(out["pytorch_by_batch"], key=lambda r: r["composites_per_s"])
    else:
        r = throughput(det, clf, sizes, mode, norm == "on", sources, batch, zoom_below)
        out["pytorch"] = r
        log(f"throughput {spec}, PyTorch: {r}")
    if onnx:
        d_onnx, c_onnx = onnx_cached(dpath, clfs[cname] if cname else None)
        odet = load_detector(d_onnx)
        oclf = OnnxClassifier(c_onnx) if c_onnx else None
        r = throughput(odet, oclf, sizes, mode, norm == "on", sources, batch, zoom_below)
        out["onnx"] = r
        log(f"throughput {spec}, ONNX Runtime: {r}")
    return out


# ---------------------------------------------------------------- one detector, every classifier

@dataclass
class Scoring:
    """How configurations are scored: ``conf`` is the detector's and the report's cut-off;
    ``map_conf`` (below it) runs the detector lower for the mAP columns only; ``sweep``: the
    matching figures again at these cut-offs; ``bootstrap`` resamples of ``bootstrap_unit`` for
    95 % intervals; each classifier with scale normalisation at each of ``scale_norms``;
    ``cache_dir`` keeps the boxes and probabilities (None: no cache); ``drop_inside``: predict's
    option of that name, applied to the cached boxes (the box cache stays the detector's own);
    ``zoom_below``: predict's option of that name, run by the detector (boxes cached apart)."""

    conf: float = 0.25
    iou: float = 0.5
    map_conf: float | None = None
    sweep: list[float] | None = None
    bootstrap: int = 0
    bootstrap_unit: str = "auto"
    scale_norms: tuple[str, ...] = ("off", "on")
    batch: int = 16
    backend: str = "pytorch"
    native_sizes: str | None = None
    cache_dir: str | None = None
    drop_inside: float | None = None
    zoom_below: float | None = None

    @property
    def det_conf(self) -> float:
        """The detector's own cut-off: boxes between it and ``conf`` reach the mAP columns only."""
        return self.conf if self.map_conf is None else self.map_conf


def score_detector(s: Scoring, truth, root: Path, split: str, sources, all_sources, dname: str,
                   dpath: str, det, classifiers: dict[str, tuple[str, object]],
                   log: Callable[[str], None] = print) -> Iterator[tuple[str, dict]]:
    """Yield (configuration name, figures) for one detector on ``sources`` (images of
    ``all_sources``, the split's images; boxes are cached for all of them): its own classes when
    it has eight, then each classifier (``classifiers``: short name -> (weights file, model)) on
    its boxes at each scale normalisation, and with an 8-class detector also "two-stage".
    Names are ``DET (detector classes)``, ``DET+CLS/NORM`` and ``DET+CLS/NORM (MODE)``."""
    from ..detect.magnification import find_native_sizes
    from ..pipeline.predict import Pipeline, PredictOptions

    det_conf = s.det_conf
    sizes = find_native_sizes(dpath, s.native_sizes)
    base = Pipeline(det, None, sizes, PredictOptions(mode="detector" if len(det.names) > 1 else
                                                      "two-stage", scale_norm=False,
                                                      conf=det_conf, batch=s.batch,
                                                      zoom_below=s.zoom_below)) \
        if len(det.names) > 1 else None
    cache = (box_cache(s.cache_dir, dname, dpath, root, split, len(all_sources), det_conf,
                       s.zoom_below) if s.cache_dir else None)
    probe = base or Pipeline(det, next((m for _, m in classifiers.values()), None), sizes,
                             PredictOptions(mode="two-stage", scale_norm=False, conf=det_conf,
                                            batch=s.batch, zoom_below=s.zoom_below))
    boxes, t_det = detect_all(probe, all_sources if cache is not None else sources, cache)
    if cache is not None:
        t_det *= len(sources) / len(all_sources)
        at = {src.name: i for i, src in enumerate(all_sources)}
        boxes = [boxes[at[src.name]] for src in sources]
    if s.drop_inside:
        n = sum(map(len, boxes))
        boxes = probe.drop_parts(boxes, s.drop_inside)
        log(f"detector {dname}: --drop-inside {s.drop_inside:g} dropped {n - sum(map(len, boxes))} boxes")
    log(f"detector {dname}: {sum(map(len, boxes))} boxes on {len(sources)} images, "
        f"{t_det / len(sources):.3f} s/image (load {load1()})")
    if base is not None:
        probs = base.det_probs(boxes)
        f = figures(truth, cells_frame(base, sources, boxes, probs), s.conf, s.iou,
                    s.map_conf, s.sweep, s.bootstrap, s.bootstrap_unit)
        f["seconds_per_image"] = {"detector": round(t_det / len(sources), 4)}
        f["targets_met"] = check_targets(f)
        f["config"] = {"detector": dname, "classifier": None, "scale_norm": None, "mode": "detector",
                       "drop_inside": s.drop_inside, "zoom_below": s.zoom_below}
        yield f"{dname} (detector classes)", f
    for cname, (cpath, clf) in classifiers.items():
        for norm in s.scale_norms:
            pipe = Pipeline(det, clf, sizes, PredictOptions(
                mode="classifier-on-boxes", scale_norm=norm == "on", conf=det_conf,
                batch=s.batch, zoom_below=s.zoom_below))
            pcache = (prob_cache(cache, cname, cpath, s.backend,
                                 norm + (f"-in{s.drop_inside:g}" if s.drop_inside else ""),
                                 subset_key(sources, all_sources))
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
                f = figures(truth, cells_frame(pipe, sources, boxes, probs, mode), s.conf,
                            s.iou, None if mode == "two-stage" else s.map_conf,
                            s.sweep, s.bootstrap, s.bootstrap_unit)
                f["seconds_per_image"] = sec
                f["targets_met"] = check_targets(f)
                # the parts as fields, so readers (mixmag.bench.selection) need not parse names
                f["config"] = {"detector": dname, "classifier": cname, "scale_norm": norm, "mode": mode,
                               "drop_inside": s.drop_inside, "zoom_below": s.zoom_below}
                yield f"{dname}+{cname}/{norm}" + (f" ({mode})" if pipe.det_pbc else ""), f
