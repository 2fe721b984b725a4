"""Composites per second at the defaults (1024², 4-12 cells, 2 workers) and, in the same run, the
bound: decoding the source JPEGs of the planned cells plus encoding the output JPEG, on the same
number of processes.

    python benchmarks/synth_speed.py --split datasets/pbc-split.csv --n 400
    python benchmarks/synth_speed.py --cutouts datasets/cutouts-all.npz --n 400

Masks and the background bank are cached before timing (one-off costs, timed and reported apart).
Each repeat times a whole synthesize() run (with its phases), then the bound and the cut-out floor
on warm pools; the figures are medians over --repeat runs (the machine is shared: load varies).
Writes benchmarks/results/synth_speed.json (mixmag.bench.record's command, commit, machine,
library versions, date and load; the load average before and after each run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.record import finish_record, start_record  # noqa: E402
from mixmag.synth.background import make_bank  # noqa: E402
from mixmag.synth.cutout import cv_single_thread, default_cache_dir  # noqa: E402
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


def _floor_chunk(items):
    cv2.setNumThreads(1)
    enc = _B["enc"]
    for pairs in items:
        for j, p in pairs:
            cv2.imdecode(j, cv2.IMREAD_COLOR)
            cv2.imdecode(p, cv2.IMREAD_GRAYSCALE)
        cv2.imencode(".jpg", enc, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return len(items)


def _cpu() -> float:
    """CPU seconds of this process plus its reaped children (pool workers count once joined)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _pool_rate(fn, chunks, n, workers) -> tuple[float, float]:
    """(images per second, CPU ms per image) of ``fn`` over ``chunks`` on a warm pool of
    ``workers`` processes. The CPU figure covers the pool's whole life, warm-up chunks included."""
    import multiprocessing as mp

    c0 = _cpu()
    with cv_single_thread(), ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as ex:
        warm = chunks[:workers]
        list(ex.map(fn, warm))     # warm the pool
        t0 = time.perf_counter()
        list(ex.map(fn, chunks))
        rate = n / (time.perf_counter() - t0)
    return rate, (_cpu() - c0) / (n + sum(len(c) for c in warm)) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--cutouts")
    ap.add_argument("--pbc")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--canvas", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3, help="runs; the figures are their medians")
    ap.add_argument("--out-json", default=str(REPO / "benchmarks" / "results" / "synth_speed.json"))
    args = ap.parse_args()
    record = start_record(__file__)

    s = SynthSettings(n=args.n, counts=split_counts(args.n), canvas=args.canvas)
    store = load_store(None if args.cutouts else args.split, args.pbc, args.cutouts,
                       splits=s.splits, workers=args.workers,
                       out=REPO / "datasets" / "x")
    plans = plan_dataset(store.table, s.counts, s.cells, [0.5, 1.0, 1.5], None, s.balance, s.seed)
    t0 = time.perf_counter()
    store.require({r for p in plans for r, _ in p.cells}, workers=args.workers)
    mask_s = time.perf_counter() - t0
    cells_per = np.mean([len(p.cells) for p in plans])
    # the background bank is cached on disk like the masks; time one cold build, then warm the cache
    t0 = time.perf_counter()
    make_bank(s.canvas, s.seed)
    bank_s = time.perf_counter() - t0
    make_bank(s.canvas, s.seed, cache=getattr(store, "cache", None) or default_cache_dir(REPO / "datasets" / "x"))

    # the bound: the same cells' source JPEGs decoded, one output encoded per composite
    manifest = getattr(store, "manifest", None)
    if manifest is not None:
        paths = manifest["abspath"].to_numpy()
        blobs = [[np.frombuffer(open(paths[r], "rb").read(), np.uint8) for r, _ in p.cells] for p in plans]
        bound_what = "decode the cells' PBC source JPEGs + encode the 1024² output JPEG (q92)"
    else:   # bundle mode: no PBC files here; decode each cut-out's own JPEG instead
        blobs = [[np.frombuffer(store.encoded(r)[0], np.uint8) for r, _ in p.cells] for p in plans]
        bound_what = "decode the cells' cut-out JPEGs + encode the 1024² output JPEG (q92)"
    pairs = [[tuple(np.frombuffer(b, np.uint8) for b in store.encoded(r)[:2]) for r, _ in p.cells]
             for p in plans]
    bchunks = [blobs[i:i + 8] for i in range(0, len(blobs), 8)]
    fchunks = [pairs[i:i + 8] for i in range(0, len(pairs), 8)]

    runs = []
    for k in range(args.repeat):
        load0 = os.getloadavg()[0]
        tm: dict = {}
        with tempfile.TemporaryDirectory() as tmp:
            c0 = _cpu()
            t0 = time.perf_counter()
            meta = synthesize(Path(tmp) / "bench", s, store, workers=args.workers, progress=False,
                              timings=tm)
            gen_s = time.perf_counter() - t0
            gen_cpu = (_cpu() - c0) / args.n * 1000
            if "enc" not in _B:
                _B["enc"] = cv2.imread(str(Path(tmp) / "bench" / "images" / "train" / "000000.jpg"))
        bound, bound_cpu = _pool_rate(_bound_chunk, bchunks, args.n, args.workers)
        floor, floor_cpu = _pool_rate(_floor_chunk, fchunks, args.n, args.workers)
        load1 = os.getloadavg()[0]
        runs.append({"composites_per_s": round(args.n / gen_s, 1),
                     "render_only_per_s": round(args.n / tm["render"], 1),
                     "bound_per_s": round(bound, 1), "cutout_floor_per_s": round(floor, 1),
                     "share_of_bound": round(args.n / gen_s / bound, 3),
                     "cpu_ms_per_composite": {"generator": round(gen_cpu, 2), "bound": round(bound_cpu, 2),
                                              "cutout_floor": round(floor_cpu, 2)},
                     "seconds": {"total": round(gen_s, 3), **{k: round(v, 3) for k, v in tm.items()}},
                     "load_1min_before_after": [round(load0, 2), round(load1, 2)]})
        print(f"run {k + 1}/{args.repeat}: {runs[-1]}", file=sys.stderr)

    def med(key):
        return float(np.median([r[key] for r in runs]))

    rate, bound = med("composites_per_s"), med("bound_per_s")
    res = record | {
        "figure": "synthetic composites per second (median of repeats)",
        "composites_per_s": rate,
        "bound_composites_per_s": bound,
        "share_of_bound": round(rate / bound, 3),
        "bound_is": bound_what + "; warm pool, no writes",
        "render_only_per_s": med("render_only_per_s"),
        "cpu_ms_per_composite": {k: float(np.median([r["cpu_ms_per_composite"][k] for r in runs]))
                                 for k in ("generator", "bound", "cutout_floor")},
        "share_of_bound_by_cpu": round(float(np.median([r["cpu_ms_per_composite"]["bound"] /
                                                        r["cpu_ms_per_composite"]["generator"] for r in runs])), 3),
        "cpu_note": ("CPU ms per composite summed over the parent and its pool workers (os.times); "
                     "less sensitive to the machine's load than the per-second figures"),
        "cutout_floor_per_s": med("cutout_floor_per_s"),
        "cutout_floor_is": ("decode the cells' cut-out JPEG + alpha PNG (what the generator decodes) "
                            "+ encode the output; warm pool, no writes"),
        "n": args.n, "canvas": args.canvas, "workers": args.workers, "repeats": args.repeat,
        "mean_cells_per_composite": round(float(cells_per), 2),
        "cells_placed": meta["counts"]["cells_placed"],
        "one_off_mask_seconds": round(mask_s, 2),
        "one_off_bank_seconds": round(bank_s, 2),
        "includes": ("composites_per_s: whole synthesize() (plan, bank from cache, pool start, "
                     "render, JPEG encode, atomic writes, pool stop, exports); render_only_per_s: "
                     "the render phase alone; masks and the bank are cached one-offs, timed apart"),
        "runs": runs,
        "load_average_before_after": [runs[0]["load_1min_before_after"][0],
                                      runs[-1]["load_1min_before_after"][1]],
    }
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, indent=1))
    finish_record(res, args.out_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
