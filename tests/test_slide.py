"""Whole slides (`mixmag.pipeline.slide`): a pyramidal TIFF is predicted region by region at the
level whose cells are nearest 1x, each cell once however the regions cut it, in level-0 pixels.

The slides are drawn from two composites of the shipped demo sample (real PBC cells, CC BY):
the same pixels read whole as a PNG are the reference."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mixmag.cli import main
from mixmag.zoo import load_zoo

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "sample"

tifffile = pytest.importorskip("tifffile", reason="whole slides need the slides extra")
pytest.importorskip("tiffslide", reason="whole slides need the slides extra "
                                        "(pip install 'mixmag[slides]')")


def write_pyramid(path: Path, rgb: np.ndarray, downsamples=(2, 4), tile=256) -> None:
    """A tiled pyramidal TIFF (reduced levels as SubIFDs, as OME-TIFF writes them)."""
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(rgb, tile=(tile, tile), subifds=len(downsamples), photometric="rgb",
                 compression="zlib")
        for d in downsamples:
            small = cv2.resize(rgb, None, fx=1 / d, fy=1 / d, interpolation=cv2.INTER_AREA)
            tw.write(small, tile=(tile, tile), subfiletype=1, photometric="rgb", compression="zlib")


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> np.ndarray:
    """Four 1,024² composites, two by two (BGR, 2048 x 2048)."""
    if not (SAMPLE / "pbc-split.csv").is_file():
        pytest.skip("no demo sample in datasets/sample")
    if not load_zoo().default("detect").file.is_file():
        pytest.skip("default models not in this checkout")
    out = tmp_path_factory.mktemp("slide-src")
    assert main(["synthesize", "--split", str(SAMPLE / "pbc-split.csv"), "--pbc",
                 str(SAMPLE / "pbc"), "--out", str(out / "data"), "--n-test", "4", "--splits",
                 "test", "--seed", "3", "--no-progress"]) == 0
    imgs = [cv2.imread(str(p)) for p in sorted((out / "data" / "images" / "test").glob("*.jpg"))]
    return np.vstack([np.hstack(imgs[:2]), np.hstack(imgs[2:4])])


def _cells(out: Path):
    import pandas as pd

    return pd.read_csv(out / "cells.csv")


def _match(a, b, scale=1.0):
    """For each row of a: its best IoU with b (boxes of b divided by ``scale``) and that row."""
    A = a[["x1", "y1", "x2", "y2"]].to_numpy()
    B = b[["x1", "y1", "x2", "y2"]].to_numpy() / scale
    x1 = np.maximum(A[:, None, 0], B[None, :, 0])
    y1 = np.maximum(A[:, None, 1], B[None, :, 1])
    x2 = np.minimum(A[:, None, 2], B[None, :, 2])
    y2 = np.minimum(A[:, None, 3], B[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    iou = inter / (area(A)[:, None] + area(B)[None] - inter)
    return iou.max(1), iou.argmax(1)


def _predict(src: Path, out: Path, *extra) -> None:
    assert main(["predict", str(src), "--out", str(out), "--backend", "onnx", "--no-progress",
                 *extra]) == 0


def test_a_slide_cut_into_regions_gives_the_cells_of_the_whole_image(scene, tmp_path):
    cv2.imwrite(str(tmp_path / "flat.png"), scene)
    write_pyramid(tmp_path / "slide.tif", scene[:, :, ::-1])
    # the composite pipeline: its detector boxes a cell the same in any tile's context, so a box
    # that differs is the slide code's doing (the default detector, trained on real fields, moves
    # small platelets' boxes here by a pixel between contexts, IoU 0.89-0.94, and once takes in a
    # drawn red cell beside an erythroblast, IoU 0.58)
    models = ("--models", "composite")
    _predict(tmp_path / "flat.png", tmp_path / "flat", *models)
    _predict(tmp_path / "slide.tif", tmp_path / "slide", "--slide-region", "1024", *models)  # 3 x 3
    flat, slide = _cells(tmp_path / "flat"), _cells(tmp_path / "slide")
    assert len(flat) >= 20
    assert len(slide) == len(flat)  # nothing lost or counted twice at the regions' seams
    best, j = _match(flat, slide)
    assert best.min() > 0.95
    assert (flat["class_name"].to_numpy() == slide["class_name"].to_numpy()[j]).mean() >= 0.95
    assert len(list((tmp_path / "slide" / "drawn").glob("*slide.tif.jpg"))) == 1


def test_a_slide_at_twice_the_scale_is_read_at_the_level_that_matches(scene, tmp_path):
    """Level 0 at 2.4x the flat image: auto picks a reduced level (resizing it the rest of the
    way); the cells come back in level-0 pixels with level-0 magnifications."""
    big = cv2.resize(scene, None, fx=2.4, fy=2.4, interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(tmp_path / "flat.png"), scene)
    write_pyramid(tmp_path / "slide.tif", big[:, :, ::-1], downsamples=(2, 4))
    _predict(tmp_path / "flat.png", tmp_path / "flat")
    _predict(tmp_path / "slide.tif", tmp_path / "slide")
    flat, slide = _cells(tmp_path / "flat"), _cells(tmp_path / "slide")
    assert abs(len(slide) - len(flat)) <= max(1, len(flat) // 10)
    best, j = _match(flat, slide, scale=2.4)
    assert np.mean(best > 0.5) >= 0.9
    ok = best > 0.5
    agree = flat["class_name"].to_numpy()[ok] == slide["class_name"].to_numpy()[j[ok]]
    assert agree.mean() >= 0.85
    ratio = slide["magnification_est"].to_numpy()[j[ok]] / flat["magnification_est"].to_numpy()[ok]
    assert 2.1 < np.median(ratio) < 2.7


def test_slide_level_out_of_range_is_one_line(scene, tmp_path, capsys):
    write_pyramid(tmp_path / "slide.tif", np.ascontiguousarray(scene[:512, :512, ::-1]),
                  downsamples=(2,))
    rc = main(["predict", str(tmp_path / "slide.tif"), "--slide-level", "5", "--out",
               str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "levels 0 to 1" in err[0]
    assert not (tmp_path / "o").exists()


def test_ordinary_tiffs_keep_the_image_path(tmp_path):
    """A one-level TIFF within the pixel limit is an image, read whole, as before."""
    from mixmag.pipeline.slide import open_slide

    img = np.full((300, 400, 3), 200, np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", img, photometric="rgb")
    assert open_slide(tmp_path / "a.tif") is None
    write_pyramid(tmp_path / "p.tif", np.full((600, 800, 3), 200, np.uint8), downsamples=(2,))
    s = open_slide(tmp_path / "p.tif")
    assert s is not None and s.dimensions == [(800, 600), (400, 300)]
    s.close()


def test_region_cores_tile_the_level_once():
    """Every point of the level lies in exactly one region's core, the last (flush) region too."""
    from mixmag.pipeline.slide import region_cores
    from mixmag.pipeline.tiling import tile_grid

    grid = tile_grid(2500, 3000, 1024, 256)
    cores = region_cores(grid)
    rng = np.random.default_rng(0)
    pts = rng.uniform([0, 0], [3000, 2500], (2000, 2))
    hits = sum(((pts[:, 0] >= c[0]) & (pts[:, 0] < c[2]) & (pts[:, 1] >= c[1]) & (pts[:, 1] < c[3]))
               .astype(int) for c in cores)
    assert (hits == 1).all()
    for t, c in zip(grid, cores):  # a core lies inside its region, at least half an overlap in
        assert c[0] == -np.inf or c[0] >= t.x0 + 128
        assert c[2] == np.inf or c[2] <= t.x0 + t.w - 128
