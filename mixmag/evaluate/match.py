"""One-to-one matching of predicted to true boxes, class-agnostic, per image.

The rule: among pairs with IoU >= the threshold, take the matching with the **most pairs**, and
among those the largest total IoU (Hungarian assignment, ``scipy.optimize.linear_sum_assignment``
on the weights ``K + IoU`` for allowed pairs, 0 otherwise, with ``K = min(n_true, n_pred) + 1`` so
that one more pair always outweighs any IoU gain). Unlike COCO's greedy pass by confidence, a
confident box that overlaps two cells cannot steal the only cell a weaker box could match; the
result does not depend on the scores at all (they only decide which boxes pass ``--conf``).
Class is ignored while matching, so a right box with the wrong class is a confusion, not a
false positive plus a false negative.

IoU matrices come from ``pycocotools.mask.iou`` (C, one call per image). Pairs are computed once
for all thresholds and confidence cut-offs; images whose allowed pairs form no conflict (each box
in at most one pair) are matched without the solver, vectorised, and only crowded images reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment


@dataclass
class Pairs:
    """Overlapping (truth, prediction) pairs of the same image, and each prediction's nearest cell."""

    t: np.ndarray      # truth row index
    p: np.ndarray      # prediction row index
    img: np.ndarray    # image index
    iou: np.ndarray
    pred_near: np.ndarray  # per prediction: truth row it overlaps most (or nearest centre), -1 if none


def _xywh(b: np.ndarray) -> np.ndarray:
    out = b.astype(np.float64, copy=True)
    out[:, 2:] -= out[:, :2]
    return out


def overlapping_pairs(truth_img: np.ndarray, truth_box: np.ndarray, pred_img: np.ndarray,
                      pred_box: np.ndarray, min_iou: float) -> Pairs:
    """All same-image pairs with IoU >= ``min_iou`` (image indexes are small ints)."""
    t_order = np.argsort(truth_img, kind="stable")
    p_order = np.argsort(pred_img, kind="stable")
    n_img = int(max(truth_img.max(initial=-1), pred_img.max(initial=-1)) + 1)
    t_start = np.searchsorted(truth_img[t_order], np.arange(n_img + 1))
    p_start = np.searchsorted(pred_img[p_order], np.arange(n_img + 1))
    t_xywh, p_xywh = _xywh(truth_box), _xywh(pred_box)
    t_ctr = (truth_box[:, :2] + truth_box[:, 2:]) / 2
    p_ctr = (pred_box[:, :2] + pred_box[:, 2:]) / 2
    near = np.full(len(pred_box), -1, dtype=np.int64)
    ts, ps, imgs, ious = [], [], [], []
    has_both = np.flatnonzero((np.diff(t_start) > 0) & (np.diff(p_start) > 0))
    for i in has_both:
        ti = t_order[t_start[i]:t_start[i + 1]]
        pi = p_order[p_start[i]:p_start[i + 1]]
        # rows: predictions, columns: truth; iscrowd all 0
        m = np.asarray(mask_utils.iou(p_xywh[pi], t_xywh[ti], np.zeros(len(ti), np.uint8)))
        best = m.argmax(axis=1)
        no_overlap = m[np.arange(len(pi)), best] <= 0
        if no_overlap.any():
            d = ((p_ctr[pi[no_overlap], None, :] - t_ctr[None, ti, :]) ** 2).sum(-1)
            best[no_overlap] = d.argmin(axis=1)
        near[pi] = ti[best]
        pr, tr = np.nonzero(m >= min_iou)
        if len(pr):
            ts.append(ti[tr]); ps.append(pi[pr]); ious.append(m[pr, tr])
            imgs.append(np.full(len(pr), i, dtype=np.int64))
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    return Pairs(t=cat(ts, np.int64), p=cat(ps, np.int64), img=cat(imgs, np.int64),
                 iou=cat(ious, np.float64), pred_near=near)


