"""`mixmag synthesize`: plan, render in a process pool, export.

Reproducibility: the plan (all choices) is made up front from the seed, each image draws its own
positions/background from a seed derived from (seed, image id), the background bank depends on
(canvas, seed) only, and every worker reads the same cut-outs. So the output is byte-identical for
any --workers, and --resume (which re-renders only images whose files are missing) ends where an
uninterrupted run would have.
"""

from __future__ import annotations

import gc
import json
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .. import __version__
from ..classes import CLASS_NAMES
from ..errors import MixmagError
from ..fileio import prepare_output, write_json
from ..provenance import library_versions
from .background import make_bank
from .compose import RenderConfig, render_image, yolo_lines
from .cutout import CutoutStore, cv_single_thread, default_cache_dir
from .mask import MASK_VERSION
from .plan import SPLITS, ImagePlan, plan_dataset

GENERATOR_VERSION = "synth/1"
RUN_STATE = ".synth-run.json"   # present while a run is incomplete; names its settings for --resume


@dataclass
class SynthSettings:
    """Everything that determines the output (worker count and flags like --resume do not)."""
    n: int = 2000
    counts: dict = field(default_factory=dict)       # images per split
    splits: tuple = SPLITS
    canvas: int = 1024
    cells: tuple = (4, 12)
    mags: list | None = None
    mag_range: list | None = None
    max_iou: float = 0.0
    balance: str = "equal"
    box: str = "tight"
    seed: int = 0
    jpeg_quality: int = 92


# worker state, set before the pool forks (or by the initializer elsewhere)
_W: dict = {}


def _init_worker(store, bank, cfg, root):
    cv2.setNumThreads(1)
    _W.update(store=store, bank=bank, cfg=cfg, root=str(root), canvas=None)


class _unfreeze:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        gc.unfreeze()


def _noop(_):
    return None


def _render_chunk(args) -> list[tuple[int, list[dict], int]]:
    plans, resume = args
    out = []
    root, cfg = _W["root"], _W["cfg"]
    params = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
    buf_img = _W.get("canvas")
    if buf_img is None or buf_img.shape[0] != cfg.canvas:
        buf_img = _W["canvas"] = np.empty((cfg.canvas, cfg.canvas, 3), np.uint8)
    for p in plans:
        img_f, lab_f = os.path.join(root, p.image), os.path.join(root, p.label)
        done = resume and os.path.isfile(img_f) and os.path.isfile(lab_f)
        canvas, recs, dropped = render_image(p, _W["store"], _W["bank"], cfg, draw=not done, out=buf_img)
        if not done:
            ok, buf = cv2.imencode(".jpg", canvas, params)
            if not ok:
                raise MixmagError(f"{img_f}: JPEG encoding failed")
            _write_atomic(lab_f, yolo_lines(recs).encode())
            _write_atomic(img_f, buf)
        out.append((p.image_id, recs, dropped))
    return out


