"""Apply a selection rule stated before the figures to `benchmarks/detect.py` results on val sets.

    python benchmarks/select_pair.py --sets val41 val42 val43 \
        --results 'benchmarks/results/detect-{set}-gpu9-*.json' \
        --baseline yolo11n-640-8class+lite0-160-crops4 [--mode classifier-on-boxes] \
        [--min-gain 0.002] [--max-drop 0.001] [--loc-tol 0.001] [--out selection.json]

Every configuration (detector+classifier/norm, one mode) found in all sets is compared with the
baseline on the same sets. A candidate passes if its mean macro F1 rises by at least --min-gain, no
set drops by more than --max-drop, and its localisation recall is within --loc-tol of the
baseline's on every set; of several that pass, the highest mean wins (a tie: the better worst set,
then the name). A configuration without a mode in its name (a one-class detector with a classifier)
counts as classifier-on-boxes, which is what it is. Configurations missing from a set are listed
and left out. Prints the table and the verdict; the test split is never read here.

Val sets drawn from one split share its source cells, so their per-set figures are not
independent; benchmarks/compare_pairs.py gives the paired 95 % interval of a difference on the
pooled sets, the better ground for a rule.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.fileio import write_json  # noqa: E402

# "DET+CLS/norm (mode)" as benchmarks/detect.py names its configurations
_KEY = re.compile(r"^(?P<pair>\S+?)(?P<norm>/\w+)?(?: \((?P<mode>[^)]+)\))?$")


def _parts(key: str, fig: dict) -> tuple[str, str] | None:
    """(``DET+CLS/norm`` or ``DET``, mode) of one configuration: from its ``config`` fields
    (benchmarks/detect.py records them since 2026-11-27), else parsed from the name (older files)."""
    c = fig.get("config")
    if isinstance(c, dict) and c.get("detector") and c.get("mode"):
        name = c["detector"] + (f"+{c['classifier']}/{c['scale_norm']}" if c.get("classifier") else "")
        return name, c["mode"]
    m = _KEY.match(key)
    if not m:
        return None
    return m["pair"] + (m["norm"] or ""), m["mode"] or ("classifier-on-boxes" if "+" in m["pair"] else "detector")


def load(sets: list[str], pattern: str, mode: str) -> dict[str, dict[str, dict]]:
    """{pair: {set: figures}} for the configurations of ``mode``."""
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
                parts = _parts(key, fig)
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", required=True)
    ap.add_argument("--results", required=True, help="glob with {set}, e.g. 'r/detect-{set}-*.json'")
    ap.add_argument("--baseline", required=True, help="DETECTOR+CLASSIFIER short names")
    ap.add_argument("--mode", default="classifier-on-boxes")
    ap.add_argument("--min-gain", type=float, default=0.002)
    ap.add_argument("--max-drop", type=float, default=0.001)
    ap.add_argument("--loc-tol", type=float, default=0.001)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    res = select(load(a.sets, a.results, a.mode), a.sets, a.baseline, a.min_gain, a.max_drop,
                 a.loc_tol)
    w = max(len(r["config"]) for r in res["rows"])
    print(f"{'configuration':<{w}}  " + "  ".join(f"{s:>7}" for s in a.sets)
          + "     mean    gain  worst drop  loc ok  passes")
    for r in res["rows"]:
        print(f"{r['config']:<{w}}  " + "  ".join(f"{r['macro_f1'][s]:7.4f}" for s in a.sets)
              + f"  {r['mean']:7.4f} {r['gain']:+7.4f}  {r['worst_drop']:+10.4f}  {str(r['loc_ok']):>6}"
              + f"  {'yes' if r['passes'] else ''}")
    print(f"rule: mean gain >= {a.min_gain}, no set drops > {a.max_drop}, loc recall within "
          f"{a.loc_tol} of {res['baseline']} -> adopted: {res['adopted'] or 'none'}")
    if a.out:
        cmd = ["python", "benchmarks/select_pair.py", *(sys.argv[1:] if argv is None else argv)]
        write_json(a.out, {"command": shlex.join(cmd), **res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
