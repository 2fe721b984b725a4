"""Single-cell accuracy on PBC TEST crops of classifiers that share one backbone (a base and its
adapt-classifier refits): features are computed once with the base, each checkpoint's own final
linear layer is applied.  python benchmarks/domain_pbc_test.py BASE [ADAPTED ...] [--per-class N]
(zoo names or checkpoints)"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.bench.models import resolve_model  # noqa: E402
from mixmag.classify import load_classifier  # noqa: E402
from mixmag.classify.metrics import classification_metrics, summary_line  # noqa: E402
from mixmag.pipeline.adapt import head_layer, pbc_features  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("weights", nargs="+")
ap.add_argument("--split", default="datasets/pbc-split.csv")
ap.add_argument("--per-class", type=int, default=None)
ap.add_argument("--cache", default="runs/features")
a = ap.parse_args()
base = load_classifier(resolve_model(a.weights[0], "classify"))
fs = pbc_features(base, a.split, None, ("test",), a.per_class, 0, a.cache, 64)
for w in a.weights:
    clf = load_classifier(resolve_model(w, "classify"))
    lin = head_layer(clf.model)
    with torch.no_grad():
        p = lin(torch.from_numpy(fs["X"])).numpy().argmax(1)
    m = classification_metrics(fs["y"], p)
    print(f"{w}: PBC test {summary_line(m)}")
    print(json.dumps({"weights": w, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                      "erythroblast_precision": m["erythroblast_precision"],
                      "erythroblast_recall": m["erythroblast_recall"], "n": m["n"]}))
