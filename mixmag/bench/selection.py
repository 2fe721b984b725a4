"""A selection rule stated before the figures, applied to ``benchmarks/detect.py`` results on val sets.

``load`` gathers, for one mode, each configuration's figures on every set; ``select`` compares
each with the baseline: a candidate passes if its mean macro F1 rises by at least ``min_gain``, no
set drops by more than ``max_drop``, and its localisation recall is within ``loc_tol`` of the
baseline's on every set; of several that pass, the highest mean wins (a tie: the better worst set,
then the name). ``benchmarks/select_pair.py`` is the command.
"""

from __future__ import annotations

import glob
import json
import re
import sys
from pathlib import Path

__all__ = ["config_parts", "load", "print_selection", "select"]

# "DET+CLS/norm (mode)" as benchmarks/detect.py names its configurations
_KEY = re.compile(r"^(?P<pair>\S+?)(?P<norm>/\w+)?(?: \((?P<mode>[^)]+)\))?$")


def config_parts(key: str, fig: dict) -> tuple[str, str] | None:
    """(``DET+CLS/norm`` or ``DET``, mode) of one configuration: from its ``config`` fields
    (benchmarks/detect.py records them since 2026-11-27), else parsed from the name (older files).
    A name without a mode and with a classifier is classifier-on-boxes; None: not a name."""
    c = fig.get("config")
    if isinstance(c, dict) and c.get("detector") and c.get("mode"):
        name = c["detector"] + (f"+{c['classifier']}/{c['scale_norm']}" if c.get("classifier") else "")
        return name, c["mode"]
    m = _KEY.match(key)
    if not m:
        return None
    return m["pair"] + (m["norm"] or ""), m["mode"] or ("classifier-on-boxes" if "+" in m["pair"] else "detector")


def load(sets: list[str], pattern: str, mode: str) -> dict[str, dict[str, dict]]:
    """{pair: {set: figures}} for the configurations of ``mode`` in the result files matching
    ``pattern`` (a glob with ``{set}``) for each set; pairs missing from a set are left out (and
    named on stderr). Exits with a message on a pattern without ``{set}``, a set without files,
    a file that is not a detect.py result, or a pair found twice for one set."""
    if "{set}" not in pattern:
        raise SystemExit(f"select_pair: --results {pattern!r} must contain {{set}}")
    table: dict[str, dict[str, dict]] = {}
    for s in sets:
        files = sorted(glob.glob(pattern.replace("{set}", s)))
        if not files:
            raise SystemExit(f"select_pair: no results match {pattern.replace('{set}', s)!r}")
        for f in files:
            configs = json.loads(Path(f).read_text()).get("configs")
            if not isinstance(configs, dict):
                raise SystemExit(f"select_pair: {f} has no 'configs' (not a benchmarks/detect.py result)")
            for key, fig in configs.items():
                parts = config_parts(key, fig)
                if parts and parts[1] == mode:
                    name = parts[0]
                    if s in table.setdefault(name, {}):
                        raise SystemExit(f"select_pair: {name} appears twice for set {s} ({f})")
                    table[name][s] = fig
    for name, figs in sorted(table.items()):
        if len(figs) != len(sets):
            print(f"select_pair: {name} left out: no result for {sorted(set(sets) - set(figs))}",
                  file=sys.stderr)
    return {k: v for k, v in table.items() if len(v) == len(sets)}


def select(table: dict[str, dict[str, dict]], sets: list[str], baseline: str, min_gain: float,
           max_drop: float, loc_tol: float) -> dict:
    """The rule applied to ``load``'s table: every row (mean, gain, worst drop, loc check,
    passes), best mean first, and the adopted configuration (None when none passes). The
    baseline is the one configuration named ``baseline`` or ``baseline/NORM``."""
    base = [n for n in table if n == baseline or n.startswith(baseline + "/")]
    if len(base) != 1:
        raise SystemExit(f"select_pair: baseline {baseline!r} matches {base or 'nothing'} "
                         f"(have: {sorted(table)})")
    b = table[base[0]]
    b_mean = sum(b[s]["macro_f1"] for s in sets) / len(sets)
    rows = []
    for name, figs in table.items():
        f1 = [figs[s]["macro_f1"] for s in sets]
        mean = sum(f1) / len(sets)
        drops = [b[s]["macro_f1"] - figs[s]["macro_f1"] for s in sets]
        loc_ok = all(figs[s]["loc_recall"] >= b[s]["loc_recall"] - loc_tol for s in sets)
        passes = (name != base[0] and mean - b_mean >= min_gain - 1e-12
                  and max(drops) <= max_drop + 1e-12 and loc_ok)
        rows.append({"config": name, "macro_f1": dict(zip(sets, f1)), "mean": round(mean, 5),
                     "gain": round(mean - b_mean, 5), "worst_drop": round(max(drops), 5),
                     "loc_recall": {s: figs[s]["loc_recall"] for s in sets},
                     "map50": {s: figs[s]["map50"] for s in sets}, "loc_ok": loc_ok,
                     "passes": passes})
    rows.sort(key=lambda r: (-r["mean"], r["worst_drop"], r["config"]))
    winners = [r for r in rows if r["passes"]]
    return {"baseline": base[0], "baseline_mean": round(b_mean, 5), "rule": {
        "min_gain": min_gain, "max_drop": max_drop, "loc_tol": loc_tol}, "rows": rows,
        "adopted": winners[0]["config"] if winners else None}


def print_selection(res: dict, sets: list[str]) -> None:
    """``select``'s table and verdict, one row a configuration."""
    rule = res["rule"]
    w = max(len(r["config"]) for r in res["rows"])
    print(f"{'configuration':<{w}}  " + "  ".join(f"{s:>7}" for s in sets)
          + "     mean    gain  worst drop  loc ok  passes")
    for r in res["rows"]:
        print(f"{r['config']:<{w}}  " + "  ".join(f"{r['macro_f1'][s]:7.4f}" for s in sets)
              + f"  {r['mean']:7.4f} {r['gain']:+7.4f}  {r['worst_drop']:+10.4f}  {r['loc_ok']!s:>6}"
              + f"  {'yes' if r['passes'] else ''}")
    print(f"rule: mean gain >= {rule['min_gain']}, no set drops > {rule['max_drop']}, loc recall within "
          f"{rule['loc_tol']} of {res['baseline']} -> adopted: {res['adopted'] or 'none'}")
