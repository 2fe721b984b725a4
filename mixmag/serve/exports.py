"""A batch's corrected labels as COCO and as a YOLO dataset, and the report of the model against
them: the review becomes training data (`mixmag train-detector --data .../data.yaml`) and a
measurement of the model on the lab's own images.

Class ids follow predict's outputs: COCO ``category_id`` = class id + 1 (``rbc`` = 9, listed only
when the batch has red cells); YOLO class = class id.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import yaml

from ..classes import CLASS_NAMES, RBC
from ..fileio import write_bytes
from .store import Store

NAMES = (*CLASS_NAMES, RBC)


def _classes(cells) -> list[str]:
    return list(NAMES) if any(c["class_name"] == RBC for c in cells) else list(CLASS_NAMES)


def labels_coco(store: Store, bid: str) -> dict:
    imgs, cells = store.labels(bid)
    names = _classes(cells)
    anns = []
    for k, c in enumerate(cells, 1):
        w, h = c["x2"] - c["x1"], c["y2"] - c["y1"]
        anns.append({"id": k, "image_id": c["image_id"], "category_id": names.index(c["class_name"]) + 1,
                     "bbox": [round(c["x1"], 2), round(c["y1"], 2), round(w, 2), round(h, 2)],
                     "area": round(w * h, 2), "iscrowd": 0,
                     "source": c["source"], **({"model_class": c["original_class"]}
                                               if c["original_class"] else {})})
    return {"info": {"description": f"mixmag serve: batch {bid}, labels as reviewed",
                     "batch": store.batch(bid)["name"]},
            "images": [{"id": i["id"], "file_name": i["name"], "width": i["width"],
                        "height": i["height"]} for i in imgs],
            "annotations": anns,
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)]}


def labels_yolo_zip(store: Store, bid: str) -> bytes:
    """images/train + labels/train + data.yaml, in one zip (images as uploaded, named
    ``<image id>-<name, folders joined by __>``)."""
    imgs, cells = store.labels(bid)
    names = _classes(cells)
    by_id = {i["id"]: i for i in imgs}
    by_image: dict[int, list[str]] = {}
    for c in cells:
        i = by_id.get(c["image_id"])
        if i is None:  # an image predict could not read has no labels to export
            continue
        W, H = i["width"], i["height"]
        cx, cy = (c["x1"] + c["x2"]) / 2 / W, (c["y1"] + c["y2"]) / 2 / H
        w, h = (c["x2"] - c["x1"]) / W, (c["y2"] - c["y1"]) / H
        by_image.setdefault(c["image_id"], []).append(
            f"{names.index(c['class_name'])} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in imgs:
            # the image id first: `a/b.png` and `a__b.png`, or `x.png` and `x.jpg`, stay apart
            flat = f"{i['id']:06d}-" + i["name"].replace("/", "__")
            zf.write(store.batch_dir(bid) / "images" / i["name"], f"images/train/{flat}")
            stem = flat.rsplit(".", 1)[0]
            zf.writestr(f"labels/train/{stem}.txt", "\n".join(by_image.get(i["id"], [])) +
                        ("\n" if by_image.get(i["id"]) else ""))
        zf.writestr("data.yaml", yaml.safe_dump(
            {"path": ".", "train": "images/train", "val": "images/train",
             "names": dict(enumerate(names))}, sort_keys=False))
    return buf.getvalue()


def counts_corrected(store: Store, bid: str) -> bytes:
    """counts.csv's layout (image, n_cells, the eight[, rbc]) from the cells as corrected: the
    differential count the page shows."""
    import pandas as pd

    imgs, cells = store.labels(bid)
    names = _classes(cells)
    table = pd.DataFrame(0, index=pd.Index([i["name"] for i in imgs], name="image"), columns=names)
    by_id = {i["id"]: i["name"] for i in imgs}
    for c in cells:
        if c["image_id"] in by_id:
            table.loc[by_id[c["image_id"]], c["class_name"]] += 1
    table.insert(0, "n_cells", table[list(CLASS_NAMES)].sum(axis=1))
    buf = io.StringIO()  # in memory: write_exports writes the file atomically
    table.reset_index().to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode()


def write_exports(store: Store, bid: str, name: str) -> Path:
    """The file ``name`` of a batch's exports, made now from the current corrections."""
    folder = store.batch_dir(bid) / "exports"
    made = {"labels_coco.json": lambda: json.dumps(labels_coco(store, bid), indent=1).encode(),
            "labels_yolo.zip": lambda: labels_yolo_zip(store, bid),
            "counts_corrected.csv": lambda: counts_corrected(store, bid)}
    if name in made:
        write_bytes(folder / name, made[name]())
        return folder / name
    if name == "report.html":
        from ..evaluate.report import make_report

        truth = write_exports(store, bid, "labels_coco.json")
        out = folder / "report"
        make_report(out, truth=str(truth), pred=str(store.batch_dir(bid) / "predict" / "cells.csv"),
                    images_dir=str(store.batch_dir(bid) / "images"), overwrite=True)
        return out / "report.html"
    raise ValueError(name)
