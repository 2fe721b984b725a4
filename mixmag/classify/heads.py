"""Classical heads on pooled deep features (Goswami et al. 2024): SVM, XGBoost, KNN, random forest,
logistic regression, each chosen by a small grid search on the validation split.

Saved heads are joblib (pickle) files: they can run code when loaded, so ``load_head`` is only ever
given a path the user named (a head this project wrote), never one found or downloaded.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..classes import CLASS_NAMES
from ..errors import MixmagError
from .data import subset_indices
from .metrics import classification_metrics

HEAD_FORMAT = "mixmag-head/1"


def estimator(kind: str, params: dict, seed: int):
    """An unfitted scikit-learn (or XGBoost) classifier of one head kind with these parameters
    (svm, logreg and knn behind a StandardScaler)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "svm":
        from sklearn.svm import SVC

        return make_pipeline(StandardScaler(), SVC(random_state=seed, **params))
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, **params))
    if kind == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return make_pipeline(StandardScaler(), KNeighborsClassifier(**params))
    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=-1, **params)
    if kind == "xgb":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=300, learning_rate=0.1, tree_method="hist",
                             random_state=seed, n_jobs=os.cpu_count(), **params)
    raise MixmagError(f"--head {kind}: unknown; use svm, xgb, knn, rf or logreg")


GRIDS = {
    # Goswami et al.: linear SVM with a small C, KNN k=10; the rest are the usual small grids
    "svm": [{"kernel": "linear", "C": c} for c in (0.01, 0.1)] +
           [{"kernel": "rbf", "C": c} for c in (1.0, 10.0)],
    "logreg": [{"C": c} for c in (0.01, 0.1, 1.0)],
    "knn": [{"n_neighbors": k, "weights": w} for k, w in itertools.product((5, 10, 20), ("distance",))],
    "rf": [{"max_features": m} for m in ("sqrt", 0.1)],
    "xgb": [{"max_depth": d} for d in (4, 6)],
}


@dataclass
class Head:
    kind: str
    params: dict
    model: object
    class_names: list
    features: dict  # the FeatureSet meta the head was fitted on: which backbone, size, data
    val_metrics: dict = field(default_factory=dict)
    test_metrics: dict | None = None
    grid: list = field(default_factory=list)
    fit_seconds: float = 0.0

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if hasattr(self.model, "predict_proba"):
            try:
                return self.model.predict_proba(X)
            except AttributeError:  # SVC without probability=True
                pass
        d = self.model.decision_function(X)
        e = np.exp(d - d.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(X)).astype(int)


def fit_head(fs, kind: str, train_fraction=None, per_class=None, seed: int = 0,
             grid: list | None = None) -> Head:
    """Grid-search ``kind`` on ``fs``'s train split (optionally a per-class subset), pick on val."""
    if kind not in GRIDS:
        raise MixmagError(f"--head {kind}: unknown; use one of {sorted(GRIDS)}")
    tr = np.flatnonzero(fs.splits == "train")
    tr = subset_indices(fs.y, tr, train_fraction, per_class, seed)
    va = np.flatnonzero(fs.splits == "val")
    if len(tr) == 0 or len(va) == 0:
        raise MixmagError("train-head: the features need train and val images")
    Xtr, ytr, Xva, yva = fs.X[tr], fs.y[tr], fs.X[va], fs.y[va]
    best, tried, t0 = None, [], time.perf_counter()
    for params in grid or GRIDS[kind]:
        est = estimator(kind, params, seed)
        if kind == "knn":
            params = {**params, "n_neighbors": min(params["n_neighbors"], len(tr))}
            est.set_params(kneighborsclassifier__n_neighbors=params["n_neighbors"])
        est.fit(Xtr, ytr)
        acc = float((est.predict(Xva) == yva).mean())
        tried.append({"params": params, "val_accuracy": acc})
        if best is None or acc > best[0]:
            best = (acc, params, est)
    head = Head(kind, best[1], best[2], list(CLASS_NAMES), dict(fs.meta), grid=tried,
                fit_seconds=round(time.perf_counter() - t0, 1))
    head.val_metrics = classification_metrics(yva, head.predict(Xva))
    te = fs.splits == "test"
    if te.any():
        head.test_metrics = classification_metrics(fs.y[te], head.predict(fs.X[te]))
    head.features["train_images"] = int(len(tr))
    return head


def save_head(head: Head, path) -> None:
    import joblib

    from ..fileio import atomic_path

    with atomic_path(path) as tmp:
        joblib.dump({"format": HEAD_FORMAT, "head": head}, tmp)


def load_head(path) -> Head:
    """Load a head this project saved (joblib/pickle: only pass paths you trust)."""
    import joblib

    if not os.path.isfile(path):
        raise MixmagError(f"head {path}: no such file; fit one with `mixmag train-head`")
    try:
        obj = joblib.load(path)
    except Exception as e:
        raise MixmagError(f"head {path}: not a readable head file ({type(e).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != HEAD_FORMAT:
        raise MixmagError(f"head {path}: not a {HEAD_FORMAT} file; fit one with `mixmag train-head`")
    return obj["head"]
