"""Apply a selection rule stated before the figures to `benchmarks/detect.py` results on val sets.

    python benchmarks/select_pair.py --sets val41 val42 val43 \
        --results 'benchmarks/results/detect-{set}-gpu-round-*.json' \
        --baseline yolo11n-640-8class+lite0-160-crops4 [--mode classifier-on-boxes] \
        [--min-gain 0.002] [--max-drop 0.001] [--loc-tol 0.001] [--out selection.json]

Every configuration (detector+classifier/norm, one mode) found in all sets is compared with the
baseline on the same sets. A candidate passes if its mean macro F1 rises by at least --min-gain, no
set drops by more than --max-drop, and its localisation recall is within --loc-tol of the
baseline's on every set; of several that pass, the highest mean wins (a tie: the better worst set,
then the name). A configuration without a mode in its name (a one-class detector with a classifier)
counts as classifier-on-boxes, which is what it is. Configurations missing from a set are listed
and left out. Prints the table and the verdict; the test split is never read here. The rule is
mixmag.bench.selection's.

Val sets drawn from one split share its source cells, so their per-set figures are not
independent; benchmarks/compare_pairs.py gives the paired 95 % interval of a difference on the
pooled sets, the better ground for a rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.bench.record import finish_record, start_record  # noqa: E402
from mixmag.bench.selection import load, print_selection, select  # noqa: E402


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
    record = start_record(__file__, argv)
    res = select(load(a.sets, a.results, a.mode), a.sets, a.baseline, a.min_gain, a.max_drop,
                 a.loc_tol)
    print_selection(res, a.sets)
    if a.out:
        finish_record(record | res, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
