"""The composite generator: masks, background, placement, balance, exporters, determinism, resume,
validate, bundle mode; on drawn images always and on real PBC images where present."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mixmag.classes import CLASS_NAMES
from mixmag.cli import main
from mixmag.synth.background import make_bank, palette_lut, render_background, stained_blobs_count
from mixmag.synth.compose import scale_cutout, tight_box
from mixmag.synth.cutout import CutoutStore, pack_cutouts
from mixmag.synth.export import load_cells
from mixmag.synth.generate import RUN_STATE, SynthSettings, load_store, synthesize
from mixmag.synth.mask import AREA_RANGE, cell_mask
from mixmag.synth.place import box_iou, place_boxes
from mixmag.synth.plan import plan_dataset, split_counts
from mixmag.synth.validate import validate_dataset

SMALL = dict(canvas=384, cells=(3, 6))


def _settings(n=16, **kw) -> SynthSettings:
    args = {**SMALL, **kw}
    return SynthSettings(n=n, counts=split_counts(n), **args)


def _hashes(root: Path, skip=("data.yaml",)) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth-cache")


@pytest.fixture(scope="module")
def store(drawn_manifest, cache):
    return load_store(drawn_manifest, cache=cache)


@pytest.fixture(scope="module")
def dataset(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "mix"
    synthesize(out, _settings(16), store, workers=1, preview=True, progress=False)
    return out


# --- masks ----------------------------------------------------------------------------------

def test_masks_on_drawn_cells_cover_the_centre_cell_only(monkeypatch):
    from drawn import _SHAPES, draw_pbc_image

    # drawn cells are smaller than real ones: judge them against their drawn size, not PBC's range
    monkeypatch.setattr("mixmag.synth.mask.AREA_RANGE", {c: (1, 10 ** 6) for c in CLASS_NAMES})

    rng = np.random.default_rng(1)
    for c in CLASS_NAMES:
        img = draw_pbc_image(c, rng)
        r = cell_mask(img, c)
        assert r.ok, (c, r.status)
        h, w = r.mask.shape
        assert r.mask[h // 2, w // 2] == 255
        drawn_area = np.pi * _SHAPES[c][0] ** 2
        assert 0.6 * drawn_area < r.area < 1.6 * drawn_area, (c, r.area, drawn_area)
        assert not r.mask[:20].any() and not r.mask[-20:].any()   # no neighbouring red cells


def _real_sample(pbc_root, per_class):
    for c in CLASS_NAMES:
        files = sorted(p for p in (pbc_root / c).iterdir() if not p.name.startswith("."))
        for f in files[:: max(1, len(files) // per_class)][:per_class]:
            yield c, cv2.imread(str(f))


def test_masks_on_real_pbc_are_plausible(pbc_root):
    per_class = 6
    ok = {c: 0 for c in CLASS_NAMES}
    ratio = {c: [] for c in CLASS_NAMES}
    for c, img in _real_sample(pbc_root, per_class):
        r = cell_mask(img, c)
        lo, hi = AREA_RANGE[c]
        assert lo <= r.area <= hi, (c, r.area)
        ok[c] += r.ok
        ratio[c].append(r.area / max(r.nucleus_area, 1))
    assert sum(ok.values()) >= 0.9 * per_class * len(CLASS_NAMES), ok
    # the cytoplasm is part of the mask (some lymphocytes have almost none, hence the median)
    for c in ("erythroblast", "lymphocyte", "monocyte", "neutrophil", "eosinophil"):
        assert np.median(ratio[c]) > 1.15, (c, ratio[c])


def _pale_neutrophil() -> tuple[np.ndarray, tuple[int, int, int], tuple[int, int]]:
    """A neutrophil whose cytoplasm has the red cells' colour (the case m4 shrinks to the nucleus),
    with one red cell touching it; returns the image, the cell (cx, cy, r) and the red cell's centre."""
    img = np.full((360, 360, 3), (200, 215, 240), np.uint8)       # cream plasma (BGR)
    for c in [(40, 40), (320, 40), (40, 320), (320, 320), (60, 180)]:
        cv2.circle(img, c, 30, (160, 150, 215), -1, cv2.LINE_AA)   # pink red cells, pale centre
        cv2.circle(img, c, 13, (180, 180, 228), -1, cv2.LINE_AA)
    rbc = (180 + 70 + 28, 180)
    cv2.circle(img, rbc, 30, (160, 150, 215), -1, cv2.LINE_AA)     # touching the cell
    cv2.circle(img, rbc, 13, (180, 180, 228), -1, cv2.LINE_AA)
    cv2.circle(img, (180, 180), 70, (165, 152, 212), -1, cv2.LINE_AA)  # cytoplasm ~ red-cell colour
    for k in range(3):
        ang = 2 * np.pi * k / 3
        cv2.circle(img, (int(180 + 22 * np.cos(ang)), int(180 + 22 * np.sin(ang))), 17,
                   (120, 40, 90), -1, cv2.LINE_AA)
    return img, (180, 180, 70), rbc


