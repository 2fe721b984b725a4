"""``mixmag classify --zoom``: the nucleus-based magnification estimate and the zoomed second pass,
on images the tests draw (tests/drawn.py), with a stand-in classifier that sees cell size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixmag.classes import CLASS_NAMES
from mixmag.classify.augment import rescale_in_canvas
from mixmag.errors import MixmagError
from mixmag.synth.mask import nucleus_share

REPO = Path(__file__).resolve().parents[1]


def _drawn(cls: str, n: int, seed: int = 0):
    from drawn import draw_pbc_image

    rng = np.random.default_rng(seed)
    return [draw_pbc_image(cls, rng) for _ in range(n)]


def test_nucleus_share_follows_area_not_pixel_count():
    import cv2

    img = _drawn("lymphocyte", 1)[0]  # nucleus radius 24 px in a 360 x 363 image
    share = nucleus_share(img, "lymphocyte")
    assert share == pytest.approx(np.pi * 24 ** 2 / (360 * 363), rel=0.25)
    half_pixels = cv2.resize(img, (180, 182), interpolation=cv2.INTER_AREA)
    assert nucleus_share(half_pixels, "lymphocyte") == pytest.approx(share, rel=0.1)
    assert nucleus_share(rescale_in_canvas(img, 0.5), "lymphocyte") == pytest.approx(share / 4, rel=0.2)
    assert nucleus_share(np.full_like(img, 220), "lymphocyte") is None  # no stain at all


class SizeSeeingClassifier:
    """Stand-in: 'lymphocyte' when the nucleus fills at least half its native share, else
    'erythroblast' (a small round nucleus), as a real classifier confuses a shrunken lymphocyte."""

    class_names = list(CLASS_NAMES)
    input_size = 64

    def __init__(self, native_share: float):
        self.native_share, self.seen = native_share, []

    def predict(self, crops, batch_size: int = 64) -> np.ndarray:
        self.seen.append(len(crops))
        out = np.full((len(crops), len(CLASS_NAMES)), 0.01, np.float32)
        for i, c in enumerate(crops):
            big = (nucleus_share(c, "lymphocyte") or 0) >= 0.5 * self.native_share
            out[i, CLASS_NAMES.index("lymphocyte" if big else "erythroblast")] = 0.93
        return out


@pytest.fixture(scope="module")
def native():
    from mixmag.classify.zoom import native_nucleus

    imgs = _drawn("lymphocyte", 6, seed=1) + _drawn("erythroblast", 6, seed=2)
    data = native_nucleus(imgs, ["lymphocyte"] * 6 + ["erythroblast"] * 6)
    for c in CLASS_NAMES:  # the other classes' shares are not used by these images
        data["native_share"].setdefault(c, 0.05)
    return data


def test_zoom_restores_small_cells_and_leaves_native_ones(native):
    from mixmag.classify.zoom import ZoomedClassifier

    img = _drawn("lymphocyte", 1, seed=3)[0]
    crops = [img, rescale_in_canvas(img, 0.5), rescale_in_canvas(img, 1.5)]
    plain = SizeSeeingClassifier(native["native_share"]["lymphocyte"])
    first = plain.predict(crops).argmax(1)
    assert [CLASS_NAMES[k] for k in first] == ["lymphocyte", "erythroblast", "lymphocyte"]

    zc = ZoomedClassifier(plain, native)  # default: zoom in below 0.75, never out
    plain.seen.clear()
    got = [CLASS_NAMES[k] for k in zc.predict(crops).argmax(1)]
    # the 0.5x cell, zoomed towards native size, is right again (to 0.56 of its native nucleus
    # share, not 1: pass 1 called it an erythroblast, whose native nucleus is smaller, see below)
    assert got == ["lymphocyte"] * 3
    assert plain.seen == [3, 1]  # one second pass, for the small cell only
    assert zc.last_zoomed.tolist() == [False, True, False]
    # the estimate uses pass 1's class: the shrunken lymphocyte was called an erythroblast, whose
    # native nucleus is smaller, so its estimate is above the true 0.5 but still well below 0.75
    m = zc.last_magnification
    assert m[0] == pytest.approx(1.0, abs=0.15) and m[2] == pytest.approx(1.5, abs=0.2)
    assert 0.5 <= m[1] < 0.75

    out = ZoomedClassifier(plain, native, zoom_below=0.75, zoom_above=1.3)
    out.predict(crops)
    assert out.last_zoomed.tolist() == [False, True, True]

    # an estimate below the floor (0.35) is a failed seed: pass 1 stands, unless the floor is 0
    huge = {**native, "native_share": {c: 30 * v for c, v in native["native_share"].items()}}
    guarded = ZoomedClassifier(plain, huge)
    guarded.predict(crops[:1])
    assert guarded.last_magnification[0] < 0.35 and not guarded.last_zoomed[0]
    bare = ZoomedClassifier(plain, huge, floor=0.0)
    bare.predict(crops[:1])
    assert bare.last_zoomed[0]


def test_zoom_mask_boundaries_match_the_documented_rule():
    from mixmag.classify.zoom import zoom_mask

    m = np.array([0.2, 0.35, 0.5, 0.75, 1.0, 1.3, 1.31, np.nan])
    assert zoom_mask(m, 0.75, None, 0.35).tolist() == [False, True, True, False, False, False, False, False]
    assert zoom_mask(m, None, 1.3, 0.35).tolist() == [False] * 6 + [True, False]
    assert zoom_mask(m, 0.75, 1.3, 0.0).tolist() == [True, True, True, False, False, False, True, False]


def test_image_without_nucleus_keeps_pass_one(native):
    from mixmag.classify.zoom import ZoomedClassifier

    plain = SizeSeeingClassifier(native["native_share"]["lymphocyte"])
    blank = np.full((363, 360, 3), 215, np.uint8)  # plasma only: no stain anywhere
    zc = ZoomedClassifier(plain, native)
    plain.seen.clear()
    probs = zc.predict([blank])
    assert np.isnan(zc.last_magnification[0]) and not zc.last_zoomed[0]
    assert plain.seen == [1] and np.allclose(probs, plain.predict([blank]))


def test_zoom_refuses_bad_settings_and_incomplete_files(native):
    from mixmag.classify.zoom import ZoomedClassifier

    plain = SizeSeeingClassifier(0.04)
    with pytest.raises(MixmagError, match="--zoom-below 1.5"):
        ZoomedClassifier(plain, native, zoom_below=1.5)
    with pytest.raises(MixmagError, match="--zoom-above 0.9"):
        ZoomedClassifier(plain, native, zoom_above=0.9)
    with pytest.raises(MixmagError, match="--zoom-floor 0.8"):
        ZoomedClassifier(plain, native, floor=0.8)
    from mixmag.classify.zoom import threshold

    assert threshold("off") is None and threshold("0.7") == 0.7
    with pytest.raises(MixmagError, match="expected a magnification"):
        threshold("low")
    partial = {**native, "native_share": {"lymphocyte": 0.05}}
    with pytest.raises(MixmagError, match="lack classes"):
        ZoomedClassifier(plain, partial)


def test_native_nucleus_and_classify_zoom_cli(drawn_manifest, drawn_pbc, tmp_path):
    import pandas as pd

    from mixmag.classify.train import TrainConfig, train_classifier

    train_classifier(TrainConfig(split=str(drawn_manifest), backbone="microcellnet", imgsz=32,
                                 epochs=1, batch=8, warmup=0.0, scale_range=(1.0, 1.0), colour=False,
                                 project=str(tmp_path), name="r", progress=False, eval_test=False))
    weights = tmp_path / "r" / "weights" / "best.pt"
    run = lambda *a: subprocess.run([sys.executable, "-m", "mixmag", *map(str, a)],  # noqa: E731
                                    capture_output=True, text=True, cwd=REPO)
    nuc = weights.with_name("nucleus.json")
    r = run("native-nucleus", "--split", drawn_manifest, "--out", nuc)
    assert r.returncode == 0, r.stderr
    data = json.loads(nuc.read_text())
    assert set(data["native_share"]) == set(CLASS_NAMES)
    # drawn nuclei: platelets (the whole stained disc, r 12) smallest, monocytes (r 28) largest
    assert data["native_share"]["platelet"] < data["native_share"]["lymphocyte"] < data["native_share"]["monocyte"]
    again = run("native-nucleus", "--split", drawn_manifest, "--out", nuc)
    assert again.returncode != 0 and "--overwrite" in again.stderr  # nothing overwritten silently

    # nucleus.json beside the weights switches the zoom on by default; --no-zoom switches it off
    r = run("classify", drawn_pbc / "lymphocyte", "--weights", weights, "--out", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "p.csv")
    assert len(df) == 12 and {"magnification_est", "zoomed"} <= set(df.columns)
    assert df["magnification_est"].notna().all() and df["zoomed"].dtype == bool
    r = run("classify", drawn_pbc / "lymphocyte", "--weights", weights, "--no-zoom", "--out", tmp_path / "q.csv")
    assert r.returncode == 0, r.stderr
    plain = pd.read_csv(tmp_path / "q.csv")
    assert "zoomed" not in plain.columns and plain["image"].tolist() == df["image"].tolist()

    # native lymphocytes and their 0.5x copies, in batches of 5 (rows must stay in step across
    # batches); every class gets the lymphocytes' share, so the tiny model's class does not matter
    import cv2

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i, f in enumerate(sorted((drawn_pbc / "lymphocyte").glob("*.jpg"))[:6]):
        img = cv2.imread(str(f))
        cv2.imwrite(str(mixed / f"a{i}_native.png"), img)
        cv2.imwrite(str(mixed / f"b{i}_half.png"), rescale_in_canvas(img, 0.5))
    same = tmp_path / "same.json"
    lym = data["native_share"]["lymphocyte"]
    same.write_text(json.dumps({**data, "native_share": {c: lym for c in CLASS_NAMES}}))
    r = run("classify", mixed, "--weights", weights, "--zoom", "--native-nucleus", same, "--batch", "5",
            "--out", tmp_path / "mixed.csv")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "mixed.csv")
    half = df["image"].str.endswith("_half.png")
    assert half.sum() == 6 and df.loc[half, "zoomed"].all() and not df.loc[~half, "zoomed"].any()
    assert df.loc[half, "magnification_est"].between(0.4, 0.6).all()
    assert df.loc[~half, "magnification_est"].between(0.8, 1.2).all()
