"""Figures of the report as PNG bytes (matplotlib, Agg backend), and the worst-images strip."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES
from .metrics import RED

SHORT = {"basophil": "BA", "eosinophil": "EO", "erythroblast": "ER", "ig": "IG",
         "lymphocyte": "LY", "monocyte": "MO", "neutrophil": "NE", "platelet": "PL"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def confusion_png(cm: pd.DataFrame, normalised: bool, title: str) -> bytes:
    """Heat map with the value in each cell; the extra row/column are shaded apart."""
    plt = _plt()
    n_r, n_c = cm.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.72 * n_c, 0.9 + 0.6 * n_r))
    v = cm.to_numpy(float)
    shown = v if normalised else np.log1p(v)
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=max(shown.max(), 1e-9), aspect="auto")
    hi = shown.max() * 0.55
    for i in range(n_r):
        for j in range(n_c):
            val = v[i, j]
            if val == 0:
                continue
            txt = f"{val:.2f}" if normalised else f"{int(val)}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > hi else "black")
    ax.set_xticks(range(n_c), list(cm.columns), rotation=40, ha="right", fontsize=9)
    ax.set_yticks(range(n_r), list(cm.index), fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n_r > len(CLASS_NAMES):
        ax.axhline(len(CLASS_NAMES) - 0.5, color="#c33", lw=1)
        ax.axvline(len(CLASS_NAMES) - 0.5, color="#c33", lw=1)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def pr_png(recall, curves: dict, ap: dict, title: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 4.6))
    cmap = plt.get_cmap("tab10")
    for k, name in enumerate(CLASS_NAMES):
        if name in curves:
            a = ap.get(name)
            lab = f"{name} (AP {a:.3f})" if a is not None and np.isfinite(a) else name
            ax.plot(recall, curves[name], color=cmap(k), lw=1.6, label=lab)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower left")
    ax.set_title(title, fontsize=10)
    return _png(fig)


def sweep_png(sweep: pd.DataFrame, conf: float) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    for col, lab in (("macro_f1", "macro F1"), ("micro_f1", "micro F1"),
                     ("loc_precision", "localisation precision"),
                     ("loc_recall", "localisation recall")):
        ax.plot(sweep["conf"], sweep[col], marker=".", label=lab)
    ax.axvline(conf, color="grey", ls="--", lw=1, label=f"--conf {conf:g}")
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Figures against the confidence threshold", fontsize=10)
    return _png(fig)


def magnification_png(per_mag: pd.DataFrame) -> bytes:
    """F1 per class across magnification bins, macro F1 in bold."""
    plt = _plt()
    bins = list(dict.fromkeys(per_mag["magnification"]))
    x = np.arange(len(bins))
    fig, ax = plt.subplots(figsize=(6.8, 4.0))
    cmap = plt.get_cmap("tab10")
    for k, name in enumerate(CLASS_NAMES):
        sel = per_mag[per_mag["class_name"] == name].set_index("magnification").reindex(bins)
        if sel["support"].fillna(0).sum() == 0:
            continue
        ax.plot(x, sel["f1"], marker="o", ms=3, lw=1.1, color=cmap(k), label=name,
                alpha=1.0 if name == "erythroblast" else 0.75)
    allr = per_mag[per_mag["class_name"] == "all"].set_index("magnification").reindex(bins)
    ax.plot(x, allr["macro_f1"], color="black", lw=2.6, marker="s", label="macro F1")
    ax.set_xticks(x, bins, rotation=0 if len(bins) < 7 else 30, fontsize=8)
    ax.set_xlabel("magnification")
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="lower left")
    ax.set_title("F1 by magnification", fontsize=10)
    return _png(fig)


# ------------------------------------------------------------------ worst images

COLOURS = {  # BGR
    "truth": (60, 200, 60), "correct": (230, 150, 30), "confused": (0, 150, 255),
    "spurious": (40, 40, 230), "missed": (200, 40, 200), "red": (150, 150, 150),
}


def find_image(root: Path | None, images_dir: Path | None, rel_path: str, name: str) -> Path | None:
    """Where an image file lives: --images-dir (by relative path, then by name), else the dataset
    root. Only files inside those folders are returned."""
    for base, rel in ((images_dir, rel_path), (images_dir, name), (root, rel_path)):
        if base is None:
            continue
        cand = (base / rel).resolve()
        try:
            cand.relative_to(base.resolve())
        except ValueError:
            continue
        if cand.is_file():
            return cand
    return None


def draw_worst(result, root: Path | None, images_dir: Path | None, n: int = 8,
               width: int = 480) -> list[dict]:
    """The ``n`` images with the most errors (missed + spurious + confusions), drawn with truth
    (green) and predictions (blue right, orange wrong class, red spurious; magenta = missed cell).
    Returns [{image, caption, jpeg}], only for images that can be read."""
    import cv2

    from ..images import read_image

    per_image = result.per_image
    if per_image is None or n <= 0 or "errors" not in per_image:
        return []
    cand = per_image[per_image["errors"] > 0].sort_values(["errors", "f1"], ascending=[False, True])
    out = []
    cells, pred, oc = result.truth.cells, result.pred, result.outcomes
    for r in cand.head(n * 3).itertuples():  # a few spares for unreadable files
        if len(out) >= n:
            break
        path = find_image(root, images_dir, r.path, r.image)
        if path is None:
            continue
        try:
            img = read_image(path)
        except Exception:  # unreadable pictures only lose their thumbnail
            continue
        s = width / img.shape[1]
        img = cv2.resize(img, (width, max(1, round(img.shape[0] * s))), interpolation=cv2.INTER_AREA)
        for o in oc[oc["img"] == r.Index].itertuples():
            red = o.true == RED
            if o.t >= 0 and not (red and o.p < 0):  # a red cell no box claims is no error
                b = cells.iloc[o.t]
                kind = "red" if red else "missed" if o.p < 0 else "truth"
                _box(img, b, s, COLOURS[kind], 2 if kind == "missed" else 1,
                     "RBC" if red else SHORT[CLASS_NAMES[o.true]], above=False)
            if o.p >= 0:
                b = pred.iloc[o.p]
                kind = ("spurious" if o.t < 0 or red else
                        "correct" if o.true == o.pred else "confused")
                _box(img, b, s, COLOURS[kind], 1, SHORT[CLASS_NAMES[o.pred]], above=True)
        ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 82])
        if ok:
            out.append({"image": r.image, "jpeg": jpg.tobytes(),
                        "caption": f"{r.image}: {r.n_truth} cells, {r.tp} right, "
                                   f"{r.wrong_class} wrong class, {r.missed} missed, "
                                   f"{r.spurious} spurious"
                                   + (f", {r.on_red_cells} on red cells" if r.on_red_cells else "")})
    return out


def _box(img, b, s, colour, thick, text, above):
    import cv2

    x1, y1, x2, y2 = (int(round(v * s)) for v in (b.x1, b.y1, b.x2, b.y2))
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, thick, cv2.LINE_AA)
    y = y1 - 3 if above else y2 + 11
    cv2.putText(img, text, (x1 + 1, min(max(y, 10), img.shape[0] - 2)), cv2.FONT_HERSHEY_SIMPLEX,
                0.38, colour, 1, cv2.LINE_AA)
