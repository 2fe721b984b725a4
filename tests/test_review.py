"""The blind review of composite truth: tools/composite_review.py merges the detectors'
disagreements into one picture each and keeps a truth error only where every reviewer saw one;
``benchmarks/detect.py --reviewed`` (mixmag.bench.review) leaves out the images holding one, and
only for the cells.csv the review was given on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from mixmag.bench.review import cells_sha1, reviewed_out
from mixmag.errors import MixmagError

ROOT = Path(__file__).resolve().parents[1]


def tool():
    spec = importlib.util.spec_from_file_location("composite_review", ROOT / "tools" / "composite_review.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def dataset(tmp_path: Path, name="mix-x") -> Path:
    root = tmp_path / name
    root.mkdir()
    pd.DataFrame({"image": ["images/val/a.jpg", "images/val/b.jpg"], "class_name": ["ig", "platelet"],
                  "x1": [10, 50], "y1": [10, 50], "x2": [40, 60], "y2": [40, 60]}
                 ).to_csv(root / "cells.csv", index=False)
    return root


def review(path: Path, root: Path, rows) -> Path:
    pd.DataFrame([{"item": f"{i:03d}", "data": d, "split": "val", "cells_sha1": cells_sha1(root), "image": im,
                   "kind": "spurious", "verdict": v} for i, (d, im, v) in enumerate(rows)]
                 ).to_csv(path, index=False)
    return path


def test_only_images_with_a_truth_error_of_this_dataset_are_left_out(tmp_path):
    root = dataset(tmp_path)
    f = review(tmp_path / "r.csv", root, [("mix-x", "a.jpg", "truth_wrong"),
                                           ("mix-x", "b.jpg", "truth_right"),
                                           ("mix-y", "c.jpg", "truth_wrong")])
    images, summary = reviewed_out(f, root)
    assert images == {"a.jpg"}
    assert summary["items"] == 2 and summary["truth_wrong"] == 1 and summary["images_excluded"] == 1
    # a run scoring only some images (--limit) leaves out only the flagged ones among them
    assert reviewed_out(f, root, present=["b.jpg"])[1]["images_excluded"] == 0


def test_a_regenerated_or_unreviewed_set_is_refused(tmp_path):
    root = dataset(tmp_path)
    f = review(tmp_path / "r.csv", root, [("mix-x", "a.jpg", "truth_wrong")])
    (root / "cells.csv").write_text((root / "cells.csv").read_text() + "images/val/c.jpg,ig,1,1,9,9\n")
    with pytest.raises(MixmagError, match="another cells.csv"):
        reviewed_out(f, root)
    with pytest.raises(MixmagError, match="of the val split, not test"):
        reviewed_out(review(tmp_path / "r2.csv", root, [("mix-x", "a.jpg", "truth_wrong")]), root, "test")
    with pytest.raises(MixmagError, match="no verdict on mix-z"):
        reviewed_out(f, dataset(tmp_path, "mix-z"))
    (tmp_path / "bad.csv").write_text("item,verdict\n000,truth_wrong\n")
    with pytest.raises(MixmagError, match="not a review"):
        reviewed_out(tmp_path / "bad.csv", root)


def test_boxes_of_several_detectors_on_one_object_are_one_picture():
    rows = pd.DataFrame([
        {"data": "d", "image": "a.jpg", "kind": "spurious", "x1": 0, "y1": 0, "x2": 20, "y2": 20, "detector": "B"},
        {"data": "d", "image": "a.jpg", "kind": "spurious", "x1": 1, "y1": 1, "x2": 21, "y2": 21, "detector": "A"},
        {"data": "d", "image": "a.jpg", "kind": "spurious", "x1": 60, "y1": 60, "x2": 80, "y2": 80, "detector": "A"},
        {"data": "d", "image": "a.jpg", "kind": "missed", "x1": 0, "y1": 0, "x2": 20, "y2": 20, "detector": "A"},
        {"data": "d", "image": "a.jpg", "kind": "missed", "x1": 0, "y1": 0, "x2": 20, "y2": 20, "detector": "B"},
    ])
    items = tool().merge(rows)
    assert sorted(items["detectors"]) == ["A", "A B", "A B"]
    assert (items["kind"] == "spurious").sum() == 2 and (items["kind"] == "missed").sum() == 1


def test_a_truth_error_needs_every_reviewer(tmp_path):
    d = tmp_path / "review"
    d.mkdir()
    # a hash of digits must come back as it went in (read as a number it would lose its zeros)
    pd.DataFrame({"item": ["000", "001"], "data": "mix-x", "split": "val", "cells_sha1": "000000123456",
                  "image": ["a.jpg", "b.jpg"], "kind": "spurious", "x1": 0, "y1": 0, "x2": 9,
                  "y2": 9}).to_csv(d / "items.csv", index=False)
    pd.DataFrame({"item": ["000", "001"], "detectors": ["A", "A B"]}).to_csv(d / "key.csv", index=False)
    # a reviewer's spreadsheet may drop the leading zeros
    pd.DataFrame({"item": [0, 1], "verdict": ["truth_wrong", "truth_wrong"], "note": ["", ""]}
                 ).to_csv(tmp_path / "A.csv", index=False)
    pd.DataFrame({"item": ["000", "001"], "verdict": ["truth_wrong", "truth_right"], "note": ["", ""]}
                 ).to_csv(tmp_path / "B.csv", index=False)
    out = tmp_path / "review.csv"
    items = tool().collect(d, [tmp_path / "A.csv", tmp_path / "B.csv"], out, overwrite=False)
    assert list(items["verdict"]) == ["truth_wrong", "truth_right"]
    back = pd.read_csv(out, dtype=str)
    assert back["verdict"].tolist() == ["truth_wrong", "truth_right"]
    assert set(back["cells_sha1"]) == {"000000123456"}
    with pytest.raises(MixmagError, match="exists"):
        tool().collect(d, [tmp_path / "A.csv"], out, overwrite=False)
    pd.DataFrame({"item": ["000"], "verdict": ["truth_wrong"], "note": [""]}).to_csv(tmp_path / "C.csv", index=False)
    with pytest.raises(MixmagError, match="no verdict for item 001"):
        tool().collect(d, [tmp_path / "C.csv"], tmp_path / "o2.csv", overwrite=False)
    # one file given twice is one reviewer; an item judged twice, a blank or unknown verdict, a
    # missing file: each refused in one line, never counted
    with pytest.raises(MixmagError, match="one reviewer"):
        tool().collect(d, [tmp_path / "A.csv", tmp_path / "A.csv"], tmp_path / "o3.csv", overwrite=False)
    (tmp_path / "D.csv").write_text("item,verdict\n000,truth_wrong\n000,truth_right\n001,truth_right\n")
    with pytest.raises(MixmagError, match="item 000 has two verdicts"):
        tool().collect(d, [tmp_path / "D.csv"], tmp_path / "o4.csv", overwrite=False)
    (tmp_path / "E.csv").write_text("item,verdict\n000,\n001,Truth_wrong\n")
    with pytest.raises(MixmagError, match="is none of"):
        tool().collect(d, [tmp_path / "E.csv"], tmp_path / "o5.csv", overwrite=False)
    with pytest.raises(MixmagError, match="cannot read"):
        tool().collect(d, [tmp_path / "absent.csv"], tmp_path / "o6.csv", overwrite=False)
    # the note is optional
    (tmp_path / "F.csv").write_text("item,verdict\n0,truth_wrong\n1,truth_right\n")
    assert list(tool().collect(d, [tmp_path / "F.csv"], tmp_path / "o7.csv", overwrite=False)["verdict"]) \
        == ["truth_wrong", "truth_right"]