def match(pairs: Pairs, iou_thr: float, pred_keep: np.ndarray | None = None,
          first: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matched (truth rows, prediction rows, IoU) at ``iou_thr`` among predictions ``pred_keep``.

    ``first`` (a mask over truth rows): those cells are matched first, and the rest only with the
    predictions left over. A real field's red cells come second, so a red cell never takes a box
    from a white cell it overlaps, nor makes a worse box take that cell; boxes on red cells come
    only from what would otherwise be spurious. Without ``first`` (or all True) it is the one-stage
    matching."""
    sel = pairs.iou >= iou_thr
    if pred_keep is not None:
        sel &= pred_keep[pairs.p]
    if first is None or first.all():
        return _match_selected(pairs, sel)
    in_first = first[pairs.t]
    t1, p1, i1 = _match_selected(pairs, sel & in_first)
    t2, p2, i2 = _match_selected(pairs, sel & ~in_first & ~np.isin(pairs.p, p1))
    return np.concatenate([t1, t2]), np.concatenate([p1, p2]), np.concatenate([i1, i2])


def _match_selected(pairs: Pairs, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, p, img, iou = pairs.t[sel], pairs.p[sel], pairs.img[sel], pairs.iou[sel]
    if len(t) == 0:
        return t, p, iou
    _, t_inv, t_deg = np.unique(t, return_inverse=True, return_counts=True)
    _, p_inv, p_deg = np.unique(p, return_inverse=True, return_counts=True)
    simple = (t_deg[t_inv] == 1) & (p_deg[p_inv] == 1)
    out_t, out_p, out_iou = [t[simple]], [p[simple]], [iou[simple]]
    hard = ~simple
    if hard.any():
        ht, hp, hi, himg = t[hard], p[hard], iou[hard], img[hard]
        order = np.argsort(himg, kind="stable")
        ht, hp, hi, himg = ht[order], hp[order], hi[order], himg[order]
        bounds = np.flatnonzero(np.diff(himg)) + 1
        for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(himg)]):
            mt, mp, mi = solve_assignment(ht[a:b], hp[a:b], hi[a:b])
            out_t.append(mt); out_p.append(mp); out_iou.append(mi)
    return np.concatenate(out_t), np.concatenate(out_p), np.concatenate(out_iou)


def solve_assignment(t: np.ndarray, p: np.ndarray, iou: np.ndarray):
    """Maximum-cardinality, then maximum-IoU, one-to-one matching of the given allowed pairs."""
    tu, ti = np.unique(t, return_inverse=True)
    pu, pi = np.unique(p, return_inverse=True)
    k = min(len(tu), len(pu)) + 1
    w = np.zeros((len(tu), len(pu)))
    w[ti, pi] = k + iou
    exact = np.zeros_like(w)
    exact[ti, pi] = iou  # (k + iou) - k loses the last bits: report the IoU itself
    r, c = linear_sum_assignment(w, maximize=True)
    ok = w[r, c] > 0
    r, c = r[ok], c[ok]
    return tu[r], pu[c], exact[r, c]


def outcome_table(truth_cls: np.ndarray, truth_img: np.ndarray, pred_cls: np.ndarray,
                  pred_img: np.ndarray, mt: np.ndarray, mp: np.ndarray, pred_keep: np.ndarray,
                  missed: int, spurious: int) -> pd.DataFrame:
    """One row per outcome: matched pair, missed truth cell or spurious prediction.

    ``true`` is the true class (``spurious`` code for unmatched predictions), ``pred`` the
    predicted class (``missed`` code for unmatched truth); ``t``/``p`` are row indexes or -1.
    """
    matched_t = np.zeros(len(truth_cls), bool)
    matched_t[mt] = True
    matched_p = np.zeros(len(pred_cls), bool)
    matched_p[mp] = True
    miss = np.flatnonzero(~matched_t)
    spur = np.flatnonzero(pred_keep & ~matched_p)
    return pd.DataFrame({
        "t": np.concatenate([mt, miss, np.full(len(spur), -1)]).astype(np.int64),
        "p": np.concatenate([mp, np.full(len(miss), -1), spur]).astype(np.int64),
        "img": np.concatenate([truth_img[mt], truth_img[miss], pred_img[spur]]).astype(np.int64),
        "true": np.concatenate([truth_cls[mt], truth_cls[miss],
                                np.full(len(spur), spurious)]).astype(np.int64),
        "pred": np.concatenate([pred_cls[mp], np.full(len(miss), missed),
                                pred_cls[spur]]).astype(np.int64),
    })
