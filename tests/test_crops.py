"""pack-crops (bundles of predict-style crops from composites) and train-classifier --init."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from mixmag.classes import CLASS_ID, CLASS_NAMES
from mixmag.errors import MixmagError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def composites(drawn_manifest, tmp_path_factory) -> Path:
    """Drawn composites in all three splits, so the test split is there to be (not) read."""
    from mixmag.synth.generate import SynthSettings, load_store, synthesize
    from mixmag.synth.plan import split_counts

    tmp = tmp_path_factory.mktemp("crops")
    store = load_store(drawn_manifest, cache=tmp / "cache", splits=("train", "val", "test"),
                       workers=1, progress=False)
    out = tmp / "mix"
    counts = split_counts(24, ("train", "val", "test"), explicit={"train": 12, "val": 6, "test": 6})
    synthesize(out, SynthSettings(n=24, counts=counts, splits=("train", "val", "test"), canvas=320,
                                  cells=(3, 5), seed=5), store, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def crop_bundle(composites, drawn_manifest, tmp_path_factory) -> Path:
    from mixmag.pipeline.crop_bundle import CropSettings, pack_crops

    out = tmp_path_factory.mktemp("cb") / "crops.npz"
    pack_crops(composites, out, CropSettings(size=48, pbc_share=0.3), pbc_split=drawn_manifest,
               workers=1, progress=False)
    return out


def _cells(ds: Path) -> pd.DataFrame:
    return pd.read_csv(ds / "cells.csv")


# --- the bundle -----------------------------------------------------------------------------

def test_crops_are_what_predict_cuts_with_truth_labels_and_splits(composites):
    """jitter 0 + lossless WebP: every stored crop equals plain_crops of its truth box, pixel for pixel."""
    from mixmag.classify.bundle import Bundle
    from mixmag.pipeline.crop_bundle import CropSettings, pack_crops
    from mixmag.pipeline.crops import plain_crops
    from mixmag.images import read_image

    out = composites.parent / "exact.npz"
    pack_crops(composites, out, CropSettings(size=40, jitter=0.0, quality=101), workers=2,
               progress=False)
    b = Bundle(out)
    cells = _cells(composites)
    tv = cells[cells["split"].isin(["train", "val"])]
    assert len(b) == len(tv) and b.size == 40
    assert set(b.origin) == {"composite"} and set(b.splits) == {"train", "val"}
    rec = tv.set_index(tv["image"] + "#" + tv["cell"].astype(str))
    for i in range(len(b)):
        r = rec.loc[b.paths[i]]
        assert b.labels[i] == CLASS_ID[r["class_name"]] and b.splits[i] == r["split"]
        assert b.magnification[i] == pytest.approx(r["magnification"])
        img = read_image(composites / r["image"])
        want = plain_crops(img, np.array([[r.x1, r.y1, r.x2, r.y2]]), 0.15, 40)[0]
        assert np.array_equal(cv2.cvtColor(b.image(i), cv2.COLOR_RGB2BGR), want), b.paths[i]


def test_test_split_is_never_read(composites, tmp_path, monkeypatch):
    import mixmag.pipeline.crop_bundle as cb

    seen = []
    real = cb.read_image
    monkeypatch.setattr(cb, "read_image", lambda p, *a, **k: seen.append(str(p)) or real(p, *a, **k))
    r = cb.pack_crops(composites, tmp_path / "b.npz", cb.CropSettings(size=32), workers=1,
                      progress=False)
    assert seen and not [p for p in seen if "/images/test/" in p]
    assert set(r["counts"]) == {"train/composite", "val/composite"}
    with pytest.raises(MixmagError, match="test split"):
        cb.composite_cells(composites, splits=("train", "test"))


def test_jitter_moves_boxes_but_not_with_thread_order(composites, tmp_path):
    from mixmag.classify.bundle import Bundle
    from mixmag.pipeline.crop_bundle import CropSettings, pack_crops

    s = CropSettings(size=32, jitter=0.05, copies=2, seed=3)
    pack_crops(composites, tmp_path / "a.npz", s, workers=1, progress=False)
    pack_crops(composites, tmp_path / "b.npz", s, workers=3, progress=False)
    pack_crops(composites, tmp_path / "c.npz", CropSettings(size=32, jitter=0.0), workers=1,
               progress=False)
    a, b, c = (Bundle(tmp_path / f"{k}.npz") for k in "abc")
    assert np.array_equal(a.data, b.data) and np.array_equal(a.offsets, b.offsets)
    assert len(a) == 2 * len(c)
    # jittered boxes give other crop sides than the truth boxes, and the two copies of a cell differ
    sa = np.load(tmp_path / "a.npz")["scale"]
    sc = dict(zip(c.paths, np.load(tmp_path / "c.npz")["scale"]))
    assert np.mean([abs(v - sc[p]) > 1e-6 for p, v in zip(a.paths, sa)]) > 0.9
    by_path = pd.DataFrame({"p": a.paths, "s": sa}).groupby("p")["s"]
    assert (by_path.count() == 2).all() and (by_path.nunique() == 2).mean() > 0.9


def test_pbc_share_adds_manifest_images_of_the_same_split(crop_bundle, drawn_manifest):
    from mixmag.classify.bundle import Bundle

    b = Bundle(crop_bundle)
    m = pd.read_csv(drawn_manifest).set_index("path")
    pbc = b.origin == "pbc"
    assert pbc.any() and (~pbc).any()
    for split in ("train", "val"):
        n_c = int(((b.splits == split) & ~pbc).sum())
        n_p = int(((b.splits == split) & pbc).sum())
        assert 0 < n_p <= round(0.3 / 0.7 * n_c)
    for i in np.flatnonzero(pbc):
        assert m.loc[b.paths[i], "split"] == b.splits[i]
        assert CLASS_NAMES[b.labels[i]] == m.loc[b.paths[i], "class_name"]
    assert b.manifest_hash and set(b.splits) == {"train", "val"}


def test_other_manifest_and_bad_settings_are_refused(composites, drawn_manifest, tmp_path):
    from mixmag.pipeline.crop_bundle import CropSettings, pack_crops

    other = tmp_path / "other"
    shutil.copytree(composites, other, ignore=shutil.ignore_patterns("*.jpg"))
    meta = json.loads((other / "dataset.json").read_text())
    meta["manifest_hash"] = "0123456789abcdef"
    (other / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(MixmagError, match="splits may overlap"):
        pack_crops(other, tmp_path / "x.npz", pbc_split=drawn_manifest, progress=False)
    for bad, match in [(dict(pbc_share=1.0), "pbc-share"), (dict(jitter=-0.1), "jitter"),
                       (dict(size=8), "size"), (dict(copies=0), "copies")]:
        with pytest.raises(MixmagError, match=match):
            pack_crops(composites, tmp_path / "y.npz", CropSettings(**bad), progress=False)
    assert not list(tmp_path.glob("*.npz"))


def test_cli_writes_once_and_errors_in_one_line(composites, tmp_path, capsys):
    from mixmag.cli import main

    out = tmp_path / "c.npz"
    assert main(["pack-crops", str(composites), "--out", str(out), "--size", "32",
                 "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out and out.is_file()
    assert main(["pack-crops", str(composites), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "overwrite" in err and len(err.strip().splitlines()) == 1
    assert main(["pack-crops", str(tmp_path), "--out", str(tmp_path / "d.npz")]) == 2
    err = capsys.readouterr().err
    assert "cells.csv" in err and "Traceback" not in err


# --- train-classifier on it, and --init ------------------------------------------------------

def _cfg(tmp, **kw):
    from mixmag.classify.train import TrainConfig

    base = dict(epochs=1, batch=8, lr=3e-3, warmup=0.0, scale_range=(1.0, 1.0), colour=False,
                project=str(tmp), progress=False, eval_test=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def base_run(crop_bundle, tmp_path_factory) -> Path:
    from mixmag.classify.train import train_classifier

    proj = tmp_path_factory.mktemp("base")
    train_classifier(_cfg(proj, bundle=str(crop_bundle), backbone="microcellnet", imgsz=32,
                          name="base"))
    return proj / "base" / "weights" / "best.pt"


@pytest.mark.slow
def test_training_on_crops_reports_each_origin(base_run):
    run = base_run.parent.parent
    res = pd.read_csv(run / "results.csv")
    assert {"val_accuracy_composite", "val_accuracy_pbc"} <= set(res.columns)
    m = json.loads((run / "metrics.json").read_text())
    parts = m["val_parts"]
    assert {"composite", "pbc"} <= set(parts) and any(k.startswith("composite_m") for k in parts)
    assert parts["composite"]["n"] + parts["pbc"]["n"] == m["val"]["n"]


@pytest.mark.slow
def test_init_starts_from_the_checkpoint_and_keeps_its_preprocessing(base_run, crop_bundle,
                                                                     tmp_path):
    from mixmag.classify.checkpoint import read_checkpoint, save_checkpoint, build_model
    from mixmag.classify.train import train_classifier

    # an init checkpoint with its own mean/std: the run must keep them, not the backbone's
    ck = read_checkpoint(base_run)
    init = tmp_path / "init.pt"
    save_checkpoint(init, build_model(ck), backbone=ck["backbone"], class_names=ck["class_names"],
                    input_size=ck["input_size"], mean=[0.3, 0.4, 0.5], std=[0.2, 0.25, 0.3],
                    manifest_hash=ck["manifest_hash"], train_scale=None, args={}, metrics={})
    # lr ~ 0: the fine-tuned weights are the init's (BatchNorm statistics aside)
    m = train_classifier(_cfg(tmp_path, bundle=str(crop_bundle), init_from=str(init), lr=1e-12,
                              name="ft"))
    new = read_checkpoint(tmp_path / "ft" / "weights" / "best.pt")
    assert new["backbone"] == "microcellnet" and new["input_size"] == 32 and m["imgsz"] == 32
    assert new["mean"] == pytest.approx([0.3, 0.4, 0.5]) and new["std"] == pytest.approx([0.2, 0.25, 0.3])
    for k, v in ck["state_dict"].items():
        if v.is_floating_point() and "running" not in k and "num_batches" not in k:
            assert torch.allclose(new["state_dict"][k].float(), v.float(), atol=1e-6), k
    from mixmag.fileio import sha256_file

    args = new["args"]
    assert args["init_from"] == str(init) and args["init"] == f"checkpoint:{init}"
    assert args["init_checkpoint"]["sha256"] == sha256_file(init)
    import yaml

    y = yaml.safe_load((tmp_path / "ft" / "args.yaml").read_text())
    assert y["init_from"] == str(init) and y["init_checkpoint"]["input_size"] == 32
    # and a real step moves them
    train_classifier(_cfg(tmp_path, bundle=str(crop_bundle), init_from=str(init), name="ft2"))
    moved = read_checkpoint(tmp_path / "ft2" / "weights" / "best.pt")["state_dict"]
    assert any(not torch.equal(moved[k].float(), v.float()) for k, v in ck["state_dict"].items()
               if v.is_floating_point())


def test_init_fine_tunes_at_another_input_size(crop_bundle, tmp_path):
    """--init at 32 px with --imgsz 48 (FixRes): the new checkpoint says 48 and scores at 48; the
    run records the size it started from."""
    from mixmag.classify import load_classifier
    from mixmag.classify.checkpoint import read_checkpoint, save_checkpoint
    from mixmag.classify.microcellnet import MicroCellNet
    from mixmag.classify.registry import LITE_MEAN, LITE_STD
    from mixmag.classify.train import train_classifier

    init = tmp_path / "init32.pt"
    save_checkpoint(init, MicroCellNet(len(CLASS_NAMES)), backbone="microcellnet",
                    class_names=CLASS_NAMES, input_size=32, mean=LITE_MEAN, std=LITE_STD,
                    manifest_hash="", train_scale=None, args={}, metrics={})
    m = train_classifier(_cfg(tmp_path, bundle=str(crop_bundle), init_from=str(init), imgsz=48,
                              name="fix"))
    new = read_checkpoint(tmp_path / "fix" / "weights" / "best.pt")
    assert m["imgsz"] == 48 and new["input_size"] == 48
    assert new["args"]["init_checkpoint"]["input_size"] == 32
    assert load_classifier(tmp_path / "fix" / "weights" / "best.pt").input_size == 48


def test_mismatched_init_is_refused(crop_bundle, tmp_path, capsys):
    from mixmag.classify.checkpoint import save_checkpoint
    from mixmag.classify.microcellnet import MicroCellNet
    from mixmag.classify.registry import LITE_MEAN, LITE_STD
    from mixmag.classify.train import train_classifier
    from mixmag.cli import main

    def ckpt(name, classes=CLASS_NAMES, mh=""):
        p = tmp_path / name
        save_checkpoint(p, MicroCellNet(len(classes)), backbone="microcellnet", class_names=classes,
                        input_size=32, mean=LITE_MEAN, std=LITE_STD, manifest_hash=mh,
                        train_scale=None, args={}, metrics={})
        return str(p)

    ok = ckpt("ok.pt")
    cases = [
        (dict(init_from=ok, backbone="efficientnet_lite0"), "drop --backbone"),
        (dict(init_from=ckpt("six.pt", CLASS_NAMES[:6])), "classes"),
        (dict(init_from=ok, weights="x.pth"), "give one"),
        (dict(init_from=ckpt("mh.pt", mh="ffffffffffffffff")), "splits may overlap"),
        (dict(init_from=str(tmp_path / "missing.pt")), "no such file"),
    ]
    for kw, match in cases:
        with pytest.raises(MixmagError, match=match):
            train_classifier(_cfg(tmp_path, bundle=str(crop_bundle), name="x", **kw))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    rc = main(["train-classifier", "--bundle", str(crop_bundle), "--init", str(junk),
               "--project", str(tmp_path), "--name", "y", "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "junk.pt" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x" / "weights").exists() and not (tmp_path / "y" / "weights").exists()


def test_several_datasets_pack_into_one_bundle(composites, tmp_path, capsys):
    """pack-crops A B: the crops of both, paths named by dataset (their image names clash);
    datasets of different manifests are refused, as their splits may overlap."""
    from mixmag.classify.bundle import Bundle
    from mixmag.cli import main

    twin = tmp_path / "twin"
    shutil.copytree(composites, twin)
    s = ["--size", "32", "--jitter", "0", "--workers", "1", "--no-progress"]
    assert main(["pack-crops", str(composites), "--out", str(tmp_path / "one.npz"), *s]) == 0
    assert main(["pack-crops", str(composites), str(twin), "--out", str(tmp_path / "two.npz"), *s]) == 0
    one, two = Bundle(tmp_path / "one.npz"), Bundle(tmp_path / "two.npz")
    assert len(two) == 2 * len(one) and len(set(two.paths)) == len(two)
    assert {p.split("/")[0] for p in two.paths} == {composites.name, "twin"}
    half = [p.split("/", 1)[1] for p in two.paths if p.startswith("twin/")]
    assert half == list(one.paths)
    assert np.array_equal(two.data[:one.offsets[-1]], one.data)
    capsys.readouterr()
    assert main(["pack-crops", str(composites), str(composites), "--out", str(tmp_path / "d.npz"), *s]) != 0
    assert "named alike" in capsys.readouterr().err  # one dataset twice: its crops twice, refused
    meta = json.loads((twin / "dataset.json").read_text())
    meta["manifest_hash"] = "0123456789abcdef"
    (twin / "dataset.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["pack-crops", str(composites), str(twin), "--out", str(tmp_path / "x.npz"), *s]) != 0
    assert "different manifests" in capsys.readouterr().err
