"""benchmarks/detect.py's box cache (mixmag.bench.detection.box_cache): a second pass
(`--zoom-below`) changes a detector's boxes, so its boxes are kept apart, while one-pass runs keep
the key they always had (so existing caches stay valid)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mixmag.bench.detection import box_cache, dataset_stamp


def test_zoomed_boxes_are_cached_apart_and_one_pass_keys_are_unchanged(tmp_path):
    weights = tmp_path / "det.pt"
    weights.write_bytes(b"w")
    data = tmp_path / "data"
    data.mkdir()
    (data / "cells.csv").write_text("image\n")
    one = box_cache(tmp_path / "c", "det", str(weights), data, "val", 200, 0.25)
    # the key as it was before zoomed runs were cached
    old = hashlib.sha1(f"{weights.resolve()}|{weights.stat().st_mtime}|{data.resolve()}|"
                       f"{dataset_stamp(data)}|val|200|0.25".encode()).hexdigest()[:12]
    assert one == Path(tmp_path / "c" / f"det-{old}.npz")
    zoomed = box_cache(tmp_path / "c", "det", str(weights), data, "val", 200, 0.25, 0.75)
    other = box_cache(tmp_path / "c", "det", str(weights), data, "val", 200, 0.25, 0.8)
    assert len({one, zoomed, other}) == 3
    assert box_cache(tmp_path / "c", "det", str(weights), data, "val", 200, 0.25, None) == one
