"""Reading ground truth and predictions into two plain tables, refusing malformed input.

Every reader ends in the same normalised frames, checked by the same validators:

* truth cells: ``image`` (file name, the join key), ``path`` (relative to the dataset root),
  ``class_id``, ``class_name``, ``x1, y1, x2, y2`` (pixels, xyxy), ``magnification`` (NaN where
  unknown), ``split``, ``width``, ``height``; plus a table of every truth image (images without
  cells count too: every prediction on them is spurious).
* predictions: ``image`` (file name), ``x1, y1, x2, y2``, ``class_id``, ``class_name``, ``score``
  and any ``p_<class>`` columns.

Bad input is a one-line :class:`MixmagError` naming the file, the record and the fix.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..classes import CLASS_ID, CLASS_NAMES, NUM_CLASSES, RBC
from ..errors import MixmagError
from .metrics import RED  # a red cell's class_id in the truth: none of the eight

log = logging.getLogger(__name__)

BOX = ["x1", "y1", "x2", "y2"]
# Predictions may poke this far (pixels) past the image edge before they count as malformed:
# detectors clip to the image, but float rounding in exported xywh can leave a sliver outside.
EDGE_TOLERANCE = 1.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Truth:
    """Ground truth: one row per cell, one row per image, and where the image files live."""

    cells: pd.DataFrame
    images: pd.DataFrame  # image, path, width, height, split, image_id
    root: Path | None = None
    source: str = "<memory>"
    kind: str = "frame"
    categories: dict[int, int] = field(default_factory=dict)  # COCO category_id -> class_id

    def names(self) -> set[str]:
        return set(self.images["image"])


# --------------------------------------------------------------------------- helpers


def _row_label(df: pd.DataFrame, i: int, kind: str) -> str:
    """How a user finds record ``i``: CSV line number, JSON list index or COCO id."""
    if kind == "csv":
        return f"line {int(df.index[i]) + 2}"
    if "_label" in df.columns:
        return str(df["_label"].iloc[i])
    return f"record {int(df.index[i])}"


def _first_bad(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if len(idx) else None


def _numeric(df: pd.DataFrame, cols: list[str], src: str, kind: str) -> None:
    for c in cols:
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = _first_bad((vals.isna() & df[c].notna()).to_numpy())
        if bad is not None:
            raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: column {c!r} is not a number "
                              f"({df[c].iloc[bad]!r}); fix the record or regenerate the file")
        df[c] = vals.astype(float)


def safe_relative(name: str, src: str) -> str:
    """A file name from a data file, refused if it could reach outside the dataset root."""
    p = PurePosixPath(str(name).replace("\\", "/"))
    if not str(name) or p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise MixmagError(f"{src}: file name {str(name)!r} escapes the dataset root; "
                          "image names must be relative paths inside the dataset folder")
    return str(p)


def _classes(df: pd.DataFrame, src: str, kind: str, red_ok: bool = False) -> None:
    """Fill class_id and class_name from whichever is present; refuse unknown or disagreeing ones.

    ``red_ok`` (truth only): rows named ``rbc`` (a real field boxes its red cells too, as `mixmag
    fields` writes them) become red cells, class_id ``RED``: none of the eight; their own
    class_id (8 in a real-field dataset) is not checked."""
    has_name, has_id = "class_name" in df.columns, "class_id" in df.columns
    if not has_name and not has_id:
        raise MixmagError(f"{src}: needs a 'class_name' or 'class_id' column; add one")
    red = (df["class_name"].astype(str).str.strip().str.lower() == RBC).to_numpy() if has_name \
        else np.zeros(len(df), bool)
    if red.any():
        if not red_ok:
            raise MixmagError(f"{src}: {_row_label(df, _first_bad(red), kind)}: class rbc is "
                              "none of the eight; drop red-cell rows from predictions")
        rest = df[~red].copy()
        _classes(rest, src, kind)
        ids = np.full(len(df), RED, np.int64)
        ids[~red] = rest["class_id"].to_numpy()
        df["class_id"] = ids
        df["class_name"] = np.where(red, RBC, df["class_name"].astype(str))
        df.loc[~red, "class_name"] = rest["class_name"].to_numpy()
        return
    if has_id:
        ids = pd.to_numeric(df["class_id"], errors="coerce")
        bad = _first_bad((ids.isna() | (ids % 1 != 0) | (ids < 0) | (ids >= NUM_CLASSES)).to_numpy())
        if bad is not None:
            raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: class_id {df['class_id'].iloc[bad]}"
                              f" is not one of 0..{NUM_CLASSES - 1}; use mixmag.classes ids")
        ids = ids.astype(int)
    if has_name:
        names = df["class_name"].astype(str).str.strip().str.lower()
        mapped = names.map(CLASS_ID)
        bad = _first_bad(mapped.isna().to_numpy())
        if bad is not None:
            raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: unknown class "
                              f"{df['class_name'].iloc[bad]!r}; known: {', '.join(CLASS_NAMES)}")
        mapped = mapped.astype(int)
        if has_id:
            bad = _first_bad((mapped.to_numpy() != ids.to_numpy()))
            if bad is not None:
                raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: class_name "
                                  f"{df['class_name'].iloc[bad]!r} disagrees with class_id "
                                  f"{int(ids.iloc[bad])}; fix one of them")
        ids = mapped
    df["class_id"] = ids.to_numpy()
    df["class_name"] = np.asarray(CLASS_NAMES, dtype=object)[df["class_id"].to_numpy()]


def _boxes(df: pd.DataFrame, src: str, kind: str, sizes: pd.DataFrame | None = None,
           tol: float = EDGE_TOLERANCE) -> None:
    """Refuse NaN, empty or negative-size boxes, and boxes outside their image."""
    _numeric(df, BOX, src, kind)
    b = df[BOX].to_numpy(float)
    bad = _first_bad(~np.isfinite(b).all(axis=1))
    if bad is not None:
        raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: box has a missing or infinite "
                          "coordinate; every box needs x1, y1, x2, y2")
    bad = _first_bad((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
    if bad is not None:
        raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: box {b[bad].round(2).tolist()} has "
                          "zero or negative size; boxes are x1, y1, x2, y2 with x2 > x1 and y2 > y1")
    if sizes is None:
        w, h = df["width"].to_numpy(float), df["height"].to_numpy(float)
    else:
        w = df["image"].map(sizes["width"]).to_numpy(float)
        h = df["image"].map(sizes["height"]).to_numpy(float)
    known = np.isfinite(w) & np.isfinite(h)
    out = known & ((b[:, 0] < -tol) | (b[:, 1] < -tol) | (b[:, 2] > w + tol) | (b[:, 3] > h + tol))
    bad = _first_bad(out)
    if bad is not None:
        raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: box {b[bad].round(2).tolist()} lies "
                          f"outside its image ({w[bad]:g}x{h[bad]:g}, {df['image'].iloc[bad]}); "
                          "boxes must be pixel coordinates inside the image")


def _require(df: pd.DataFrame, cols: list[str], src: str, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise MixmagError(f"{src}: {what} lacks column(s) {', '.join(missing)}; "
                          "see docs/CONTRACTS.md for the expected columns")


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise MixmagError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); "
                          "fix or regenerate the file") from None
    except UnicodeDecodeError:
        raise MixmagError(f"{path}: not a UTF-8 JSON file; give the JSON file written by "
                          "the tool") from None
    except OSError as e:
        raise MixmagError(f"{path}: cannot read ({e.strerror})") from None


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise MixmagError(f"{path}: empty CSV file (no header); give the file written by the tool") \
            from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise MixmagError(f"{path}: not a readable CSV ({msg}); fix or regenerate the file") from None
    except OSError as e:
        raise MixmagError(f"{path}: cannot read ({e.strerror})") from None


def _records(obj, key: str, src: Path) -> pd.DataFrame:
    if isinstance(obj, dict):
        if key not in obj:
            raise MixmagError(f"{src}: JSON object lacks the {key!r} list; see docs/CONTRACTS.md")
        obj = obj[key]
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise MixmagError(f"{src}: {key!r} must be a list of objects (one per cell)")
    df = pd.DataFrame.from_records(obj)
    df["_label"] = [f"{key}[{i}]" for i in range(len(df))]
    return df


# --------------------------------------------------------------------------- truth


def truth_from_frame(cells: pd.DataFrame, images=None, src: str = "truth", kind: str = "frame",
                     root: Path | None = None) -> Truth:
    """Check and normalise per-cell truth records (the generator's cells.csv columns).

    ``images`` optionally lists every truth image (names, or a frame with ``image`` and maybe
    ``width``, ``height``, ``split``, ``path``) so that images without cells are known.
    """
    df = cells.copy()
    _require(df, ["image", *BOX], src, "truth")
    if df["image"].isna().any():
        bad = _first_bad(df["image"].isna().to_numpy())
        raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: empty image name")
    # checked once per image, not per cell
    rel = {u: safe_relative(u, src) for u in df["image"].astype(str).unique()}
    df["path"] = df["image"].astype(str).map(rel)
    df["image"] = df["path"].map({p: PurePosixPath(p).name for p in rel.values()})
    for c in ("width", "height"):
        if c not in df.columns:
            df[c] = np.nan
    _numeric(df, ["width", "height"], src, kind)
    _classes(df, src, kind, red_ok=True)
    _boxes(df, src, kind)
    if "magnification" in df.columns:
        _numeric(df, ["magnification"], src, kind)
        bad = _first_bad((df["magnification"] <= 0).to_numpy())
        if bad is not None:
            raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: magnification "
                              f"{df['magnification'].iloc[bad]} must be > 0")
    else:
        df["magnification"] = np.nan
    if "split" not in df.columns:
        df["split"] = ""
    df["split"] = df["split"].fillna("").astype(str)
    if "image_id" not in df.columns:
        df["image_id"] = np.nan
    # one name, one file: the report joins predictions by file name
    paths = df.drop_duplicates(["image", "path"])
    dup = paths["image"].duplicated(keep=False)
    if dup.any():
        name = paths.loc[dup, "image"].iloc[0]
        both = paths.loc[paths["image"] == name, "path"].tolist()[:2]
        raise MixmagError(f"{src}: file name {name} belongs to two images ({both[0]}, {both[1]}); "
                          "predictions join truth by file name, so names must be unique")
    imgs = df.groupby("image", sort=False).agg(
        path=("path", "first"), width=("width", "first"), height=("height", "first"),
        split=("split", "first"), image_id=("image_id", "first")).reset_index()
    if images is not None:
        extra = _images_frame(images, src)
        extra = extra[~extra["image"].isin(imgs["image"])]
        imgs = pd.concat([imgs, extra], ignore_index=True)
    df = df.drop(columns=[c for c in ("_label",) if c in df.columns]).reset_index(drop=True)
    return Truth(cells=df, images=imgs.reset_index(drop=True), root=root, source=src, kind=kind)


def _images_frame(images, src: str) -> pd.DataFrame:
    if isinstance(images, pd.DataFrame):
        im = images.copy()
    else:
        im = pd.DataFrame({"image": list(images)})
    im["path"] = [safe_relative(p, src) for p in im.get("path", im["image"]).astype(str)]
    im["image"] = [PurePosixPath(p).name for p in im["image"].astype(str)]
    for c, d in (("width", np.nan), ("height", np.nan), ("split", ""), ("image_id", np.nan)):
        if c not in im.columns:
            im[c] = d
    return im[["image", "path", "width", "height", "split", "image_id"]]


def load_truth(path: str | os.PathLike, split: str | None = None) -> Truth:
    """Ground truth from a dataset folder, its cells.csv / cells.json, or any COCO JSON.

    A dataset folder (or a cells file inside one) also contributes the image files under
    ``images/<split>/`` so that images without cells are known.
    """
    path = Path(path)
    if path.is_dir():
        root = path
        for name in ("cells.csv", "cells.json"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            if split and (path / f"{split}.json").is_file():
                path = path / f"{split}.json"
            else:
                raise MixmagError(f"{root}: no cells.csv, cells.json"
                                  f"{f' or {split}.json' if split else ''} in this folder; "
                                  "give the generator's dataset folder or a COCO JSON")
    if not path.is_file():
        raise MixmagError(f"truth {path} does not exist (or is not a file)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        truth = truth_from_frame(_read_csv(path), src=str(path), kind="csv", root=path.parent)
        truth.kind = "cells.csv"
        _add_disk_images(truth)
    elif suffix == ".json":
        obj = _read_json(path)
        if isinstance(obj, dict) and "images" in obj and "annotations" in obj:
            truth = coco_truth(obj, path)
        elif isinstance(obj, dict) and "cells" in obj:
            truth = truth_from_frame(_records(obj, "cells", path), src=str(path), kind="json",
                                     root=path.parent)
            truth.kind = "cells.json"
            _add_disk_images(truth)
        else:
            raise MixmagError(f"{path}: neither a COCO dataset (images, annotations, categories) nor "
                              "the generator's cells.json (a 'cells' list); give one of those")
    else:
        raise MixmagError(f"truth {path}: unknown format (want a dataset folder, cells.csv, "
                          "cells.json or a COCO .json)")
    if split:
        splits = sorted(set(truth.images["split"]) - {""})
        if not splits and truth.kind != "coco":
            raise MixmagError(f"{path}: --split {split} given but the truth has no split column; "
                              "drop --split")
        if splits:
            if split not in splits:
                raise MixmagError(f"{path}: no images in split {split!r} (splits: "
                                  f"{', '.join(splits)}); choose one of those")
            truth = restrict(truth, truth.images["split"] == split)
    return truth


def restrict(truth: Truth, keep_images) -> Truth:
    """The same truth limited to some images (a boolean mask over ``truth.images``)."""
    imgs = truth.images[np.asarray(keep_images, bool)].reset_index(drop=True)
    cells = truth.cells[truth.cells["image"].isin(imgs["image"])].reset_index(drop=True)
    return Truth(cells=cells, images=imgs, root=truth.root, source=truth.source, kind=truth.kind,
                 categories=truth.categories)


def _add_disk_images(truth: Truth) -> None:
    """Images on disk under images/<split>/ with no cell record are truth images with no cells."""
    if truth.root is None or not (truth.root / "images").is_dir():
        return
    known = truth.names()
    rows = []
    for split_dir in sorted(p for p in (truth.root / "images").iterdir() if p.is_dir()):
        for f in sorted(split_dir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES and f.name not in known and not f.name.startswith("."):
                rows.append({"image": f.name, "path": f"images/{split_dir.name}/{f.name}",
                             "split": split_dir.name})
    if rows:
        extra = pd.DataFrame(rows)
        # cells.csv has no record of an image without cells; its COCO file knows the image id
        ids = {}
        for split in extra["split"].unique():
            coco = truth.root / f"{split}.json"
            if coco.is_file():
                obj = _read_json(coco)
                ids.update({im.get("file_name"): im.get("id") for im in obj.get("images", [])
                            if isinstance(im, dict)})
        extra["image_id"] = extra["path"].map(ids).astype(float)
        extra = _images_frame(extra, str(truth.source))
        truth.images = pd.concat([truth.images, extra], ignore_index=True)


def coco_truth(obj: dict, path: Path) -> Truth:
    """Truth from a COCO dataset JSON; categories must carry the 8 PBC class names (and may
    carry ``rbc``: red cells, none of the eight)."""
    src = str(path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(obj.get(key), list):
            raise MixmagError(f"{src}: COCO key {key!r} missing or not a list; a COCO dataset "
                              "needs images, annotations and categories")
    cats = {}
    for i, c in enumerate(obj["categories"]):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise MixmagError(f"{src}: categories[{i}] lacks 'id' or 'name'")
        name = str(c["name"]).strip().lower()
        if name not in CLASS_ID and name != RBC:
            raise MixmagError(f"{src}: category {c['name']!r} is not a PBC class "
                              f"({', '.join(CLASS_NAMES)}) or rbc; rename the categories")
        cats[c["id"]] = CLASS_ID.get(name, RED)
    images = obj["images"]
    for i, im in enumerate(images):
        miss = [k for k in ("id", "file_name", "width", "height") if not isinstance(im, dict) or k not in im]
        if miss:
            raise MixmagError(f"{src}: images[{i}] lacks {', '.join(miss)}; every COCO image "
                              "needs id, file_name, width and height")
    im = pd.DataFrame({"image_id": [x["id"] for x in images],
                       "path": [safe_relative(x["file_name"], src) for x in images],
                       "width": [x["width"] for x in images], "height": [x["height"] for x in images]})
    im["_label"] = [f"images[{i}] (id {x['id']})" for i, x in enumerate(images)]
    _numeric(im, ["width", "height"], src, "coco")
    bad = _first_bad((~(im["width"] > 0) | ~(im["height"] > 0)).to_numpy())
    if bad is not None:
        raise MixmagError(f"{src}: {im['_label'].iloc[bad]}: width and height must be positive")
    if im["image_id"].duplicated().any():
        raise MixmagError(f"{src}: image id {im.loc[im['image_id'].duplicated(), 'image_id'].iloc[0]}"
                          " appears twice in 'images'; ids must be unique")
    id_to_path = dict(zip(im["image_id"], im["path"]))
    anns = obj["annotations"]
    rows = {"image": [], "class_id": [], "x": [], "y": [], "w": [], "h": [], "magnification": [],
            "_label": []}
    for i, a in enumerate(anns):
        label = f"annotations[{i}]" + (f" (id {a['id']})" if isinstance(a, dict) and "id" in a else "")
        if not isinstance(a, dict):
            raise MixmagError(f"{src}: {label} is not an object")
        miss = [k for k in ("image_id", "category_id", "bbox") if k not in a]
        if miss:
            raise MixmagError(f"{src}: {label} lacks {', '.join(miss)}; every annotation needs "
                              "image_id, category_id and bbox")
        if a["image_id"] not in id_to_path:
            raise MixmagError(f"{src}: {label}: image_id {a['image_id']!r} is not in 'images'; "
                              "add the image or drop the annotation")
        if a["category_id"] not in cats:
            raise MixmagError(f"{src}: {label}: category_id {a['category_id']!r} is not in "
                              "'categories'")
        if a.get("iscrowd", 0):
            raise MixmagError(f"{src}: {label} is a crowd region (iscrowd=1); cells are single "
                              "objects: split or drop crowd annotations")
        bb = a["bbox"]
        if not isinstance(bb, (list, tuple)) or len(bb) != 4:
            raise MixmagError(f"{src}: {label}: bbox must be [x, y, width, height]")
        rows["image"].append(id_to_path[a["image_id"]])
        rows["class_id"].append(cats[a["category_id"]])
        for k, v in zip("xywh", bb):
            rows[k].append(v)
        rows["magnification"].append(a.get("magnification", np.nan))
        rows["_label"].append(label)
    df = pd.DataFrame(rows)
    df["class_name"] = [CLASS_NAMES[i] if i < NUM_CLASSES else RBC for i in df["class_id"]]
    _numeric(df, ["x", "y", "w", "h"], src, "coco")
    df["x1"], df["y1"] = df["x"], df["y"]
    df["x2"], df["y2"] = df["x"] + df["w"], df["y"] + df["h"]
    sizes = im.set_index("path")
    df["width"] = df["image"].map(sizes["width"])
    df["height"] = df["image"].map(sizes["height"])
    df["image_id"] = df["image"].map(sizes["image_id"])
    df["split"] = ""
    images_frame = im.drop(columns="_label").assign(image=im["path"], split="")
    truth = truth_from_frame(df.drop(columns=["x", "y", "w", "h"]), images=images_frame, src=src,
                             kind="coco", root=path.parent)
    truth.kind = "coco"
    truth.categories = cats
    return truth


# --------------------------------------------------------------------------- predictions


def predictions_from_frame(pred: pd.DataFrame, truth: Truth, src: str = "predictions",
                           kind: str = "frame") -> pd.DataFrame:
    """Check and normalise prediction records against the truth they will be matched to."""
    df = pred.copy()
    _require(df, ["image", *BOX, "score"], src, "predictions")
    if "class_name" in df.columns:  # red cells from a detector that knows them: none of the eight
        df = df[df["class_name"].astype(str).str.strip().str.lower() != "rbc"].reset_index(drop=True)
    if df["image"].isna().any():
        bad = _first_bad(df["image"].isna().to_numpy())
        raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: empty image name")
    given = df["image"].astype(str).str.replace("\\", "/")
    df["image"] = given.str.rsplit("/", n=1).str[-1]
    # the join is by file name: two different images of one name would be scored as one
    names = pd.DataFrame({"given": given, "image": df["image"]}).drop_duplicates()
    dup = names["image"].duplicated(keep=False)
    if dup.any():
        name = names.loc[dup, "image"].iloc[0]
        both = names.loc[names["image"] == name, "given"].tolist()[:2]
        raise MixmagError(f"{src}: two different images share the file name {name} ({both[0]}, "
                          f"{both[1]}); predictions join the truth by file name, so score each "
                          "folder's predictions against its own truth")
    unknown = ~df["image"].isin(truth.names())
    if unknown.any():
        bad = _first_bad(unknown.to_numpy())
        raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: image {df['image'].iloc[bad]!r} "
                          f"is not in the truth ({unknown.sum()} predictions on unknown images); "
                          "give the truth these predictions were made on (or the right --split)")
    _classes(df, src, kind)
    _numeric(df, ["score"], src, kind)
    bad = _first_bad(~np.isfinite(df["score"].to_numpy()))
    if bad is not None:
        raise MixmagError(f"{src}: {_row_label(df, bad, kind)}: score is missing, NaN or infinite; "
                          "every prediction needs a finite confidence score")
    sizes = truth.images.set_index("image")[["width", "height"]]
    _boxes(df, src, kind, sizes=sizes)
    keep = ["image", *BOX, "class_id", "class_name", "score"]
    keep += [c for c in df.columns if c.startswith("p_") or c in ("det_conf", "class_conf",
                                                                   "magnification_est")]
    return df[keep].reset_index(drop=True)


def load_predictions(path: str | os.PathLike, truth: Truth) -> pd.DataFrame:
    """Predictions from `mixmag predict` (cells.csv / cells.json or its folder), a COCO results
    JSON, or a folder of ultralytics ``save_txt save_conf`` YOLO text files."""
    path = Path(path)
    if path.is_dir():
        for name in ("cells.csv", "cells.json"):
            if (path / name).is_file():
                return load_predictions(path / name, truth)
        labels = path / "labels" if (path / "labels").is_dir() else path
        if any(labels.glob("*.txt")):
            return yolo_predictions(labels, truth)
        raise MixmagError(f"{path}: no cells.csv, cells.json or YOLO .txt files here; give "
                          "`mixmag predict`'s output, a COCO results JSON or a YOLO labels folder")
    if not path.is_file():
        raise MixmagError(f"predictions {path} do not exist (or are not a file)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return predictions_from_frame(_read_csv(path), truth, str(path), "csv")
    if suffix == ".json":
        obj = _read_json(path)
        if isinstance(obj, list) and (not obj or (isinstance(obj[0], dict) and "bbox" in obj[0])):
            return coco_predictions(obj, path, truth)
        if isinstance(obj, dict) and "annotations" in obj and "images" not in obj:
            return coco_predictions(obj["annotations"], path, truth)
        return predictions_from_frame(_records(obj, "cells", path), truth, str(path), "json")
    raise MixmagError(f"predictions {path}: unknown format (want cells.csv, cells.json, a COCO "
                      "results .json or a folder of YOLO .txt files)")


def coco_predictions(results: list, path: Path, truth: Truth) -> pd.DataFrame:
    """A COCO results list: image_id, category_id, bbox [x, y, w, h], score."""
    src = str(path)
    ids = truth.images.dropna(subset=["image_id"])
    id_to_name = {_id_key(k): v for k, v in zip(ids["image_id"], ids["image"])}
    # predict's ids: category = class_id + 1, rbc (a detector that knows red cells) 9
    cats = truth.categories or {**{i + 1: i for i in range(NUM_CLASSES)}, NUM_CLASSES + 1: RED}
    rows = {"image": [], "class_id": [], "x": [], "y": [], "w": [], "h": [], "score": [], "_label": []}
    for i, r in enumerate(results):
        label = f"results[{i}]"
        if not isinstance(r, dict):
            raise MixmagError(f"{src}: {label} is not an object")
        miss = [k for k in ("image_id", "category_id", "bbox", "score") if k not in r]
        if miss:
            raise MixmagError(f"{src}: {label} lacks {', '.join(miss)}; COCO results need "
                              "image_id, category_id, bbox and score")
        name = id_to_name.get(_id_key(r["image_id"]))
        if name is None:
            raise MixmagError(f"{src}: {label}: image_id {r['image_id']!r} is not in the truth; "
                              "give the truth these results were made on (or the right --split)")
        if r["category_id"] not in cats:
            raise MixmagError(f"{src}: {label}: category_id {r['category_id']!r} is not a truth "
                              f"category ({', '.join(map(str, sorted(cats)))})")
        bb = r["bbox"]
        if not isinstance(bb, (list, tuple)) or len(bb) != 4:
            raise MixmagError(f"{src}: {label}: bbox must be [x, y, width, height]")
        rows["image"].append(name)
        rows["class_id"].append(cats[r["category_id"]])
        for k, v in zip("xywh", bb):
            rows[k].append(v)
        rows["score"].append(r["score"] if r["score"] is not None else math.nan)
        rows["_label"].append(label)
    df = pd.DataFrame(rows)
    df = df[df["class_id"] != RED].reset_index(drop=True)  # red cells: none of the eight
    _numeric(df, ["x", "y", "w", "h"], src, "coco")
    df["x1"], df["y1"], df["x2"], df["y2"] = df["x"], df["y"], df["x"] + df["w"], df["y"] + df["h"]
    return predictions_from_frame(df, truth, src, "coco")


def _id_key(v):
    try:
        f = float(v)
        return int(f) if f.is_integer() else f
    except (TypeError, ValueError):
        return str(v)


def yolo_predictions(folder: Path, truth: Truth) -> pd.DataFrame:
    """ultralytics ``save_txt=True save_conf=True`` files: ``class cx cy w h conf`` normalised,
    one file per image named by its stem; pixel sizes come from the truth images."""
    stems: dict[str, str] = {}
    for name in truth.images["image"]:
        stem = Path(name).stem
        if stem in stems:
            raise MixmagError(f"{truth.source}: two truth images share the stem {stem!r} "
                              f"({stems[stem]}, {name}); YOLO files are named by stem, so they "
                              "cannot be told apart")
        stems[stem] = name
    sizes = truth.images.set_index("image")
    rows = []
    for f in sorted(folder.glob("*.txt")):
        name = stems.get(f.stem)
        if name is None:
            raise MixmagError(f"{f}: no truth image named {f.stem}.*; give the truth these "
                              "predictions were made on (or the right --split)")
        w, h = float(sizes.at[name, "width"]), float(sizes.at[name, "height"])
        if not (np.isfinite(w) and np.isfinite(h)):
            from ..images import image_size

            if truth.root is None:
                raise MixmagError(f"{f}: the size of image {name} is unknown; give truth with sizes")
            w, h = map(float, image_size(truth.root / sizes.at[name, "path"]))
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise MixmagError(f"{f}: cannot read as text ({type(e).__name__})") from None
        for ln, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 5:
                raise MixmagError(f"{f}:{ln}: no confidence column; rerun ultralytics predict "
                                  "with save_txt=True save_conf=True")
            if len(parts) != 6:
                raise MixmagError(f"{f}:{ln}: expected 'class cx cy w h conf' (6 numbers), got "
                                  f"{len(parts)} fields; box predictions only, not segments")
            try:
                c, cx, cy, bw, bh, conf = (float(p) for p in parts)
            except ValueError:
                raise MixmagError(f"{f}:{ln}: not a number in {line.strip()!r}") from None
            if not all(math.isfinite(v) for v in (cx, cy, bw, bh)):
                raise MixmagError(f"{f}:{ln}: box has a NaN or infinite coordinate")
            if c == NUM_CLASSES:  # a nine-class detector's rbc (YOLO index 8): none of the eight
                continue
            if not (c.is_integer() and 0 <= c < NUM_CLASSES):
                raise MixmagError(f"{f}:{ln}: class {parts[0]} is not one of 0..{NUM_CLASSES} "
                                  f"(0..{NUM_CLASSES - 1} the eight, {NUM_CLASSES} rbc)")
            rows.append({"image": name, "class_id": int(c), "x1": (cx - bw / 2) * w,
                         "y1": (cy - bh / 2) * h, "x2": (cx + bw / 2) * w, "y2": (cy + bh / 2) * h,
                         "score": conf, "_label": f"{f.name}:{ln}"})
    df = pd.DataFrame(rows, columns=["image", "class_id", *BOX, "score", "_label"])
    return predictions_from_frame(df, truth, str(folder), "yolo")
