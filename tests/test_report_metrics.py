"""Report figures: hand-computed cases, cross-checks with scikit-learn and COCOeval, properties."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixmag.classes import CLASS_NAMES
from mixmag.evaluate import evaluate
from mixmag.evaluate.match import overlapping_pairs, match
from mixmag.evaluate.metrics import MISSED, SPURIOUS
from mixmag.evaluate.synthetic import synthetic_predictions, synthetic_truth

ERY, LYM = CLASS_NAMES.index("erythroblast"), CLASS_NAMES.index("lymphocyte")


def cells(*rows, size=100):
    """Truth records: (image, class_name, x1, y1, x2, y2[, magnification])."""
    out = []
    for r in rows:
        d = dict(zip(["image", "class_name", "x1", "y1", "x2", "y2"], r[:6]))
        d["magnification"] = r[6] if len(r) > 6 else 1.0
        d.update(width=size, height=size)
        out.append(d)
    return pd.DataFrame(out, columns=["image", "class_name", "x1", "y1", "x2", "y2",
                                      "magnification", "width", "height"])


def preds(*rows):
    """Predictions: (image, class_name, x1, y1, x2, y2, score)."""
    return pd.DataFrame([dict(zip(["image", "class_name", "x1", "y1", "x2", "y2", "score"], r))
                         for r in rows],
                        columns=["image", "class_name", "x1", "y1", "x2", "y2", "score"])


def row(res, name):
    return res.per_class.set_index("class_name").loc[name]


# ------------------------------------------------------------------ hand-computed cases


def test_perfect_predictions_score_one_everywhere():
    truth = synthetic_truth(6, 8, size=320, seed=3)
    p = truth[["image", "x1", "y1", "x2", "y2", "class_name"]].assign(score=0.9)
    res = evaluate(truth, p, iou=[0.5, 0.75, 0.95], bootstrap=200)
    h = res.headline
    for k in ("macro_f1", "micro_f1", "weighted_f1", "macro_precision", "macro_recall",
              "accuracy_matched", "loc_precision", "loc_recall", "map50", "map50_95"):
        assert h[k] == pytest.approx(1.0), k
    present = res.per_class[res.per_class["support"] > 0]
    assert (present[["precision", "recall", "f1", "ap50", "ap50_95"]] == 1.0).all().all()
    assert h["n_missed"] == h["n_spurious"] == h["n_confused"] == 0
    cm = res.confusion
    assert (cm[:8, :8] == np.diag(np.diag(cm[:8, :8]))).all() and cm[:, 8].sum() == cm[8].sum() == 0
    assert res.headline["macro_f1_ci"] == [1.0, 1.0]
    for thr in ("0.5", "0.75", "0.95"):
        assert res.by_iou[thr]["macro_f1"] == 1.0


def test_swapped_classes_are_confusions_not_fp_plus_fn():
    t = cells(("a.jpg", "erythroblast", 10, 10, 30, 30), ("a.jpg", "lymphocyte", 50, 50, 80, 80))
    p = preds(("a.jpg", "lymphocyte", 10, 10, 30, 30, 0.9),
              ("a.jpg", "erythroblast", 50, 50, 80, 80, 0.8))
    res = evaluate(t, p, bootstrap=0)
    h = res.headline
    assert h["loc_precision"] == h["loc_recall"] == 1.0
    assert h["n_matched"] == 2 and h["n_missed"] == 0 and h["n_spurious"] == 0
    assert h["n_confused"] == 2 and h["accuracy_matched"] == 0.0
    assert res.confusion[ERY, LYM] == 1 and res.confusion[LYM, ERY] == 1
    for name in ("erythroblast", "lymphocyte"):
        r = row(res, name)
        assert (r.tp, r.fp, r.fn) == (0, 1, 1) and r.precision == 0 and r.recall == 0 and r.f1 == 0
    e = res.erythroblast
    assert e["erythroblast_as_lymphocyte"] == 1 and e["lymphocyte_as_erythroblast"] == 1
    assert h["macro_f1"] == 0.0  # only these two classes are defined; the six absent are left out
    assert np.isnan(row(res, "basophil").f1)


def test_duplicate_prediction_is_one_match_and_one_spurious():
    t = cells(("a.jpg", "monocyte", 10, 10, 40, 40))
    p = preds(("a.jpg", "monocyte", 10, 10, 40, 40, 0.9), ("a.jpg", "monocyte", 11, 11, 40, 40, 0.8))
    res = evaluate(t, p, bootstrap=0)
    r = row(res, "monocyte")
    assert (r.tp, r.fp, r.fn) == (1, 1, 0)
    assert r.precision == 0.5 and r.recall == 1.0 and r.f1 == pytest.approx(2 / 3)
    assert res.headline["loc_precision"] == 0.5 and res.headline["n_spurious"] == 1
    assert res.confusion[SPURIOUS, CLASS_NAMES.index("monocyte")] == 1
    # the better-overlapping box is the one matched (largest total IoU)
    assert res.outcomes.loc[res.outcomes["t"] == 0, "p"].item() == 0


def test_missed_cell():
    t = cells(("a.jpg", "neutrophil", 10, 10, 40, 40), ("a.jpg", "neutrophil", 50, 50, 90, 90))
    p = preds(("a.jpg", "neutrophil", 10, 10, 40, 40, 0.9))
    res = evaluate(t, p, bootstrap=0)
    r = row(res, "neutrophil")
    assert (r.tp, r.fp, r.fn, r.support) == (1, 0, 1, 2)
    assert r.precision == 1.0 and r.recall == 0.5 and r.f1 == pytest.approx(2 / 3)
    assert res.confusion[CLASS_NAMES.index("neutrophil"), MISSED] == 1
    assert res.headline["loc_recall"] == 0.5 and res.headline["loc_precision"] == 1.0


def test_spurious_box_and_empty_images():
    t = cells(("a.jpg", "platelet", 10, 10, 20, 20))
    images = ["a.jpg", "empty1.jpg", "empty2.jpg"]
    sizes = pd.DataFrame({"image": images, "width": 100, "height": 100})
    p = preds(("a.jpg", "platelet", 10, 10, 20, 20, 0.9),
              ("a.jpg", "basophil", 60, 60, 90, 90, 0.7),      # spurious on a cell image
              ("empty1.jpg", "platelet", 5, 5, 15, 15, 0.8))   # spurious on an empty image
    res = evaluate(t, p, images=sizes, bootstrap=0)
    h = res.headline
    assert h["n_images"] == 3 and h["n_truth"] == 1 and h["n_pred"] == 3 and h["n_spurious"] == 2
    assert res.confusion[SPURIOUS, CLASS_NAMES.index("basophil")] == 1
    assert res.confusion[SPURIOUS, CLASS_NAMES.index("platelet")] == 1
    pl = row(res, "platelet")
    assert (pl.tp, pl.fp, pl.fn) == (1, 1, 0)
    ba = row(res, "basophil")
    assert ba.support == 0 and ba.precision == 0 and np.isnan(ba.recall) and ba.f1 == 0
    pi = res.per_image.set_index("image")
    assert pi.loc["empty2.jpg", "errors"] == 0 and pi.loc["empty1.jpg", "spurious"] == 1
    # the spurious box on an image without cells has no magnification to take
    assert any("no magnification" in n for n in res.notes)
    # COCO counts the empty image's box as a false positive too
    assert 0 < res.coco["per_class"]["platelet"]["ap50"] <= 1


def test_nothing_at_all_gives_undefined_figures_not_a_crash():
    t = cells()
    res = evaluate(t, preds(), images=pd.DataFrame({"image": ["x.jpg"], "width": [10],
                                                    "height": [10]}), bootstrap=50)
    assert res.headline["n_truth"] == 0 and np.isnan(res.headline["macro_f1"])
    assert np.isnan(res.headline["map50"])


def test_boxes_touching_exactly_at_the_threshold():
    t = cells(("a.jpg", "ig", 0, 0, 10, 10), ("b.jpg", "ig", 0, 0, 10, 10))
    # IoU exactly 50/100 = 0.5 on a.jpg; just below on b.jpg
    p = preds(("a.jpg", "ig", 0, 0, 10, 5, 0.9), ("b.jpg", "ig", 0, 0, 10, 4.99, 0.9))
    res = evaluate(t, p, iou=[0.5, 0.499], bootstrap=0)
    m = res.outcomes[(res.outcomes["t"] >= 0) & (res.outcomes["p"] >= 0)]
    assert m["img"].tolist() == [0] and m["iou"].item() == 0.5
    assert res.by_iou["0.5"]["n_matched"] == 1 and res.by_iou["0.499"]["n_matched"] == 2
    # COCOeval agrees: a.jpg's box counts at IoU 0.5, b.jpg's does not
    assert res.coco["per_class"]["ig"]["ap50"] == pytest.approx(0.5, abs=0.01)


def test_crowded_hungarian_beats_greedy_by_confidence():
    # p1 (confident) overlaps both cells; p2 only cell A. Greedy-by-score gives p1->A and leaves
    # p2 spurious and B missed; the maximum matching pairs p1->B and p2->A.
    t = cells(("a.jpg", "basophil", 0, 0, 10, 10), ("a.jpg", "basophil", 6, 0, 16, 10))
    p = preds(("a.jpg", "basophil", 3, 0, 13, 10, 0.99),   # IoU 7/13=0.54 with A and B
              ("a.jpg", "basophil", 0, 0, 8, 10, 0.50))    # IoU 0.8 with A, 2/16 with B
    res = evaluate(t, p, iou=0.5, bootstrap=0)
    assert res.headline["n_matched"] == 2 and res.headline["n_spurious"] == 0
    m = res.outcomes.set_index("t")["p"]
    assert m[0] == 1 and m[1] == 0


def test_confidence_threshold_drops_before_matching_and_sweep():
    t = cells(("a.jpg", "eosinophil", 10, 10, 40, 40))
    p = preds(("a.jpg", "eosinophil", 10, 10, 40, 40, 0.2), ("a.jpg", "eosinophil", 12, 12, 40, 40, 0.6))
    res = evaluate(t, p, conf=0.25, bootstrap=0, sweep=True)
    assert res.headline["n_pred"] == 1 and res.headline["n_matched"] == 1
    assert res.outcomes.loc[res.outcomes["t"] == 0, "p"].item() == 1
    sw = res.sweep.set_index("conf")
    assert sw.loc[0.1, "n_spurious"] == 1 and sw.loc[0.3, "n_spurious"] == 0
    assert sw.loc[0.7, "n_missed"] == 1
    assert res.headline["best_conf_by_macro_f1"] >= 0.2


def test_magnification_breakdown_each_scale_and_spurious_attribution():
    t = cells(("a.jpg", "ig", 0, 0, 20, 20, 0.5), ("a.jpg", "ig", 50, 50, 90, 90, 1.5))
    p = preds(("a.jpg", "ig", 0, 0, 20, 20, 0.9), ("a.jpg", "lymphocyte", 40, 40, 60, 60, 0.9))
    res = evaluate(t, p, bootstrap=0)
    pm = res.per_magnification
    assert list(pm.loc[pm["class_name"] == "all", "magnification"]) == ["0.5×", "1.5×"]
    allr = pm[pm["class_name"] == "all"].set_index("magnification")
    assert allr.loc["0.5×", "tp"] == 1 and allr.loc["0.5×", "n_spurious"] == 0
    # the spurious lymphocyte box overlaps the 1.5x cell, so it counts there
    assert allr.loc["1.5×", "n_missed"] == 1 and allr.loc["1.5×", "n_spurious"] == 1


def test_continuous_magnification_is_binned():
    truth = synthetic_truth(30, 6, size=320, seed=2)
    truth["magnification"] = np.random.default_rng(0).uniform(0.4, 1.6, len(truth))
    res = evaluate(truth, synthetic_predictions(truth), bootstrap=0, coco=False)
    bins = res.per_magnification.query("class_name == 'all'")
    assert 2 <= len(bins) <= 5 and bins["support"].sum() == len(truth)
    assert bins["magnification"].iloc[0].startswith("[")


# ------------------------------------------------------------------ cross-checks


def _labels(res):
    names = np.array(list(CLASS_NAMES) + ["none"], dtype=object)
    true = names[res.outcomes["true"].to_numpy()]
    pred = names[res.outcomes["pred"].to_numpy()]
    true[res.outcomes["true"].to_numpy() == SPURIOUS] = "spurious"
    pred[res.outcomes["pred"].to_numpy() == MISSED] = "missed"
    return true, pred


def test_per_class_figures_equal_sklearn_classification_report():
    from sklearn.metrics import classification_report

    truth = synthetic_truth(80, 9, size=400, seed=11)
    res = evaluate(truth, synthetic_predictions(truth, seed=4, accuracy=0.7, p_spurious=0.1),
                   bootstrap=0, coco=False)
    y_true, y_pred = _labels(res)
    rep = classification_report(y_true, y_pred, labels=list(CLASS_NAMES), output_dict=True,
                                zero_division=np.nan)
    pc = res.per_class.set_index("class_name")
    for name in CLASS_NAMES:
        for ours, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"),
                             ("support", "support")):
            assert pc.loc[name, ours] == pytest.approx(rep[name][theirs]), (name, ours)
    for avg in ("macro", "weighted"):
        for ours, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert res.headline[f"{avg}_{ours}"] == pytest.approx(rep[f"{avg} avg"][theirs])
    # with extra labels, sklearn's "micro avg" over the 8 classes is our micro figure
    assert res.headline["micro_f1"] == pytest.approx(rep["micro avg"]["f1-score"])
    assert res.headline["micro_precision"] == pytest.approx(rep["micro avg"]["precision"])
    # matched pairs only: the classifier's view
    m = (res.outcomes["true"] < 8) & (res.outcomes["pred"] < 8)
    rep_m = classification_report(y_true[m], y_pred[m], labels=list(CLASS_NAMES), output_dict=True,
                                  zero_division=np.nan)
    for name in CLASS_NAMES:
        assert pc.loc[name, "matched_f1"] == pytest.approx(rep_m[name]["f1-score"])
        assert pc.loc[name, "matched_precision"] == pytest.approx(rep_m[name]["precision"])
    assert res.headline["accuracy_matched"] == pytest.approx(rep_m["accuracy"]
                                                             if "accuracy" in rep_m else
                                                             (y_true[m] == y_pred[m]).mean())


def test_undefined_classes_follow_sklearn_zero_division_nan():
    from sklearn.metrics import classification_report

    # basophil: predicted but never true; platelet: true but never predicted
    t = cells(("a.jpg", "platelet", 0, 0, 10, 10), ("a.jpg", "ig", 20, 20, 40, 40))
    p = preds(("a.jpg", "ig", 20, 20, 40, 40, 0.9), ("a.jpg", "basophil", 60, 60, 80, 80, 0.9))
    res = evaluate(t, p, bootstrap=0, coco=False)
    y_true, y_pred = _labels(res)
    labels = ["basophil", "ig", "platelet"]
    rep = classification_report(y_true, y_pred, labels=labels, output_dict=True,
                                zero_division=np.nan)
    for avg in ("macro", "weighted"):
        for ours, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert res.headline[f"{avg}_{ours}"] == pytest.approx(rep[f"{avg} avg"][theirs],
                                                                  nan_ok=True), (avg, ours)


def test_map_equals_cocoeval_run_directly(tmp_path):
    import json

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from mixmag.evaluate import load_predictions, load_truth
    from mixmag.evaluate.synthetic import coco_results, write_dataset

    truth = synthetic_truth(25, 9, size=320, seed=21)
    root = write_dataset(tmp_path / "ds", truth, draw=False, empty_images=3)
    pred = synthetic_predictions(truth, seed=5, accuracy=0.8, p_spurious=0.15, p_duplicate=0.1)
    (tmp_path / "res.json").write_text(json.dumps(coco_results(pred, truth)))
    tr = load_truth(root / "test.json")
    res = evaluate(tr, load_predictions(tmp_path / "res.json", tr), bootstrap=0)

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "test.json"))
        dt = gt.loadRes(str(tmp_path / "res.json"))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate(); ev.accumulate(); ev.summarize()
    assert res.headline["map50_95"] == pytest.approx(ev.stats[0], abs=1e-12)
    assert res.headline["map50"] == pytest.approx(ev.stats[1], abs=1e-12)
    for k, name in enumerate(CLASS_NAMES):
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(gt, dt, "bbox")
            ev.params.catIds = [k + 1]
            ev.evaluate(); ev.accumulate(); ev.summarize()
        assert res.coco["per_class"][name]["ap50_95"] == pytest.approx(ev.stats[0], abs=1e-12)
        assert res.coco["per_class"][name]["ap50"] == pytest.approx(ev.stats[1], abs=1e-12)


# ------------------------------------------------------------------ properties

box = st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(2, 20), st.integers(2, 20))


@st.composite
def scenes(draw):
    n_img = draw(st.integers(1, 4))
    t_rows, p_rows = [], []
    for i in range(n_img):
        for (x, y, w, h) in draw(st.lists(box, max_size=7)):
            t_rows.append((f"{i}.jpg", CLASS_NAMES[draw(st.integers(0, 7))], x, y, x + w, y + h))
        for (x, y, w, h) in draw(st.lists(box, max_size=8)):
            p_rows.append((f"{i}.jpg", CLASS_NAMES[draw(st.integers(0, 7))], x, y, x + w, y + h,
                           draw(st.floats(0, 1))))
    images = pd.DataFrame({"image": [f"{i}.jpg" for i in range(n_img)], "width": 64, "height": 64})
    return cells(*t_rows, size=64), preds(*p_rows), images, draw(st.sampled_from([0.3, 0.5, 0.7]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_confusion_and_matching_invariants(scene):
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    t, p, images, thr = scene
    res = evaluate(t, p, images=images, iou=thr, conf=0.0, bootstrap=0, coco=False)
    cm, h = res.confusion, res.headline
    # every true cell lands in exactly one row cell of the first 8 rows; every prediction in one
    # column cell of the first 8 columns
    assert cm.sum() == len(t) + h["n_spurious"] == len(p) + h["n_missed"]
    assert cm[:8].sum() == len(t) and cm[:, :8].sum() == len(p) and cm[8, 8] == 0
    tp, fp, fn = (res.per_class[c].to_numpy() for c in ("tp", "fp", "fn"))
    assert (tp + fn == res.per_class["support"]).all() and tp.sum() + fp.sum() == len(p)
    # one-to-one and above the threshold
    m = res.outcomes[(res.outcomes["t"] >= 0) & (res.outcomes["p"] >= 0)]
    assert m["t"].is_unique and m["p"].is_unique and (m["iou"] >= thr).all()
    # maximum cardinality: as many pairs as the largest bipartite matching of allowed pairs
    if len(t) and len(p):
        img_index = {n: i for i, n in enumerate(images["image"])}
        pairs = overlapping_pairs(t["image"].map(img_index).to_numpy(),
                                  t[["x1", "y1", "x2", "y2"]].to_numpy(float),
                                  p["image"].map(img_index).to_numpy(),
                                  p[["x1", "y1", "x2", "y2"]].to_numpy(float), thr)
        g = csr_matrix((np.ones(len(pairs.t)), (pairs.t, pairs.p)), shape=(len(t), len(p)))
        best = (maximum_bipartite_matching(g, perm_type="column") >= 0).sum()
        assert len(m) == best
        mt, mp, _ = match(pairs, thr)
        assert len(mt) == best
    # per-image tables add up to the totals the bootstrap resamples
    pi = res.per_image
    assert pi["tp"].sum() == tp.sum() and pi["fp"].sum() == fp.sum() and pi["fn"].sum() == fn.sum()
    assert h["n_matched"] + h["n_missed"] == len(t)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_bootstrap_interval_brackets_the_resampled_figure(seed):
    from mixmag.evaluate.bootstrap import bootstrap_clustered
    from mixmag.evaluate.metrics import f1

    rng = np.random.default_rng(seed)
    n = 300
    true = rng.integers(0, 9, n)
    pred = np.where(rng.random(n) < 0.7, true, rng.integers(0, 9, n))
    pred[(true == SPURIOUS) & (pred == MISSED)] = 0  # no row is both spurious and missed
    cluster = rng.integers(0, 30, n)
    b = bootstrap_clustered(true, pred, cluster, 300, seed=seed, groups=rng.choice(["a", "b"], n),
                            n_clusters=30)
    lo, hi = b["macro_f1"]
    assert 0 <= lo <= hi <= 1
    cm = np.zeros((9, 9), int)
    np.add.at(cm, (true, pred), 1)
    tp = np.diag(cm)[:8]
    point = np.nanmean(f1(tp, cm[:, :8].sum(0) - tp, cm[:8].sum(1) - tp))
    assert lo - 0.2 <= point <= hi + 0.2
    for name in CLASS_NAMES:
        for fig in ("per_class_f1", "per_class_precision", "per_class_recall"):
            l2, h2 = b[fig][name]
            assert 0 <= l2 <= h2 <= 1
    assert set(b["by_group"]) == {"a", "b"} and b["n_clusters"] == 30
    # same seed, same intervals, however the resamples are chunked
    again = bootstrap_clustered(true, pred, cluster, 300, seed=seed, n_clusters=30,
                                chunk_bytes=8 * n * 7)
    assert again["macro_f1"] == b["macro_f1"] and again["per_class_f1"] == b["per_class_f1"]


def test_image_bootstrap_reproduces_the_earlier_intervals():
    """With image clusters, evaluate() gives the intervals the earlier image bootstrap gave for the
    same data and seed (values recorded from commit 57feb7d)."""
    truth = synthetic_truth(12, 6, size=320, seed=11)
    pred = synthetic_predictions(truth, seed=12, accuracy=0.8)
    r = evaluate(truth, pred, bootstrap=200, coco=False, seed=5)
    assert r.settings["bootstrap_unit"] == "image"
    assert r.headline["macro_f1_ci"] == pytest.approx([0.7748044959090356, 0.8995604666489537], abs=1e-12)
    assert r.bootstrap["per_class_f1"]["erythroblast"] == pytest.approx([0.4990384615384617, 0.9166666666666666], abs=1e-12)
    assert r.bootstrap["per_class_f1"]["ig"] == pytest.approx([0.8694927536231883, 1.0], abs=1e-12)


def test_bootstrap_over_sources_widens_the_interval_of_a_reused_hard_cell():
    """Composites reuse source cells. One erythroblast source wrong in each of its 4 images holds
    recall at 0.98 (196/200). Over images (or with every copy its own source: no reuse) the 4
    errors look independent and the interval stays below 1; drawing each source with all its
    copies, about a third of resamples leave that cell out (recall 1) and some draw it twice or
    more, so the interval is wider and reaches 1."""
    from mixmag.evaluate.bootstrap import bootstrap_clustered

    src = np.repeat(np.arange(50), 4)  # 50 sources, 4 copies each
    img = np.random.default_rng(0).permutation(200) % 60  # spread over 60 images
    pred = np.full(200, ERY)
    pred[src == 7] = LYM
    true = np.full(200, ERY)

    def recall_ci(cluster):
        return bootstrap_clustered(true, pred, cluster, 2000, seed=1)["per_class_recall"]["erythroblast"]

    by_img, no_reuse, reused = recall_ci(img), recall_ci(np.arange(200)), recall_ci(src)
    assert by_img[1] < 1.0 and no_reuse[1] < 1.0 and reused[1] == 1.0
    assert reused[1] - reused[0] > 1.5 * max(by_img[1] - by_img[0], no_reuse[1] - no_reuse[0])
    assert reused[0] < 0.95 < min(by_img[0], no_reuse[0])


def test_report_resamples_sources_when_the_truth_reuses_them():
    """``auto`` resamples source cells for generator truth that reuses them (recorded in settings;
    spurious boxes go with their image), images when every source is unique; the erythroblast
    gets intervals at each magnification that bracket its figure; ``source`` without a complete
    source column, and an unknown unit, are refused."""
    from mixmag.errors import MixmagError

    truth = synthetic_truth(40, seed=3)
    pred = synthetic_predictions(truth, seed=4)
    assert evaluate(truth, pred, bootstrap=50, coco=False).settings["bootstrap_unit"] == "image"
    reused = truth.copy()
    reused["source"] = reused["class_name"] + "/" + (np.arange(len(reused)) % 37).astype(str)
    res = evaluate(reused, pred, bootstrap=200, coco=False)
    assert res.settings["bootstrap_unit"] == "source"
    assert res.bootstrap["n_clusters"] == reused["source"].nunique() + 40
    bm = res.erythroblast["by_magnification"]
    assert bm
    for v in bm.values():
        for k in ("precision", "recall"):
            lo, hi = v[f"{k}_ci"]
            assert lo <= v[k] <= hi
    with pytest.raises(MixmagError, match="no complete 'source' column"):
        evaluate(truth.drop(columns="source"), pred, bootstrap=10, coco=False, bootstrap_unit="source")
    with pytest.raises(MixmagError, match="--bootstrap-unit"):
        evaluate(truth, pred, bootstrap=10, coco=False, bootstrap_unit="image+source")


def test_map_over_all_class_hypotheses_credits_the_runner_up_class():
    """A cell labelled wrong with its true class second: one class a cell gives that class AP 0;
    with every class hypothesis (ultralytics' val protocol) the true class is found at a lower
    score. The headline F1 and mAP stay one class a cell; frames without p_<class> get a note."""
    from mixmag.evaluate.coco import class_hypotheses

    t = cells(("a.jpg", "erythroblast", 10, 10, 30, 30), ("a.jpg", "lymphocyte", 50, 50, 80, 80))
    p = preds(("a.jpg", "lymphocyte", 10, 10, 30, 30, 0.6),
              ("a.jpg", "lymphocyte", 50, 50, 80, 80, 0.9))
    probs = np.zeros((2, len(CLASS_NAMES)))
    probs[0, [LYM, ERY]] = 0.6, 0.395
    probs[1, [LYM, ERY]] = 0.9, 0.005  # below the 0.01 floor: no erythroblast row for it
    for k, n in enumerate(CLASS_NAMES):
        p[f"p_{n}"] = probs[:, k]
    hyp = class_hypotheses(p)
    assert len(hyp) == 3
    own = hyp[hyp["class_name"] == "lymphocyte"].sort_values("y1")
    assert own["score"].tolist() == [0.6, 0.9]  # each cell's own class keeps its row and score
    ery = hyp[hyp["class_name"] == "erythroblast"].iloc[0]
    assert ery["score"] == pytest.approx(0.6 * 0.395 / 0.6) and ery["y1"] == 10

    one = evaluate(t, p, bootstrap=0)
    both = evaluate(t, p, bootstrap=0, all_classes_map=True)
    assert row(one, "erythroblast").ap50 == 0.0
    assert both.headline["map50"] == one.headline["map50"]
    assert both.headline["macro_f1"] == one.headline["macro_f1"]
    assert both.headline["map50_all_classes"] > one.headline["map50"]
    # rows scored as predict's default mode does, √(det_conf × class_conf): each class hypothesis
    # is scored by that rule with its own probability; a zero own probability keeps the score
    g = p.assign(det_conf=[0.8, 0.9], class_conf=[0.6, 0.9])
    g["score"] = np.sqrt(g["det_conf"] * g["class_conf"])
    hg = class_hypotheses(g)
    assert hg[hg["class_name"] == "erythroblast"]["score"].iloc[0] == pytest.approx(np.sqrt(0.8 * 0.395))
    assert sorted(hg[hg["class_name"] == "lymphocyte"]["score"]) == sorted(g["score"])
    z = p.copy()
    z.loc[0, "p_lymphocyte"] = 0.0
    hz = class_hypotheses(z)
    assert hz[(hz["class_name"] == "lymphocyte") & (hz["y1"] == 10)]["score"].iloc[0] == 0.6

    plain = evaluate(t, p.drop(columns=[c for c in p.columns if c.startswith("p_")]), bootstrap=0,
                     all_classes_map=True)
    assert "map50_all_classes" not in plain.headline and any("p_<class>" in n for n in plain.notes)


def test_benchmark_map_conf_adds_low_boxes_to_map_only():
    """benchmarks/detect.py --map-conf / --conf-sweep (mixmag.bench.detection.figures): a cell the
    detector finds only below --conf raises COCO mAP (it is ranked, as at conf 0.001 in
    COCO/ultralytics val) but is not counted as found by the matching figures, which stay those of
    a detector run at --conf."""
    from mixmag.bench.detection import figures

    truth = cells(("a.png", "neutrophil", 10, 10, 40, 40), ("a.png", "ig", 50, 50, 90, 90),
                  ("b.png", "ig", 10, 10, 40, 40), ("b.png", "platelet", 60, 60, 70, 70))
    det = [0.9, 0.8, 0.7, 0.1]  # the platelet only at 0.1
    rows = []
    for (_, t), d in zip(truth.iterrows(), det):
        p = {f"p_{c}": 0.0 for c in CLASS_NAMES}
        p[f"p_{t['class_name']}"] = 1.0
        rows.append({"image": t["image"], "x1": t["x1"], "y1": t["y1"], "x2": t["x2"], "y2": t["y2"],
                     "class_name": t["class_name"], "class_id": CLASS_NAMES.index(t["class_name"]),
                     # classifier-on-boxes' score, √(det · class): 0.32 for the platelet, over 0.25
                     "score": np.sqrt(d), "det_conf": d, "class_conf": 1.0, **p,
                     "magnification_est": 1.0})
    low = pd.DataFrame(rows)
    at_conf = low[low["det_conf"] >= 0.25]
    with contextlib.redirect_stdout(io.StringIO()):
        plain = figures(truth, at_conf, conf=0.25, iou=0.5)
        both = figures(truth, low, conf=0.25, iou=0.5, map_conf=0.001, sweep=[0.05, 0.25])
        # without map_conf (two-stage's mAP) the low boxes count nowhere
        assert figures(truth, low, conf=0.25, iou=0.5) == plain
    # every figure but the mAP columns is that of the detector run at --conf
    map_keys = {"map50", "map50_95", "map50_all_classes", "map50_95_all_classes", "per_class_ap50",
                "per_class_ap50_all_classes", "map_detector_conf", "conf_sweep"}
    assert set(plain) | {"conf_sweep"} == set(both)
    for k in set(plain) - map_keys:
        assert plain[k] == both[k], k
    assert plain["loc_recall"] == both["loc_recall"] == 0.75
    assert plain["macro_f1_conf0"] == both["macro_f1_conf0"] and both["loc_recall_conf0"] == 0.75
    assert plain["n_missed"] == both["n_missed"] == 1 and both["n_pred"] == 3
    assert plain["macro_f1"] == both["macro_f1"]
    assert plain["per_class_ap50"]["platelet"] == 0.0 and both["per_class_ap50"]["platelet"] == 1.0
    assert both["map50"] > plain["map50"] and both["map_detector_conf"] == 0.001
    assert plain["map_detector_conf"] == 0.25
    # --conf-sweep: the figures a detector run at each cut-off would give
    assert both["conf_sweep"]["0.05"]["loc_recall"] == 1.0 and both["conf_sweep"]["0.05"]["n_missed"] == 0
    assert both["conf_sweep"]["0.25"]["loc_recall"] == 0.75
    assert both["conf_sweep"]["0.25"]["macro_f1"] == both["macro_f1"]


def test_benchmark_intervals_bracket_the_per_scale_erythroblast_figures():
    """benchmarks/detect.py --bootstrap (mixmag.bench.detection.figures): macro F1 and the
    erythroblast's P/R at each scale get 95 % intervals around their figures, resampling source
    cells when sources repeat; without it the figures are those of a run without intervals."""
    from mixmag.bench.detection import figures

    truth = synthetic_truth(30, seed=5)
    truth["source"] = truth["class_name"] + "/" + (np.arange(len(truth)) % 23).astype(str)
    pred = synthetic_predictions(truth, seed=6)
    pred["det_conf"] = pred["score"]
    with contextlib.redirect_stdout(io.StringIO()):
        plain = figures(truth, pred, conf=0.25, iou=0.5)
        boot = figures(truth, pred, conf=0.25, iou=0.5, n_boot=300)
    assert "bootstrap" not in plain and boot["bootstrap"]["unit"] == "source"
    lo, hi = boot["bootstrap"]["macro_f1_ci"]
    assert lo <= boot["macro_f1"] <= hi and hi - lo > 0
    for level, m in boot["by_magnification"].items():
        for k in ("precision", "recall"):
            v, (lo, hi) = m[f"erythroblast_{k}"], m[f"erythroblast_{k}_ci"]
            assert lo <= v <= hi, (level, k)
    assert {k: v for k, v in boot.items() if k != "bootstrap" and k != "by_magnification"} == \
        {k: v for k, v in plain.items() if k != "by_magnification"}
    # every erythroblast error is recorded once, with the source cell it was cut from
    ery = row(evaluate(truth, pred, conf=0.25, bootstrap=0, coco=False), "erythroblast")
    errs = plain["erythroblast_errors"]
    assert len(errs) == ery["fp"] + ery["fn"] > 0
    assert sum(x["true"] == "erythroblast" for x in errs) == ery["fn"]
    assert all(x["source"] in set(truth["source"]) for x in errs if x["true"] != "spurious")


def test_paired_comparison_credits_only_the_cells_a_candidate_fixes():
    """benchmarks/compare_pairs.py (mixmag.bench.pairs.compare): both pairs are scored on the same
    resamples of source cells, so a candidate that fixes one hard source (4 copies) and changes
    nothing else is never behind; it is ahead exactly in the resamples that draw that source
    (about 1 - 1/e)."""
    from mixmag.bench.pairs import compare
    from mixmag.evaluate.bootstrap import Rows

    src = np.repeat(np.arange(50), 4)
    mag = np.where(np.arange(200) % 2, "1×", "0.5×").astype(object)
    true = np.full(200, ERY)
    base_pred = true.copy()
    base_pred[src == 7] = LYM
    out = compare(Rows(true, base_pred, src, mag), Rows(true, true.copy(), src, mag), 50, 1000, 0)
    r = out["pooled"]["erythroblast_recall"]
    assert r["baseline"] == 0.98 and r["candidate"] == 1.0 and r["difference"] == 0.02
    assert r["difference_ci"][0] == 0.0 and r["difference_ci"][1] > 0.02
    assert 0.5 < r["candidate_ahead"] < 0.75 and abs(r["candidate_ahead"] + r["tied"] - 1) < 1e-9
    # the same pair against itself: every difference is 0
    same = compare(Rows(true, base_pred, src, mag), Rows(true, base_pred, src, mag), 50, 200, 0)
    assert all(v["difference_ci"] == [0.0, 0.0] for v in same["pooled"].values()
               if v["difference_ci"] is not None)
    assert set(same["by_magnification"]) == {"1×", "0.5×"}


def _fig(f1, loc=0.997):
    return {"macro_f1": f1, "loc_recall": loc, "map50": 0.97}


def test_select_pair_applies_the_stated_rule(tmp_path):
    """benchmarks/select_pair.py (mixmag.bench.selection): a pair is adopted only if its mean
    rises by the margin, no set drops by more than allowed and localisation recall holds (each
    checked at its edge); the best passing mean wins, not the first; a tie goes to the better
    worst set."""
    from mixmag.bench import selection as select_pair

    base, mode = "det+base", "classifier-on-boxes"
    rows = {  # pair: (F1 on v1, F1 on v2, loc recall); the baseline has 0.970 / 0.970 / 0.997
        base: (0.970, 0.970, 0.997),
        "det+small": (0.9715, 0.9715, 0.997),     # gain 0.0015 < 0.002: no
        "det+edge": (0.972, 0.972, 0.997),        # gain exactly 0.002: yes
        "det+dip": (0.980, 0.968, 0.997),         # v2 drops 0.002: no
        "det+dropedge": (0.9774, 0.969, 0.997),   # v2 drops exactly 0.001: yes
        "new+lost": (0.980, 0.980, 0.990),        # loc recall lost: no
        "new+near": (0.975, 0.975, 0.9965),       # loc recall 0.0005 below, within 0.001: yes
        "det+tie": (0.9815, 0.971, 0.997),        # mean 0.97625, worst set +0.001 over base
        "det+best": (0.978, 0.9745, 0.997),       # mean 0.97625, worst set +0.0045: wins the tie
    }
    for k, s_ in enumerate(("v1", "v2")):
        configs = {f"{p}/off ({mode})": _fig(r[k], r[2]) for p, r in rows.items()}
        configs["cell+c/off"] = _fig(0.9705)              # no mode in the name: classifier on boxes
        configs[f"{base}/off (two-stage)"] = _fig(0.99)   # another mode: ignored
        (tmp_path / f"r-{s_}.json").write_text(json.dumps({"configs": configs}))
    (tmp_path / "r-v1-extra.json").write_text(json.dumps({"configs": {f"only+v1/off ({mode})": _fig(1.0)}}))
    # newer files carry the parts as fields: they win over the name (here a name that parses as
    # another pair and mode), so a renamed key cannot move a result into the wrong row
    for s_, f1 in (("v1", 0.99), ("v2", 0.99)):
        fig = {**_fig(f1), "config": {"detector": "fld", "classifier": "top", "scale_norm": "off",
                                      "mode": mode}}
        (tmp_path / f"r-{s_}-fields.json").write_text(json.dumps(
            {"configs": {"misleading+name/on (two-stage)": fig}}))
    table = select_pair.load(["v1", "v2"], str(tmp_path / "r-{set}*.json"), mode)
    assert "only+v1/off" not in table  # missing from v2: left out
    res = select_pair.select(table, ["v1", "v2"], base, 0.002, 0.001, 0.001)
    verdict = {r["config"]: r["passes"] for r in res["rows"]}
    assert verdict == {"det+base/off": False, "det+small/off": False, "det+edge/off": True,
                       "det+dip/off": False, "det+dropedge/off": True, "new+lost/off": False,
                       "new+near/off": True, "det+tie/off": True, "det+best/off": True,
                       "cell+c/off": False, "fld+top/off": True}
    assert res["adopted"] == "fld+top/off"
    del table["fld+top/off"]
    res = select_pair.select(table, ["v1", "v2"], base, 0.002, 0.001, 0.001)
    assert res["adopted"] == "det+best/off"
    with pytest.raises(SystemExit, match="baseline"):
        select_pair.select(table, ["v1", "v2"], "det+none", 0.002, 0.001, 0.001)
    with pytest.raises(SystemExit, match="set"):
        select_pair.load(["v1"], str(tmp_path / "r-v1.json"), mode)


def test_one_class_a_cell_caps_ap_at_recall_as_map_cap_says():
    """benchmarks/map_cap.py's ceiling (mixmag.bench.mapcap) is what pycocotools gives: with every
    box found and right labels ranked first, a class whose recall is r scores (floor(100 r) + 1) /
    101."""
    from mixmag.bench import mapcap as map_cap
    from mixmag.evaluate.coco import coco_map

    wrong = {"ig": 4, "basophil": 3, "monocyte": 1}       # cells of 100 labelled neutrophil
    truth, pred = [], []
    for k, c in enumerate(CLASS_NAMES):
        for i in range(100):
            img = f"{c}-{i}.jpg"
            box = {"image": img, "x1": 10.0, "y1": 10.0, "x2": 60.0, "y2": 60.0}
            truth.append({**box, "class_id": k})
            bad = i < wrong.get(c, 0)
            pred.append({**box, "class_id": CLASS_NAMES.index("neutrophil") if bad else k,
                         "score": 0.5 if bad else 0.9})
    truth, pred = pd.DataFrame(truth), pd.DataFrame(pred)
    res = coco_map(truth, sorted(truth["image"].unique()), pred)
    recall = {c: 1 - wrong.get(c, 0) / 100 for c in CLASS_NAMES}
    for c in CLASS_NAMES:
        assert res["per_class"][c]["ap50"] == pytest.approx(map_cap.ap_cap(recall[c]), abs=1e-6), c
    assert res["per_class"]["ig"]["ap50"] == pytest.approx(97 / 101, abs=1e-6)
    cap = np.mean([map_cap.ap_cap(r) for r in recall.values()])
    assert res["map50"] == pytest.approx(cap, abs=1e-6)
