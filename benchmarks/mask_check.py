"""How often OI-PBC disputes the generator's cut-out masks, over the manifest's sources.

    python benchmarks/mask_check.py [--split datasets/pbc-split.csv] [--splits train val] \
        [--labels ../shared/data/oi-pbc] [--out benchmarks/results/mask-check-sources.json]

For every source with a cached cut-out (`mixmag synthesize` / `pack-cutouts` made it) and an OI-PBC
label, mixmag.synth.maskcheck compares the mask's box with OI-PBC's box of the same cell. Prints
and records: the share whose mask box lies more than 10 % / 20 % outside OI-PBC's (grown by 4 px),
the share holding another of OI-PBC's white cells or platelets, the share disputed, per class,
and the share whose mask box has IoU < 0.7 with OI-PBC's (masks too small, mostly: not
disputed). The test split is not read unless asked for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.record import finish_record, start_record  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--splits", nargs="+", default=["train", "val"])
    ap.add_argument("--labels", help="OI-PBC folder (default: $MIXMAG_OI_PBC, ../shared/data/oi-pbc)")
    ap.add_argument("--cache", help="cut-out cache (default: datasets/.cache)")
    ap.add_argument("--mask-version", default="m5")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "mask-check-sources.json"))
    a = ap.parse_args(argv)

    import pandas as pd

    from mixmag.data.oipbc import find_labels
    from mixmag.data.split import load_manifest
    from mixmag.synth.cutout import default_cache_dir
    from mixmag.synth.maskcheck import check_masks

    m = load_manifest(a.split, verify="none")
    m = m[m["split"].isin(a.splits)].reset_index(drop=True)
    cache = Path(a.cache) if a.cache else default_cache_dir()
    res = check_masks(m, find_labels(a.labels), cache, a.mask_version)
    res["class_name"] = m["class_name"].to_numpy()
    ok = res[res["checked"]]

    def shares(d: pd.DataFrame) -> dict:
        return {"sources": int(len(d)),
                "outside_over_0.1": round(float((d["outside"] > 0.1).mean()), 4),
                "outside_over_0.2": round(float((d["outside"] > 0.2).mean()), 4),
                "another_cell_inside": round(float((d["others_inside"] > 0).mean()), 4),
                "disputed": round(float(d["disputed"].mean()), 4),
                "iou_under_0.7": round(float((d["iou"] < 0.7).mean()), 4)}

    figures = {"all": shares(ok), **{c: shares(g) for c, g in ok.groupby("class_name")}}
    print(f"{len(ok)} of {len(res)} sources checked ({', '.join(a.splits)}; cut-outs in {cache})")
    print(pd.DataFrame(figures).T.to_string())
    rec = start_record(__file__, argv, splits=a.splits, mask_version=a.mask_version,
                       sources=int(len(res)), sources_checked=int(len(ok)), figures=figures)
    finish_record(rec, a.out)
    print("wrote", a.out)
    return 0


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "benchmarks/mask_check.py")
