"""Peak memory and speed of `mixmag predict` on a whole slide (issue target: a 20,000 x 20,000
pyramidal TIFF predicted with peak memory under 3 GB).

The slide is drawn, never stored in the repository: four composites of the shipped demo sample
(real PBC cells, CC BY) repeat over the whole area, written tile by tile as a tiled pyramidal
TIFF (levels 1, 1/2, 1/4, 1/8 as SubIFDs, as OME-TIFF keeps them) without holding it in memory.
`mixmag predict` then runs in a child process; its peak resident memory is the child's
``ru_maxrss``. The same four composites read as one flat 2,048² image give the cells a period
holds, so the slide's count can be checked against (area ratio) x (cells a period).

    python benchmarks/slide_memory.py --side 20000 --out benchmarks/results/slide-20k.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.record import finish_record, start_record  # noqa: E402


def base_scene(work: Path) -> np.ndarray:
    """Four 1,024² composites of the demo sample, two by two (BGR, 2,048²)."""
    sample = REPO / "datasets" / "sample"
    subprocess.run([sys.executable, "-m", "mixmag", "synthesize", "--split",
                    str(sample / "pbc-split.csv"), "--pbc", str(sample / "pbc"), "--out",
                    str(work / "data"), "--n-test", "4", "--splits", "test", "--seed", "3",
                    "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    imgs = [cv2.imread(str(p)) for p in sorted((work / "data" / "images" / "test").glob("*.jpg"))]
    return np.vstack([np.hstack(imgs[:2]), np.hstack(imgs[2:4])])


def write_slide(path: Path, base_rgb: np.ndarray, side: int, downsamples=(2, 4, 8),
                tile: int = 512) -> None:
    """A ``side``² tiled pyramidal TIFF repeating ``base_rgb``, written a tile at a time."""
    import tifffile

    def tiles(img: np.ndarray, n: int):
        period = img.shape[0]
        for y in range(0, n, tile):
            rows = np.arange(y, y + tile) % period
            for x in range(0, n, tile):
                cols = np.arange(x, x + tile) % period
                yield np.ascontiguousarray(img[rows][:, cols])

    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(tiles(base_rgb, side), shape=(side, side, 3), dtype=np.uint8,
                 tile=(tile, tile), subifds=len(downsamples), photometric="rgb",
                 compression="jpeg", compressionargs={"level": 90})
        for d in downsamples:
            small = cv2.resize(base_rgb, None, fx=1 / d, fy=1 / d, interpolation=cv2.INTER_AREA)
            n = -(-side // d)
            tw.write(tiles(small, n), shape=(n, n, 3), dtype=np.uint8, tile=(tile, tile),
                     subfiletype=1, photometric="rgb", compression="jpeg",
                     compressionargs={"level": 90})


_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def predict(src: Path, out: Path, *extra: str) -> dict:
    """`mixmag predict` in a child of its own small parent, which reports the child's peak
    resident memory (``ru_maxrss``: the largest of its children, and it has only this one)."""
    import pandas as pd

    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "mixmag", "predict",
                           str(src), "--out", str(out), "--no-progress", "--overwrite", *extra],
                          check=True, capture_output=True, text=True)
    peak_kb = int(done.stdout.strip().splitlines()[-1])
    return {"seconds": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_kb / 1024, 1),
            "cells": len(pd.read_csv(out / "cells.csv")),
            "summary": [l for l in done.stdout.splitlines()[:-1] if l.strip()]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=20000)
    ap.add_argument("--work", help="folder for the drawn slide (default: a temporary one)")
    ap.add_argument("--out", help="JSON of the figures")
    args = ap.parse_args()
    rec = start_record(__file__, sys.argv[1:], side=args.side)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        base = base_scene(work)
        cv2.imwrite(str(work / "period.png"), base)
        t0 = time.perf_counter()
        write_slide(work / "slide.tif", np.ascontiguousarray(base[:, :, ::-1]), args.side)
        write_s = time.perf_counter() - t0
        flat = predict(work / "period.png", work / "flat")
        slide = predict(work / "slide.tif", work / "slide")
        size_mb = (work / "slide.tif").stat().st_size / 2 ** 20
    period = base.shape[0]
    expected = flat["cells"] * (args.side / period) ** 2
    res = {"file_mb": round(size_mb, 1), "write_seconds": round(write_s, 1),
           "flat_period": {"side": period, **flat}, "slide": slide,
           "slide_megapixels_per_s": round(args.side ** 2 / 1e6 / slide["seconds"], 2),
           "cells_expected_from_period": round(expected),
           "cells_ratio": round(slide["cells"] / max(expected, 1), 3),
           "target_peak_rss_mb": 3072, "met": slide["peak_rss_mb"] < 3072}
    print(f"{args.side}² slide ({size_mb:.0f} MB file): {slide['cells']} cells "
          f"({res['cells_ratio']:.3f} of the period's count x area) in {slide['seconds']:.0f} s, "
          f"peak RSS {slide['peak_rss_mb']:.0f} MB (target < 3,072: "
          f"{'met' if res['met'] else 'missed'}); flat 2,048² period: {flat['peak_rss_mb']:.0f} MB")
    rec.update(res)
    if args.out:
        print(f"wrote {finish_record(rec, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
