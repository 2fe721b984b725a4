"""Does a judged pair replace the default? The rule for a successor (docs/HISTORY.md, 2026-12-08),
clause by clause, from the result files `tools/judge_detector.sh` wrote for both pairs.

    python benchmarks/successor_rule.py --default real-mix-cpu7-800-crops-realmix \\
        --candidate real-mix-cpu8-800-crops-realmix \\
        [--throughput benchmarks/results/throughput-val41-det-NAME.json]

Without --throughput clause 6 (CPU images/s) is left out: a verdict is printed only when another
clause fails. Exit status 0
whatever the verdict; 2 on a missing or malformed file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.cli import run_script  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--default", required=True, help="NAME the default pair was judged under")
    ap.add_argument("--candidate", required=True, help="NAME the candidate was judged under")
    ap.add_argument("--throughput", type=Path, help="the candidate's benchmarks/detect.py --throughput record")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)

    from mixmag.bench.successor import images_per_s, judge, judged_figures

    d = judged_figures(args.results, args.default)
    c = judged_figures(args.results, args.candidate)
    rate = images_per_s(args.throughput) if args.throughput else None
    clauses = judge(d, c, rate)
    for k in clauses:
        print(f"clause {k.number} {'holds' if k.holds else 'FAILS'}: {k.what}\n"
              f"    default   {k.default}\n    candidate {k.candidate}")
    if rate is None and all(k.holds for k in clauses):
        print("clause 6 not measured (--throughput): no verdict")
    elif rate is None:
        print(f"verdict: {args.candidate} does not replace the default (clause 6 not measured)")
    else:
        print(f"verdict: {args.candidate} "
              + ("replaces the default" if all(k.holds for k in clauses) else "does not replace the default"))
    return 0


if __name__ == "__main__":
    run_script(main, "benchmarks/successor_rule.py")