def test_m5_mask_keeps_pale_cytoplasm_and_leaves_the_touching_red_cell_out():
    img, (cx, cy, r), rbc = _pale_neutrophil()
    m5 = cell_mask(img, "neutrophil", version="m5")
    assert m5.ok, m5.status
    assert 0.85 * np.pi * r ** 2 < m5.area < 1.15 * np.pi * r ** 2, m5.area
    assert m5.mask[cy, cx + r - 8] and m5.mask[cy - r + 8, cx]       # cytoplasm near the membrane
    assert not m5.mask[rbc[1], rbc[0]] and not m5.mask[rbc[1], rbc[0] + 20]


def test_m5_mask_is_the_same_whatever_opencv_rng_state(pbc_root):
    # a real neutrophil whose GrabCut result, unseeded, moves by up to 6,510 px with the RNG state
    # (drawn images are too clean to show it)
    f = pbc_root / "neutrophil" / "BNE_25765.jpg"
    if not f.is_file():
        pytest.skip(f"{f.name} is not in this copy of PBC")
    img = cv2.imread(str(f))
    first = cell_mask(img, "neutrophil", version="m5").mask
    for seed in (1, 99, 2024):
        cv2.setRNGSeed(seed)
        cv2.randu(np.zeros((8, 8), np.float32), 0, 1)
        assert np.array_equal(cell_mask(img, "neutrophil", version="m5").mask, first), seed


def test_unknown_mask_version_is_refused():
    from mixmag.errors import MixmagError

    with pytest.raises(MixmagError, match="mask version"):
        cell_mask(np.zeros((64, 64, 3), np.uint8), "neutrophil", version="m9")


