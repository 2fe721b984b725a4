"""``mixmag predict``: find every cell in each image, label it, estimate its magnification.

Per group of images (about ``batch`` tiles): decode (in a thread, ahead of use) → tiles at native
scale → detector (batched) → merge tiles → square crops (plain or scale-normalised) → classifier
(batched) → one row per cell in the ``cells.csv`` layout of docs/CONTRACTS.md.

Modes:
- ``detector``: the detector's own class (needs an 8-class detector);
- ``classifier-on-boxes``: the classifier's class on the detector's boxes;
- ``two-stage``: as classifier-on-boxes for a one-class detector; for an 8-class detector the
  two opinions are combined (geometric mean of the classifier's probabilities and the detector's
  class score spread as a distribution).

With scale normalisation on, a one-class detector gives no class to look up a native size, so
the first crop uses the all-class median native size; cells whose classified class implies a
magnification more than ``recheck`` (10 %) away are cropped and classified again.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..classes import CLASS_ID, CLASS_NAMES, NUM_CLASSES, RBC, RBC_ID
from ..errors import MixmagError
from ..images import ImageError, is_image_name, read_image
from .crops import NATIVE_WINDOW, plain_crops, scale_norm_crops
from ..detect.magnification import MagnificationEstimator
from .tiling import merge_tiles, tile_grid, tile_pixels

log = logging.getLogger(__name__)

MODES = ("two-stage", "detector", "classifier-on-boxes")
SMALL_IMAGES = ("fit", "pad")
PROB_COLUMNS = [f"p_{c}" for c in CLASS_NAMES]
CELL_COLUMNS = ["image", "x1", "y1", "x2", "y2", "class_name", "class_id", "score", "det_conf",
                "class_conf", *PROB_COLUMNS, "magnification_est"]


@dataclass
class PredictOptions:
    mode: str = "two-stage"
    scale_norm: bool = True
    tile: int | None = None  # None: the detector's training canvas, so cells keep their scale
    overlap: int = 256
    conf: float = 0.25
    iou: float = 0.6
    batch: int = 8
    margin: float = 0.15
    window: int = NATIVE_WINDOW
    recheck: float = 0.10
    merge_iou: float = 0.5
    # an image smaller than a tile: "fit" scales it onto the smallest stride-aligned canvas with
    # sides of at least fit_min_side (the tile's scale, little of its grey: a field is a 256²
    # input at detector input 640, 288² at 800; 3.5x faster); "pad" pads it to the whole tile. Adopted by the rule of
    # docs/HISTORY.md (2026-12-07); with 32-px canvases it had lost recall on 0.5x fields.
    small_images: str = "fit"
    fit_min_side: int = 256
    # an image whose cells the first pass estimates below this magnification (median over its
    # boxes) is detected again enlarged by 1 / estimate (at most 3x), so small cells reach the
    # detector near the size it learned; None: one pass
    zoom_below: float | None = None
    # a box (not a platelet) with at least this share of its area inside a larger box of the
    # eight is a part of that cell, e.g. one lobe of an eosinophil or an erythroblast's nucleus,
    # and is dropped; platelets are kept, as real ones lie over white cells. None: all kept
    drop_inside: float | None = None
    # whole slides (mixmag.pipeline.slide): the pyramid level to detect at (None: the level whose
    # sampled cells are nearest 1x) and the side of the regions read one at a time
    slide_level: int | None = None
    slide_region: int = 4096


@dataclass
class Source:
    path: Path
    name: str  # as written to cells.csv: the path given, or relative to the folder given


@dataclass
class ImageResult:
    source: Source
    row: dict  # image, width, height, n_cells, error
    cells: pd.DataFrame | None = None  # None: the image could not be read
    image: np.ndarray | None = None
    # a slide's drawing: () -> (thumbnail, its scale against level 0), made only when drawn
    thumbnail: object = None

    def drawing(self) -> tuple[np.ndarray, pd.DataFrame, bool]:
        """(image, cells in its pixels, whether to label them) for drawn/: a slide is drawn on
        its thumbnail, boxes only (thousands of labels would hide the cells)."""
        if self.thumbnail is None:
            return self.image, self.cells, True
        img, scale = self.thumbnail()
        cells = self.cells.copy()
        cells[["x1", "y1", "x2", "y2"]] *= scale
        return img, cells, False


@dataclass
class PredictResult:
    cells: pd.DataFrame
    images: pd.DataFrame  # image, width, height, n_cells, error
    skipped: list[str] = field(default_factory=list)  # non-image files
    seconds: float = 0.0  # decode → classes, all images (no output writing)

    @property
    def failed(self) -> pd.DataFrame:
        return self.images[self.images["error"].astype(bool)]


# ---------------------------------------------------------------- sources

def list_sources(source: str | os.PathLike, recursive: bool = False,
                 out: str | os.PathLike | None = None) -> tuple[list[Source], list[str]]:
    """Images named by SOURCE (image, folder, glob, or .txt list) and the non-image files skipped.

    Files inside ``out`` (the run's output folder) or its lock and temporary siblings are left out:
    a ``--recursive`` source that holds ``--out`` must not read a previous run's outputs."""
    src = str(source)
    p = Path(src)
    files: list[tuple[Path, str]] = []
    if p.is_dir():
        it = p.rglob("*") if recursive else p.iterdir()
        files = [(f, f.relative_to(p).as_posix()) for f in sorted(it) if f.is_file()]
    elif p.is_file() and p.suffix.lower() == ".txt":
        for line in p.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            f = Path(line)
            if not f.is_absolute() and not f.exists():
                f = p.parent / line
            files.append((f, line))
    elif p.is_file():
        files = [(p, src)]
    elif glob.has_magic(src):
        files = [(Path(f), f) for f in sorted(glob.glob(src, recursive=recursive)) if Path(f).is_file()]
    else:
        raise MixmagError(f"SOURCE {src}: no such file, folder or matching glob")
    if out is not None:
        n_all, files = len(files), [(f, n) for f, n in files if not _in_output(f, Path(out))]
        if len(files) < n_all:
            log.info("leaving out %d file(s) inside --out %s", n_all - len(files), out)
        if n_all and not files:
            raise MixmagError(f"SOURCE {src}: every file found is inside --out {out}; choose "
                              "another --out")
    images = [Source(f, n) for f, n in files if is_image_name(f)]
    skipped = [n for f, n in files if not is_image_name(f)]
    if skipped:
        log.warning("skipping %d non-image file(s) (first: %s)", len(skipped), skipped[0])
    missing = [s for s in images if not s.path.is_file()]
    if missing:
        raise MixmagError(f"{source}: listed image {missing[0].name} does not exist "
                          f"({len(missing)} missing); fix the list")
    if not images:
        raise MixmagError(f"SOURCE {src}: no images found (suffixes: jpg, jpeg, png, bmp, tif, "
                          "tiff, webp, svs)" + ("" if recursive or not p.is_dir() else
                                           "; pass --recursive to search subfolders"))
    return images, skipped


def _in_output(path: Path, out: Path) -> bool:
    p, out = path.resolve(), out.resolve()
    if p.is_relative_to(out):
        return True
    return p.is_relative_to(out.parent) and p != out.parent and \
        p.relative_to(out.parent).parts[0].startswith(f".{out.name}.")


def _load(path: Path):
    """An image decoded whole, or a whole slide opened (``mixmag.pipeline.slide``)."""
    from .slide import open_slide

    slide = open_slide(path)
    return slide if slide is not None else read_image(path)


def _read_ahead(sources: list[Source], depth: int = 4):
    """Yield (source, image, Slide or ImageError), decoding a few images ahead in a thread."""
    with ThreadPoolExecutor(max_workers=1) as ex:
        queue: deque = deque()
        it = iter(sources)

        def submit():
            s = next(it, None)
            if s is not None:
                queue.append((s, ex.submit(_load, s.path)))

        for _ in range(depth):
            submit()
        while queue:
            s, fut = queue.popleft()
            submit()
            try:
                yield s, fut.result()
            except ImageError as e:
                yield s, e


# ---------------------------------------------------------------- the pipeline

class Pipeline:
    def __init__(self, detector, classifier=None, native_sizes: dict | None = None,
                 options: PredictOptions | None = None):
        self.det = detector
        self.clf = classifier
        self.opt = options or PredictOptions()
        self.meta: dict = {}  # what build_pipeline chose: model files, backend
        self.est = MagnificationEstimator(native_sizes) if native_sizes else None
        if self.opt.mode not in MODES:
            raise MixmagError(f"--mode {self.opt.mode}: expected one of {', '.join(MODES)}")
        names = [detector.names[i] for i in sorted(detector.names)]
        # a detector trained on real fields also knows red cells: those boxes are reported as
        # rbc rows, never classified as one of the eight
        self.red_id = names.index(RBC) if RBC in names else None
        eight = [n for n in names if n != RBC]
        self.det_pbc = len(eight) > 1 and all(n in CLASS_ID for n in eight)
        self.det_class_ids = np.array([CLASS_ID.get(n, -1) for n in names])
        self.det_names = names
        # which classes --drop-inside may drop (the eight but platelets) and drop inside of
        self.whole_classes = np.array([n in CLASS_NAMES for n in names])
        self.part_classes = self.whole_classes & np.array([n != "platelet" for n in names])
        if self.opt.drop_inside and not self.whole_classes.any():
            raise MixmagError(f"--drop-inside: this detector's classes are {names}, not the 8 PBC "
                              "classes; it cannot tell a part of a cell from a platelet")
        if self.opt.mode == "detector" and not self.det_pbc:
            raise MixmagError(f"--mode detector: this detector's classes are {eight}, not the 8 PBC "
                              "classes; pass --classifier and --mode two-stage")
        if self.opt.mode != "detector" and classifier is None:
            raise MixmagError(f"--mode {self.opt.mode}: needs --classifier (or use --mode detector "
                              "with an 8-class detector)")
        if classifier is not None:
            unknown = [c for c in classifier.class_names if c not in CLASS_ID]
            if unknown:
                raise MixmagError(f"--classifier: classes {unknown} are not PBC classes {CLASS_NAMES}")
            self.clf_to_pbc = np.array([CLASS_ID[c] for c in classifier.class_names])
        if self.opt.scale_norm and self.opt.mode != "detector" and self.est is None:
            raise MixmagError("--scale-norm on: needs native cell sizes; none found beside the "
                              "detector (magnification.json); pass --native-sizes "
                              "datasets/NAME/cells.csv or --scale-norm off")
        if self.opt.zoom_below and self.est is None:  # the zoom decides from estimated magnification
            raise MixmagError("--zoom-below: needs native cell sizes; none found beside the detector "
                              "(magnification.json); pass --native-sizes datasets/NAME/cells.csv")
        # tiles of the training canvas size, letterboxed to imgsz like the training images were
        self.tile = int(self.opt.tile or getattr(detector, "train_canvas", None) or detector.imgsz)
        if self.opt.overlap >= self.tile // 2:
            log.info("tile overlap %d is too large for %d px tiles; using %d",
                        self.opt.overlap, self.tile, self.tile // 4)
            self.opt.overlap = self.tile // 4

    # -- detection
    def _fits(self, shape) -> bool:
        """Whether an image of this shape is detected on a fitted canvas, not a padded tile: one
        smaller than a tile whose fitted canvas is smaller than the detector's input (a 1,024²
        composite keeps the tile path, and its bytes)."""
        return (self.opt.small_images == "fit" and hasattr(self.det, "predict_scaled")
                and shape[0] <= self.tile and shape[1] <= self.tile
                and self._fitted_share(shape) < 1)

    def _fitted_share(self, shape) -> float:
        """The share of one full detector input that a fitted small image takes."""
        from ..detect.boxes import fitted_side

        side = self.det.imgsz
        h, w = (fitted_side(n, side / self.tile, self.opt.fit_min_side) for n in shape[:2])
        return h * w / (side * side)

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Boxes of each image (``detect_once``); with ``zoom_below``, an image whose cells the
        first pass finds small is detected again enlarged, its boxes brought back; with
        ``drop_inside``, boxes that are parts of a cell already boxed are dropped."""
        return self.drop_parts(self._detect_zoomed(images))

    def drop_parts(self, dets: list[np.ndarray], share: float | None = None) -> list[np.ndarray]:
        """``dets`` less the boxes that are parts of a cell already boxed (``drop_inside``, or
        ``share`` when given; see ``mixmag.detect.boxes.parts_inside``)."""
        share = self.opt.drop_inside if share is None else share
        if not share:
            return dets
        from ..detect.boxes import parts_inside

        return [d[~parts_inside(d, share, self.part_classes, self.whole_classes)] for d in dets]

    def _detect_zoomed(self, images: list[np.ndarray]) -> list[np.ndarray]:
        out = self.detect_once(images)
        if not self.opt.zoom_below:
            return out
        zoom = {}
        for i, d in enumerate(out):
            if len(d):
                m = float(np.median(self.est.estimate(
                    d[:, :4], [self.det_names[int(c)] for c in d[:, 5]])))
                if 0 < m < self.opt.zoom_below:
                    zoom[i] = min(1 / m, 3.0)
        if zoom:
            import cv2

            big = [cv2.resize(images[i], None, fx=z, fy=z, interpolation=cv2.INTER_CUBIC)
                   for i, z in zoom.items()]
            for (i, z), d in zip(zoom.items(), self.detect_once(big)):
                d[:, :4] /= z
                h, w = images[i].shape[:2]
                d[:, [0, 2]] = d[:, [0, 2]].clip(0, w)
                d[:, [1, 3]] = d[:, [1, 3]].clip(0, h)
                out[i] = d
        return out

    def detect_once(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Boxes of each image, one pass. Tiles are cut a detector batch at a time (the same batches as
        cutting them all first), so a 12,000 x 9,000 image never holds its ~200 tile copies.
        An image smaller than a tile is scaled onto the smallest stride-aligned canvas instead of
        padded to the tile: a 360 x 363 field costs a 288² input, not an 800² one (input 800)."""
        out: list[np.ndarray | None] = [None] * len(images)
        small = [i for i, img in enumerate(images) if self._fits(img.shape)]
        if small:
            found = self.det.predict_scaled([images[i] for i in small], self.det.imgsz / self.tile,
                                            conf=self.opt.conf, iou=self.opt.iou,
                                            batch_size=self.opt.batch,
                                            min_side=self.opt.fit_min_side)
            for i, d in zip(small, found):
                out[i] = d
        rest = [i for i in range(len(images)) if out[i] is None]
        grids = [tile_grid(images[i].shape[0], images[i].shape[1], self.tile, self.opt.overlap)
                 for i in rest]
        jobs = [(i, t) for i, g in zip(rest, grids) for t in g]
        dets: list[np.ndarray] = []
        for k in range(0, len(jobs), self.opt.batch):
            chunk = [tile_pixels(images[i], t, self.tile) for i, t in jobs[k:k + self.opt.batch]]
            dets += self.det.predict(chunk, conf=self.opt.conf, iou=self.opt.iou,
                                     batch_size=self.opt.batch)
            del chunk
        k = 0
        for i, g in zip(rest, grids):
            out[i] = merge_tiles(dets[k:k + len(g)], g, iou=self.opt.merge_iou)
            k += len(g)
        return out

    # -- classification
    def _crops(self, img, boxes, mags):
        size = getattr(self.clf, "input_size", None)
        if self.opt.scale_norm:
            return scale_norm_crops(img, boxes, mags, self.opt.window, size)
        return plain_crops(img, boxes, self.opt.margin, size)

    def _classify(self, images, dets, mags) -> np.ndarray:
        crops = []
        for img, d, m in zip(images, dets, mags):
            crops += self._crops(img, d[:, :4], m)
        if not crops:
            return np.zeros((0, NUM_CLASSES))
        p = np.asarray(self.clf.predict(crops, batch_size=max(self.opt.batch, 1) * 4), np.float64)
        full = np.zeros((len(p), NUM_CLASSES))
        full[:, self.clf_to_pbc] = p
        return full

    def _det_probs(self, d: np.ndarray) -> np.ndarray:
        """The detector's class score as a distribution: conf on its class, the rest spread evenly.

        Below conf 1/8 an even spread would put every other class above the detector's own (YOLO
        only says they are lower), so there each other class gets just under conf: the box keeps
        its class and its score (conf) instead of being relabelled and ranked by the spread."""
        p = np.zeros((len(d), NUM_CLASSES))
        if not len(d):
            return p
        ids = self.det_class_ids[d[:, 5].astype(int)]
        conf = np.clip(d[:, 4], 1e-6, 1 - 1e-6)
        p[:] = np.minimum((1 - conf) / (NUM_CLASSES - 1), conf * (1 - 1e-3))[:, None]
        p[np.arange(len(d)), ids] = conf
        return p

    def det_probs(self, dets) -> np.ndarray:
        """The detector's class scores of all images' boxes, (N, 8) in CLASS_NAMES order."""
        return (np.concatenate([self._det_probs(d) for d in dets]) if sum(map(len, dets))
                else np.zeros((0, NUM_CLASSES)))

    def classifier_probs(self, images, dets, det_p: np.ndarray) -> np.ndarray:
        """The classifier's probabilities of all images' boxes, scale-normalised when asked.

        With scale normalisation the first crop uses the detector's class (8-class detector) or
        the all-class native size (one-class detector); cells whose classified class implies a
        magnification more than ``recheck`` away are cropped and classified again.
        """
        n = [len(d) for d in dets]
        boxes = np.concatenate([d[:, :4] for d in dets]) if sum(n) else np.zeros((0, 4))
        cut = np.cumsum(n)[:-1]
        guess = [CLASS_NAMES[i] for i in det_p.argmax(1)] if self.det_pbc else None
        mags = self.est.estimate(boxes, guess) if self.est else np.ones(len(boxes))
        probs = self._classify(images, dets, np.split(mags, cut))
        if self.opt.scale_norm and len(boxes):
            m2 = self.est.estimate(boxes, [CLASS_NAMES[i] for i in probs.argmax(1)])
            redo = np.abs(np.log(m2 / mags)) > np.log1p(self.opt.recheck)
            if redo.any():
                sub_dets, sub_imgs, sub_m = [], [], []
                for img, d, ii in zip(images, dets, np.split(np.arange(len(boxes)), cut)):
                    r = redo[ii]
                    if r.any():
                        sub_imgs.append(img)
                        sub_dets.append(d[r])
                        sub_m.append(m2[ii][r])
                probs[redo] = self._classify(sub_imgs, sub_dets, sub_m)
        return probs

    @staticmethod
    def combine(clf_p: np.ndarray, det_p: np.ndarray) -> np.ndarray:
        """Two opinions as one: normalised geometric mean of classifier and detector probabilities."""
        probs = np.sqrt(np.clip(clf_p, 1e-9, None) * det_p)
        return probs / probs.sum(1, keepdims=True)

    def finish(self, dets, probs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image: (probabilities, magnification estimated from the box and the final class)."""
        n = [len(d) for d in dets]
        boxes = np.concatenate([d[:, :4] for d in dets]) if sum(n) else np.zeros((0, 4))
        if self.est is not None and len(boxes):
            mags = self.est.estimate(boxes, [CLASS_NAMES[i] for i in probs.argmax(1)])
        else:
            mags = np.full(len(boxes), np.nan)
        cut = np.cumsum(n)[:-1]
        return list(zip(np.split(probs, cut), np.split(mags, cut)))

    def classify(self, images, dets) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image: (probabilities (N, 8) in CLASS_NAMES order, magnification estimates (N,))."""
        det_p = self.det_probs(dets)
        if self.opt.mode == "detector":
            probs = det_p
        else:
            probs = self.classifier_probs(images, dets, det_p)
            if self.opt.mode == "two-stage" and self.det_pbc:
                probs = self.combine(probs, det_p)
        return self.finish(dets, probs)

    def split_red(self, dets: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(boxes of the eight, red-cell boxes) of each image; no red ones for a detector that
        does not know red cells."""
        if self.red_id is None:
            return dets, [d[:0] for d in dets]
        red = [d[:, 5].astype(int) == self.red_id for d in dets]
        return [d[~r] for d, r in zip(dets, red)], [d[r] for d, r in zip(dets, red)]

    @staticmethod
    def red_rows(name: str, d: np.ndarray) -> pd.DataFrame:
        """One ``rbc`` row per red-cell box: its detection confidence as score, no class
        probabilities (they are the eight's) and no magnification estimate."""
        frame = pd.DataFrame({
            "image": name, "x1": d[:, 0], "y1": d[:, 1], "x2": d[:, 2], "y2": d[:, 3],
            "class_name": RBC, "class_id": RBC_ID, "score": d[:, 4], "det_conf": d[:, 4],
            "class_conf": d[:, 4], **{c: 0.0 for c in PROB_COLUMNS}, "magnification_est": np.nan})
        return frame[CELL_COLUMNS]

    # -- rows
    def rows(self, name: str, d: np.ndarray, probs: np.ndarray, mags: np.ndarray,
             mode: str | None = None) -> pd.DataFrame:
        """One row per cell. ``score`` ranks the cells. Where the probabilities already hold the
        8-class detector's score (``detector``, and ``two-stage`` with an 8-class detector) it is
        the class probability: a YOLO confidence is itself a class score, and multiplying it in
        again would square it. Elsewhere it is the geometric mean of detection confidence and
        class probability: it ranks exactly as their product (so COCO mAP is the same), but stays
        on a confidence's scale, so a 0.25 cut-off does not drop a cell found at 0.3 and labelled
        at 0.7 (their product, 0.21, did)."""
        mode = mode or self.opt.mode
        cls = probs.argmax(1) if len(probs) else np.zeros(0, int)
        class_conf = probs[np.arange(len(probs)), cls] if len(probs) else np.zeros(0)
        has_det = mode == "detector" or (mode == "two-stage" and self.det_pbc)
        frame = pd.DataFrame({
            "image": name, "x1": d[:, 0], "y1": d[:, 1], "x2": d[:, 2], "y2": d[:, 3],
            "class_name": [CLASS_NAMES[i] for i in cls], "class_id": cls.astype(int),
            "score": class_conf if has_det else np.sqrt(d[:, 4] * class_conf),
            "det_conf": d[:, 4], "class_conf": class_conf,
            **{c: probs[:, i] for i, c in enumerate(PROB_COLUMNS)},
            "magnification_est": mags})
        return frame[CELL_COLUMNS]

    def iter_images(self, sources: list[Source], progress: bool = True) -> Iterator[ImageResult]:
        """One result an image, as soon as its group is through, holding nothing once yielded.

        Results come out in the sources' order (an unreadable image keeps its place in its
        group), so any split of the sources into batches (the Ray engine's) gives the same
        order; ``run`` and ``mixmag predict`` keep it."""
        try:
            from tqdm import tqdm
        except ImportError:  # bare GPU images lack tqdm; progress is a nicety
            progress = False
            tqdm = _NoBar

        group: list[tuple[Source, np.ndarray]] = []
        tiles_in_group = 0
        bar = tqdm(total=len(sources), unit="img", disable=not progress, desc="predict")

        def flush() -> list[ImageResult]:
            nonlocal group, tiles_in_group
            if not group:
                return []
            ok = [(s, im) for s, im in group if not isinstance(im, ImageResult)]
            imgs = [im for _, im in ok]
            dets, reds = self.split_red(self.detect(imgs)) if imgs else ([], [])
            found = iter(zip(ok, dets, reds, self.classify(imgs, dets) if imgs else []))
            done = []
            for _, item in group:
                if isinstance(item, ImageResult):  # unreadable: its place in the order
                    done.append(item)
                    continue
                (s, img), d, r, (p, m) = next(found)
                frame = self.rows(s.name, d, p, m)
                row = {"image": s.name, "width": img.shape[1], "height": img.shape[0],
                       "n_cells": len(frame), "error": ""}  # n_cells: cells of the eight
                if self.red_id is not None:
                    row["n_red_cells"] = len(r)
                    frame = pd.concat([frame, self.red_rows(s.name, r)], ignore_index=True)
                done.append(ImageResult(s, row, frame, img))
            group, tiles_in_group = [], 0
            return done

        try:
            for s, img in _read_ahead(sources):
                if isinstance(img, Exception):
                    log.warning("skipping %s", img)
                    bad = ImageResult(s, {"image": s.name, "width": 0, "height": 0, "n_cells": 0,
                                          "error": str(img)})
                    if not group:
                        bar.update(1)
                        yield bad
                    else:  # it keeps its place: results come out in the sources' order
                        group.append((s, bad))
                    continue
                if not isinstance(img, np.ndarray):  # a whole slide: on its own, in its place
                    done = flush()
                    bar.update(len(done))
                    yield from done
                    result = self.predict_slide(s, img)
                    bar.update(1)
                    yield result
                    continue
                group.append((s, img))
                # a group holds about a detector batch of full inputs; a fitted small image
                # counts for its share of one
                tiles_in_group += (self._fitted_share(img.shape) if self._fits(img.shape)
                                   else _n_tiles(img.shape, self.tile, self.opt.overlap))
                if tiles_in_group >= self.opt.batch:
                    done = flush()
                    bar.update(len(done))
                    yield from done
            done = flush()
            bar.update(len(done))
            yield from done
        finally:
            bar.close()

    # -- whole slides
    def _estimate_tiles(self, tiles: list[np.ndarray]) -> tuple[float | None, int]:
        """(median magnification estimate, cells found) over some tiles of a slide's level."""
        dets, _ = self.split_red(self.detect(tiles))
        d = np.concatenate(dets) if dets else np.zeros((0, 6))
        if self.est is None or not len(d):
            return None, len(d)
        m = self.est.estimate(d[:, :4], [self.det_names[int(c)] for c in d[:, 5]])
        return float(np.median(m)), len(d)

    def predict_slide(self, s: Source, slide) -> ImageResult:
        """One whole slide, region by region at the level chosen (``mixmag.pipeline.slide``);
        its cells in level-0 pixels, drawn on a thumbnail."""
        import cv2

        from .slide import choose_level, in_core, region_cores

        try:
            plan = choose_level(slide, self._estimate_tiles, self.tile, self.opt.slide_level)
            ds, sc = slide.downsamples[plan.level], plan.scale
            width, height = slide.dimensions[plan.level]
            # the region read, in the level's pixels: slide_region after resizing, but never
            # more than slide_region read when shrinking (a 1/8 resize would read 32,768² px)
            region = (max(self.tile, round(self.opt.slide_region / sc)) if sc >= 1
                      else max(self.opt.slide_region, math.ceil(self.tile / sc)))
            # the seam overlap, in the level's pixels: at least the tiles' (a cell is whole
            # in the region that owns it), at most half a region
            overlap = min(round(max(self.opt.overlap, 64) / sc), region // 2)
            log.info("%s: level %d (downsample %.2f, cells estimated at %s), resized %.2fx, "
                     "%d px regions", s.name, plan.level, ds,
                     "?" if plan.estimate is None else f"{plan.estimate:.2f}x", sc, region)
            frames, n_red = [], 0
            grid = tile_grid(height, width, region, overlap)
            for t, core in zip(grid, region_cores(grid)):
                img = slide.read(plan.level, t.x0, t.y0, t.w, t.h)
                if sc != 1:
                    img = cv2.resize(img, None, fx=sc, fy=sc,
                                     interpolation=cv2.INTER_AREA if sc < 1 else cv2.INTER_CUBIC)
                dets, reds = self.split_red(self.detect([img]))
                d, r = dets[0].copy(), reds[0].copy()
                for box in (d, r):  # region pixels -> the level's pixels
                    box[:, [0, 2]] = box[:, [0, 2]] / sc + t.x0
                    box[:, [1, 3]] = box[:, [1, 3]] / sc + t.y0
                own_d, own_r = in_core(d, core), in_core(r, core)
                (p, m), = self.classify([img], [dets[0][own_d]])
                d, r = d[own_d], r[own_r]
                d[:, :4] *= ds  # -> level-0 pixels
                r[:, :4] *= ds
                frames.append(self.rows(s.name, d, p, m * ds / sc))
                if self.red_id is not None:
                    frames.append(self.red_rows(s.name, r))
                    n_red += len(r)
            cells = (pd.concat(frames, ignore_index=True) if frames
                     else pd.DataFrame(columns=CELL_COLUMNS))
            # the eight first, then red cells, as an image's rows are
            cells = pd.concat([cells[cells["class_name"] != RBC], cells[cells["class_name"] == RBC]],
                              ignore_index=True)
        except ImageError as e:
            log.warning("skipping %s", e)
            return ImageResult(s, {"image": s.name, "width": 0, "height": 0, "n_cells": 0,
                                   "error": str(e)})
        finally:
            slide.close()
        row = {"image": s.name, "width": slide.width, "height": slide.height,
               "n_cells": int((cells["class_name"] != RBC).sum()), "error": ""}
        if self.red_id is not None:
            row["n_red_cells"] = n_red
        return ImageResult(s, row, cells, thumbnail=lambda: _slide_thumbnail(s.path))

    def run(self, sources: list[Source], progress: bool = True, on_group=None) -> PredictResult:
        """All images' rows in memory (tests, benchmarks); ``mixmag predict`` streams instead."""
        cells, image_rows = [], []
        t0 = time.perf_counter()
        for r in self.iter_images(sources, progress):
            image_rows.append(r.row)
            if r.cells is not None:
                cells.append(r.cells)
                if on_group is not None:
                    on_group(r.source, r.image, r.cells)
        seconds = time.perf_counter() - t0
        frame = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame(columns=CELL_COLUMNS)
        return PredictResult(frame, pd.DataFrame(image_rows), seconds=seconds)


class _NoBar:
    def __init__(self, *a, **k):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass


def _slide_thumbnail(path: Path) -> tuple[np.ndarray, float]:
    from .slide import open_slide

    slide = open_slide(path)
    try:
        return slide.thumbnail(4096)
    finally:
        slide.close()


def _n_tiles(shape, tile: int, overlap: int) -> int:
    from .tiling import _starts

    return len(_starts(shape[0], tile, overlap)) * len(_starts(shape[1], tile, overlap))
