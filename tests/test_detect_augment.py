"""`train-detector --augment smear`: the real-image preset reaches ultralytics' trainer (its
albumentations transforms in the checkpoint, wider zoom and colour), the checkpoint still loads
through the restricted unpickler, and --resume keeps the run's preset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_detect_drawn import make_yolo_dataset

from mixmag.cli import main
from mixmag.detect.train import AUGMENT, SMEAR_AUGMENT, smear_albumentations

REPO = Path(__file__).resolve().parents[1]


def test_smear_transforms_change_pixels_only():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    ts = smear_albumentations()
    # pixel-level transforms only: boxes stay where they are (no DualTransform)
    import albumentations as A

    assert ts and not any(isinstance(t, A.DualTransform) for t in ts)
    forced = A.Compose([type(t)(**{**t.get_transform_init_args(), "p": 1.0}) for t in ts], seed=1)
    out = forced(image=img)["image"]
    assert out.shape == img.shape and out.dtype == img.dtype
    assert np.abs(out.astype(int) - img).mean() > 1
    # the composite preset keeps magnification (no zoom); smear zooms and jitters colour further
    assert AUGMENT["scale"] == 0 and SMEAR_AUGMENT["scale"] > 0
    assert SMEAR_AUGMENT["hsv_h"] > AUGMENT["hsv_h"] and SMEAR_AUGMENT["hsv_s"] > AUGMENT["hsv_s"]


def test_the_bgr_stain_transform_is_the_rgb_one_on_bgr_pixels():
    """ultralytics hands its transforms BGR images; the H&E stain matrices are RGB's, so the
    detector's stain transform works on the RGB view and gives the same pixels, channels swapped."""
    import albumentations as A

    from mixmag.synth.shifts import smear_augmentations

    rng = np.random.default_rng(1)
    rgb = rng.integers(60, 240, (64, 64, 3), dtype=np.uint8)
    bgr_t, rgb_t = smear_augmentations(bgr=True)[0], smear_augmentations(bgr=False)[0]
    assert type(bgr_t).__name__ == "BGRHEStain" and isinstance(rgb_t, A.HEStain)
    args = {**rgb_t.get_transform_init_args(), "p": 1.0}
    a = A.Compose([type(bgr_t)(**args)], seed=3)(image=np.ascontiguousarray(rgb[..., ::-1]))["image"]
    b = A.Compose([A.HEStain(**args)], seed=3)(image=rgb)["image"]
    assert np.array_equal(a[..., ::-1], b) and not np.array_equal(b, rgb)
    # it survives the round trip through albumentations' dicts that ultralytics' checkpoints keep
    back = A.from_dict(A.to_dict(bgr_t))
    assert type(back).__name__ == "BGRHEStain"


def test_classifier_smear_augmentation_adds_the_stain_and_optics_transforms():
    from mixmag.classify.augment import train_transform

    names = lambda t: [type(x).__name__ for x in t.compose.transforms]  # noqa: E731
    mild, smear = train_transform(64), train_transform(64, smear=True)
    extra = [n for n in names(smear) if n not in names(mild)]
    assert extra == ["HEStain", "RandomGamma", "Downscale", "ImageCompression"]
    out = smear(image=np.full((80, 80, 3), 180, np.uint8))["image"]
    assert out.shape == (64, 64, 3)


@pytest.mark.slow
def test_smear_run_records_its_transforms_and_resume_keeps_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(REPO / "runs" / ".ultralytics"))
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    data = make_yolo_dataset(tmp_path / "ds", counts=(("train", 4), ("val", 2)), size=128)
    argv = ["train-detector", "--data", str(data), "--imgsz", "64", "--epochs", "1", "--batch",
            "4", "--workers", "0", "--device", "cpu", "--project", str(tmp_path / "runs"),
            "--name", "smear", "--augment", "smear", "--set", "nbs=4"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "smear"
    record = json.loads((run / "mixmag_train.json").read_text())
    assert record["augment"] == "smear" and record["args"]["scale"] == SMEAR_AUGMENT["scale"]
    # read off the training dataset's own transform pipeline
    assert record["albumentations_applied"] == [type(t).__name__ for t in smear_albumentations()]
    from mixmag.detect.weights import load_checkpoint

    ckpt = load_checkpoint(run / "weights" / "last.pt", "test")  # the restricted unpickler
    assert ckpt["train_args"]["hsv_h"] == SMEAR_AUGMENT["hsv_h"]
    from mixmag.detect.detector import YoloDetector

    assert YoloDetector(run / "weights" / "best.pt").imgsz == 64

    # a run whose records were lost is resumed with its own preset; another one is refused
    (run / "mixmag_train.json").unlink()
    capsys.readouterr()
    assert main([*argv[:-4], "--augment", "composite", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--augment composite" in err and "trained with --augment smear" in err


def test_importing_the_augmentations_asks_no_network(tmp_path):
    """albumentations checks PyPI for updates on import unless NO_ALBUMENTATIONS_UPDATE is set:
    importing mixmag's augmentation modules must reach for no network."""
    import os
    import subprocess
    import sys

    probe = (
        "import socket, json\n"
        "tries = []\n"
        "def no(*a, **k):\n"
        "    tries.append(repr(a[:1])); raise OSError('network disabled by test')\n"
        "socket.socket.connect = no; socket.create_connection = no; socket.getaddrinfo = no\n"
        "import mixmag.synth.shifts, mixmag.classify.augment\n"
        "mixmag.synth.shifts.smear_augmentations(bgr=True)\n"
        "print('TRIES', json.dumps(tries))\n")
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("TRIES "))
    assert line == "TRIES []", line


def _dataset_with_cells(root: Path, rows: list[tuple[str, float, int]]) -> None:
    """A dataset folder with images/train and a cells.csv of (class, magnification, side px)."""
    import pandas as pd

    (root / "images" / "train").mkdir(parents=True)
    pd.DataFrame([{"image": f"images/train/{i}.jpg", "class_name": c, "magnification": m,
                   "x1": 10, "y1": 10, "x2": 10 + side, "y2": 10 + side, "split": "train",
                   "width": 1024, "height": 1024} for i, (c, m, side) in enumerate(rows)]
                 ).to_csv(root / "cells.csv", index=False)


def test_a_train_list_of_datasets_takes_every_datasets_cells(tmp_path):
    """data.yaml may name several datasets' train folders (real mosaics beside composites): the
    canvas and the native sizes (magnification.json) come from all their cell tables."""
    import yaml

    from mixmag.detect.train import _native_sizes, check_data_yaml, train_canvas

    _dataset_with_cells(tmp_path / "real", [("platelet", 0.5, 15), ("rbc", 1.0, 80)])
    _dataset_with_cells(tmp_path / "comp", [("platelet", 1.0, 31), ("neutrophil", 2.0, 300)])
    (tmp_path / "mix").mkdir()
    (tmp_path / "mix" / "data.yaml").write_text(yaml.safe_dump({
        "path": str(tmp_path), "train": ["real/images/train", "comp/images/train"],
        "val": "comp/images/train", "names": {0: "platelet"}}))
    cfg = check_data_yaml(tmp_path / "mix" / "data.yaml")
    assert train_canvas(cfg) == 1024
    sizes = _native_sizes(cfg)
    assert sizes["counts"] == {"neutrophil": 1, "platelet": 2, "rbc": 1}
    assert sizes["native_size"]["platelet"] == pytest.approx(30.5)  # median of 30 and 31
    assert sizes["native_size"]["neutrophil"] == pytest.approx(150)