def test_m5_recovers_real_neutrophil_cytoplasm(pbc_root):
    """Real neutrophils: whole cells (mask >= 1.5x the nucleus) in most under m5, more than m4."""
    files = sorted(p for p in (pbc_root / "neutrophil").iterdir() if not p.name.startswith("."))
    whole = {"m4": 0, "m5": 0}
    sample = files[:: len(files) // 24][:24]
    for f in sample:
        img = cv2.imread(str(f))
        for v in whole:
            r = cell_mask(img, "neutrophil", version=v)
            whole[v] += r.area >= 1.5 * r.nucleus_area
    assert whole["m5"] >= 0.75 * len(sample) and whole["m5"] > whole["m4"], whole


# --- background -----------------------------------------------------------------------------

@pytest.mark.parametrize("palette", [
    [[235, 225, 245], [190, 170, 215]],      # cream / pink (most PBC)
    [[230, 215, 215], [200, 175, 185]],      # grey-blue family
    [[200, 200, 220], [120, 60, 160]],       # a palette that would be "stained": must be tamed
])
def test_background_has_no_stained_blobs(palette):
    bank = make_bank(512, seed=3, n=2)
    rng = np.random.default_rng(0)
    pal = np.array(palette, np.uint8)
    for _ in range(3):
        bg = render_background(bank, 512, pal, rng)
        assert bg.shape == (512, 512, 3)
        assert bg.std() > 3                       # a textured field, not a flat colour
        assert stained_blobs_count(bg, min_area=4) == 0
    assert stained_blobs_count(np.concatenate([palette_lut(pal)] * 4, 1), min_area=1) == 0


def test_stain_detector_finds_a_planted_cell():
    from drawn import draw_pbc_image

    bank = make_bank(384, seed=0, n=1)
    bg = render_background(bank, 384, np.array([[235, 225, 245], [190, 170, 215]], np.uint8),
                           np.random.default_rng(0))
    bg[100:363 + 100 - 100, :360][:263] = draw_pbc_image("lymphocyte", np.random.default_rng(0))[:263]
    assert stained_blobs_count(bg) >= 1


# --- placement and boxes ---------------------------------------------------------------------

def test_place_boxes_no_overlap_inside_and_stops_when_full():
    rng = np.random.default_rng(0)
    sizes = np.array([[100, 80]] * 12 + [[300, 300]] * 20)
    offs = place_boxes(sizes, (640, 640), rng)
    boxes = np.array([[x, y, x + w, y + h] for (w, h), o in zip(sizes, offs) if o for x, y in [o]], float)
    assert ((boxes[:, :2] >= 0) & (boxes[:, 2:] <= 640)).all()
    iou = box_iou(boxes, boxes)
    np.fill_diagonal(iou, 0)
    assert iou.max() == 0
    assert any(o is None for o in offs)          # 20 boxes of 300^2 cannot fit in 640^2


def test_place_boxes_keeps_the_gap_and_takes_the_first_clear_candidate():
    # the plain-Python overlap test must pick exactly what the IoU matrix would: the first of the
    # box's candidates that, grown by the gap, has zero IoU with every placed box
    from mixmag.synth.place import CANDIDATES

    for seed in range(20):
        sizes = np.random.default_rng(seed).integers(20, 200, (12, 2))
        offs = place_boxes(sizes, (512, 512), np.random.default_rng(seed), gap=2)
        rng = np.random.default_rng(seed)
        placed = np.zeros((0, 4))
        for i in np.argsort(-(sizes[:, 0] * sizes[:, 1]), kind="stable"):
            w, h = sizes[i]
            xs, ys = rng.integers(0, 512 - w + 1, CANDIDATES), rng.integers(0, 512 - h + 1, CANDIDATES)
            cand = np.stack([xs, ys, xs + w, ys + h], 1).astype(float)
            ok = (box_iou(cand + [-2, -2, 2, 2], placed) <= 0).all(1) if len(placed) else np.ones(len(cand), bool)
            want = (int(xs[ok.argmax()]), int(ys[ok.argmax()])) if ok.any() else None
            assert offs[i] == want, (seed, i)
            if want:
                placed = np.vstack([placed, cand[ok.argmax()]])


def test_bank_cache_and_reused_buffers_change_nothing(tmp_path):
    bank = make_bank(256, seed=5, n=2)
    cached = make_bank(256, seed=5, n=2, cache=tmp_path)            # builds and stores
    assert list((tmp_path / "bank").glob("*.npy"))
    again = make_bank(256, seed=5, n=2, cache=tmp_path)             # loads
    assert all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(bank, cached, again))
    pal = np.array([[235, 225, 245], [190, 170, 215]], np.uint8)
    out = np.zeros((256, 256, 3), np.uint8)
    seen = set()
    for k in range(40):
        # reference: the same draws, flips done on numpy views, colours by indexing the table
        r = np.random.default_rng(k)
        tile = bank[int(r.integers(2))]
        y, x = int(r.integers(0, tile.shape[0] - 255)), int(r.integers(0, tile.shape[1] - 255))
        flip, transpose = int(r.integers(4)), r.random() < 0.5
        d = tile[y:y + 256, x:x + 256]
        d = d[:, ::-1] if flip & 1 else d
        d = d[::-1] if flip & 2 else d
        d = d.T if transpose else d
        lut = palette_lut(np.clip(pal.astype(np.float32) + r.normal(0, 4, (2, 3)), 0, 255).astype(np.uint8))
        seen.add((flip, transpose))
        fresh = render_background(bank, 256, pal, np.random.default_rng(k))
        into = render_background(bank, 256, pal, np.random.default_rng(k), out=out)
        assert into is out and np.array_equal(fresh, out)
        assert np.array_equal(fresh, lut[:, 0][d])
    assert len(seen) == 8


def test_tight_box_is_the_mask_extent_after_scaling():
    alpha = np.zeros((60, 80), np.uint8)
    cv2.circle(alpha, (40, 30), 20, 255, -1)
    bgr = np.zeros((60, 80, 3), np.uint8)
    for m in (0.5, 1.0, 1.5):
        _, a = scale_cutout(bgr, alpha, m)
        x1, y1, x2, y2, area = tight_box(a)
        on = a >= 128
        assert on[y1, x1:x2].any() and on[y2 - 1, x1:x2].any()
        assert on[y1:y2, x1].any() and on[y1:y2, x2 - 1].any()
        assert area == on.sum() and not on[:y1].any() and not on[:, x2:].any()
        assert abs((x2 - x1) - 41 * m) <= 2


