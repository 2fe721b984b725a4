"""The rule for a successor to the default pair (docs/HISTORY.md, 2026-12-08), applied to the
result files `tools/judge_detector.sh` writes for two judged pairs: the default's and a
candidate's. Each clause is computed from the files alone, so a verdict can be read back from
the repository's records.

A pair replaces the default if, on the val sets, against the default's figures:
  1. mean macro F1 over the three field scales up by >= 0.005, and no scale and not the
     mosaics down by more than 0.003;
  2. recall of non-red cells not down by more than 0.005 at any scale;
  3. red cells called one of the eight <= 0.02 an image at every scale;
  4. mean erythroblast F1 over the three scales not down;
  5. checked m5 val composites 41 / 42 / 43 >= 0.98 on every set;
  6. >= 5 images/s end to end on the CPU (1,024² composites, ONNX Runtime).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import MixmagError
from .selection import config_parts

SCALES = ("x0.5", "x1", "x1.5")
SETS = (41, 42, 43)


@dataclass
class Clause:
    number: int
    what: str
    default: str
    candidate: str
    holds: bool


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MixmagError(f"{path}: missing (judge the pair first: tools/judge_detector.sh)") from None
    except (OSError, ValueError) as e:
        raise MixmagError(f"{path}: not a result file ({type(e).__name__})") from None


def judged_figures(results: Path, name: str) -> dict:
    """The figures the rule reads, from the result files of pair NAME."""
    fields = _read(results / f"real-fields-val-det-{name}.json")["figures"]
    mosaics = _read(results / f"real-mosaics-val-det-{name}.json")["figures"]["all"]
    out = {"macro_f1": [fields[s]["macro_f1"] for s in SCALES],
           "recall": [fields[s]["recall_of_non_red_cells"] for s in SCALES],
           "red_as_eight": [fields[s]["red_cells_called_one_of_the_eight_per_image"] for s in SCALES],
           "erythroblast_f1": [fields[s]["erythroblast"]["f1"] for s in SCALES],
           "mosaics_macro_f1": mosaics["macro_f1"], "composites": []}
    for k in SETS:
        configs = _read(results / f"detect-val{k}-m5-checked-det-{name}.json")["configs"]
        boxes = [v for c, v in configs.items()
                 if (config_parts(c, v) or ("", ""))[1] == "classifier-on-boxes"]
        if len(boxes) != 1:
            raise MixmagError(f"detect-val{k}-m5-checked-det-{name}.json: expected one "
                              "classifier-on-boxes configuration")
        out["composites"].append(boxes[0]["macro_f1"])
    return out


def images_per_s(path: Path) -> float:
    t = _read(path)["throughput"]
    return float(next(iter(t.values()))["onnx"]["composites_per_s"])


def _f(v) -> str:
    return " / ".join(f"{x:.4f}" for x in v) if isinstance(v, list) else f"{v:.4f}"


EPS = 1e-9  # a figure exactly at a limit meets it, whatever the float rounding of the difference


def judge(default: dict, cand: dict, rate: float | None = None) -> list[Clause]:
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    d_f1 = [c - d for c, d in zip(cand["macro_f1"], default["macro_f1"])]
    d_mos = cand["mosaics_macro_f1"] - default["mosaics_macro_f1"]
    d_rec = [c - d for c, d in zip(cand["recall"], default["recall"])]
    out = [
        Clause(1, "mean field macro F1 +0.005; no scale, not the mosaics, down > 0.003",
               f"{_f(default['macro_f1'])} · mosaics {_f(default['mosaics_macro_f1'])}",
               f"{_f(cand['macro_f1'])} · mosaics {_f(cand['mosaics_macro_f1'])} (mean "
               f"{mean(cand['macro_f1']) - mean(default['macro_f1']):+.4f})",
               mean(cand["macro_f1"]) - mean(default["macro_f1"]) >= 0.005 - EPS
               and min(d_f1) >= -0.003 - EPS and d_mos >= -0.003 - EPS),
        Clause(2, "recall of non-red cells down <= 0.005 at every scale", _f(default["recall"]),
               _f(cand["recall"]), min(d_rec) >= -0.005 - EPS),
        Clause(3, "red cells called one of the eight <= 0.02 an image at every scale",
               _f(default["red_as_eight"]), _f(cand["red_as_eight"]),
               max(cand["red_as_eight"]) <= 0.02 + EPS),
        Clause(4, "mean erythroblast F1 not down", _f(default["erythroblast_f1"]),
               _f(cand["erythroblast_f1"]),
               mean(cand["erythroblast_f1"]) >= mean(default["erythroblast_f1"]) - EPS),
        Clause(5, "checked m5 val composites 41 / 42 / 43 >= 0.98", _f(default["composites"]),
               _f(cand["composites"]), min(cand["composites"]) >= 0.98 - EPS),
    ]
    if rate is not None:
        out.append(Clause(6, ">= 5 images/s end to end on the CPU", "", f"{rate:.2f}", rate >= 5 - EPS))
    return out
