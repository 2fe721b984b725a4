"""One table row per `mixmag report` folder: matched accuracy, macro F1, per-magnification macro F1,
erythroblast P/R.  python benchmarks/domain_summary.py runs/eval/report-*"""

import json
import sys
from pathlib import Path

print("| report | matched acc | macro F1 | macro F1 0.5× / 1× / 1.5× | erythroblast P / R | loc R |")
print("|---|---:|---:|---|---|---:|")
for d in sys.argv[1:]:
    m = json.loads((Path(d) / "metrics.json").read_text())
    h, e = m["headline"], m["erythroblast"]
    pm = {r["magnification"]: r["macro_f1"] for r in m["per_magnification"] if r["class_name"] == "all"}
    print(f"| {Path(d).name} | {h['accuracy_matched']:.3f} | {h['macro_f1']:.3f} | "
          + " / ".join(f"{v:.3f}" for v in pm.values())
          + f" | {e['precision']:.3f} / {e['recall']:.3f} | {h['loc_recall']:.3f} |")
