"""Detector soups (mixmag.detect.average, tools/soup_detectors.py): the average's weights are the
parts' (weighted) mean, its integer buffers and classes the widest part's; a class only some parts
have is averaged over those; parts of other classes or shape are refused in one line. Built from
the released detector and edited copies of it."""

from __future__ import annotations

import copy

import pytest
import torch

from mixmag.detect.average import average_detectors
from mixmag.detect.weights import load_checkpoint
from mixmag.errors import MixmagError
from mixmag.zoo import load_zoo

DET = load_zoo().default("detect", "composite")  # eight classes: the tests add rbc to it


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


def _with_rbc(ck):
    """The detector with a ninth class added after the eight, its rows the eight's + 1 and 3.0."""
    head = ck["model"].model[-1]
    for seq in head.cv3:
        old = seq[-1]
        new = torch.nn.Conv2d(old.in_channels, old.out_channels + 1, 1).to(old.weight.dtype)
        with torch.no_grad():
            new.weight[:-1] = old.weight + 1
            new.bias[:-1] = old.bias + 1
            new.weight[-1] = 3.0
            new.bias[-1] = 3.0
        seq[-1] = new
    head.nc, head.no = head.nc + 1, head.no + 1
    ck["model"].names = {**ck["model"].names, len(ck["model"].names): "rbc"}


def test_weights_and_an_added_class(base, tmp_path):
    a = _save(base, tmp_path / "a.pt", lambda ck: None)
    b = _save(base, tmp_path / "b.pt", _with_rbc)
    soup = average_detectors([a, b], weights=[3, 1])
    assert list(soup["model"].names.values())[-1] == "rbc"
    assert soup["mixmag"]["classes_from"] == str(b)
    assert [p["weight"] for p in soup["mixmag"]["average_of"]] == [0.75, 0.25]
    w0 = base["model"].model[-1].cv3[0][-1].weight.float()
    w = soup["model"].model[-1].cv3[0][-1].weight.float()
    assert w.shape[0] == w0.shape[0] + 1
    assert torch.allclose(w[:-1], w0 + 0.25, atol=2e-3)     # the eight: 3/4 of a, 1/4 of a + 1
    assert torch.allclose(w[-1], torch.full_like(w[-1], 3.0))  # rbc: b's alone
    # the detector runs with nine outputs a box
    out = soup["model"].float().eval()(torch.zeros(1, 3, 64, 64))
    out = out[0] if isinstance(out, (list, tuple)) else out
    assert out.shape[1] == 4 + 9


def test_bad_weights_and_classes_are_refused(base, tmp_path):
    a = _save(base, tmp_path / "a.pt", lambda ck: None)
    b = _save(base, tmp_path / "b.pt", _with_rbc)
    with pytest.raises(MixmagError, match="one a detector"):
        average_detectors([a, b], weights=[1])
    with pytest.raises(MixmagError, match="above 0"):
        average_detectors([a, b], weights=[1, 0])
    with pytest.raises(MixmagError, match="finite"):
        average_detectors([a, b], weights=[1, float("inf")])

    def swapped(ck):
        _with_rbc(ck)
        ck["model"].names = {**ck["model"].names, 0: "rbc", 8: "basophil"}

    c = _save(base, tmp_path / "c.pt", swapped)
    with pytest.raises(MixmagError, match="classes"):
        average_detectors([a, c])


def test_the_tool_takes_zoo_names_and_weights(base, tmp_path):
    """tools/soup_detectors.py: a zoo name and a path, --weights, the widest part listed first or
    second alike, and the magnification.json of the part whose classes the average has."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from soup_detectors import main as soup

    (tmp_path / "wide").mkdir()
    wide = _save(base, tmp_path / "wide" / "best.pt", _with_rbc)
    (tmp_path / "wide" / "magnification.json").write_text(json.dumps({"from": "wide"}))
    outs = []
    for order in ((DET.name, str(wide)), (str(wide), DET.name)):
        w = ["0.25", "0.75"] if order[0] == DET.name else ["0.75", "0.25"]
        out = tmp_path / f"o{len(outs)}" / "best.pt"
        assert soup([*order, "--weights", *w, "--out", str(out)]) == 0
        assert json.loads(out.with_name("magnification.json").read_text()) == {"from": "wide"}
        outs.append(load_checkpoint(out)["model"].state_dict())
        with pytest.raises(MixmagError, match="exists"):
            soup([*order, "--out", str(out)])
    for k in outs[0]:
        assert torch.equal(outs[0][k], outs[1][k]), k
    w0 = base["model"].model[-1].cv3[0][-1].weight.float()
    head = f"model.{len(base['model'].model) - 1}.cv3.0.2.weight"   # the eight's rows, then rbc's
    assert torch.allclose(outs[0][head].float()[:-1], w0 + 0.75, atol=2e-3)
