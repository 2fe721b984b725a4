"""ONNX export: ONNX Runtime and PyTorch agree on boxes and classes with the same (letterbox)
preprocessing; the tiny end-to-end train → predict → outputs run (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_detect_drawn import StubClassifier, draw_disks, make_yolo_dataset

from mixmag.classes import CLASS_NAMES
from mixmag.classify.export import OnnxClassifier, export_classifier, torch_classifier_probs
from mixmag.detect.export import detector_parity, export_detector

REPO = Path(__file__).resolve().parents[1]


def _tiny_detector(path: Path, imgsz: int = 160) -> Path:
    """An untrained YOLO11n checkpoint (random weights; the graph is what export must keep)."""
    from mixmag.detect.yolo_env import setup_ultralytics

    YOLO = setup_ultralytics()
    torch.manual_seed(0)
    model = YOLO(str(REPO / "models" / "yolo11n-mixmag.yaml")).model
    model.names = dict(enumerate(CLASS_NAMES))
    # trained at imgsz on canvases twice as large (as train-detector records it)
    torch.save({"model": model.eval(), "train_args": {"imgsz": imgsz}, "date": None,
                "version": "test", "mixmag": {"train_canvas": 2 * imgsz, "imgsz": imgsz}}, path)
    return path


def _images():
    rng = np.random.default_rng(1)
    sizes = [(160, 160), (300, 200), (120, 250)]  # square, wide, tall: letterbox pads differ
    out = []
    for w, h in sizes:
        disks = [(int(rng.integers(8)), rng.uniform(20, w - 20), rng.uniform(20, h - 20), 12)
                 for _ in range(4)]
        out.append(draw_disks(w, h, disks, seed=w))
    return out


def test_detector_onnx_parity(tmp_path):
    from mixmag.detect.detector import OnnxDetector, YoloDetector

    pt = _tiny_detector(tmp_path / "tiny.pt")
    onnx_path = export_detector(pt, tmp_path / "export")
    assert not list(tmp_path.glob("tiny.onnx")), "nothing may be written beside the weights"
    meta = json.loads((tmp_path / "export" / "detector.json").read_text())
    assert meta["imgsz"] == 160 and meta["names"]["2"] == "erythroblast"
    images = _images()
    a, b = YoloDetector(pt), OnnxDetector(onnx_path)
    # predict tiles at the training canvas (320), letterboxed to 160 as in training
    from mixmag.pipeline.predict import Pipeline, PredictOptions

    assert a.train_canvas == b.train_canvas == 320 and meta["train_canvas"] == 320
    assert Pipeline(a, None, None, PredictOptions(mode="detector")).tile == 320
    assert Pipeline(b, None, None, PredictOptions(mode="detector", tile=200)).tile == 200
    xa, xb = a.preprocess(images), b.preprocess(images)
    assert np.array_equal(xa, xb) and xa.shape == (3, 3, 160, 160)
    ra, rb = a.forward(xa), b.forward(xb)
    assert ra.shape == rb.shape == (3, 4 + 8, 525)
    assert isinstance(ra, np.ndarray) and isinstance(rb, np.ndarray)
    assert np.abs(ra - rb).max() < 1e-3 * max(1.0, float(np.abs(ra).max()))
    # same raw outputs through the same NMS and un-letterboxing: the same boxes and classes.
    # An untrained model scores every anchor alike, so give it distinct scores to rank.
    bump = np.zeros_like(ra)
    bump[:, 4:] = np.random.default_rng(0).random(ra[:, 4:].shape, dtype=np.float32) ** 8
    shapes = [im.shape[:2] for im in images]
    pa = a.postprocess(ra + bump, shapes, 0.3, 0.6)
    pb = b.postprocess(rb + bump, shapes, 0.3, 0.6)
    assert sum(len(d) for d in pa) > 5
    for im, da, db in zip(images, pa, pb):
        assert da.shape == db.shape
        assert np.abs(da[:, :4] - db[:, :4]).max() < 0.05 and (da[:, 5] == db[:, 5]).all()
        # boxes come back in each image's own pixels (letterbox undone), inside the image
        assert (da[:, 0] >= 0).all() and (da[:, 2] <= im.shape[1] + 1e-3).all()
        assert (da[:, 3] <= im.shape[0] + 1e-3).all()
    assert detector_parity(pt, onnx_path, images)["same_count"]


class _TorchStub(StubClassifier):
    """A classifier with a torch module, as the export needs (.model, .mean, .std)."""

    def __init__(self):
        super().__init__(input_size=64)
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 8)).eval()
        self.mean, self.std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def test_classifier_onnx_parity(tmp_path):
    clf = _TorchStub()
    path = export_classifier(clf, tmp_path / "export")
    crops = [im[:100, :100] for im in _images()] * 3
    ort = OnnxClassifier(path)
    assert ort.class_names == list(CLASS_NAMES) and ort.input_size == 64
    p_onnx, p_torch = ort.predict(crops, batch_size=4), torch_classifier_probs(clf, crops)
    assert p_onnx.shape == (9, 8)
    assert np.allclose(p_onnx, p_torch, atol=1e-5)
    assert (p_onnx.argmax(1) == p_torch.argmax(1)).all()


def test_tta_checkpoint_answers_the_same_through_onnx(tmp_path):
    """A checkpoint scored with dihedral TTA must not lose it in the ONNX graph predict uses."""
    from mixmag.classify import load_classifier
    from mixmag.classify.checkpoint import save_checkpoint
    from mixmag.classify.registry import get_backbone

    b = get_backbone("microcellnet")
    torch.manual_seed(0)
    model, _ = b.build(len(CLASS_NAMES), pretrained=False)
    crops = [im[:90, :120] for im in _images()] * 2
    probs = {}
    for tta in (False, True):
        ck = tmp_path / f"tta{tta}.pt"
        save_checkpoint(ck, model, backbone="microcellnet", class_names=CLASS_NAMES, input_size=48,
                        mean=b.mean, std=b.std, manifest_hash="t", train_scale=(1, 1),
                        args={"tta": tta}, metrics={})
        clf = load_classifier(ck)
        probs[tta] = clf.predict(crops)
        onnx = OnnxClassifier(export_classifier(clf, tmp_path / f"export{tta}"))
        assert np.allclose(onnx.predict(crops, batch_size=4), probs[tta], atol=1e-4), tta
    assert not np.allclose(probs[False], probs[True], atol=1e-4)  # TTA changes a random net's answers


@pytest.mark.slow
def test_tiny_train_predict_end_to_end(tmp_path, monkeypatch, capsys):
    """Train 1 epoch at 128 px on drawn images, then `mixmag predict` in every mode."""
    from pycocotools.coco import COCO

    from mixmag.cli import main
    import mixmag.pipeline.build as build

    data = make_yolo_dataset(tmp_path / "ds", counts=(("train", 6), ("val", 2), ("test", 3)),
                             size=128)
    monkeypatch.chdir(tmp_path)
    rc = main(["train-detector", "--data", str(data), "--model",
               str(REPO / "models" / "yolo11n-mixmag.yaml"), "--imgsz", "128", "--epochs", "1",
               "--batch", "4", "--workers", "0", "--device", "cpu", "--name", "tiny"])
    assert rc == 0
    best = tmp_path / "runs" / "detect" / "tiny" / "weights" / "best.pt"
    assert best.is_file() and (best.parent / "magnification.json").is_file()
    rc = main(["train-detector", "--data", str(data), "--name", "tiny", "--model",
               str(REPO / "models" / "yolo11n-mixmag.yaml")])
    assert rc == 2 and "already exists" in capsys.readouterr().err  # no silent overwrite

    monkeypatch.setattr(build, "load_classifier", lambda path, device="cpu": StubClassifier(64)
                        if path else None)
    test_dir = str(tmp_path / "ds" / "images" / "test")
    for mode, extra in (("detector", []), ("two-stage", ["--classifier", "x.pt"]),
                        ("classifier-on-boxes", ["--classifier", "x.pt", "--scale-norm", "off"])):
        out = tmp_path / "runs" / "predict" / mode
        rc = main(["predict", test_dir, "--detector", str(best), "--mode", mode, *extra,
                   "--conf", "0.001", "--no-progress", "--out", str(out),
                   "--coco-gt", str(tmp_path / "ds" / "test.json")])
        assert rc == 0, capsys.readouterr().err
        cells = pd.read_csv(out / "cells.csv")
        assert len(pd.read_csv(out / "counts.csv")) == 3
        assert len(list((out / "drawn").glob("*.jpg"))) == 3
        results = json.loads((out / "coco_results.json").read_text())
        assert len(results) == len(cells)
        if results:
            gt = COCO(str(tmp_path / "ds" / "test.json"))
            gt.loadRes(str(out / "coco_results.json"))
