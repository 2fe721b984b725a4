"""Classification figures: accuracy, macro/weighted P/R/F1, per-class P/R/F1, erythroblast P/R,
confusion matrix (as numbers and as a PNG)."""

from __future__ import annotations

import numpy as np

from ..classes import CLASS_NAMES


def classification_metrics(y_true, y_pred, class_names=CLASS_NAMES) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(len(class_names)))
    out = {"n": int(len(y_true)), "accuracy": float(accuracy_score(y_true, y_pred))}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg,
                                                     zero_division=0)
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(p), float(r), float(f)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out["per_class"] = {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, n in enumerate(class_names)}
    if "erythroblast" in class_names:
        e = out["per_class"]["erythroblast"]
        out["erythroblast_precision"], out["erythroblast_recall"] = e["precision"], e["recall"]
    out["confusion"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def summary_line(m: dict) -> str:
    s = f"acc {m['accuracy']:.2%}  macro F1 {m['macro_f1']:.2%}"
    if "erythroblast_precision" in m:
        s += f"  erythroblast P/R {m['erythroblast_precision']:.2%}/{m['erythroblast_recall']:.2%}"
    return s + f"  (n={m['n']})"


def save_confusion_png(confusion, class_names, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_path

    cm = np.asarray(confusion, float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    n = len(class_names)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix (counts; colour = row fraction)")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
