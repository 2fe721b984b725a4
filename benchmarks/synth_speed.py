"""Composites per second at the defaults (1024², 4-12 cells, 2 workers) and, in the same run, the
bound: decoding the source JPEGs of the planned cells plus encoding the output JPEG, on the same
number of processes.

    PYTHONPATH=. python benchmarks/synth_speed.py --split datasets/pbc-split.csv --n 400
    PYTHONPATH=. python benchmarks/synth_speed.py --cutouts datasets/cutouts-all.npz --n 400

Masks are cached before timing (first use of a source masks it once; that is a one-off cost).
Writes benchmarks/results/synth_speed.json (command, commit, CPU, date, load average).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.fileio import write_json  # noqa: E402
from mixmag.synth.cutout import cv_single_thread  # noqa: E402
from mixmag.synth.generate import SynthSettings, load_store, synthesize  # noqa: E402
from mixmag.synth.plan import plan_dataset, split_counts  # noqa: E402

_B: dict = {}


def _bound_chunk(items):
    cv2.setNumThreads(1)
    enc = _B["enc"]
    for blobs in items:
        for b in blobs:
            cv2.imdecode(b, cv2.IMREAD_COLOR)
        cv2.imencode(".jpg", enc, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return len(items)


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--cutouts")
    ap.add_argument("--pbc")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--canvas", type=int, default=1024)
    ap.add_argument("--out-json", default=str(REPO / "benchmarks" / "results" / "synth_speed.json"))
    args = ap.parse_args()

    s = SynthSettings(n=args.n, counts=split_counts(args.n), canvas=args.canvas)
    store = load_store(None if args.cutouts else args.split, args.pbc, args.cutouts,
                       splits=s.splits, workers=args.workers,
                       out=REPO / "datasets" / "x")
    plans = plan_dataset(store.table, s.counts, s.cells, [0.5, 1.0, 1.5], None, s.balance, s.seed)
    t0 = time.perf_counter()
    store.require({r for p in plans for r, _ in p.cells}, workers=args.workers)
    mask_s = time.perf_counter() - t0
    cells_per = np.mean([len(p.cells) for p in plans])

    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        meta = synthesize(Path(tmp) / "bench", s, store, workers=args.workers, progress=False)
        gen_s = time.perf_counter() - t0
        sample = cv2.imread(str(Path(tmp) / "bench" / "images" / "train" / "000000.jpg"))

    # the bound: the same cells' source JPEGs decoded, one output encoded per composite
    manifest = getattr(store, "manifest", None)
    if manifest is not None:
        paths = manifest["abspath"].to_numpy()
        blobs = [[np.frombuffer(open(paths[r], "rb").read(), np.uint8) for r, _ in p.cells] for p in plans]
        bound_what = "decode the cells' PBC source JPEGs + encode the 1024² output JPEG (q92)"
    else:   # bundle mode: no PBC files here; decode each cut-out's own JPEG instead
        blobs = [[np.frombuffer(store.encoded(r)[0], np.uint8) for r, _ in p.cells] for p in plans]
        bound_what = "decode the cells' cut-out JPEGs + encode the 1024² output JPEG (q92)"
    _B["enc"] = sample
    chunks = [blobs[i:i + 8] for i in range(0, len(blobs), 8)]
    import multiprocessing as mp

    with cv_single_thread(), ProcessPoolExecutor(args.workers, mp_context=mp.get_context("fork")) as ex:
        list(ex.map(_bound_chunk, chunks[:2]))     # warm the pool
        t0 = time.perf_counter()
        list(ex.map(_bound_chunk, chunks))
        bound_s = time.perf_counter() - t0
    load1 = os.getloadavg()

    rate, bound = args.n / gen_s, args.n / bound_s
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    res = {
        "figure": "synthetic composites per second",
        "composites_per_s": round(rate, 1),
        "bound_composites_per_s": round(bound, 1),
        "share_of_bound": round(rate / bound, 3),
        "bound_is": bound_what,
        "n": args.n, "canvas": args.canvas, "workers": args.workers,
        "mean_cells_per_composite": round(float(cells_per), 2),
        "cells_placed": meta["counts"]["cells_placed"],
        "generation_seconds": round(gen_s, 2), "bound_seconds": round(bound_s, 2),
        "one_off_mask_seconds": round(mask_s, 2),
        "includes": "whole synthesize(): plan, bank, pool start, render, JPEG encode, atomic writes, exports",
        "command": "PYTHONPATH=. python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "git_commit": commit, "cpu": cpu_model(), "cpus": os.cpu_count(),
        "load_average_before_after": [round(load0[0], 2), round(load1[0], 2)],
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "opencv": cv2.__version__,
    }
    print(json.dumps(res, indent=1))
    write_json(args.out_json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