def _write_atomic(path: str, data) -> None:
    """Write beside ``path`` then rename onto it: a reader never sees a partial file.

    fileio.write_bytes does the same through mkstemp + pathlib + mkdir (~2 ms a file here); the
    folders exist already and one process writes a given image, so a fixed temporary name per
    process is enough. A killed run leaves ``.<stem>.tmp-<pid>.<ext>``, removed by _remove_stale.
    """
    head, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    tmp = os.path.join(head, f".{stem}.tmp-{os.getpid()}{ext}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_store(split_csv=None, pbc=None, cutouts=None, cache=None, out=None, splits=SPLITS,
               workers: int = 2, progress: bool = True, mask_version: str | None = None,
               mask_check=None) -> CutoutStore:
    """The cut-outs to paste: from a bundle (--cutouts) or made/cached from the manifest.

    ``mask_version``: the cell-mask algorithm (default MASK_VERSION); a bundle carries its own, and
    asking for another one is refused rather than silently ignored. ``mask_check``: an OI-PBC
    labels folder; cut-outs it disputes (mixmag.synth.maskcheck) are left out, the store's
    ``mask_check`` says how many.
    """
    if cutouts and mask_check is not None:
        raise MixmagError("--mask-check needs --split MANIFEST: a bundle's cut-outs are checked "
                          "when it is packed from the manifest")
    if cutouts:
        store = CutoutStore.from_bundle(cutouts)
        if mask_version and mask_version != store.mask_version:
            raise MixmagError(f"--mask-version {mask_version}: the bundle {cutouts} holds "
                              f"{store.mask_version} cut-outs; pack one with --mask-version {mask_version}")
    else:
        if not split_csv:
            raise MixmagError("give --split MANIFEST (with the PBC folder) or --cutouts BUNDLE.npz")
        from ..data.split import load_manifest

        # "sample": a manifest from another copy of the dataset is refused (hash mismatch)
        m = load_manifest(split_csv, pbc=pbc, verify="sample")
        m = m[m["split"].isin(list(splits))].sort_values(["split", "class_id", "path"],
                                                         key=_split_order).reset_index(drop=True)
        m.attrs = dict(m.attrs)
        cache_dir = Path(cache) if cache else default_cache_dir(out)
        version = mask_version or MASK_VERSION
        checked = None
        if mask_check is not None:
            from .cutout import ensure_cutouts
            from .maskcheck import check_masks

            # every cut-out of the splits is needed to check it (cached once, as the run would)
            ensure_cutouts(m, cache_dir, workers=workers, progress=progress, mask_version=version)
            res = check_masks(m, Path(mask_check), cache_dir, version)
            checked = {"sources": int(len(res)), "checked": int(res["checked"].sum()),
                       "disputed_left_out": int(res["disputed"].sum())}
            attrs = m.attrs
            m = m[~res["disputed"].to_numpy()].reset_index(drop=True)
            m.attrs = attrs
        store = CutoutStore.from_manifest(m, cache_dir, mask_version=version)
        store.mask_check = checked
        store.manifest_hash = m.attrs.get("manifest_hash", "")
        store.manifest_path = str(Path(split_csv).resolve())
    return store


def _split_order(col):
    return col.map({s: i for i, s in enumerate(SPLITS)}) if col.name == "split" else col


