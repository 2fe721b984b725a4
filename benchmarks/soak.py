"""Soak: synthesize N composites, run `mixmag predict` (released models, two-stage) over the first
n of them for each n in --counts, and report the peak RSS of each predict process and its RSS
sampled along the run. Memory must not grow with the number of images.

    python benchmarks/soak.py --counts 500 2000 --canvas 1024
    python benchmarks/soak.py --counts 100 400 --canvas 512      # a quick look on a busy 2-core box

Writes benchmarks/results/soak.json (command, commit, CPU, date, load, figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REL = REPO / "models" / "released"


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_predict(images: list[Path], out: Path, env: dict) -> dict:
    lst = out.with_suffix(".txt")
    lst.write_text("\n".join(map(str, images)) + "\n")
    cmd = [sys.executable, "-m", "mixmag", "predict", str(lst),
           "--detector", str(REL / "detector-yolo11n-640-cell" / "best.pt"),
           "--classifier", str(REL / "classifier-lite0-160" / "best.pt"),
           "--out", str(out), "--no-draw", "--no-progress", "--overwrite"]
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    samples = []
    while p.poll() is None:
        r = _rss_mb(p.pid)
        if r:
            samples.append((round(time.time() - t0, 1), round(r, 1)))
        time.sleep(0.5)
    log = p.stdout.read()
    if p.returncode:
        raise SystemExit(f"predict failed:\n{log}")
    peak = max(r for _, r in samples)
    # RSS once the models are loaded and the first images are through vs at the end
    n = len(samples)
    early = max(r for _, r in samples[: max(1, n // 5)])
    late = max(r for _, r in samples[-max(1, n // 5):])
    return {"images": len(images), "seconds": round(time.time() - t0, 1), "peak_rss_mb": peak,
            "rss_first_fifth_mb": early, "rss_last_fifth_mb": late,
            "rss_samples": samples[:: max(1, n // 40)], "predict_output": log.strip().splitlines()[-2:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--canvas", type=int, default=1024)
    ap.add_argument("--split", default=str(REPO / "datasets" / "pbc-split.csv"))
    ap.add_argument("--work", help="folder for the composites (default: a temp folder)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "soak.json"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(a.threads),
           "YOLO_CONFIG_DIR": str(REPO / "runs" / ".ultralytics"), "YOLO_OFFLINE": "1"}
    work = Path(a.work or tempfile.mkdtemp(prefix="mixmag-soak-"))
    ds = work / "mix"
    n = max(a.counts)
    load_before = os.getloadavg()
    t0 = time.time()
    if not (ds / "dataset.json").is_file():
        subprocess.run([sys.executable, "-m", "mixmag", "synthesize", "--split", a.split,
                        "--out", str(ds), "--splits", "test", "--n", str(n), "--canvas", str(a.canvas),
                        "--workers", "2", "--no-progress", "--seed", "7"],
                       cwd=REPO, env=env, check=True)
    synth_s = time.time() - t0
    images = sorted((ds / "images" / "test").glob("*.jpg"))
    runs = [run_predict(images[:k], work / f"pred-{k}", env) for k in sorted(a.counts)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    res = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
           "commit": commit, "cpu": f"{cpu}, {os.cpu_count()} cores (shared)", "date":
           time.strftime("%Y-%m-%dT%H:%M:%S"), "load_avg_before": [round(v, 2) for v in load_before],
           "load_avg_after": [round(v, 2) for v in os.getloadavg()], "canvas": a.canvas,
           "models": ["detector-yolo11n-640-cell", "classifier-lite0-160"], "mode": "two-stage",
           "synthesize_seconds": round(synth_s, 1), "runs": runs,
           "peak_rss_growth_mb": round(runs[-1]["peak_rss_mb"] - runs[0]["peak_rss_mb"], 1)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))
    from mixmag.fileio import write_json

    write_json(a.out, res)
    for r in runs:
        print(f"{r['images']:>6} images: peak RSS {r['peak_rss_mb']:.0f} MB (first fifth "
              f"{r['rss_first_fifth_mb']:.0f}, last fifth {r['rss_last_fifth_mb']:.0f}), {r['seconds']} s")
    print(f"peak RSS growth {res['peak_rss_growth_mb']} MB; wrote {a.out}")


if __name__ == "__main__":
    main()
