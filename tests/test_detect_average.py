"""Detector soups (mixmag.detect.average, tools/soup_detectors.py): the average's weights are the
parts' mean, its integer buffers and classes the first part's; parts of other classes or shape
are refused in one line. Built from the released detector and edited copies of it."""

from __future__ import annotations

import copy

import pytest
import torch

from mixmag.detect.average import average_detectors
from mixmag.detect.weights import load_checkpoint
from mixmag.errors import MixmagError
from mixmag.zoo import load_zoo

DET = load_zoo().default("detect")


@pytest.fixture(scope="module")
def base():
    if not DET.file.is_file():
        pytest.skip(f"released detector {DET.file} not in this checkout")
    return load_checkpoint(DET.file)


def _save(ck, path, edit):
    ck = copy.deepcopy(ck)
    edit(ck)
    torch.save(ck, path)
    return path


def test_the_average_is_the_mean_of_the_parts(base, tmp_path):
    key = next(k for k, v in base["model"].state_dict().items() if v.is_floating_point() and v.ndim == 4)

    def shifted(ck):
        sd = ck["model"].state_dict()
        sd[key] = sd[key] + 0.5
        ck["model"].load_state_dict(sd)

    a = _save(base, tmp_path / "a.pt", lambda ck: None)
    b = _save(base, tmp_path / "b.pt", shifted)
    soup = average_detectors([a, b])
    w0, w = base["model"].state_dict()[key].float(), soup["model"].state_dict()[key].float()
    assert torch.allclose(w, w0 + 0.25, atol=2e-3)          # fp16 weights: half a step of 0.5
    other = next(k for k in base["model"].state_dict() if k != key and base["model"].state_dict()[k].is_floating_point())
    assert torch.equal(soup["model"].state_dict()[other], base["model"].state_dict()[other])
    assert [p["path"] for p in soup["mixmag"]["average_of"]] == [str(a), str(b)]


def test_parts_that_are_not_one_model_are_refused(base, tmp_path):
    a = _save(base, tmp_path / "a.pt", lambda ck: None)

    def renamed(ck):
        ck["model"].names = {**ck["model"].names, 0: "not-a-class"}

    b = _save(base, tmp_path / "b.pt", renamed)
    with pytest.raises(MixmagError, match="classes"):
        average_detectors([a, b])
    with pytest.raises(MixmagError, match="at least two"):
        average_detectors([a])
