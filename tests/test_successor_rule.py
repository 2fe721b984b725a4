"""The rule for a successor to the default pair, read from result files as
tools/judge_detector.sh writes them: each clause holds or fails on the figures it names."""

from __future__ import annotations

import json

import pytest

from mixmag.bench.successor import images_per_s, judge, judged_figures
from mixmag.errors import MixmagError


def _write(results, name, f1, recall, red, ery, mosaics, composites, rate=None):
    scales = {s: {"macro_f1": a, "recall_of_non_red_cells": b,
                  "red_cells_called_one_of_the_eight_per_image": c, "erythroblast": {"f1": d}}
              for s, a, b, c, d in zip(("x0.5", "x1", "x1.5"), f1, recall, red, ery)}
    (results / f"real-fields-val-det-{name}.json").write_text(json.dumps({"figures": scales}))
    (results / f"real-mosaics-val-det-{name}.json").write_text(
        json.dumps({"figures": {"all": {"macro_f1": mosaics}}}))
    for k, v in zip((41, 42, 43), composites):
        (results / f"detect-val{k}-m5-checked-det-{name}.json").write_text(json.dumps({"configs": {
            "d (detector classes)": {"macro_f1": 0.5},
            "d+c/off (classifier-on-boxes)": {"macro_f1": v}}}))
    if rate is not None:
        p = results / f"throughput-{name}.json"
        p.write_text(json.dumps({"throughput": {"default": {"onnx": {"composites_per_s": rate}}}}))
        return p


@pytest.fixture
def results(tmp_path):
    _write(tmp_path, "old", [0.90, 0.93, 0.93], [0.82, 0.93, 0.95], [0.005] * 3, [0.92, 0.95, 0.94],
           0.92, [0.982, 0.983, 0.983])
    return tmp_path


def test_a_better_pair_passes_every_clause(results):
    rate = _write(results, "new", [0.915, 0.94, 0.935], [0.84, 0.93, 0.946], [0.004] * 3,
                  [0.93, 0.95, 0.94], 0.921, [0.981, 0.985, 0.984], rate=7.5)
    clauses = judge(judged_figures(results, "old"), judged_figures(results, "new"), images_per_s(rate))
    assert [c.number for c in clauses] == [1, 2, 3, 4, 5, 6] and all(c.holds for c in clauses)


def test_each_clause_fails_on_its_own_figure(results):
    old = judged_figures(results, "old")
    # mean up by 0.01 but 1.5x down by 0.004: clause 1; recall down 0.006 at 1x: clause 2;
    # red cells 0.021 at 0.5x: clause 3; erythroblast mean down: clause 4; set 42 at 0.979: 5
    _write(results, "new", [0.925, 0.94, 0.926], [0.82, 0.924, 0.95], [0.021, 0.0, 0.0],
           [0.92, 0.95, 0.93], 0.93, [0.99, 0.979, 0.99])
    clauses = judge(old, judged_figures(results, "new"), rate=4.9)
    assert [c.holds for c in clauses] == [False] * 6


def test_a_missing_file_is_one_clear_error(results):
    with pytest.raises(MixmagError, match="real-fields-val-det-nope.json: missing"):
        judged_figures(results, "nope")
