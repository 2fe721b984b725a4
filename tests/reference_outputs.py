"""The plain in-memory writer of predict's four files: the independent reference that
``StreamingOutputs`` must match byte for byte (tests/test_detect_stream.py). Kept out of the library,
which writes only through the stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mixmag.fileio import write_csv, write_json
from mixmag.pipeline.outputs import coco_image_ids, coco_results, counts_table


def write_outputs(out: Path, result, meta: dict, coco_gt: str | None = None) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    cells, images = result.cells, result.images
    paths = {k: out / v for k, v in (("cells_csv", "cells.csv"), ("cells_json", "cells.json"),
                                      ("coco", "coco_results.json"), ("counts", "counts.csv"))}
    write_csv(paths["cells_csv"], cells)
    ids = coco_image_ids(list(images["image"]), coco_gt)
    write_json(paths["cells_json"], {
        "format": "mixmag-predictions/1", **meta,
        "images": [{**r, "image_id": ids.get(r["image"])} for r in images.to_dict("records")],
        "skipped_non_images": result.skipped,
        "cells": cells.replace({np.nan: None}).to_dict("records")})
    write_json(paths["coco"], coco_results(cells, ids), indent=None)
    write_csv(paths["counts"], counts_table(cells, images))
    return paths
