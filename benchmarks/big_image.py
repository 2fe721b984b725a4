"""Peak memory of `mixmag predict` on one very large image (the reliability target: <= 1.5 GB),
and how the detector batch trades memory for speed.

    python benchmarks/big_image.py                      # 12,000 x 9,000, --batch 8 (default), 16, 4
    python benchmarks/big_image.py --size 6000 4000 --batches 16
    python benchmarks/big_image.py --folder datasets/mix-val41-m5/images/val --limit 120

Draws a W x H JPEG of a smear-like field (pale background, ~3,000 red-cell disks with pale
centres and some nucleated cells, seeded) into --work, runs `mixmag predict` on it with the default
models and backend once per --batches value, and records the process's peak RSS (wait4
ru_maxrss), wall time, cells found and the sha256 of cells.csv (the same cells at every batch
size); and the RSS of importing PyTorch alone and predict's pipeline, before any work. With
--folder, also predicts the first --limit images of that folder (no drawing) at each batch, for
images/s and peak RSS on ordinary images. Writes benchmarks/results/big-image.json with
mixmag.bench.record's provenance.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.record import finish_record, start_record  # noqa: E402


def draw(path: Path, w: int, h: int, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (200, 205, 235)
    for _ in range(n):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        r = int(rng.integers(22, 34))
        if rng.random() < 0.05:  # a nucleated cell
            cv2.circle(img, c, r + 10, (210, 170, 190), -1, cv2.LINE_AA)
            cv2.circle(img, c, r - 4, (120, 40, 90), -1, cv2.LINE_AA)
        else:
            cv2.circle(img, c, r, (150, 140, 215), -1, cv2.LINE_AA)
            cv2.circle(img, c, r // 2, (175, 170, 225), -1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise SystemExit(f"{path}: could not write the drawn image")


def peak_rss_mb(cmd: list[str]) -> tuple[float, str]:
    """(peak RSS in MB of ``cmd`` run to its end, its output)."""
    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    log = p.stdout.read()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{log}")
    return round(usage.ru_maxrss / 1024, 1), log


def run(source: Path, out: Path, batch: int, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "mixmag", "predict", str(source), "--out", str(out), "--overwrite",
           "--no-progress", "--batch", str(batch), *extra]
    t0 = time.time()
    rss, log = peak_rss_mb(cmd)
    cells = (out / "cells.csv").read_bytes()
    rec = {"batch": batch, "peak_rss_mb": rss,
           "seconds": round(time.time() - t0, 1), "cells": cells.count(b"\n") - 1,
           "cells_csv_sha256": hashlib.sha256(cells).hexdigest()}
    speed = [w for w in log.split() if w.startswith("(")]  # predict's "(N images/s)"
    if speed:
        rec["images_per_s"] = float(speed[-1].strip("("))
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=[12000, 9000], metavar=("W", "H"))
    ap.add_argument("--disks", type=int, default=3000)
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 16, 4])
    ap.add_argument("--folder", help="also predict this folder's images (no drawing) at each batch")
    ap.add_argument("--limit", type=int, default=120, help="first N images of --folder (120)")
    ap.add_argument("--work", default="/tmp/mixmag-big-image")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "big-image.json"))
    a = ap.parse_args()
    rec = start_record(__file__, sys.argv[1:], size=a.size, disks=a.disks)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    image = work / f"big-{a.size[0]}x{a.size[1]}.jpg"
    if not image.is_file():
        draw(image, *a.size, a.disks)
    rec["import_rss_mb"] = {m: peak_rss_mb([sys.executable, "-c", f"import {m}"])[0]
                            for m in ("torch", "mixmag.pipeline.predict")}
    rec["runs"] = [run(image, work / f"out-b{b}", b) for b in a.batches]
    for r in rec["runs"]:
        print(f"--batch {r['batch']}: peak RSS {r['peak_rss_mb']:,.0f} MB, {r['seconds']} s, "
              f"{r['cells']} cells")
    if a.folder:
        names = sorted(p for p in Path(a.folder).iterdir() if p.suffix.lower() in (".jpg", ".png"))
        src = work / "folder"
        src.mkdir(exist_ok=True)
        for p in names[:a.limit]:
            if not (src / p.name).exists():
                (src / p.name).symlink_to(p.resolve())
        rec["folder"] = {"path": a.folder, "images": min(a.limit, len(names)),
                         "runs": [run(src, work / f"folder-b{b}", b, "--no-draw") for b in a.batches]}
        for r in rec["folder"]["runs"]:
            print(f"{a.folder} --batch {r['batch']}: {r.get('images_per_s')} images/s, peak RSS "
                  f"{r['peak_rss_mb']:,.0f} MB")
    print(f"importing: {rec['import_rss_mb']} MB of RSS")
    print(f"wrote {finish_record(rec, a.out)}")


if __name__ == "__main__":
    main()
