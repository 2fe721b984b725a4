"""`mixmag predict` defaults (the zoo's default pipeline), `--classifier none`, `--backend onnx`
parity, and the train-detector input size (fast: one small image through the default detector; a
tiny random detector exported once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from test_detect_drawn import draw_disks
from test_detect_export import _tiny_detector

from mixmag.classes import CLASS_NAMES
from mixmag.cli import build_parser, main
from mixmag.zoo import load_zoo

REPO = Path(__file__).resolve().parents[1]
ZOO = load_zoo()
DETECTOR = ZOO.default("detect")
CLASSIFIER = ZOO.default("classify")


def test_train_detector_default_imgsz_is_the_gpu_recipe():
    args = build_parser().parse_args(["train-detector", "--data", "x.yaml"])
    assert args.imgsz == 640


def test_predict_defaults_to_released_models(tmp_path, capsys):
    if not DETECTOR.file.is_file():
        pytest.skip(f"default detector {DETECTOR.file} not in this checkout")
    img = tmp_path / "smear.png"
    cv2.imwrite(str(img), draw_disks(320, 240, [(0, 100, 100, 30), (3, 220, 150, 25)], seed=3))
    out = tmp_path / "o"
    rc = main(["predict", str(img), "--classifier", "none", "--no-progress", "--no-draw",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    meta = json.loads((out / "cells.json").read_text())
    text = json.dumps(meta)
    assert str(DETECTOR.file) in text and '"mode": "detector"' in text
    assert [Path(p).name for p in pd.read_csv(out / "counts.csv")["image"]] == ["smear.png"]
    if not CLASSIFIER.file.is_file():
        return
    rc = main(["predict", str(img), "--no-progress", "--no-draw", "--out", str(tmp_path / "o2")])
    assert rc == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "o2" / "cells.json").read_text())
    text = json.dumps(meta)
    preset = CLASSIFIER.preset  # the mode and crop settings come from the classifier's zoo entry
    assert str(CLASSIFIER.file) in text and f'"mode": "{preset["mode"]}"' in text
    assert f'"scale_norm": {str(preset["scale_norm"]).lower()}' in text
    assert f'"margin": {preset["margin"]}' in text


def _zoo_copy(tmp_path, edit) -> Path:
    """The zoo file with its entries' files made absolute, edited by ``edit(dict)``."""
    import yaml

    data = yaml.safe_load(ZOO.path.read_text())
    for e in data["models"].values():
        e["file"] = str(ZOO.path.parent / e["file"])
    edit(data)
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_missing_default_model_is_one_line(tmp_path, monkeypatch, capsys):
    def absent(d):
        d["models"][DETECTOR.name]["file"] = str(tmp_path / "absent.pt")

    monkeypatch.setenv("MIXMAG_ZOO", str(_zoo_copy(tmp_path, absent)))
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 200, np.uint8))
    rc = main(["predict", str(img), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and DETECTOR.name in err and "absent.pt" in err


def test_zoo_checks_what_it_loads(tmp_path, monkeypatch, capsys):
    """A weights file that does not match its zoo checksum, an archived entry and a name of the
    wrong task are refused in one line each, before anything loads."""
    if not CLASSIFIER.file.is_file():
        pytest.skip(f"default classifier {CLASSIFIER.file} not in this checkout")
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 200, np.uint8))
    archived = next(n for n, e in ZOO.models.items() if e.status == "archived" and e.task == "classify")
    cases = [(["--classifier", archived], "archived"),
             (["--detector", CLASSIFIER.name], "not a detector")]
    for extra, words in cases:
        rc = main(["predict", str(img), *extra, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and words in err, err

    def tampered(d):
        d["models"][CLASSIFIER.name]["sha256"] = "0" * 64

    monkeypatch.setenv("MIXMAG_ZOO", str(_zoo_copy(tmp_path, tampered)))
    rc = main(["predict", str(img), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "sha256" in err and CLASSIFIER.name in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_backend_onnx_gives_the_same_cells(tmp_path, monkeypatch, capsys):
    """The default backend on a CPU (auto) is ONNX Runtime: detector and classifier are exported
    once into $MIXMAG_CACHE/onnx (nothing in the current folder or beside the weights), reused by
    the next run, and give the same boxes, classes and probabilities as PyTorch (random tiny
    detector, the default Lite0 classifier)."""
    lite0 = CLASSIFIER.file  # Lite0 at 160 px: the smaller of the zoo's classifiers, a faster test
    if not lite0.is_file():
        pytest.skip(f"default classifier {lite0} not in this checkout")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIXMAG_CACHE", str(tmp_path / "cache"))
    pt = _tiny_detector(tmp_path / "tiny.pt", imgsz=160)
    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        disks = [(int(rng.integers(8)), rng.uniform(30, 290), rng.uniform(30, 290), 14) for _ in range(5)]
        cv2.imwrite(str(images / f"{i}.png"), draw_disks(320, 320, disks, seed=i))
    common = [str(images), "--detector", str(pt), "--classifier", str(lite0),
              "--conf", "0.0005", "--no-progress", "--no-draw", "--mode", "two-stage"]
    for out, extra in (("a", ["--backend", "pytorch"]), ("b", []), ("c", ["--backend", "onnx"])):
        assert main(["predict", *common, *extra, "--out", out]) == 0, capsys.readouterr().err
    exported = sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "onnx").iterdir())
    assert exported == ["classifier", "detector"]  # once each, reused by the third run
    assert not list(tmp_path.glob("*.onnx")) and not list(lite0.parent.glob("*.onnx"))
    assert not (tmp_path / "runs").exists()
    for out, backend in (("a", "pytorch"), ("b", "onnx"), ("c", "onnx")):
        meta = json.loads((tmp_path / out / "cells.json").read_text())
        assert f'"backend": "{backend}"' in json.dumps(meta)
    # no magnification.json beside the tiny detector: the default scale normalisation falls back
    assert '"scale_norm": false' in json.dumps(meta)
    a, b = pd.read_csv(tmp_path / "a" / "cells.csv"), pd.read_csv(tmp_path / "b" / "cells.csv")
    assert len(a) == len(b) and len(a) > 0
    key = ["image", "x1", "y1"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    box = ["x1", "y1", "x2", "y2"]
    assert np.abs(a[box].to_numpy() - b[box].to_numpy()).max() < 0.5
    assert np.abs(a["det_conf"] - b["det_conf"]).max() < 1e-3
    probs = [c for c in a.columns if c.startswith("p_")]
    assert np.abs(a[probs].to_numpy() - b[probs].to_numpy()).max() < 2e-3
    assert (a["class_name"] == b["class_name"]).mean() >= 0.95  # ties may flip, nothing more

    # from cached exports the ONNX backend never imports PyTorch, torchvision or ultralytics
    # (PyTorch alone is ~800 MB of resident memory): a fresh process where importing them fails
    # writes the same cells.csv
    block = ("import sys\n"
             "class Block:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] in ('torch', 'torchvision', 'ultralytics'):\n"
             "            raise ImportError('blocked: ' + name)\n"
             "sys.meta_path.insert(0, Block())\n"
             "from mixmag.cli import main\n"
             "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "MIXMAG_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", block, "predict", *common, "--backend", "onnx",
                        "--out", "d"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "d" / "cells.csv").read_bytes() == (tmp_path / "c" / "cells.csv").read_bytes()


def test_predict_models_picks_a_zoo_pipeline(tmp_path, monkeypatch, capsys):
    """`--models NAME` runs that pipeline's classifier; the default pipeline is untouched, and
    --classifier still replaces the pipeline's. (The zoo holds one detector, so the pipeline
    differs from the default in its classifier only.)"""
    other = next((n for n, e in ZOO.models.items() if e.task == "classify" and n != CLASSIFIER.name
                  and e.status != "archived" and e.file.is_file()), None)
    if other is None or not DETECTOR.file.is_file() or not CLASSIFIER.file.is_file():
        pytest.skip("the zoo's default pair and a second classifier are not all in this checkout")

    def second(d):
        d["pipelines"]["single"] = {"detector": DETECTOR.name, "classifier": other}

    monkeypatch.setenv("MIXMAG_ZOO", str(_zoo_copy(tmp_path, second)))
    img = tmp_path / "smear.png"
    cv2.imwrite(str(img), draw_disks(320, 240, [(0, 100, 100, 30)], seed=3))
    runs = {"single": ["--models", "single"], "default": [],
            "override": ["--models", "single", "--classifier", CLASSIFIER.name]}
    used = {}
    for key, extra in runs.items():
        out = tmp_path / key
        rc = main(["predict", str(img), *extra, "--no-progress", "--no-draw", "--out", str(out)])
        assert rc == 0, capsys.readouterr().err
        used[key] = Path(json.loads((out / "cells.json").read_text())["classifier"]).parent.name
    assert used == {"single": other, "default": CLASSIFIER.name, "override": CLASSIFIER.name}


def test_predict_drop_inside_reaches_the_run_and_its_record(tmp_path, capsys):
    """--drop-inside from the command line: recorded in cells.json's options and never adding
    a cell (it only drops boxes); a detector of no PBC class refuses it in one line."""
    if not DETECTOR.file.is_file():
        pytest.skip(f"default detector {DETECTOR.file} not in this checkout")
    img = tmp_path / "smear.png"
    cv2.imwrite(str(img), draw_disks(320, 240, [(0, 100, 100, 30), (3, 220, 150, 25)], seed=3))
    counts = []
    for extra, name in (([], "a"), (["--drop-inside", "0.6"], "b")):
        rc = main(["predict", str(img), "--classifier", "none", "--no-progress", "--no-draw",
                   *extra, "--out", str(tmp_path / name)])
        assert rc == 0, capsys.readouterr().err
        meta = json.loads((tmp_path / name / "cells.json").read_text())
        assert meta["options"]["drop_inside"] == (0.6 if extra else None)
        counts.append(len(pd.read_csv(tmp_path / name / "cells.csv")))
    assert counts[1] <= counts[0]


def test_drop_inside_refused_for_a_detector_of_no_pbc_class():
    from test_detect_drawn import OracleDetector, StubClassifier
    from mixmag.errors import MixmagError
    from mixmag.pipeline.predict import Pipeline, PredictOptions

    with pytest.raises(MixmagError, match="--drop-inside: this detector's classes are"):
        Pipeline(OracleDetector(256), StubClassifier(), None,
                 PredictOptions(mode="classifier-on-boxes", scale_norm=False, drop_inside=0.6))


def test_the_default_pipeline_counts_red_cells_on_real_fields(tmp_path, capsys):
    """predict's default pair on whole PBC fields of the demo sample (real images, red cells
    around the folder's cell): red cells are boxed as `rbc` and counted in counts.csv, never one
    of the eight, and the folder's cell (the box nearest the centre among the eight) takes the
    folder's class. `real`, the pair's first name, still names it."""
    assert ZOO.pipeline("real") == ZOO.pipeline("default")
    sample = REPO / "datasets" / "sample" / "pbc"
    if not sample.is_dir():
        pytest.skip("no demo sample in this checkout")
    if not (DETECTOR.file.is_file() and CLASSIFIER.file.is_file()):
        pytest.skip("the default pipeline's weights are not in this checkout")
    src = tmp_path / "fields"
    src.mkdir()
    folders = ("erythroblast", "lymphocyte", "neutrophil")
    for cls in folders:
        for f in sorted((sample / cls).glob("*.jpg"))[:2]:
            (src / f"{cls}-{f.name}").write_bytes(f.read_bytes())
    out = tmp_path / "o"
    rc = main(["predict", str(src), "--no-progress", "--no-draw", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    counts = pd.read_csv(out / "counts.csv")
    cells = pd.read_csv(out / "cells.csv")
    assert len(counts) == 6 and (counts["rbc"] >= 3).all(), counts    # a PBC field holds many
    assert set(cells["class_name"]) <= {*CLASS_NAMES, "rbc"}
    from mixmag.bench.real import centre_classes

    own = centre_classes(out)
    assert len(own) == 6
    right = (own.to_numpy() == own.index.str.split("-").str[0]).sum()
    assert right >= 5, own
    assert (counts["n_cells"] == counts[[c for c in counts.columns if c not in ("image", "n_cells", "rbc")]].sum(1)).all()


def test_zoom_below_refused_without_native_sizes():
    """--zoom-below decides from estimated magnification, which needs native cell sizes: without
    them the pipeline refuses in one line instead of running one pass under the zoom's name."""
    from test_detect_drawn import OracleDetector, StubClassifier
    from mixmag.errors import MixmagError
    from mixmag.pipeline.predict import Pipeline, PredictOptions

    with pytest.raises(MixmagError, match="--zoom-below: needs native cell sizes"):
        Pipeline(OracleDetector(256), StubClassifier(), None,
                 PredictOptions(mode="classifier-on-boxes", scale_norm=False, zoom_below=0.75))
