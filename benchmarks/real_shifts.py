"""A pair on real val fields under each stain/optics shift fixed in advance (another lab's smear).

    python benchmarks/real_shifts.py [--split datasets/pbc-split.csv] [--work datasets/shifts] \
        [--shifts hed+0.05 blur1.5 ...] [--scales 1] [--out benchmarks/results/real-shifts-val.json]

For each shift in mixmag.synth.shifts.SHIFTS (or those named) it writes the manifest's val fields
through it (`mixmag fields --shift NAME`, at --scales) and scores the pair with
mixmag.bench.real, as benchmarks/real.py does, beside the unshifted fields. The shifts were stated
before any training that uses them (docs/HISTORY.md, 2026-12-04).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.cli import run_script  # noqa: E402


def main(argv=None) -> int:
    from mixmag.synth.shifts import SHIFTS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="datasets/pbc-split.csv", help="split manifest")
    ap.add_argument("--pbc", default=None)
    ap.add_argument("--labels", default=None, help="OI-PBC folder")
    ap.add_argument("--work", default="datasets/shifts", help="where the shifted datasets go")
    ap.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=SHIFTS)
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0])
    ap.add_argument("--detector", default=None)
    ap.add_argument("--classifier", default=None)
    ap.add_argument("--limit", type=int, default=0,
                    help="score N fields of each shifted set, evenly spaced (the same N for each)")
    ap.add_argument("--out", default="benchmarks/results/real-shifts-val.json")
    args = ap.parse_args(argv)

    from mixmag.bench.real import score_dataset, summary_line
    from mixmag.bench.record import finish_record, start_record
    from mixmag.synth.fields import FieldSettings, fields_dataset

    rec = start_record(__file__, argv, scales=args.scales, shifts={})
    for name in ["none", *args.shifts]:
        data = Path(args.work) / f"val-{name}"
        if not (data / "dataset.json").is_file():
            fields_dataset(data, args.split, pbc=args.pbc, labels=args.labels, progress=False,
                           settings=FieldSettings(splits=("val",), scales=tuple(args.scales),
                                                  shift=None if name == "none" else name))
        r = score_dataset(data, "val", args.detector, args.classifier, limit=args.limit)
        rec["models"] = r["models"]
        rec["shifts"][name] = {"images": r["images"], "figures": r["figures"]}
        print(summary_line(name, r["figures"]["all"]), flush=True)
        finish_record(rec, args.out)   # written after each shift: a long run keeps its rows
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_script(main, "benchmarks/real_shifts.py")
