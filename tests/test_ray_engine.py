"""`mixmag predict --engine ray`: a local Ray cluster (2 CPUs, 2 actors) writes what a local run
writes, byte for byte; the engine's options are refused in one line where they cannot apply."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_detect_drawn import draw_disks

from mixmag.cli import main
from mixmag.zoo import load_zoo


def _images(folder: Path, n: int = 20) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(n):
        w, h = (int(v) for v in rng.integers(200, 700, 2))
        disks = [(int(rng.integers(8)), rng.uniform(30, w - 30), rng.uniform(30, h - 30), 22)
                 for _ in range(int(rng.integers(1, 6)))]
        cv2.imwrite(str(folder / f"{i:02d}.{'png' if i % 3 else 'jpg'}"), draw_disks(w, h, disks, seed=i))
    (folder / "broken.jpg").write_bytes(b"not an image")  # an unreadable one keeps its place
    return folder


def test_ray_engine_writes_what_a_local_run_writes(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'mixmag[ray]')")
    if not load_zoo().default("detect").file.is_file():
        pytest.skip("default models not in this checkout")
    monkeypatch.setenv("MIXMAG_CACHE", str(tmp_path / "cache"))
    src = _images(tmp_path / "imgs")
    common = [str(src), "--backend", "onnx", "--no-progress"]
    assert main(["predict", *common, "--out", str(tmp_path / "local")]) == 0
    assert main(["predict", *common, "--engine", "ray", "--workers", "2",
                 "--out", str(tmp_path / "ray")]) == 0
    out = capsys.readouterr()
    assert "core_worker" not in out.err  # Ray's own notices go to its log, not the terminal
    a, b = tmp_path / "local", tmp_path / "ray"
    for f in ("cells.csv", "counts.csv", "coco_results.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    ja, jb = (json.loads((d / "cells.json").read_text()) for d in (a, b))
    assert ja["images"] == jb["images"] and ja["cells"] == jb["cells"]
    assert len(ja["images"]) == 21 and ja["images"][-1]["error"]  # the broken one, in its place
    drawn = sorted(p.relative_to(a) for p in (a / "drawn").rglob("*.jpg"))
    assert len(drawn) == 20 and drawn == sorted(p.relative_to(b) for p in (b / "drawn").rglob("*.jpg"))
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in drawn)
    assert sum(len(open(a / "cells.csv").readlines()) for _ in [0]) > 20  # cells were found


def test_engine_options_are_refused_in_one_line(tmp_path, monkeypatch, capsys):
    src = _images(tmp_path / "imgs", n=1)
    for extra, words in ((["--workers", "2"], "--engine ray"),
                         (["--address", "auto"], "--engine ray"),
                         (["--engine", "ray", "--workers", "0"], "--workers 0")):
        rc = main(["predict", str(src), "--out", str(tmp_path / "o"), *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and words in err, err
    import mixmag.pipeline.ray_engine as engine

    monkeypatch.setattr(engine, "ray_available", lambda: False)
    rc = main(["predict", str(src), "--out", str(tmp_path / "o"), "--engine", "ray"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "pip install 'mixmag[ray]'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