def test_equal_balance_within_2_percent_and_natural_option():
    rows = [{"split": s, "class_id": c} for s in ("train", "val", "test")
            for c in range(8) for _ in range(3 + 5 * c)]
    table = pd.DataFrame(rows)
    plans = plan_dataset(table, split_counts(500), seed=1)
    cls = np.array([table.at[r, "class_id"] for p in plans for r, _ in p.cells])
    shares = np.bincount(cls, minlength=8) / len(cls)
    assert np.abs(shares - 1 / 8).max() <= 0.02
    for p in plans:                                 # each cell from its own split
        assert all(table.at[r, "split"] == p.split for r, _ in p.cells)
    nat = plan_dataset(table, split_counts(500), balance="natural", seed=1)
    cls = np.array([table.at[r, "class_id"] for p in nat for r, _ in p.cells])
    assert np.bincount(cls, minlength=8)[7] > 4 * np.bincount(cls, minlength=8)[0]
    mags = {m for p in plans for _, m in p.cells}
    assert mags == {0.5, 1.0, 1.5}
    cont = plan_dataset(table, split_counts(50), mag_range=(0.6, 1.4), seed=1)
    ms = np.array([m for p in cont for _, m in p.cells])
    assert ms.min() >= 0.6 and ms.max() <= 1.4 and len(set(ms)) > 50


# --- the dataset: formats, validate ----------------------------------------------------------

def test_dataset_layout_coco_yolo_csv_agree(dataset):
    from pycocotools.coco import COCO

    for f in ("dataset.json", "data.yaml", "cells.csv", "cells.json", "train.json", "val.json",
              "test.json", "preview.png"):
        assert (dataset / f).is_file(), f
    meta = json.loads((dataset / "dataset.json").read_text())
    # the OpenCV that drew the pixels is recorded: another version gives other pixels for one seed
    assert meta["libraries"]["cv2"] == cv2.__version__
    cells = load_cells(dataset)
    assert len(cells) > 40
    assert (cells.x1 >= 0).all() and (cells.x2 <= cells.width).all()
    assert (cells.y1 >= 0).all() and (cells.y2 <= cells.height).all()
    coco = COCO(str(dataset / "test.json"))
    assert sorted(coco.getCatIds()) == list(range(1, 9))
    test_cells = cells[cells.split == "test"]
    assert len(coco.getAnnIds()) == len(test_cells)
    a = coco.loadAnns(coco.getAnnIds())[0]
    first = test_cells.iloc[0]
    assert a["category_id"] == first.class_id + 1 and a["area"] == first.mask_area
    assert a["bbox"] == pytest.approx([first.x1, first.y1, first.x2 - first.x1, first.y2 - first.y1])
    lab = (dataset / first.image.replace("images", "labels")).with_suffix(".txt").read_text().split("\n")[0]
    c, cx, cy, w, h = map(float, lab.split())
    assert int(c) == first.class_id
    assert cx * first.width == pytest.approx((first.x1 + first.x2) / 2, abs=0.01)
    import yaml

    y = yaml.safe_load((dataset / "data.yaml").read_text())
    assert y["names"] == dict(enumerate(CLASS_NAMES)) and y["train"] == "images/train"
    assert Path(y["path"]).is_absolute()
    rep = validate_dataset(dataset)
    assert rep.ok, rep.render()


def test_pasted_cells_are_where_the_boxes_are(dataset):
    cells = load_cells(dataset)
    for name, g in list(cells.groupby("image"))[:4]:
        img = cv2.imread(str(dataset / name))
        for r in g.itertuples():
            if r.class_name == "platelet":
                continue
            patch = img[int(r.y1):int(r.y2), int(r.x1):int(r.x2)]
            assert stained_blobs_count(patch, min_area=5) >= 1, (name, r.cell)