def synthesize(out: str | os.PathLike, settings: SynthSettings, store: CutoutStore,
               workers: int = 2, resume: bool = False, overwrite: bool = False,
               preview: bool = False, progress: bool = True, timings: dict | None = None) -> dict:
    """Make the dataset at ``out``; returns the dataset.json dict.

    ``timings``, if given, receives the seconds spent per phase (plan, bank, pool_start, render,
    pool_stop, exports), for the benchmark.
    """
    import time

    from tqdm import tqdm

    tm = timings if timings is not None else {}
    t0 = time.perf_counter()

    root = Path(out)
    s = settings
    _check_settings(s)
    sig = _signature(s, store)
    state_f = root / RUN_STATE
    cv_now = cv2.__version__
    if resume:
        prev = prev_cv = None
        for f in (state_f, root / "dataset.json"):
            if f.is_file():
                meta = json.loads(f.read_text())
                prev = meta.get("signature")
                prev_cv = meta.get("cv2") or (meta.get("libraries") or {}).get("cv2")
                break
        if prev is not None and prev_cv and prev_cv != cv_now:
            # another OpenCV draws other masks and resizes: the images would mix two renderings
            raise MixmagError(f"--resume: {root} was rendered with OpenCV {prev_cv}, this is "
                              f"{cv_now}; resume under that version, or --overwrite")
        if prev is None:
            if root.exists() and any(root.iterdir()):
                raise MixmagError(f"--resume: {root} holds no run state to resume; "
                                  "use --overwrite to start again")
        elif prev != sig:
            raise MixmagError(f"--resume: {root} was made with other settings, sources or mask "
                              "version (datasets made before 2026-11-27 used --mask-version m4); "
                              "rerun with the original arguments, or --overwrite")
    else:
        prepare_output(root, overwrite, "dataset")
    # plan and mask first: bad settings or sources fail here, before anything under root changes
    plans = plan_dataset(store.table, s.counts, s.cells, s.mags,
                         tuple(s.mag_range) if s.mag_range else None, s.balance, s.seed)
    store.require({row for p in plans for row, _ in p.cells}, workers=workers, progress=progress)
    _check_fits(plans, store, s.canvas)
    root.mkdir(parents=True, exist_ok=True)
    write_json(state_f, {"signature": sig, "cv2": cv_now})
    tm["plan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bank = make_bank(s.canvas, s.seed, cache=getattr(store, "cache", None) or default_cache_dir(root))
    store.columns()            # built once here, inherited by the forked workers
    for sub in {d for p in plans for d in (p.image.rsplit("/", 1)[0], p.label.rsplit("/", 1)[0])}:
        (root / sub).mkdir(parents=True, exist_ok=True)     # once here, not per file
    tm["bank"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cfg = RenderConfig(s.canvas, s.box, s.max_iou, s.seed, s.jpeg_quality)
    # small chunks: the last one decides when the pool finishes, and one image is ~10 ms of CPU
    chunks = [(plans[i:i + 4], resume) for i in range(0, len(plans), 4)]
    results: list = []
    bar = tqdm(total=len(plans), desc="composites", unit="img", disable=not progress)
    if workers <= 1:
        _init_worker(store, bank, cfg, str(root))
        for c in chunks:
            results += _render_chunk(c)
            bar.update(len(c[0]))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        # objects made so far (the store, its table) go to a permanent GC generation: the
        # workers' collections then skip them instead of touching (and copying) their pages
        gc.freeze()
        with _unfreeze(), cv_single_thread(), ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(store, bank, cfg, str(root))) as ex:
            # start every worker now, so the time to fork them is measured apart from rendering
            list(ex.map(_noop, range(workers)))
            tm["pool_start"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for r in ex.map(_render_chunk, chunks):
                results += r
                bar.update(len(r))
            tm["render"] = time.perf_counter() - t0
            t0 = time.perf_counter()
        tm["pool_stop"] = time.perf_counter() - t0
    bar.close()
    if workers <= 1:
        tm["pool_start"], tm["pool_stop"], tm["render"] = 0.0, 0.0, time.perf_counter() - t0
    t0 = time.perf_counter()

    results.sort(key=lambda t: t[0])
    cells = pd.DataFrame([rec for _, recs, _ in results for rec in recs])
    if cells.empty:
        from .export import CELL_COLUMNS

        cells = pd.DataFrame(columns=CELL_COLUMNS)
    images = pd.DataFrame([{"image": p.image, "image_id": p.image_id, "split": p.split,
                            "width": s.canvas, "height": s.canvas} for p in plans])
    from .export import write_exports

    active = [sp for sp in SPLITS if s.counts.get(sp, 0) > 0]
    write_exports(root, cells, images, active)
    _remove_stale(root, plans)
    full = [{"image_id": i, "dropped": d} for i, _, d in results if d]
    planned = sum(len(p.cells) for p in plans)
    meta = {
        "generator": GENERATOR_VERSION, "mixmag_version": __version__, "mask_version": store.mask_version,
        # the same seed gives other pixels under another OpenCV (GrabCut masks, resizes)
        "libraries": library_versions("opencv-python", "opencv-python-headless", "numpy"),
        "arguments": _jsonable(asdict(s)), "seed": s.seed,
        "manifest_hash": getattr(store, "manifest_hash", "") or store.origin.split(":", 1)[-1],
        "source_origin": store.origin.split(":", 1)[0],
        "manifest": getattr(store, "manifest_path", None),
        "signature": sig,
        "counts": {
            "images": {sp: int((images["split"] == sp).sum()) for sp in active},
            "cells": {sp: {c: int(n) for c, n in cells[cells["split"] == sp]
                           .groupby("class_name").size().reindex(list(CLASS_NAMES), fill_value=0).items()}
                      for sp in active},
            "cells_planned": planned, "cells_placed": int(len(cells)),
        },
        "canvases_full": {"images": len(full), "cells_dropped": planned - len(cells), "list": full},
        "source_masks": _mask_stats(store, cells),
        "mask_check": getattr(store, "mask_check", None),
        # where the cut-outs were cached: the mask check of a finished dataset reads them there
        "cutout_cache": str(store.cache) if getattr(store, "cache", None) else None,
        "data_yaml_note": ("no val split made: data.yaml uses train as val"
                           if "val" not in active and "train" in active else ""),
    }
    write_json(root / "dataset.json", meta)
    if preview:
        from .preview import write_preview

        write_preview(root)
    state_f.unlink(missing_ok=True)
    tm["exports"] = time.perf_counter() - t0
    return meta


def _check_settings(s: SynthSettings) -> None:
    if s.canvas < 64:
        raise MixmagError(f"--canvas {s.canvas}: too small (need >= 64)")
    if s.box not in ("tight", "crop"):
        raise MixmagError(f"--box {s.box}: use tight or crop")
    if not 0 <= s.max_iou < 1:
        raise MixmagError(f"--overlap-iou {s.max_iou}: need 0 <= IoU < 1")
    mags = s.mag_range or s.mags or [1.0]
    if min(mags) <= 0 or max(mags) > 8:
        raise MixmagError(f"magnification {mags}: need values in (0, 8]")
    if s.mag_range and s.mag_range[0] > s.mag_range[1]:
        raise MixmagError(f"--mag-range {s.mag_range}: need LO <= HI")
    if not any(v > 0 for v in s.counts.values()):
        raise MixmagError("nothing to make: --n (or --n-train/--n-val/--n-test) must be > 0")


def _check_fits(plans: list[ImagePlan], store: CutoutStore, canvas: int) -> None:
    """Refuse a canvas that no planned cell fits at its magnification (else it renders empty images).
    One cell that fits settles it: the headers of the rest are read only to name the smallest
    side when none does (reading every header cost ~0.2 ms a composite, serially, before the pool:
    benchmarks/synth_speed.py's plan phase)."""
    from PIL import Image
    import io

    sizes: dict[int, int] = {}
    smallest = None
    for p in plans:
        for row, m in p.cells:
            if row not in sizes:
                with Image.open(io.BytesIO(store.encoded(row)[0])) as im:
                    sizes[row] = max(im.size)
            side = int(round(sizes[row] * m))
            if side <= canvas:
                return
            smallest = side if smallest is None else min(smallest, side)
    if smallest is not None:
        raise MixmagError(f"--canvas {canvas}: smaller than every planned cell at its magnification "
                          f"(the smallest needs {smallest} px); use --canvas >= {smallest} "
                          "or lower --mag")


def _signature(s: SynthSettings, store: CutoutStore) -> str:
    import hashlib

    h = hashlib.sha256(json.dumps(_jsonable(asdict(s)), sort_keys=True).encode())
    h.update(GENERATOR_VERSION.encode() + store.mask_version.encode())
    h.update("\n".join(store.table["sha256"] + store.table["split"]).encode())
    return h.hexdigest()[:16]


def _jsonable(d):
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def _mask_stats(store: CutoutStore, cells: pd.DataFrame) -> dict:
    t = store.table
    used = t[t["source"].isin(set(cells["source"]))] if len(cells) else t.iloc[:0]
    fb = used[used["status"] != "ok"]
    return {"sources_used": int(len(used)), "fallback_masks": int(len(fb)),
            "fallback_by_reason": {k: int(v) for k, v in fb["status"].value_counts().items()}}


_STEM = re.compile(r"^\d{6,}\.(jpg|txt)$")


def _remove_stale(root: Path, plans: list[ImagePlan]) -> None:
    """After --overwrite, drop our own image/label files that the new plan does not contain."""
    keep = {p.image for p in plans} | {p.label for p in plans}
    for sub in ("images", "labels"):
        for f in (root / sub).glob("*/*"):
            rel = f"{sub}/{f.parent.name}/{f.name}"
            if (_STEM.match(f.name) and rel not in keep) or \
                    (f.name.startswith(".") and ".tmp-" in f.name):   # left by a killed run
                f.unlink()


def synthesize_dataset(out: str | os.PathLike, settings: SynthSettings, *, split=None, pbc=None,
                       cutouts=None, cache=None, workers: int = 2, resume: bool = False,
                       overwrite: bool = False, preview: bool = False, progress: bool = True,
                       mask_version: str | None = None, mask_check=None) -> dict:
    """``mixmag synthesize``: cut-outs from a manifest (``split``) or a bundle (``cutouts``), then
    the dataset at ``out``; returns its dataset.json dict."""
    from ..fileio import output_lock, prepare_output

    if split and cutouts:
        raise MixmagError("give either --split or --cutouts, not both")
    if not resume:
        prepare_output(out, overwrite, "dataset")   # refuse before any slow work
    with output_lock(out, "mixmag synthesize"):  # one writer: a second run on OUT is refused
        store = load_store(split, pbc, cutouts, cache, out, settings.splits, workers=workers,
                           progress=progress, mask_version=mask_version, mask_check=mask_check)
        return synthesize(out, settings, store, workers=workers, resume=resume,
                          overwrite=overwrite, preview=preview, progress=progress)
