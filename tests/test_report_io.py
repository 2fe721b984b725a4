"""Report inputs and outputs: every truth/prediction format, the CLI, bad input, single-cell mode."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixmag.classes import CLASS_NAMES
from mixmag.cli import main
from mixmag.evaluate import evaluate, load_predictions, load_truth, write_report
from mixmag.evaluate.synthetic import (coco_results, synthetic_predictions, synthetic_truth,
                                       write_dataset, write_yolo)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    """A generator-layout dataset (test + train splits, 2 empty test images) and predictions in
    every supported format, for the test split."""
    base = tmp_path_factory.mktemp("report_ds")
    truth = pd.concat([synthetic_truth(12, 7, size=256, seed=1, split="test"),
                       synthetic_truth(4, 7, size=256, seed=2, split="train", start_id=12)],
                      ignore_index=True)
    root = write_dataset(base / "mix", truth, draw=True, empty_images=2)
    test = truth[truth["split"] == "test"]
    pred = synthetic_predictions(test, seed=3, accuracy=0.8, p_spurious=0.1)
    # one prediction on an empty test image
    pred = pd.concat([pred, pd.DataFrame([{**pred.iloc[0].to_dict(), "image": "images/test/000016.jpg",
                                           "x1": 5.0, "y1": 5.0, "x2": 30.0, "y2": 30.0}])],
                     ignore_index=True)
    (base / "predict").mkdir()
    pred.to_csv(base / "predict" / "cells.csv", index=False)
    (base / "predict.json").write_text(json.dumps({"cells": pred.to_dict(orient="records")}))
    imgs = truth.drop_duplicates("image").assign(name=lambda d: d["image"])
    all_ids = pd.concat([truth[["image", "image_id"]],
                         pd.DataFrame({"image": ["images/test/000016.jpg"], "image_id": [16]})])
    (base / "results.json").write_text(json.dumps(coco_results(pred, all_ids)))
    sizes = pd.DataFrame({"image": pred["image"].unique(), "width": 256,
                          "height": 256}).set_index("image")
    write_yolo(base / "yolo" / "labels", pred, sizes)
    return {"base": base, "root": root, "truth": truth, "pred": pred, "imgs": imgs}


def run(argv, capsys):
    code = main(["report", *map(str, argv)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ------------------------------------------------------------------ formats


def test_all_truth_formats_read_the_same_cells(ds):
    root = ds["root"]
    frames = {}
    for src in (root, root / "cells.csv", root / "cells.json", root / "test.json"):
        t = load_truth(src, split="test")
        frames[str(src)] = t
        assert len(t.cells) == (ds["truth"]["split"] == "test").sum()
        assert "000016.jpg" in t.names() and "000017.jpg" in t.names()  # empty images known
        assert set(t.images["image"]) >= set(Path(p).name for p in ds["truth"].query(
            "split == 'test'")["image"])
    ref = frames[str(root)].cells.sort_values(["image", "x1"]).reset_index(drop=True)
    for k, t in frames.items():
        c = t.cells.sort_values(["image", "x1"]).reset_index(drop=True)
        assert (c["class_id"] == ref["class_id"]).all(), k
        np.testing.assert_allclose(c[["x1", "y1", "x2", "y2"]], ref[["x1", "y1", "x2", "y2"]],
                                   atol=1e-6)
        np.testing.assert_allclose(c["magnification"], ref["magnification"])


def test_all_prediction_formats_give_the_same_report(ds):
    base = ds["base"]
    truth = load_truth(ds["root"], split="test")
    results = {}
    for src in (base / "predict", base / "predict" / "cells.csv", base / "predict.json",
                base / "results.json", base / "yolo"):
        pred = load_predictions(src, truth)
        assert len(pred) == len(ds["pred"]), src
        results[src.name] = evaluate(truth, pred, bootstrap=0)
    ref = results["predict"]
    for k, r in results.items():
        assert (r.confusion == ref.confusion).all(), k
        assert r.headline["map50"] == pytest.approx(ref.headline["map50"], abs=2e-3), k


def test_cli_writes_every_output(ds, tmp_path, capsys):
    out = tmp_path / "rep"
    code, stdout, err = run(["--truth", ds["root"], "--pred", ds["base"] / "predict", "--out", out,
                             "--split", "test", "--iou", "0.5", "0.75", "--sweep",
                             "--bootstrap", "200"], capsys)
    assert code == 0, err
    assert "macro F1" in stdout and "mAP@0.5" in stdout
    names = {p.name for p in out.iterdir()}
    assert {"metrics.json", "per_class.csv", "per_magnification.csv", "confusion_counts.png",
            "confusion_normalised.png", "pr_curve.png", "report.md", "report.html",
            "sweep.png", "per_image.csv"} <= names
    assert not [n for n in names if ".tmp-" in n]
    m = json.loads((out / "metrics.json").read_text())
    assert m["settings"]["iou"] == [0.5, 0.75] and set(m["by_iou"]) == {"0.5", "0.75"}
    assert m["confusion"]["rows"][-1] == "spurious" and m["confusion"]["columns"][-1] == "missed"
    assert len(m["per_class"]) == 8 and m["bootstrap"]["n_boot"] == 200
    # this truth names a different source for every cell: images alone are resampled
    assert m["settings"]["bootstrap_unit"] == "image" and "source" not in stdout
    code, stdout, err = run(["--truth", ds["root"], "--pred", ds["base"] / "predict", "--out",
                             tmp_path / "src", "--split", "test", "--bootstrap", "50",
                             "--bootstrap-unit", "source"], capsys)
    assert code == 0, err
    assert re.search(r"macro F1 [0-9.]+ \[[0-9.]+, [0-9.]+; sources\]", stdout), stdout
    pc = pd.read_csv(out / "per_class.csv")
    assert list(pc["class_name"]) == list(CLASS_NAMES)
    assert {"precision", "recall", "f1", "support", "ap50", "ap50_95", "f1_ci_low"} <= set(pc)
    pm = pd.read_csv(out / "per_magnification.csv")
    assert set(pm["magnification"]) == {"0.5×", "1×", "1.5×"}
    assert pm.query("class_name == 'all'")["support"].sum() == m["headline"]["n_truth"]
    md = (out / "report.md").read_text()
    assert "## Per-class figures" in md and "| erythroblast |" in md and "## Erythroblast" in md
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "data:image/jpeg;base64," in html
    # a rerun without --overwrite refuses and changes nothing
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _, err = run(["--truth", ds["root"], "--pred", ds["base"] / "predict", "--out", out],
                       capsys)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    code, _, err = run(["--truth", ds["root"], "--pred", ds["base"] / "predict", "--out", out,
                        "--overwrite", "--bootstrap", "0"], capsys)
    assert code == 0, err


def test_without_split_the_truth_follows_the_predictions(ds, tmp_path, capsys):
    code, stdout, err = run(["--truth", ds["root"] / "cells.csv", "--pred", ds["base"] / "results.json",
                             "--out", tmp_path / "r", "--bootstrap", "0"], capsys)
    assert code == 0, err
    assert "restricted to split(s) test" in stdout
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["headline"]["n_truth"] == (ds["truth"]["split"] == "test").sum()


def test_worst_images_strip_needs_reachable_images(ds, tmp_path):
    truth = load_truth(ds["root"] / "test.json")
    res = evaluate(truth, load_predictions(ds["base"] / "predict", truth), bootstrap=0)
    html = (Path(write_report(res, tmp_path / "a", worst=3)["report.html"])).read_text()
    assert html.count("data:image/jpeg;base64,") == 3
    # images elsewhere: found through --images-dir (flat folder, by file name)
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in (ds["root"] / "images" / "test").iterdir():
        shutil.copy(p, flat / p.name)
    truth.root = tmp_path / "nowhere"
    html = Path(write_report(res, tmp_path / "b", worst=2, images_dir=flat)["report.html"]).read_text()
    assert html.count("data:image/jpeg;base64,") == 2
    html = Path(write_report(res, tmp_path / "c", worst=2)["report.html"]).read_text()
    assert "data:image/jpeg" not in html and "could not be drawn" in html


def test_tools_entry_point_runs(ds, tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "tools" / "report.py"), "--truth",
                        str(ds["root"] / "test.json"), "--pred", str(ds["base"] / "yolo"),
                        "--out", str(tmp_path / "t"), "--bootstrap", "0", "--no-coco"],
                       capture_output=True, text=True, cwd=REPO,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "t" / "report.html").is_file()


# ------------------------------------------------------------------ single-cell mode


def test_single_cell_mode(tmp_path, capsys):
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(0)
    n = 400
    true = rng.integers(0, 8, n)
    pred = np.where(rng.uniform(size=n) < 0.85, true, rng.integers(0, 8, n))
    p = rng.dirichlet(np.ones(8) * 0.3, n) * 0.4
    p[np.arange(n), pred] += 0.6
    df = pd.DataFrame({"image": [f"c{i}.jpg" for i in range(n)],
                       "true_class": np.asarray(CLASS_NAMES)[true],
                       "pred_class": np.asarray(CLASS_NAMES)[pred],
                       "magnification": rng.choice([0.5, 1.0], n)})
    df[[f"p_{c}" for c in CLASS_NAMES]] = p
    df.to_csv(tmp_path / "sc.csv", index=False)
    code, stdout, err = run(["--single-cell", tmp_path / "sc.csv", "--out", tmp_path / "r",
                             "--bootstrap", "100"], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["mode"] == "single-cell"
    assert m["headline"]["accuracy"] == pytest.approx(accuracy_score(true, pred))
    assert m["headline"]["macro_f1"] == pytest.approx(f1_score(true, pred, average="macro"))
    assert 0.5 < m["headline"]["roc_auc_macro"] <= 1 and m["headline"]["top2_accuracy"] >= 0.85
    html = (tmp_path / "r" / "report.html").read_text()
    assert "missed" not in html.split("Confusion matrix")[2][:3000]  # no detection-only column
    assert (tmp_path / "r" / "pr_curve.png").is_file()
    pm = pd.read_csv(tmp_path / "r" / "per_magnification.csv")
    assert set(pm["magnification"]) == {"0.5×", "1×"}
    # a table of cell images has no source cells to resample: refused in one line, nothing written
    code, stdout, err = run(["--single-cell", tmp_path / "sc.csv", "--out", tmp_path / "r2",
                             "--bootstrap-unit", "source"], capsys)
    assert code == 2 and "single-cell table has no source cells" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r2").exists()


# ------------------------------------------------------------------ bad input

def _coco(ds):
    return json.loads((ds["root"] / "test.json").read_text())


def _write(path: Path, obj) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _bad_cases(ds, tmp: Path):
    """(name, argv, words the one-line error must contain)."""
    root, base = ds["root"], ds["base"]
    good_pred = base / "predict" / "cells.csv"
    pred = ds["pred"]
    cases = []

    def coco_variant(name, change):
        c = _coco(ds)
        change(c)
        return _write(tmp / f"{name}.json", c)

    cases.append(("coco missing key", ["--truth", coco_variant("nokey", lambda c: c.pop("annotations")),
                                       "--pred", good_pred], ["nokey.json", "annotations"]))
    cases.append(("coco ann without bbox",
                  ["--truth", coco_variant("nobbox", lambda c: c["annotations"][3].pop("bbox")),
                   "--pred", good_pred], ["nobbox.json", "annotations[3]", "bbox"]))
    cases.append(("coco negative box",
                  ["--truth", coco_variant("neg", lambda c: c["annotations"][0]["bbox"].__setitem__(2, -5)),
                   "--pred", good_pred], ["neg.json", "negative size"]))
    cases.append(("coco path escape",
                  ["--truth", coco_variant("esc", lambda c: c["images"][0].__setitem__(
                      "file_name", "../../etc/passwd")), "--pred", good_pred],
                  ["esc.json", "../../etc/passwd", "escapes the dataset root"]))
    cases.append(("coco absolute path",
                  ["--truth", coco_variant("abs", lambda c: c["images"][0].__setitem__(
                      "file_name", "/etc/passwd")), "--pred", good_pred], ["abs.json", "escapes"]))
    cases.append(("coco ann unknown image",
                  ["--truth", coco_variant("unkimg", lambda c: c["annotations"][0].__setitem__(
                      "image_id", 99999)), "--pred", good_pred], ["unkimg.json", "99999"]))
    cases.append(("coco unknown category name",
                  ["--truth", coco_variant("cat", lambda c: c["categories"][0].__setitem__(
                      "name", "cat")), "--pred", good_pred], ["cat.json", "not a PBC class"]))
    cases.append(("invalid json", ["--truth", _write(tmp / "broken.json", '{"images": ['),
                                   "--pred", good_pred], ["broken.json", "not valid JSON"]))
    t = pd.read_csv(root / "cells.csv")
    t2 = t.copy(); t2.loc[2, "x2"] = 9999
    cases.append(("truth box outside image", ["--truth", _csv(tmp / "outside.csv", t2), "--pred",
                                              good_pred], ["outside.csv", "line 4", "outside"]))
    cases.append(("truth missing column", ["--truth", _csv(tmp / "nocol.csv", t.drop(columns="y2")),
                                           "--pred", good_pred], ["nocol.csv", "y2"]))
    t3 = t.copy(); t3.loc[0, "class_name"] = "dragon"; t3 = t3.drop(columns="class_id")
    cases.append(("unknown class", ["--truth", _csv(tmp / "dragon.csv", t3), "--pred", good_pred],
                  ["dragon.csv", "dragon"]))
    p = pred.copy(); p.loc[5, "score"] = np.nan
    cases.append(("NaN score", ["--truth", root, "--pred", _csv(tmp / "nan.csv", p)],
                  ["nan.csv", "line 7", "NaN"]))
    p = pred.copy(); p.loc[1, "x2"] = p.loc[1, "x1"] - 3
    cases.append(("pred negative size", ["--truth", root, "--pred", _csv(tmp / "negp.csv", p)],
                  ["negp.csv", "line 3", "negative size"]))
    p = pred.copy(); p.loc[0, "y2"] = 400
    cases.append(("pred outside image", ["--truth", root, "--pred", _csv(tmp / "outp.csv", p)],
                  ["outp.csv", "line 2", "outside"]))
    p = pred.copy(); p.loc[0, "image"] = "nothere.jpg"
    cases.append(("pred unknown image", ["--truth", root, "--pred", _csv(tmp / "unk.csv", p)],
                  ["unk.csv", "nothere.jpg", "not in the truth"]))
    res = json.loads((base / "results.json").read_text())
    r1 = [dict(r) for r in res]; r1[2]["image_id"] = 424242
    cases.append(("coco results unknown image id", ["--truth", root / "test.json", "--pred",
                                                    _write(tmp / "resid.json", r1)],
                  ["resid.json", "results[2]", "424242"]))
    r2 = [dict(r) for r in res]; del r2[0]["score"]
    cases.append(("coco results missing score", ["--truth", root / "test.json", "--pred",
                                                 _write(tmp / "nosc.json", r2)],
                  ["nosc.json", "results[0]", "score"]))
    r3 = [dict(r) for r in res]; r3[1]["score"] = None
    cases.append(("coco results null score", ["--truth", root / "test.json", "--pred",
                                              _write(tmp / "nullsc.json", r3)],
                  ["nullsc.json", "NaN"]))
    y = tmp / "yolo5"; y.mkdir()
    (y / "000001.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    cases.append(("yolo without conf", ["--truth", root, "--pred", y],
                  ["000001.txt:1", "save_conf"]))
    y = tmp / "yolobad"; y.mkdir()
    (y / "000001.txt").write_text("0 0.5 0.5 0.1 0.1 0.9\n3 0.5 x 0.1 0.1 0.9\n")
    cases.append(("yolo bad number", ["--truth", root, "--pred", y], ["000001.txt:2"]))
    y = tmp / "yolounk"; y.mkdir()
    (y / "zzz.txt").write_text("0 0.5 0.5 0.1 0.1 0.9\n")
    cases.append(("yolo unknown stem", ["--truth", root, "--pred", y], ["zzz.txt", "no truth image"]))
    y = tmp / "yolonan"; y.mkdir()
    (y / "000002.txt").write_text("0 nan 0.5 0.1 0.1 0.9\n")
    cases.append(("yolo NaN box", ["--truth", root, "--pred", y], ["000002.txt:1", "NaN"]))
    cases.append(("iou out of range", ["--truth", root, "--pred", good_pred, "--iou", "1.5"],
                  ["--iou 1.5", "(0, 1]"]))
    cases.append(("conf out of range", ["--truth", root, "--pred", good_pred, "--conf", "-0.1"],
                  ["--conf", "[0, 1]"]))
    cases.append(("all-class mAP without COCO", ["--truth", root, "--pred", good_pred,
                                                  "--map-all-classes", "--no-coco"],
                  ["--map-all-classes", "--no-coco"]))
    cases.append(("missing truth", ["--truth", tmp / "none.csv", "--pred", good_pred],
                  ["none.csv", "does not exist"]))
    cases.append(("unknown split", ["--truth", root, "--pred", good_pred, "--split", "holdout"],
                  ["holdout", "splits: test, train"]))
    sc = pd.DataFrame({"image": ["a.jpg", "b.jpg"], "true_class": ["ig", "ig"],
                       "pred_class": ["ig", "wolf"]})
    cases.append(("single-cell unknown class", ["--single-cell", _csv(tmp / "sc1.csv", sc)],
                  ["sc1.csv", "line 3", "wolf"]))
    sc2 = sc.drop(columns="pred_class")
    cases.append(("single-cell no prediction column", ["--single-cell", _csv(tmp / "sc2.csv", sc2)],
                  ["sc2.csv", "pred_class"]))
    sc3 = pd.DataFrame({"true_class": ["ig"], "pred_class": ["ig"],
                        **{f"p_{c}": [np.nan if c == "ig" else 0.1] for c in CLASS_NAMES}})
    cases.append(("single-cell NaN probability", ["--single-cell", _csv(tmp / "sc3.csv", sc3)],
                  ["sc3.csv", "line 2", "NaN"]))
    return cases


def _csv(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path


def test_bad_inputs_one_line_exit_2_nothing_written(ds, tmp_path, capsys):
    cases = _bad_cases(ds, tmp_path)
    for name, argv, words in cases:
        out = tmp_path / "out" / name.replace(" ", "_")
        code, stdout, err = run([*argv, "--out", out], capsys)
        assert code == 2, (name, err, stdout)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, (name, err)
        for w in words:
            assert w in lines[0], (name, w, lines[0])
        assert not out.exists(), name
    print(f"{len(cases)} bad report inputs, all handled")
