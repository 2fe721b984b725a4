"""Soak: synthesize N composites, run `mixmag predict` (the default models and backend, as a user
would) over the first n of them for each n in --counts, and record each predict process's peak
RSS and its RSS against the number of images done. Memory must not grow with the number of images.

    nice python benchmarks/soak.py --counts 500 5000 --work datasets/soak \\
        --cache /work/main/datasets/.cache                       # the issue's soak (~30-40 min here)
    python benchmarks/soak.py --counts 50 200 --work /tmp/soak   # a quick look

Peak RSS is the kernel's (wait4 ru_maxrss of the predict process); the samples pair RSS with the
images done so far (drawn/ files written: predict draws each image as it finishes). Writes
benchmarks/results/soak.json (mixmag.bench.record's command, commit, machine, date and load at
the start and the end, each run's load before it, and the figures).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.record import finish_record, start_record  # noqa: E402


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _done(drawn: Path) -> int:
    try:
        return sum(1 for e in os.scandir(drawn) if not e.name.startswith("."))
    except OSError:
        return 0


def run_predict(images: list[Path], out: Path, env: dict, every: float = 2.0) -> dict:
    lst = out.with_suffix(".txt")
    lst.write_text("\n".join(map(str, images)) + "\n")
    cmd = [sys.executable, "-m", "mixmag", "predict", str(lst), "--out", str(out), "--no-progress",
           "--overwrite"]
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    samples = []  # (seconds, images done, RSS MB)
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        r = _rss_mb(p.pid)
        if r:
            samples.append((round(time.time() - t0, 1), _done(out / "drawn"), round(r, 1)))
        time.sleep(every)
    p.returncode = os.waitstatus_to_exitcode(status)
    log = p.stdout.read()
    if p.returncode:
        raise SystemExit(f"predict failed:\n{log}")
    n = len(images)
    s = np.array(samples, float).reshape(-1, 3)
    # models loaded and the first groups through, up to the last image (then outputs, exit)
    warm = s[(s[:, 1] >= min(100, n // 5)) & (s[:, 1] < n)]
    fit = np.polyfit(warm[:, 1], warm[:, 2], 1) if len(warm) > 2 and np.ptp(warm[:, 1]) else [0, 0]

    def upto(k):  # highest RSS sampled while the first k images were in
        sel = s[(s[:, 1] <= k)]
        return round(float(sel[:, 2].max()), 1) if len(sel) else None

    marks = sorted({k for k in (100, 500, 1000, 2000, 3000, 4000, 5000) if k <= n} | {n})
    return {"images": n, "seconds": round(time.time() - t0, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "max_rss_sampled_up_to_images_mb": {str(k): upto(k) for k in marks},
            "rss_slope_mb_per_1000_images_after_warmup": round(float(fit[0]) * 1000, 2),
            "rss_samples_seconds_images_mb": s[:: max(1, len(s) // 60)].tolist(),
            "predict_output": log.strip().splitlines()[-2:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--canvas", type=int, default=1024)
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--cache", help="synthesize's mask cache (default: beside the composites)")
    ap.add_argument("--work", default=str(REPO / "datasets" / "soak"),
                    help="folder for the composites and predictions (git-ignored)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "soak.json"))
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    work = Path(a.work)
    ds = work / f"mix-{a.canvas}"
    n = max(a.counts)
    record = start_record(__file__, canvas=a.canvas)
    t0 = time.time()
    if not (ds / "dataset.json").is_file():
        cmd = [sys.executable, "-m", "mixmag", "synthesize", "--split", a.split, "--out", str(ds),
               "--splits", "test", "--n-test", str(n), "--canvas", str(a.canvas), "--workers", "2",
               "--no-progress", "--seed", str(a.seed)] + (["--cache", a.cache] if a.cache else [])
        subprocess.run(cmd, cwd=REPO, env=env, check=True)
    synth_s = time.time() - t0
    images = sorted((ds / "images" / "test").glob("*.jpg"))
    if len(images) < n:
        raise SystemExit(f"{ds}: {len(images)} composites, need {n}; use another --work")
    runs = []
    for k in sorted(a.counts):
        load = os.getloadavg()
        runs.append({**run_predict(images[:k], work / f"pred-{k}", env),
                     "load_avg_before": [round(v, 2) for v in load]})
        print(f"{k:>6} images: peak RSS {runs[-1]['peak_rss_mb']:.0f} MB, "
              f"{runs[-1]['seconds']} s", flush=True)
    big = runs[-1]
    res = record | {
        "predict": "mixmag predict LIST --out DIR --no-progress --overwrite (default models, "
                   "--backend auto, drawn images on)",
        "synthesize_seconds": round(synth_s, 1), "runs": runs,
        "peak_rss_growth_mb": round(big["peak_rss_mb"] - runs[0]["peak_rss_mb"], 1),
        "within_largest_run_rss_first_vs_all_images_mb": [
            big["max_rss_sampled_up_to_images_mb"].get(str(sorted(a.counts)[0])),
            big["max_rss_sampled_up_to_images_mb"][str(big["images"])]]}
    finish_record(res, a.out)
    print(f"peak RSS growth {res['peak_rss_growth_mb']} MB; wrote {a.out}")


if __name__ == "__main__":
    main()