def test_validate_catches_planted_violations(dataset, drawn_manifest, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    cells = pd.read_csv(bad / "cells.csv")
    man = pd.read_csv(drawn_manifest)
    i = cells.index[cells.split == "test"][0]
    train_src = man[(man.split == "train") & (man.class_name == cells.at[i, "class_name"])].path.iloc[0]
    cells.at[i, "source"] = train_src           # a test composite built from a train source
    cells.to_csv(bad / "cells.csv", index=False)
    rep = validate_dataset(bad, manifest=drawn_manifest)
    assert not rep.ok and any("split hygiene" in p for p in rep.problems), rep.render()
    assert main(["validate", str(bad), "--split", str(drawn_manifest)]) == 1

    bad2 = tmp_path / "bad2"
    shutil.copytree(dataset, bad2)
    cells = pd.read_csv(bad2 / "cells.csv")
    cells.at[0, "x2"] = cells.at[0, "width"] + 5      # box outside; CSV no longer equals COCO
    cells.to_csv(bad2 / "cells.csv", index=False)
    probs = validate_dataset(bad2).problems
    assert any("outside the canvas" in p for p in probs) and any("differ" in p for p in probs)


# --- reproducibility ------------------------------------------------------------------------

def test_byte_identical_whatever_workers(dataset, store, tmp_path):
    out = tmp_path / "mix2"
    synthesize(out, _settings(16), store, workers=2, preview=True, progress=False)
    assert _hashes(out) == _hashes(dataset)


def test_resume_after_interruption_gives_the_same_bytes(store, tmp_path):
    out = tmp_path / "mix"
    synthesize(out, _settings(12), store, workers=1, progress=False)
    want = _hashes(out, skip=())
    # simulate a killed run: some outputs missing, a temp file left, the run-state marker present
    for f in sorted((out / "images" / "train").glob("*.jpg"))[:3]:
        f.unlink()
    next((out / "labels" / "val").glob("*.txt")).unlink()
    for f in ("cells.csv", "dataset.json", "test.json"):
        (out / f).unlink()
    (out / "images" / "train" / ".000001.tmp-abc.jpg").write_bytes(b"partial")
    (out / RUN_STATE).write_text(json.dumps({"signature": "0123456789abcdef"}))
    with pytest.raises(Exception, match="other settings"):
        synthesize(out, _settings(12), store, workers=2, resume=True, progress=False)
    sig = synthesize.__globals__["_signature"](_settings(12), store)
    # rendered under another OpenCV: resuming would mix two renderings in one dataset
    (out / RUN_STATE).write_text(json.dumps({"signature": sig, "cv2": "0.0.1"}))
    with pytest.raises(Exception, match="OpenCV 0.0.1"):
        synthesize(out, _settings(12), store, workers=2, resume=True, progress=False)
    (out / RUN_STATE).write_text(json.dumps({"signature": sig}))   # as a killed run leaves it
    synthesize(out, _settings(12), store, workers=2, resume=True, progress=False)
    assert _hashes(out, skip=()) == want


def test_refuses_non_empty_out_without_overwrite(drawn_manifest, cache, tmp_path, capsys):
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["synthesize", "--split", str(drawn_manifest), "--out", str(out), "--n", "4",
            "--canvas", "256", "--cells", "2", "3", "--cache", str(cache), "--no-progress",
            "--workers", "1"]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main(args + ["--overwrite"]) == 0
    assert main(["synthesize", "--split", "a.csv", "--cutouts", "b.npz", "--out", str(tmp_path / "y")]) == 2


def test_bundle_mode_matches_pbc_mode(drawn_manifest, cache, store, dataset, tmp_path):
    from mixmag.data.split import load_manifest

    m = load_manifest(drawn_manifest)
    npz = tmp_path / "cut.npz"
    info = pack_cutouts(m, ("train", "val", "test"), npz, cache=cache, workers=1, progress=False)
    assert info["n"] == len(m) and info["bytes"] == npz.stat().st_size
    b = CutoutStore.from_bundle(npz)
    assert set(b.table.columns) >= {"source", "sha256", "class_name", "split"}
    assert (b.table.sort_values("source").source.to_numpy() == np.sort(m.path.to_numpy())).all()
    out = tmp_path / "from-bundle"
    synthesize(out, _settings(16), b, workers=1, preview=True, progress=False)
    h1, h2 = _hashes(out), _hashes(dataset)
    for k in h2:                                    # same images and labels, same records
        if k != "dataset.json":
            assert h1[k] == h2[k], k


def test_mask_version_is_recorded_and_a_bundle_keeps_its_own(drawn_manifest, tmp_path, capsys):
    # m4, not the default, so that an ignored option fails; a fresh cache, so that its folder is
    # made by this run alone
    cache = tmp_path / "cache"
    out = tmp_path / "m4"
    base = ["--n", "4", "--canvas", "256", "--cells", "2", "3", "--no-progress", "--workers", "1"]
    assert main(["synthesize", "--split", str(drawn_manifest), "--out", str(out), "--cache", str(cache),
                 "--mask-version", "m4", *base]) == 0
    assert json.loads((out / "dataset.json").read_text())["mask_version"] == "m4"
    assert [p.name for p in (cache / "cutouts").iterdir()] == ["m4"]
    npz = tmp_path / "m4.npz"
    assert main(["pack-cutouts", "--split", str(drawn_manifest), "--out", str(npz), "--cache", str(cache),
                 "--mask-version", "m4", "--workers", "1"]) == 0
    assert CutoutStore.from_bundle(npz).mask_version == "m4"
    # a bundle's cut-outs are what they are: asking for other masks is refused, not ignored
    assert main(["synthesize", "--cutouts", str(npz), "--out", str(tmp_path / "x"),
                 "--mask-version", "m5", *base]) == 2
    assert "holds m4 cut-outs" in capsys.readouterr().err
    assert not (tmp_path / "x" / "dataset.json").exists()
    assert main(["synthesize", "--cutouts", str(npz), "--out", str(tmp_path / "y"), *base]) == 0
    assert json.loads((tmp_path / "y" / "dataset.json").read_text())["mask_version"] == "m4"
    # resuming a dataset under another mask version is refused, naming the version as a cause
    assert main(["synthesize", "--split", str(drawn_manifest), "--out", str(out), "--cache", str(cache),
                 "--resume", *base]) == 2
    assert "mask version" in capsys.readouterr().err


# --- real PBC end to end -----------------------------------------------------------------------

def test_real_pbc_composites_validate(pbc_root, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    manifest = repo / "datasets" / "pbc-split.csv"
    if not manifest.is_file():
        pytest.skip("datasets/pbc-split.csv not present")
    out = tmp_path / "real"
    rc = main(["synthesize", "--split", str(manifest), "--pbc", str(pbc_root), "--out", str(out),
               "--n", "6", "--canvas", "768", "--cells", "4", "8", "--workers", "1",
               "--no-progress", "--cache", str(repo / "datasets" / ".cache")])
    assert rc == 0
    rep = validate_dataset(out)
    assert rep.ok, rep.render()
    assert any("against manifest" in n for n in rep.notes)


# --- ultralytics accepts data.yaml unchanged ---------------------------------------------------

# Run in a subprocess: ultralytics fixes its config dir at import time. Nothing may go to the
# network: the guard makes every socket connect fail and counts the attempts. ultralytics' dataset
# check calls check_font("Arial.ttf"), which HEADs its assets URL even with YOLO_OFFLINE=1 unless
# the font is already in the config dir; a copy of matplotlib's DejaVuSans under that name stops it.
# amp=False skips the AMP check (which would fetch yolo11n.pt), plots=False the plot fonts.
_TRAIN = r"""
import json, os, shutil, socket, sys
from pathlib import Path
attempts = []
def guard(self, *a, **k):
    attempts.append(str(a)); raise OSError("network disabled in test")
socket.socket.connect = guard
import matplotlib
cfg = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"
cfg.mkdir(parents=True, exist_ok=True)
shutil.copy(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf", cfg / "Arial.ttf")
from ultralytics import YOLO
from ultralytics.utils import SETTINGS
SETTINGS.update({"sync": False})
data, project = sys.argv[1], sys.argv[2]
YOLO("yolo11n.yaml").train(data=data, epochs=1, imgsz=128, batch=4, workers=0, device="cpu",
                           plots=False, amp=False, project=project, name="t", exist_ok=True,
                           verbose=False)
print("ATTEMPTS", json.dumps(attempts))
"""


@pytest.mark.slow
def test_ultralytics_trains_on_data_yaml(store, tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "mix"
    synthesize(out, SynthSettings(n=12, counts=split_counts(12), canvas=256, cells=(2, 4)),
               store, workers=1, progress=False)
    before = (out / "data.yaml").read_text()
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "ycfg"), "YOLO_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", _TRAIN, str(out / "data.yaml"), str(tmp_path / "runs")],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path / "runs" / "t" / "weights" / "last.pt").is_file()
    line = [x for x in r.stdout.splitlines() if x.startswith("ATTEMPTS")][-1]
    assert json.loads(line.split(" ", 1)[1]) == [], "ultralytics tried to reach the network"
    assert (out / "data.yaml").read_text() == before
