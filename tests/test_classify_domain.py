"""adapt-classifier: last-layer refit on pipeline-style crops of drawn composites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mixmag.errors import MixmagError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def composites(drawn_manifest, tmp_path_factory) -> Path:
    from mixmag.synth.generate import SynthSettings, load_store, synthesize
    from mixmag.synth.plan import split_counts

    tmp = tmp_path_factory.mktemp("domain")
    store = load_store(drawn_manifest, cache=tmp / "cache", splits=("train", "val"), workers=1,
                       progress=False)
    out = tmp / "mix"
    counts = split_counts(20, ("train", "val"), explicit={"train": 14, "val": 6})
    synthesize(out, SynthSettings(n=20, counts=counts, splits=("train", "val"), canvas=320,
                                  cells=(3, 5), seed=3), store, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def base_ckpt(drawn_manifest, tmp_path_factory) -> Path:
    from mixmag.classify.train import TrainConfig, train_classifier

    proj = tmp_path_factory.mktemp("base")
    train_classifier(TrainConfig(split=str(drawn_manifest), backbone="microcellnet", imgsz=48,
                                 epochs=2, batch=8, lr=3e-3, warmup=0.0, scale_range=(1.0, 1.0),
                                 colour=False, project=str(proj), name="b", progress=False,
                                 eval_test=False))
    return proj / "b" / "weights" / "best.pt"


@pytest.fixture(scope="module")
def random_ckpt(tmp_path_factory) -> Path:
    """An untrained microcellnet checkpoint: enough for the argument and input checks."""
    from mixmag.classes import CLASS_NAMES
    from mixmag.classify.checkpoint import save_checkpoint
    from mixmag.classify.microcellnet import MicroCellNet
    from mixmag.classify.registry import LITE_MEAN, LITE_STD

    path = tmp_path_factory.mktemp("rand") / "best.pt"
    save_checkpoint(path, MicroCellNet(len(CLASS_NAMES)), backbone="microcellnet",
                    class_names=CLASS_NAMES, input_size=32, mean=LITE_MEAN, std=LITE_STD,
                    manifest_hash="", train_scale=None, args={}, metrics={})
    return path


def test_jitter_keeps_boxes_valid_and_near():
    from mixmag.pipeline.adapt import jitter_boxes

    b = np.array([[10, 10, 50, 40], [100, 100, 103, 102]], float)
    j = jitter_boxes(b, 0.05, np.random.default_rng(0))
    assert (j[:, 2] > j[:, 0]).all() and (j[:, 3] > j[:, 1]).all()
    assert np.abs(j[0] - b[0]).max() < 0.25 * 40
    assert np.array_equal(jitter_boxes(b, 0.0, np.random.default_rng(0)), b)


@pytest.mark.slow
def test_adapt_writes_a_loadable_checkpoint_that_beats_the_base(base_ckpt, composites, drawn_manifest,
                                                                tmp_path):
    from mixmag.classify import load_classifier
    from mixmag.pipeline.adapt import AdaptConfig, adapt_classifier

    out = tmp_path / "adapted"
    r = adapt_classifier(AdaptConfig(weights=str(base_ckpt), dataset=str(composites), out=str(out),
                                     pbc_split=str(drawn_manifest), pbc_share=0.2, grid=(1.0,),
                                     cache=str(tmp_path / "feat"), progress=False, batch=32))
    clf = load_classifier(out / "weights" / "best.pt")  # the contract's loader accepts it
    assert clf.backbone == "microcellnet" and clf.input_size == 48
    m = json.loads((out / "metrics.json").read_text())
    base, new = m["base"]["composite_val"], m["adapted"]["composite_val"]
    assert new["n"] == base["n"] > 20
    # held composite crops (val split, no C search with one grid value): a clear gain, well above chance
    assert new["accuracy"] > max(base["accuracy"] + 0.05, 0.25), (base, new)
    assert "pbc_val" in m["adapted"] and m["pbc_train_crops"] > 0
    ck = torch.load(out / "weights" / "best.pt", weights_only=True)
    assert ck["args"]["adapt"]["weights"] == str(base_ckpt)
    lin = [k for k in ck["state_dict"] if k.endswith(".weight")][-1]
    assert not torch.equal(ck["state_dict"][lin].float(),
                           torch.load(base_ckpt, weights_only=True)["state_dict"][lin].float())
    assert (out / "confusion_matrix.png").is_file() and (out / "args.yaml").is_file()


def test_adapt_refuses_test_only_data_and_overwrite(random_ckpt, composites, tmp_path):
    from mixmag.pipeline.adapt import AdaptConfig, adapt_classifier, composite_features

    with pytest.raises(MixmagError, match="only train and val"):
        composite_features(None, composites, "test", AdaptConfig("w", "d", "o"), None)
    out = tmp_path / "o"
    (out / "x").mkdir(parents=True)
    with pytest.raises(MixmagError, match="overwrite"):
        adapt_classifier(AdaptConfig(weights=str(random_ckpt), dataset=str(composites), out=str(out)))


def test_cli_bad_dataset_is_one_line_error(random_ckpt, tmp_path, capsys):
    from mixmag.cli import main

    rc = main(["adapt-classifier", "--weights", str(random_ckpt), "--dataset", str(tmp_path),
               "--out", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cells.csv" in err and "Traceback" not in err
